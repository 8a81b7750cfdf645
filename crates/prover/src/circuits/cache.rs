//! The circuit cache: built circuits kept as objects so that a process loads them in seconds
//! instead of building them in minutes.
//!
//! A circuit is a pure function of the [`Params`], the circuit code and plonky2, so a cache entry
//! is named by a digest of exactly those ([`set_key`]) and the circuit's name:
//! `circuits/<set key>/<name>`. The first process to need a circuit builds it and writes it with
//! a first-writer-wins put; a process that loses the race keeps the circuit it built, which is the
//! same circuit. An entry holds a header (magic, SHA-256 of the body) and the body: the plonky2
//! circuit data followed by what our proving code keeps beside it ([`Cached`]). An entry that
//! fails its digest or does not decode is replaced by a fresh build, never used.

use std::sync::Arc;
use std::time::Instant;

use plonky2::plonk::circuit_data::CircuitData;
use plonky2::util::serialization::{Buffer, DefaultGateSerializer, DefaultGeneratorSerializer, IoResult, Read, Write};

use crate::params::Params;
use crate::{C, D, F};

/// Bumped when the entry layout changes; part of every set key.
const FORMAT: &str = "zkfleet-circuit-cache/1";
const MAGIC: &[u8; 8] = b"zkfcirc1";
/// plonky2 and starky decide the circuits' bytes as much as our code does; keep in step with
/// Cargo.lock.
const PROOF_LIBS: &str = "plonky2 1.1.0, starky 1.1.0";
/// The code that defines the circuits: editing any of it names a new set of cache entries.
const CIRCUIT_SOURCES: &[&str] = &[
    include_str!("mod.rs"),
    include_str!("aggregate.rs"),
    include_str!("chain.rs"),
    include_str!("../params.rs"),
    // Level 1 verifies the basic STARK: its AIR and parameters shape that circuit.
    include_str!("../stark/mod.rs"),
    include_str!("../stark/algebra.rs"),
    include_str!("../stark/poseidon.rs"),
    include_str!("../stark/transfer.rs"),
];

/// What a cache holds at a key.
pub enum Loaded {
    Entry(Vec<u8>),
    Missing,
    /// The cache itself says the object is damaged (for example a failed digest check).
    Corrupt(String),
}

/// Where circuits are kept. Implementations report failures as text: a cache that cannot be read
/// or written costs a build, never a task.
pub trait CircuitCache: Send + Sync {
    fn load(&self, key: &str) -> Result<Loaded, String>;
    /// Writes the entry at `key`: first writer wins unless `replace`.
    fn save(&self, key: &str, bytes: &[u8], replace: bool) -> Result<(), String>;
    /// Where the cache is, for logs.
    fn location(&self) -> String;
}

/// The digest that names every circuit of `params`: params, circuit code, plonky2 and format.
pub fn set_key(params: &Params) -> String {
    let mut text = format!("{FORMAT}\n{PROOF_LIBS}\n{}\n", serde_json::to_string(params).expect("params serialize"));
    for source in CIRCUIT_SOURCES {
        text.push_str(source);
    }
    common::store::digest(text.as_bytes())[..32].to_string()
}

/// A circuit that can be written to and read from a cache entry: its plonky2 data, then what our
/// proving code keeps beside it (the targets it fills in; for `final`, also its base proof).
pub(crate) trait Cached: Sized {
    fn data(&self) -> &CircuitData<F, C, D>;
    fn write_targets(&self, out: &mut Vec<u8>) -> IoResult<()>;
    fn read_targets(data: CircuitData<F, C, D>, buf: &mut Buffer) -> IoResult<Self>;
}

/// Why an entry was not usable.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("not a circuit cache entry")]
    NotAnEntry,
    #[error("body digest {actual} does not match the recorded {expected}")]
    Digest { expected: String, actual: String },
    #[error("does not decode: {0}")]
    Decode(String),
}

pub(crate) fn encode<T: Cached>(circuit: &T) -> Vec<u8> {
    let mut body = Vec::new();
    body.write_circuit_data(circuit.data(), &DefaultGateSerializer, &DefaultGeneratorSerializer::<C, D>::default())
        .and_then(|()| circuit.write_targets(&mut body))
        .expect("every gate and generator of our circuits has a serializer");
    let digest = common::store::digest(&body);
    let mut entry = Vec::with_capacity(MAGIC.len() + digest.len() + body.len());
    entry.extend_from_slice(MAGIC);
    entry.extend_from_slice(digest.as_bytes());
    entry.extend_from_slice(&body);
    entry
}

pub(crate) fn decode<T: Cached>(entry: &[u8]) -> Result<T, EntryError> {
    const DIGEST_LEN: usize = 64;
    let header = MAGIC.len() + DIGEST_LEN;
    if entry.len() < header || &entry[..MAGIC.len()] != MAGIC {
        return Err(EntryError::NotAnEntry);
    }
    let expected = std::str::from_utf8(&entry[MAGIC.len()..header]).map_err(|_| EntryError::NotAnEntry)?;
    let body = &entry[header..];
    let actual = common::store::digest(body);
    if actual != expected {
        return Err(EntryError::Digest { expected: expected.into(), actual });
    }
    let mut buf = Buffer::new(body);
    let data = buf
        .read_circuit_data::<F, C, D>(&DefaultGateSerializer, &DefaultGeneratorSerializer::<C, D>::default())
        .map_err(|e| EntryError::Decode(format!("{e:?}")))?;
    let circuit = T::read_targets(data, &mut buf).map_err(|e| EntryError::Decode(format!("{e:?}")))?;
    if !buf.unread_bytes().is_empty() {
        return Err(EntryError::Decode(format!("{} bytes left over", buf.unread_bytes().len())));
    }
    Ok(circuit)
}

/// What the cache holds for one circuit.
enum Found<T> {
    Circuit(T),
    /// Nothing usable: a later save must `replace` what is there when it is damaged.
    Absent {
        replace: bool,
    },
}

/// The key of the circuit `name` of the set `set`.
fn entry_key(set: &str, name: &str) -> String {
    common::keys::circuit(set, name)
}

/// Looks the circuit up; a damaged or unreadable entry is logged and reported absent.
fn find<T: Cached>(cache: &dyn CircuitCache, key: &str, name: &str) -> Found<T> {
    let started = Instant::now();
    let replace = match cache.load(key) {
        Ok(Loaded::Entry(entry)) => match decode::<T>(&entry) {
            Ok(circuit) => {
                tracing::info!(circuit = name, key = %key, ms = started.elapsed().as_millis() as u64, "circuit loaded from the cache");
                return Found::Circuit(circuit);
            }
            Err(e) => {
                tracing::warn!(circuit = name, key = %key, error = %e, "cached circuit rejected");
                true
            }
        },
        Ok(Loaded::Missing) => false,
        Ok(Loaded::Corrupt(e)) => {
            tracing::warn!(circuit = name, key = %key, error = %e, "cached circuit damaged");
            true
        }
        Err(e) => {
            tracing::warn!(circuit = name, cache = %cache.location(), error = %e, "circuit cache unreadable");
            false
        }
    };
    Found::Absent { replace }
}

/// Loads the circuit `name` of the set `set` from `cache` if it holds a sound entry; builds nothing.
pub(crate) fn load<T: Cached>(cache: &dyn CircuitCache, set: &str, name: &str) -> Option<T> {
    match find(cache, &entry_key(set, name), name) {
        Found::Circuit(circuit) => Some(circuit),
        Found::Absent { .. } => None,
    }
}

/// Loads the circuit `name` of the set `set` from `cache`, or builds it and saves it there.
pub(crate) fn load_or_build<T: Cached>(
    cache: Option<&Arc<dyn CircuitCache>>,
    set: &str,
    name: &str,
    build: impl FnOnce() -> T,
) -> T {
    let Some(cache) = cache else { return build() };
    let key = entry_key(set, name);
    let replace = match find(cache.as_ref(), &key, name) {
        Found::Circuit(circuit) => return circuit,
        Found::Absent { replace } => replace,
    };
    let started = Instant::now();
    let circuit = build();
    let built_ms = started.elapsed().as_millis() as u64;
    let entry = encode(&circuit);
    match cache.save(&key, &entry, replace) {
        Ok(()) => {
            tracing::info!(circuit = name, key = %key, ms = built_ms, bytes = entry.len(), "circuit built and cached")
        }
        Err(e) => tracing::warn!(circuit = name, key = %key, ms = built_ms, error = %e, "circuit built but not cached"),
    }
    circuit
}

/// A [`CircuitCache`] over the object store. Its calls block: the backend proves on blocking
/// threads, and `handle` is the runtime the store's futures run on.
pub struct StoreCache {
    store: common::store::Store,
    handle: tokio::runtime::Handle,
}

impl StoreCache {
    pub fn new(store: common::store::Store, handle: tokio::runtime::Handle) -> Self {
        Self { store, handle }
    }

    /// The cache over `store`, if any, on the current runtime: call it from inside the runtime
    /// (an async task or a blocking thread of it).
    pub fn shared(store: Option<common::store::Store>) -> Option<Arc<dyn CircuitCache>> {
        store.map(|store| Arc::new(Self::new(store, tokio::runtime::Handle::current())) as Arc<dyn CircuitCache>)
    }
}

impl CircuitCache for StoreCache {
    fn load(&self, key: &str) -> Result<Loaded, String> {
        use common::store::StoreError;
        match self.handle.block_on(self.store.get(key)) {
            Ok(bytes) => Ok(Loaded::Entry(bytes)),
            Err(StoreError::NotFound(_)) => Ok(Loaded::Missing),
            Err(e @ StoreError::Integrity { .. }) => Ok(Loaded::Corrupt(e.to_string())),
            Err(e) => Err(e.to_string()),
        }
    }

    fn save(&self, key: &str, bytes: &[u8], replace: bool) -> Result<(), String> {
        let result = if replace {
            self.handle.block_on(self.store.replace(key, bytes))
        } else {
            self.handle.block_on(self.store.put(key, bytes)).map(drop)
        };
        result.map_err(|e| e.to_string())
    }

    fn location(&self) -> String {
        self.store.location()
    }
}

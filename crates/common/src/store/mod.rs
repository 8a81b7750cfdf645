//! The object store: where inputs, intermediate proofs and results live, under deterministic keys.
//!
//! Backends: a local directory (the default), S3 and S3-compatible services such as GCS and MinIO
//! ([`s3`]), and memory (unit tests). Writes of artifacts are first-writer-wins: a task redelivered
//! after its output was written does not replace it, so a key never holds two different proofs
//! over its life.
//!
//! Integrity: [`digest`] is the SHA-256 of an object's bytes. Whoever references an artifact (a
//! task naming its inputs, a result naming its outputs) carries its digest, and
//! [`Store::get_verified`] checks it; the S3 backend also records the digest in the object's
//! metadata and checks it on every read.
//!
//! Store URLs: `s3://bucket/prefix` (settings in the query or in flags, see [`StoreArgs`]),
//! `file:///abs/path`, a plain path, or `memory:`.

mod local;
mod memory;
pub mod s3;

use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use crate::metrics::{StoreEnded, StoreTimer};

pub use local::LocalStore;
pub use memory::MemoryStore;
pub use s3::{S3Options, S3Store};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object {0} does not exist")]
    NotFound(String),
    /// A write that must create the object found it there already.
    #[error("object {0} exists already")]
    Exists(String),
    #[error("invalid store key {0:?}")]
    BadKey(String),
    #[error("store i/o on {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bad store url {url:?}: {}", crate::cli::one_line(.reason))]
    BadUrl { url: String, reason: String },
    /// The object's bytes are not the ones that were written: corrupted or truncated at rest.
    #[error("object {key} failed its integrity check: sha256 is {actual}, expected {expected}")]
    Integrity { key: String, expected: String, actual: String },
    /// The credentials were refused, or they do not grant access to the object.
    #[error("access to {what} denied: {message}")]
    Denied { what: String, message: String },
    /// The store could not be reached or failed on its side after retries; may succeed later.
    #[error("store unavailable on {what}: {message}")]
    Unavailable { what: String, message: String },
    /// Any other failure the store reported; retrying will not help.
    #[error("store refused {what}: {message}")]
    Rejected { what: String, message: String },
}

impl StoreError {
    /// Whether another attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Io { .. } | StoreError::Unavailable { .. })
    }
}

/// The SHA-256 of `bytes`, in lowercase hex: how artifacts are referenced with their content.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks `bytes` read under `key` against the digest recorded for it.
pub(crate) fn check_digest(key: &str, bytes: &[u8], expected: &str) -> Result<(), StoreError> {
    let actual = digest(bytes);
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(StoreError::Integrity { key: key.into(), expected: expected.into(), actual })
    }
}

/// Where the store lives, as the command line of every binary gives it.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct StoreArgs {
    /// Object store URL: s3://bucket/prefix[?endpoint=URL&region=R&path_style=BOOL&ca_file=PEM],
    /// file:///abs/path or a path (default: the user's cache directory).
    #[arg(long, env = "ZKFLEET_STORE")]
    pub store: Option<String>,
    /// Endpoint of an S3-compatible service, e.g. https://storage.googleapis.com or a MinIO URL
    /// (default: AWS).
    #[arg(long, env = "ZKFLEET_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region (default: the AWS configuration's, else us-east-1).
    #[arg(long, env = "ZKFLEET_S3_REGION")]
    pub s3_region: Option<String>,
    /// Path-style addressing (bucket in the path, not the host name); default: on with
    /// --s3-endpoint, off for AWS.
    #[arg(long, env = "ZKFLEET_S3_PATH_STYLE", value_name = "BOOL")]
    pub s3_path_style: Option<bool>,
    /// PEM file of CA certificates trusted for an https endpoint, besides the system's roots.
    #[arg(long, env = "ZKFLEET_S3_CA_FILE", value_name = "PEM")]
    pub s3_ca_file: Option<String>,
}

impl StoreArgs {
    /// Opens the store: a bad URL is [`StoreError::BadUrl`] (a usage error); an S3 store is
    /// checked by reaching its bucket, so wrong credentials, a missing bucket or an unreachable
    /// endpoint fail here, within seconds.
    pub async fn open(&self) -> Result<Store, StoreError> {
        self.open_url(&self.store.clone().unwrap_or_else(Store::default_url)).await
    }

    /// Opens the store at `url` with these S3 settings.
    async fn open_url(&self, url: &str) -> Result<Store, StoreError> {
        match Location::parse(url, self)? {
            Location::S3(options) => Ok(Store::S3(S3Store::connect(options).await?)),
            Location::Memory => Ok(Store::Memory(MemoryStore::default())),
            Location::Local(path) => Ok(Store::Local(LocalStore::open(url, path)?)),
        }
    }
}

/// What a store URL names, read without opening or creating anything.
#[derive(Debug)]
pub enum Location {
    /// `memory:`, for tests and benchmarks.
    Memory,
    /// A directory: `file:///abs/path` or a plain path.
    Local(PathBuf),
    S3(S3Options),
}

impl Location {
    /// Reads a store URL with the S3 settings of `args`; a bad one is [`StoreError::BadUrl`].
    pub fn parse(url: &str, args: &StoreArgs) -> Result<Self, StoreError> {
        if let Some(rest) = url.strip_prefix("s3://") {
            return Ok(Location::S3(S3Options::parse(url, rest, args)?));
        }
        if url == "memory:" {
            return Ok(Location::Memory);
        }
        match url.strip_prefix("file://") {
            Some(path) => Ok(Location::Local(PathBuf::from(path))),
            None if url.contains("://") => {
                Err(StoreError::BadUrl { url: url.into(), reason: "unsupported scheme".into() })
            }
            None => Ok(Location::Local(PathBuf::from(url))),
        }
    }
}

/// Where built circuits are kept, as the commands that prove or verify take it.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct CircuitCacheArgs {
    /// Where built circuits are kept and found: a store URL (the S3 settings of --store apply),
    /// or `off` to build every circuit in the process (default: the store, under circuits/).
    #[arg(long, env = "ZKFLEET_CIRCUIT_CACHE", value_name = "URL|off")]
    pub circuit_cache: Option<String>,
}

impl CircuitCacheArgs {
    /// Whether the flag turns the cache off.
    pub fn is_off(&self) -> bool {
        self.circuit_cache.as_deref() == Some("off")
    }

    /// The circuit cache's store: `store` itself unless the flag names another one or `off`.
    /// Opening it fails like opening `--store` does.
    pub async fn open(&self, store_args: &StoreArgs, store: &Store) -> Result<Option<Store>, StoreError> {
        match self.circuit_cache.as_deref() {
            _ if self.is_off() => Ok(None),
            None => Ok(Some(store.clone())),
            Some(url) => store_args.open_url(url).await.map(Some),
        }
    }
}

/// A store of one of the backends. Calls to the local and S3 backends are boxed (`Box::pin`): an
/// S3 request's future is several kilobytes (the SDK's, inline), and without the box every
/// `Store` call was that large, and so was every future that awaits one (a worker's whole task),
/// with any backend, the memory store included. Measured: "Store futures" in
/// `git show a9e8093^:docs/benchmarks.md`.
#[derive(Clone, Debug)]
pub enum Store {
    Local(LocalStore),
    S3(S3Store),
    Memory(MemoryStore),
}

/// How a store call ended, for its metrics: a missing object is not a failure.
fn ended<T>(result: &Result<T, StoreError>, bytes: impl FnOnce(&T) -> usize) -> StoreEnded {
    match result {
        Ok(done) => StoreEnded::Done { bytes: bytes(done) },
        Err(StoreError::NotFound(_)) => StoreEnded::Missing,
        Err(_) => StoreEnded::Failed,
    }
}

impl Store {
    /// Opens a local or memory store; a local directory is created if missing. S3 stores are
    /// opened with [`StoreArgs::open`].
    pub fn open(url: &str) -> Result<Self, StoreError> {
        match Location::parse(url, &StoreArgs::default())? {
            Location::Memory => Ok(Store::Memory(MemoryStore::default())),
            Location::Local(path) => Ok(Store::Local(LocalStore::open(url, path)?)),
            Location::S3(_) => {
                Err(StoreError::BadUrl { url: url.into(), reason: "an S3 store opens asynchronously".into() })
            }
        }
    }

    /// The default local store: `$XDG_CACHE_HOME` or `~/.cache`, then `zkfleet`.
    pub fn default_url() -> String {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("zkfleet").to_string_lossy().into_owned()
    }

    /// Reads `key`. The S3 backend checks the digest recorded in the object's metadata.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        check_key(key)?;
        let timer = StoreTimer::start();
        let read = match self {
            Store::Local(s) => Box::pin(s.get(key)).await,
            Store::S3(s) => Box::pin(s.get(key)).await,
            Store::Memory(s) => s.get(key),
        };
        timer.read(ended(&read, Vec::len));
        read
    }

    /// Reads `key` and checks it against the digest its reference recorded, when there is one.
    pub async fn get_verified(&self, key: &str, expected: Option<&str>) -> Result<Vec<u8>, StoreError> {
        let bytes = self.get(key).await?;
        if let Some(expected) = expected {
            check_digest(key, &bytes, expected)?;
        }
        Ok(bytes)
    }

    /// Writes `bytes` under `key` unless the key exists; returns whether this call wrote it.
    pub async fn put(&self, key: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        check_key(key)?;
        let timer = StoreTimer::start();
        let written = match self {
            Store::Local(s) => Box::pin(s.put(key, bytes)).await,
            Store::S3(s) => Box::pin(s.put(key, bytes, true)).await,
            Store::Memory(s) => Ok(s.put(key, bytes)),
        };
        // A write that found the object there moved nothing.
        timer.write(ended(&written, |wrote| if *wrote { bytes.len() } else { 0 }));
        written
    }

    /// Writes `bytes` under `key`, replacing what is there. Only for small records that change
    /// (the last error of a task); proofs and inputs use [`Store::put`].
    pub async fn replace(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        check_key(key)?;
        match self {
            Store::Local(s) => Box::pin(s.replace(key, bytes)).await,
            Store::S3(s) => Box::pin(s.put(key, bytes, false)).await.map(drop),
            Store::Memory(s) => {
                s.replace(key, bytes);
                Ok(())
            }
        }
    }

    /// Removes `key`; removing what is not there is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        match self {
            Store::Local(s) => Box::pin(s.delete(key)).await,
            Store::S3(s) => Box::pin(s.delete(key)).await,
            Store::Memory(s) => {
                s.delete(key);
                Ok(())
            }
        }
    }

    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        check_key(key)?;
        match self {
            Store::Local(s) => Box::pin(s.exists(key)).await,
            Store::S3(s) => Box::pin(s.exists(key)).await,
            Store::Memory(s) => Ok(s.exists(key)),
        }
    }

    /// Removes every object whose key starts with `prefix/`.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        check_key(prefix)?;
        match self {
            Store::Local(s) => Box::pin(s.delete_prefix(prefix)).await,
            Store::S3(s) => Box::pin(s.delete_prefix(prefix)).await,
            Store::Memory(s) => {
                s.delete_prefix(prefix);
                Ok(())
            }
        }
    }

    /// Where the store is, for messages: a directory, an `s3://` URL or `memory:`.
    pub fn location(&self) -> String {
        match self {
            Store::Local(s) => s.root().display().to_string(),
            Store::S3(s) => s.url(),
            Store::Memory(_) => "memory:".into(),
        }
    }
}

/// Keys are relative paths of plain segments: no `..`, no empty segment, no leading slash.
fn check_key(key: &str) -> Result<(), StoreError> {
    let ok = !key.is_empty() && key.split('/').all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\\'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadKey(key.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::exercise;

    /// Whatever the backend, a store call is a small future, so a task that awaits several is
    /// not kilobytes that move with it (see [`Store`]).
    #[test]
    fn a_store_call_is_a_small_future() {
        let store = Store::open("memory:").unwrap();
        let sizes = [
            ("get", std::mem::size_of_val(&store.get("k"))),
            ("get_verified", std::mem::size_of_val(&store.get_verified("k", None))),
            ("put", std::mem::size_of_val(&store.put("k", b""))),
            ("replace", std::mem::size_of_val(&store.replace("k", b""))),
            ("delete", std::mem::size_of_val(&store.delete("k"))),
            ("exists", std::mem::size_of_val(&store.exists("k"))),
            ("delete_prefix", std::mem::size_of_val(&store.delete_prefix("k"))),
        ];
        for (call, size) in sizes {
            assert!(size <= 512, "Store::{call} is a {size}-byte future");
        }
    }

    #[tokio::test]
    async fn memory_store_behaves_like_a_store() {
        exercise(Store::open("memory:").unwrap()).await;
    }

    #[tokio::test]
    async fn local_store_behaves_like_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        exercise(Store::open(&url).unwrap()).await;
        // No temporary files are left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("jobs/b")).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }

    #[test]
    fn digests_are_sha256_hex() {
        assert_eq!(digest(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn unsupported_urls_are_rejected() {
        assert!(matches!(Store::open("ftp://x/y"), Err(StoreError::BadUrl { .. })));
        assert!(matches!(Store::open(""), Err(StoreError::BadUrl { .. })));
    }
}

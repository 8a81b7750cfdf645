//! The circuit cache: circuits loaded from it are the circuits built, a warm process builds
//! nothing, and a damaged entry is rebuilt and replaced rather than used.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::Store;
use prover::batch::parse_batches;
use prover::circuits::cache::{set_key, CircuitCache, Loaded};
use prover::execute::execute;
use prover::proof_file::ProofFile;
use prover::{Backend, CircuitSet, Params, StoreCache};

const A: &str = "0x52908400098527886e0f7030069857d2e4169ee7";
const B: &str = "0x8617e340b3d01fa5f11f306f4090fd50e238070d";

fn params() -> Params {
    Params { tree_depth: 4, chunk_size: 1, arity: 2, levels: 1 }
}

/// A cache over a store that counts what it is asked to do.
struct Counting {
    inner: StoreCache,
    loads: AtomicUsize,
    saves: AtomicUsize,
    replaces: AtomicUsize,
}

impl Counting {
    fn new(store: &Store, rt: &tokio::runtime::Runtime) -> Arc<Self> {
        Arc::new(Self {
            inner: StoreCache::new(store.clone(), rt.handle().clone()),
            loads: AtomicUsize::new(0),
            saves: AtomicUsize::new(0),
            replaces: AtomicUsize::new(0),
        })
    }
}

impl CircuitCache for Counting {
    fn load(&self, key: &str) -> Result<Loaded, String> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(key)
    }

    fn save(&self, key: &str, bytes: &[u8], replace: bool) -> Result<(), String> {
        let counter = if replace { &self.replaces } else { &self.saves };
        counter.fetch_add(1, Ordering::SeqCst);
        self.inner.save(key, bytes, replace)
    }

    fn location(&self) -> String {
        self.inner.location()
    }
}

/// Proves a two-transaction batch through every round and returns the proof file.
fn prove_batch(backend: &Backend) -> ProofFile {
    let json = format!(
        r#"{{"version":1,"chain_id":5,"batch_number":1,
            "accounts":[{{"address":"{A}","balance":"1000","nonce":3}}],
            "transactions":[{{"from":"{A}","to":"{B}","value":"250","nonce":3}},
                            {{"from":"{B}","to":"{A}","value":"50","nonce":0}}]}}"#
    );
    let batch = &parse_batches(&json).unwrap()[0];
    let executed = execute(batch, backend.params()).unwrap();
    let basics: Vec<Vec<u8>> = executed.chunks.iter().map(|c| backend.prove_basic(c).unwrap()).collect();
    let top = backend.prove_aggregate(1, &basics).unwrap();
    let fin = backend.prove_final(&top, executed.chain_id, executed.batch_number, None).unwrap();
    let compressed = backend.prove_compress(&fin).unwrap();
    ProofFile::new(backend.circuits(), &compressed, &fin).unwrap()
}

fn digest_of(data: &plonky2::plonk::circuit_data::CircuitData<prover::F, prover::C, 2>) -> String {
    format!("{:?}", data.verifier_only.circuit_digest)
}

fn digests(set: &CircuitSet) -> Vec<String> {
    vec![digest_of(&set.aggregate(1).data), digest_of(&set.final_circuit().data), digest_of(&set.compress().data)]
}

#[test]
fn a_warm_cache_gives_the_circuits_a_cold_build_gives() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = Store::open("memory:").unwrap();

    let cold_cache = Counting::new(&store, &rt);
    let cold = Backend::with_cache(params(), Some(cold_cache.clone()));
    let cold_file = prove_batch(&cold);
    // The basic round is a STARK: it has no circuit to cache.
    assert_eq!(cold_cache.saves.load(Ordering::SeqCst), 3, "a cold cache gets aggregate-1, final and compress");
    for name in ["aggregate-1", "final", "compress"] {
        let key = format!("circuits/{}/{name}", set_key(&params()));
        assert!(rt.block_on(store.exists(&key)).unwrap(), "{key} is cached");
    }

    let warm_cache = Counting::new(&store, &rt);
    let warm = Backend::with_cache(params(), Some(warm_cache.clone()));
    let warm_file = prove_batch(&warm);
    assert_eq!(
        warm_cache.saves.load(Ordering::SeqCst) + warm_cache.replaces.load(Ordering::SeqCst),
        0,
        "a warm process builds nothing"
    );
    assert_eq!(warm_cache.loads.load(Ordering::SeqCst), 3);

    assert_eq!(digests(warm.circuits()), digests(cold.circuits()), "loaded circuits have the built circuits' digests");
    assert_eq!(warm_file.circuit_digest, cold_file.circuit_digest);
    assert_eq!(warm_file.public_values, cold_file.public_values);
    // Each side accepts the other's proof.
    warm_file.verify(cold.circuits()).expect("a proof made with loaded circuits verifies against built ones");
    cold_file.verify(warm.circuits()).expect("a proof made with built circuits verifies against loaded ones");
}

#[test]
fn a_damaged_entry_is_rebuilt_and_replaced() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = Store::open("memory:").unwrap();
    let key = format!("circuits/{}/aggregate-1", set_key(&params()));
    let built = digest_of(&CircuitSet::with_cache(params(), Some(Counting::new(&store, &rt))).aggregate(1).data);
    let entry = rt.block_on(store.get(&key)).unwrap();

    let mut flipped = entry.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x40;
    let truncated = entry[..entry.len() - 100].to_vec();
    for damaged in [flipped, truncated, b"not a circuit".to_vec()] {
        rt.block_on(store.replace(&key, &damaged)).unwrap();
        let cache = Counting::new(&store, &rt);
        let set = CircuitSet::with_cache(params(), Some(cache.clone()));
        assert_eq!(digest_of(&set.aggregate(1).data), built, "the damaged entry was not used");
        assert_eq!(cache.replaces.load(Ordering::SeqCst), 1, "the damaged entry is replaced");
        let again = Counting::new(&store, &rt);
        CircuitSet::with_cache(params(), Some(again.clone())).aggregate(1);
        assert_eq!(
            again.saves.load(Ordering::SeqCst) + again.replaces.load(Ordering::SeqCst),
            0,
            "the new entry loads"
        );
    }
}

#[test]
fn two_processes_racing_leave_one_whole_entry() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().to_str().unwrap().to_string();
    let start = std::sync::Barrier::new(2);
    // Each side has its own store handle and cache, as two worker processes on one volume would.
    let built: Vec<String> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let cache = Counting::new(&Store::open(&url).unwrap(), &rt);
                    let set = CircuitSet::with_cache(params(), Some(cache));
                    start.wait();
                    digest_of(&set.aggregate(1).data)
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(built[0], built[1]);
    let after = Counting::new(&Store::open(&url).unwrap(), &rt);
    let set = CircuitSet::with_cache(params(), Some(after.clone()));
    assert_eq!(digest_of(&set.aggregate(1).data), built[0]);
    assert_eq!(after.saves.load(Ordering::SeqCst) + after.replaces.load(Ordering::SeqCst), 0, "the entry left loads");
}

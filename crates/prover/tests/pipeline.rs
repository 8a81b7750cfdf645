//! Every round of the reference backend on small parameters: a chain of two batches proved,
//! written to proof files and verified, and the failures a user can cause.

use prover::batch::parse_batches;
use prover::execute::execute;
use prover::proof_file::{check_link, ProofFile};
use prover::{Backend, Params};

const A: &str = "0x52908400098527886e0f7030069857d2e4169ee7";
const B: &str = "0x8617e340b3d01fa5f11f306f4090fd50e238070d";

fn params() -> Params {
    Params { tree_depth: 8, chunk_size: 2, arity: 2, levels: 2 }
}

fn prove_batch(backend: &Backend, json: &str, previous: Option<&[u8]>) -> ProofFile {
    let batch = &parse_batches(json).unwrap()[0];
    let executed = execute(batch, backend.params()).unwrap();
    let mut level: Vec<Vec<u8>> = executed.chunks.iter().map(|c| backend.prove_basic(c).unwrap()).collect();
    for l in 1..=backend.params().levels {
        level = level.chunks(backend.params().arity).map(|g| backend.prove_aggregate(l, g).unwrap()).collect();
    }
    assert_eq!(level.len(), 1);
    let fin = backend.prove_final(&level[0], batch.chain_id, batch.batch_number, previous).unwrap();
    let compressed = backend.prove_compress(&fin).unwrap();
    ProofFile::new(backend.circuits(), &compressed, &fin).unwrap()
}

#[test]
fn chained_batches_prove_and_verify() {
    let backend = Backend::new(params());
    let first = format!(
        r#"{{"version":1,"chain_id":5,"batch_number":1,
            "accounts":[{{"address":"{A}","balance":"1000","nonce":0}}],
            "transactions":[{{"from":"{A}","to":"{B}","value":"250","nonce":0}},
                            {{"from":"{B}","to":"{A}","value":"50","nonce":0}},
                            {{"from":"{A}","to":"{A}","value":"1","nonce":1}}]}}"#
    );
    let p1 = prove_batch(&backend, &first, None);
    let v1 = p1.verify(backend.circuits()).unwrap();
    assert_eq!(v1.tx_count, 3);
    assert!(!v1.previous_verified);

    let second = format!(
        r#"{{"version":1,"chain_id":5,"batch_number":2,
            "accounts":[{{"address":"{A}","balance":"800","nonce":2}},{{"address":"{B}","balance":"200","nonce":1}}],
            "transactions":[]}}"#
    );
    let chain = p1.chain_proof_bytes().unwrap();
    let p2 = prove_batch(&backend, &second, Some(&chain));
    let v2 = p2.verify(backend.circuits()).unwrap();
    assert!(v2.previous_verified);
    assert_eq!(v2.tx_count, 0);
    assert_eq!(v2.pre_state_root, v1.post_state_root);
    check_link(&v1, &v2).unwrap();

    // A tampered public value is caught.
    let mut bad = p2.clone();
    bad.public_values.tx_count = 1;
    assert!(bad.verify(backend.circuits()).is_err());
}

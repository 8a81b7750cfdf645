//! The `basic` circuit accepts exactly the witnesses of valid transactions: a witness that lies
//! about a balance, a nonce or a path cannot be proven.

use prover::batch::parse_batches;
use prover::execute::{execute, ChunkWitness};
use prover::{Backend, Params, ProveError};

const A: &str = "0x52908400098527886e0f7030069857d2e4169ee7";
const B: &str = "0x8617e340b3d01fa5f11f306f4090fd50e238070d";

fn chunk() -> ChunkWitness {
    let json = format!(
        r#"{{"version":1,"chain_id":5,"batch_number":1,
            "accounts":[{{"address":"{A}","balance":"1000","nonce":3}}],
            "transactions":[{{"from":"{A}","to":"{B}","value":"250","nonce":3}},
                            {{"from":"{B}","to":"{B}","value":"50","nonce":0}}]}}"#
    );
    let batch = &parse_batches(&json).unwrap()[0];
    execute(batch, &params()).unwrap().chunks.remove(0)
}

fn params() -> Params {
    Params { tree_depth: 8, chunk_size: 3, arity: 2, levels: 1 }
}

#[test]
fn basic_circuit_proves_valid_chunks_and_nothing_else() {
    let backend = Backend::new(params());
    let valid = chunk();
    let proof = backend.prove_basic(&valid).expect("a valid chunk proves");
    assert!(!proof.is_empty());

    let mut overdraft = valid.clone();
    // Claim a smaller balance: the leaf no longer matches the root.
    overdraft.txs[0].sender_balance = 100;
    assert!(backend.prove_basic(&overdraft).is_err(), "a forged balance must not prove");

    let mut spend_more = valid.clone();
    // Spend more than the real balance: the subtraction borrows.
    spend_more.txs[0].value = 1001;
    let refused = backend.prove_basic(&spend_more).expect_err("an overdraft must not prove");
    assert!(
        matches!(&refused, ProveError::InvalidInput(m) if m.starts_with(&format!("transaction {} breaks", valid.first_tx))),
        "the refusal names the transaction: {refused}"
    );

    let mut replay = valid.clone();
    replay.txs[0].nonce = 2;
    assert!(backend.prove_basic(&replay).is_err(), "a wrong nonce must not prove");

    let mut bad_path = valid;
    bad_path.txs[1].receiver_path[3][0] ^= 1;
    assert!(backend.prove_basic(&bad_path).is_err(), "a wrong path must not prove");
}

/// Limb boundaries: a debit that borrows through two 32-bit limbs, a nonce that carries into its
/// high limb, a credit that carries, and a credit to exactly 2^128 - 1 all prove.
#[test]
fn basic_circuit_proves_carries_and_borrows_across_limbs() {
    const C: &str = "0x1111111111111111111111111111111111111111";
    let max = u128::MAX;
    let json = format!(
        r#"{{"version":1,"chain_id":5,"batch_number":1,
            "accounts":[{{"address":"{A}","balance":"{a}","nonce":{n}}},
                        {{"address":"{B}","balance":"{b}","nonce":0}},
                        {{"address":"{C}","balance":"{c}","nonce":0}}],
            "transactions":[{{"from":"{A}","to":"{B}","value":"5","nonce":{n}}},
                            {{"from":"{A}","to":"{C}","value":"1","nonce":{n1}}}]}}"#,
        a = 1u128 << 64,
        b = max - 5,
        c = u32::MAX,
        n = u32::MAX,
        n1 = u32::MAX as u64 + 1,
    );
    let batch = &parse_batches(&json).unwrap()[0];
    let chunk = execute(batch, &params()).unwrap().chunks.remove(0);
    assert_eq!(chunk.txs[0].receiver_balance + 5, max, "the first credit ends at 2^128 - 1");
    let backend = Backend::new(params());
    backend.prove_basic(&chunk).expect("carries and borrows across limbs prove");
}

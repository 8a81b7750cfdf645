//! The default circuit parameters (32-level tree, 455-transaction chunks, arity 3, 2 levels) prove
//! and verify a real batch end to end: a full chunk and a partial one, so that a level 1
//! aggregate verifies two basic STARK proofs of 2^15-row traces.

use std::process::{Command, Stdio};

#[test]
fn default_parameters_prove_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let leader = env!("CARGO_BIN_EXE_leader");
    let clean = |cmd: &mut Command| {
        for var in ["ZKFLEET_TREE_DEPTH", "ZKFLEET_CHUNK_SIZE", "ZKFLEET_ARITY", "ZKFLEET_LEVELS", "RUST_LOG"] {
            cmd.env_remove(var);
        }
        cmd.env("ZKFLEET_STORE", dir.path().join("store"));
    };

    let mut synth = Command::new(leader);
    synth.args(["synth", "--txs", "600", "--accounts", "120", "--seed", "11"]);
    clean(&mut synth);
    let batch = synth.output().unwrap();
    assert!(batch.status.success());

    let proof = dir.path().join("proof.json");
    let mut prove = Command::new(leader);
    prove.args(["prove", "--workers", "2", "--output"]).arg(&proof).stdin(Stdio::piped()).stderr(Stdio::piped());
    clean(&mut prove);
    let mut child = prove.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &batch.stdout).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&proof).unwrap()).unwrap();
    assert_eq!(file["params"]["tree_depth"], 32);
    assert_eq!(file["params"]["chunk_size"], 455);
    assert_eq!(file["params"]["arity"], 3);
    assert_eq!(file["params"]["levels"], 2);

    let mut verify = Command::new(leader);
    verify.args(["verify", "--proof"]).arg(&proof);
    clean(&mut verify);
    let out = verify.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let values: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(values["tx_count"], 600);
    assert_eq!(values["batch_number"], 1);
    assert_eq!(values["previous_verified"], false);
}

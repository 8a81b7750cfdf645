//! The leader and worker binaries as a user runs them: synth → prove → verify, chained batches,
//! tampered proofs, and every kind of bad input. Small circuit parameters keep proving quick;
//! `default_params.rs` covers the defaults.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use prover::state::Address;
use serde_json::Value;

/// Small circuits: 8-level tree, 4 transactions per chunk, 2 chunks per batch.
const SMALL: [(&str, &str); 4] =
    [("ZKFLEET_TREE_DEPTH", "8"), ("ZKFLEET_CHUNK_SIZE", "4"), ("ZKFLEET_ARITY", "2"), ("ZKFLEET_LEVELS", "2")];

/// The circuits of these parameters are built once for every test of the run and kept here
/// (the cache itself is tested in the prover's and the S3 tests).
const CIRCUIT_CACHE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/circuit-cache");

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn store(&self) -> PathBuf {
        self.path("store")
    }

    fn leader(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        run(env!("CARGO_BIN_EXE_leader"), args, stdin, &self.store())
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// No job artifacts are left in the store.
    fn assert_store_clean(&self) {
        let jobs = self.store().join("jobs");
        let left: Vec<_> = std::fs::read_dir(&jobs).map(|d| d.collect()).unwrap_or_default();
        assert!(left.is_empty(), "artifacts left behind: {left:?}");
    }
}

fn run(bin: &str, args: &[&str], stdin: Option<&[u8]>, store: &Path) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .envs(SMALL)
        .env("ZKFLEET_STORE", store)
        .env("ZKFLEET_CIRCUIT_CACHE", CIRCUIT_CACHE)
        .env("ZKFLEET_WORKERS", "2")
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(bytes) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "exit {:?}\n{}", o.status.code(), stderr(&o));
    o
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("stdout is not json ({e}): {}", stderr(o)))
}

fn synth(env: &Env, txs: usize, batches: usize, seed: u64) -> Value {
    let out = ok(env.leader(
        &[
            "synth",
            "--txs",
            &txs.to_string(),
            "--accounts",
            "12",
            "--batches",
            &batches.to_string(),
            "--seed",
            &seed.to_string(),
            "--tree-depth",
            "8",
        ],
        None,
    ));
    json(&out)
}

/// A bad input: exit 2, one line on stderr that contains `expected`, nothing on stdout, nothing
/// left in the store.
fn assert_rejected(env: &Env, input: &str, expected: &str) {
    assert_rejected_bytes(env, input.as_bytes(), expected);
}

fn assert_rejected_bytes(env: &Env, input: &[u8], expected: &str) {
    let out = env.leader(&["prove"], Some(input));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty(), "stdout must stay empty");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    env.assert_store_clean();
}

#[test]
fn chain_of_batches_proves_and_verifies_and_tampering_is_caught() {
    let env = Env::new();
    let batches = synth(&env, 5, 3, 7);
    let first_two = Value::Array(batches.as_array().unwrap()[..2].to_vec());

    // Two consecutive batches in one input: an array of two chained proofs.
    let stats = env.path("stats.json");
    let out = ok(env.leader(&["prove", "--stats", stats.to_str().unwrap()], Some(first_two.to_string().as_bytes())));
    let err = stderr(&out);
    let progress = err.lines().find(|l| l.starts_with("proving batch=1 txs_proved=")).expect(&err);
    assert!(progress.contains("total_txs=5 elapsed="), "{progress}");
    let proofs = json(&out);
    assert_eq!(proofs.as_array().unwrap().len(), 2);
    env.assert_store_clean();
    let p12 = env.write("p12.json", &proofs.to_string());

    // The benchmark's figures: every round's tasks, and the process's time, memory and CPU.
    let stats: Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(stats["transactions"], 10, "two batches of five");
    let rounds: std::collections::BTreeSet<_> =
        stats["tasks"].as_array().unwrap().iter().map(|t| t["round"].as_str().unwrap().to_string()).collect();
    assert_eq!(rounds, ["aggregate", "basic", "compress", "final", "witness"].map(String::from).into());
    let wall_ms = stats["wall_ms"].as_u64().unwrap();
    let cpu_ms = stats["cpu_ms"].as_u64().unwrap();
    assert!(cpu_ms > 0 && stats["peak_rss_kib"].as_u64().unwrap() > 0, "{stats}");
    // Proving is CPU-bound: the process used at least a quarter of one core over the run, and no
    // more than every core it had.
    assert!(cpu_ms * 4 > wall_ms && cpu_ms <= wall_ms * stats["cores"].as_u64().unwrap() + 100, "{stats}");

    let verified = json(&ok(env.leader(&["verify", "--proof", p12.to_str().unwrap()], None)));
    assert_eq!(verified[0]["batch_number"], 1);
    assert_eq!(verified[0]["tx_count"], 5);
    assert_eq!(verified[0]["previous_verified"], false);
    assert_eq!(verified[1]["batch_number"], 2);
    assert_eq!(verified[1]["previous_verified"], true);
    assert_eq!(verified[1]["pre_state_root"], verified[0]["post_state_root"]);

    // The third batch, emptied (an empty batch is valid), continues from the proof file.
    let mut third = batches[2].clone();
    third["transactions"] = Value::Array(vec![]);
    let out = ok(env.leader(
        &["prove", "--previous-proof", p12.to_str().unwrap(), "--output", env.path("p3.json").to_str().unwrap()],
        Some(third.to_string().as_bytes()),
    ));
    assert!(out.stdout.is_empty(), "--output keeps stdout empty");
    let p3 = env.path("p3.json");
    let verified = json(&ok(
        env.leader(&["verify", "--proof", p3.to_str().unwrap(), "--previous-proof", p12.to_str().unwrap()], None)
    ));
    assert_eq!(verified["batch_number"], 3);
    assert_eq!(verified["tx_count"], 0);
    assert_eq!(verified["previous_verified"], true);
    assert_eq!(verified["pre_state_root"], verified["post_state_root"]);

    // A batch that does not continue the previous proof is refused before any work.
    let mut gap = third.clone();
    gap["batch_number"] = Value::from(4);
    let out = env.leader(&["prove", "--previous-proof", p12.to_str().unwrap()], Some(gap.to_string().as_bytes()));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("batch 4: does not follow batch 2"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());

    // The proof of batch 3 does not continue batch 1.
    let p1 = env.write("p1.json", &proofs[0].to_string());
    let out = env.leader(&["verify", "--proof", p3.to_str().unwrap(), "--previous-proof", p1.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // Tampering: a public value, the proof bytes, the circuit digest.
    let original: Value = serde_json::from_str(&std::fs::read_to_string(&p3).unwrap()).unwrap();
    let mut values = original.clone();
    values["public_values"]["tx_count"] = Value::from(1);
    let mut bytes = original.clone();
    let proof = bytes["proof"].as_str().unwrap().to_string();
    let mid = proof.len() / 2;
    let flipped = if &proof[mid..mid + 1] == "A" { "B" } else { "A" };
    bytes["proof"] = Value::from(format!("{}{}{}", &proof[..mid], flipped, &proof[mid + 1..]));
    let mut digest = original.clone();
    digest["circuit_digest"] = Value::from(format!("0x{}", "0".repeat(64)));
    for (name, tampered) in [("values", values), ("bytes", bytes), ("digest", digest)] {
        let path = env.write(&format!("tampered-{name}.json"), &tampered.to_string());
        let out = env.leader(&["verify", "--proof", path.to_str().unwrap()], None);
        assert_eq!(out.status.code(), Some(2), "tampered {name}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "tampered {name} printed values");
    }
}

fn batch_with(accounts: &str, txs: &str) -> String {
    format!(r#"{{"version":1,"chain_id":1,"batch_number":7,"accounts":[{accounts}],"transactions":[{txs}]}}"#)
}

fn account(a: &str, balance: &str, nonce: u64) -> String {
    format!(r#"{{"address":"{a}","balance":"{balance}","nonce":{nonce}}}"#)
}

fn tx(from: &str, to: &str, value: &str, nonce: u64) -> String {
    format!(r#"{{"from":"{from}","to":"{to}","value":"{value}","nonce":{nonce}}}"#)
}

const A: &str = "0x52908400098527886e0f7030069857d2e4169ee7";
const B: &str = "0x8617e340b3d01fa5f11f306f4090fd50e238070d";

/// Two addresses on the same leaf at depth 8.
fn colliding_pair() -> (String, String) {
    let mut seen = std::collections::HashMap::new();
    for i in 0u32.. {
        let mut bytes = [0x42u8; 20];
        bytes[16..].copy_from_slice(&i.to_be_bytes());
        let a = Address(bytes);
        if let Some(other) = seen.insert(a.position(8), a) {
            return (other.to_string(), a.to_string());
        }
    }
    unreachable!()
}

#[test]
fn bad_inputs_fail_with_one_line_and_leave_nothing_behind() {
    let env = Env::new();
    let good = batch_with(&account(A, "1000", 0), &tx(A, B, "250", 0));
    assert_rejected(&env, "{\"version\":1,", "malformed json");
    assert_rejected(&env, &good[..good.len() - 10], "malformed json");
    assert_rejected(&env, "not json at all", "malformed json");
    let mut latin1 = good.clone().into_bytes();
    latin1[2] = 0xe9;
    assert_rejected_bytes(&env, &latin1, "stdin: the witness is not UTF-8 text (invalid byte at offset 2)");
    // Above the size limit: refused before parsing, naming the limit.
    let big = format!("{}{}", " ".repeat(1 << 20), good);
    let out = env.leader(&["prove", "--max-witness-mib", "1"], Some(big.as_bytes()));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stderr(&out).trim(), "error: stdin: the witness is larger than the limit of 1 MiB (--max-witness-mib)");
    env.assert_store_clean();
    assert_rejected(&env, &good.replace("\"version\":1", "\"version\":1,\"gas\":3"), "batch 7: unknown field `gas`");
    assert_rejected(
        &env,
        &good.replace("\"version\":1", "\"version\":1,\"version\":1"),
        "batch 7: duplicate field `version`",
    );
    assert_rejected(
        &env,
        &good.replace("\"nonce\":0}]}", "\"nonce\":\"0\"}]}"),
        "batch 7: transaction 0: nonce: invalid type",
    );
    assert_rejected(
        &env,
        &batch_with(&format!("{},{}", account(A, "1", 0), account(A, "2", 0)), ""),
        "batch 7: account 1: duplicate address",
    );
    let (c1, c2) = colliding_pair();
    assert_rejected(
        &env,
        &batch_with(&format!("{},{}", account(&c1, "1", 0), account(&c2, "1", 0)), ""),
        "collides with",
    );
    assert_rejected(
        &env,
        &batch_with(&account(A, "1000", 0), &format!("{},{}", tx(A, B, "1", 0), tx(A, B, "1", 0))),
        "batch 7: transaction 1: wrong nonce: expected 1, got 0",
    );
    assert_rejected(
        &env,
        &batch_with(&account(A, "10", 0), &tx(A, B, "11", 0)),
        "batch 7: transaction 0: insufficient balance",
    );
    let max = u128::MAX.to_string();
    assert_rejected(
        &env,
        &batch_with(&format!("{},{}", account(A, "10", 0), account(B, &max, 0)), &tx(A, B, "1", 0)),
        "batch 7: transaction 0: receiver",
    );
    // Batches of one input must chain: root, chain id and number.
    let next = |f: &dyn Fn(&mut Value)| {
        let mut b: Value = serde_json::from_str(&good).unwrap();
        b["batch_number"] = Value::from(8);
        b["accounts"] = serde_json::from_str(&format!("[{},{}]", account(A, "750", 1), account(B, "250", 0))).unwrap();
        b["transactions"] = Value::Array(vec![]);
        f(&mut b);
        format!("[{good},{b}]")
    };
    next(&|_| {}); // The unmodified pair is valid; each change below breaks one link.
    assert_rejected(&env, &next(&|b| b["accounts"][0]["balance"] = Value::from("749")), "batch 8: pre-state root");
    assert_rejected(&env, &next(&|b| b["chain_id"] = Value::from(2)), "batch 8: chain id 2 differs");
    assert_rejected(&env, &next(&|b| b["batch_number"] = Value::from(9)), "batch 9: does not follow batch 7");
    // Too many transactions for the parameters (4 chunks of 4).
    let txs: Vec<String> = (0..17).map(|n| tx(A, B, "1", n)).collect();
    assert_rejected(&env, &batch_with(&account(A, "1000", 0), &txs.join(",")), "exceed the 16");
}

#[test]
fn verify_rejects_files_that_are_not_proofs() {
    let env = Env::new();
    let garbage = env.write("garbage.json", "{\"format\":\"zkfleet-proof/1\"}");
    let out = env.leader(&["verify", "--proof", garbage.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a proof file"), "{}", stderr(&out));
    let out = env.leader(&["verify", "--proof", env.path("missing.json").to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "an unreadable file is not invalid input");
}

#[test]
fn versions_usage_errors_and_exit_codes() {
    let env = Env::new();
    {
        let bin = env!("CARGO_BIN_EXE_leader");
        let out = run(bin, &["--version"], None, &env.store());
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
        let out = run(bin, &["--no-such-flag"], None, &env.store());
        assert_eq!(out.status.code(), Some(64));
    }
    let out = env.leader(&["prove", "--arity", "1"], Some(b"{}"));
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains("arity 1"));
    // More accounts than a small tree can hold distinct leaves for: a usage error, not a hang.
    let out = env.leader(&["synth", "--txs", "8", "--accounts", "1000", "--tree-depth", "8"], None);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains("--accounts 1000"));
    // A circuit cache of no known kind: one line and 64, and nothing staged.
    let batch = serde_json::to_vec(&synth(&env, 4, 1, 1)).unwrap();
    let out = env.leader(&["prove", "--circuit-cache", "ftp://host/circuits"], Some(&batch));
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).starts_with("error: --circuit-cache: "), "{}", stderr(&out));
    env.assert_store_clean();
    // Circuit parameters a worker cannot preload: one line and 64, before it connects anywhere.
    let worker = Path::new(env!("CARGO_BIN_EXE_leader")).with_file_name("worker");
    let out = run(
        worker.to_str().unwrap(),
        &["--amqp-uri", "amqp://u:p@127.0.0.1:1/%2f", "--preload", "--levels", "9"],
        None,
        &env.store(),
    );
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert_eq!(stderr(&out), "error: --preload: levels 9 is outside 1..=6\n");
}

#[test]
fn synth_is_deterministic_and_proves_under_its_depth() {
    let env = Env::new();
    assert_eq!(synth(&env, 20, 2, 3), synth(&env, 20, 2, 3));
    assert_ne!(synth(&env, 20, 2, 3), synth(&env, 20, 2, 4));
    let b = synth(&env, 40, 1, 5);
    assert_eq!(b["transactions"].as_array().unwrap().len(), 40);
    assert_eq!(b["version"], 1);
}

#[test]
fn observability_settings_that_cannot_work_fail_at_start() {
    let env = Env::new();
    // A metrics port that is taken: one line and 64, before any input is read.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = env.leader(&["prove", "--metrics-addr", &addr], None);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("--metrics-addr {addr}")), "{}", stderr(&out));
    // `bin` started with these export variables; its exit code and its stderr.
    let start = |bin: &str, vars: &[(&str, &str)]| {
        let out = Command::new(bin)
            .args(if bin.ends_with("worker") {
                &["--amqp-uri", "amqp://u:p@127.0.0.1:1/%2f"][..]
            } else {
                &["verify", "--proof", "x"][..]
            })
            .envs(vars.iter().copied())
            .env("ZKFLEET_STORE", env.store())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.code(), stderr(&out))
    };
    // An OTLP endpoint that is not a URL: one line and 64, for the leader and the worker.
    for bin in [
        env!("CARGO_BIN_EXE_leader"),
        Path::new(env!("CARGO_BIN_EXE_leader")).with_file_name("worker").to_str().unwrap(),
    ] {
        let (code, text) = start(bin, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")]);
        assert_eq!(code, Some(64), "{bin}: {text}");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("error: tracing export to not a url:"), "{text}");
    }
    // Export settings the exporter does not support are refused, not ignored: one line naming the
    // variable, and 64.
    for (var, value, says) in [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc: only http/protobuf is supported"),
        (
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "zstd",
            "OTEL_EXPORTER_OTLP_COMPRESSION=zstd: bodies are always gzip-compressed; only gzip is supported",
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", "OTEL_EXPORTER_OTLP_TIMEOUT=soon: not a number of milliseconds"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key", "OTEL_EXPORTER_OTLP_HEADERS: `api-key` is not key=value"),
    ] {
        let (code, text) = start(
            env!("CARGO_BIN_EXE_leader"),
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"), (var, value)],
        );
        assert_eq!(code, Some(64), "{var}: {text}");
        assert_eq!(text.trim_end(), format!("error: tracing export to http://127.0.0.1:4318: {says}"), "{var}");
    }
}

//! What the broker tests share: a RabbitMQ virtual host of their own on the local broker (so tests
//! running at once never take each other's tasks), processes whose stderr can be waited on, and
//! the small circuit parameters.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
pub use common::testing::S3Server;

/// Small circuits: 8-level tree, 4 transactions per chunk, 4 chunks per batch at most.
pub const SMALL: [(&str, &str); 4] =
    [("ZKFLEET_TREE_DEPTH", "8"), ("ZKFLEET_CHUNK_SIZE", "4"), ("ZKFLEET_ARITY", "2"), ("ZKFLEET_LEVELS", "2")];

/// The circuits of [`SMALL`] are built once for every test of the run and kept here; the S3 tests
/// keep theirs in the bucket, and the prover's tests check the cache itself.
pub const CIRCUIT_CACHE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/circuit-cache");

pub const MANAGEMENT: &str = "http://127.0.0.1:15672";

fn auth() -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("guest:guest"))
}

pub fn management_get(path: &str) -> serde_json::Value {
    ureq::get(&format!("{MANAGEMENT}{path}"))
        .header("Authorization", &auth())
        .call()
        .unwrap_or_else(|e| panic!("management api {path}: {e} (is the management plugin enabled?)"))
        .body_mut()
        .read_json()
        .unwrap()
}

/// A fresh virtual host, deleted with everything in it when dropped.
pub struct Vhost {
    pub name: String,
}

impl Vhost {
    pub fn new() -> Self {
        let name = format!("zkfleet-test-{:08x}", rand::random::<u32>());
        let put = |path: String, body: &str| {
            ureq::put(&format!("{MANAGEMENT}{path}"))
                .header("Authorization", &auth())
                .content_type("application/json")
                .send(body)
                .unwrap_or_else(|e| panic!("management api {path}: {e}"));
        };
        put(format!("/api/vhosts/{name}"), "{}");
        put(format!("/api/permissions/{name}/guest"), r#"{"configure":".*","write":".*","read":".*"}"#);
        Vhost { name }
    }

    pub fn uri(&self) -> String {
        self.uri_at("127.0.0.1:5672")
    }

    /// The URI of this virtual host on a broker (or a proxy in front of it) at `addr`.
    pub fn uri_at(&self, addr: &str) -> String {
        format!("amqp://guest:guest@{addr}/{}", self.name)
    }

    /// Ready and unacked messages of a queue.
    pub fn depth(&self, queue: &str) -> (u64, u64) {
        let q = management_get(&format!("/api/queues/{}/{queue}", self.name));
        (q["messages_ready"].as_u64().unwrap_or(0), q["messages_unacknowledged"].as_u64().unwrap_or(0))
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{MANAGEMENT}/api/vhosts/{}", self.name)).header("Authorization", &auth()).call();
    }
}

pub fn leader_bin() -> &'static str {
    env!("CARGO_BIN_EXE_leader")
}

/// The worker binary, built next to the leader by the workspace build.
pub fn worker_bin() -> PathBuf {
    let path = Path::new(leader_bin()).with_file_name("worker");
    assert!(path.exists(), "{} is missing: build the workspace first (scripts/test does)", path.display());
    path
}

/// A running process whose stderr lines are collected as they come.
pub struct Proc {
    pub child: Child,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
    stdout: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).env_remove("RUST_LOG");
        let mut child = cmd.spawn().unwrap();
        let lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.0.lock().unwrap().push(line);
                sink.1.notify_all();
            }
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = std::io::Read::read_to_end(&mut out, &mut buf);
            buf
        });
        Proc { child, lines, stdout: Some(stdout) }
    }

    /// Waits for a stderr line containing every one of `parts`; returns it.
    pub fn wait_for(&self, parts: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let (lock, cvar) = &*self.lines;
        let mut lines = lock.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().find(|l| parts.iter().all(|p| l.contains(p))) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no line with {parts:?} within {timeout:?}; got:\n{}", lines.join("\n"));
            lines = cvar.wait_timeout(lines, left).unwrap().0;
        }
    }

    pub fn stderr(&self) -> Vec<String> {
        self.lines.0.lock().unwrap().clone()
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn finish(self, timeout: Duration) -> (Option<i32>, Vec<u8>, Vec<String>) {
        self.finish_beside(timeout, &[])
    }

    /// [`Self::finish`], and when the process is still running at the deadline, the failure
    /// also shows the stderr of `others` (the fleet's workers), to tell where a job stalled.
    pub fn finish_beside(mut self, timeout: Duration, others: &[&Proc]) -> (Option<i32>, Vec<u8>, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let others: Vec<String> = others
                    .iter()
                    .enumerate()
                    .map(|(i, p)| format!("--- process {i}:\n{}", p.stderr().join("\n")))
                    .collect();
                panic!(
                    "process still running after {timeout:?}; stderr:\n{}\n{}",
                    self.stderr().join("\n"),
                    others.join("\n")
                );
            }
            std::thread::park_timeout(Duration::from_millis(50));
        };
        let out = self.stdout.take().unwrap().join().unwrap();
        // The stderr reader ends with the process; give it the lines it has.
        (status.code(), out, self.stderr())
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self) {
        sigterm(self.child.id());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sigterm(pid: u32) {
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}

/// One test's world: a vhost, a store (a directory, or a bucket on an S3 server of its own), and
/// commands set up to use both.
pub struct Fleet {
    pub vhost: Vhost,
    pub dir: tempfile::TempDir,
    pub s3: Option<S3Server>,
    /// Where the fleet's processes reach the broker, when not at its own address.
    pub broker: Option<String>,
}

/// The bucket and prefix of a fleet on S3.
pub const BUCKET: &str = "fleet";
pub const PREFIX: &str = "zkfleet";

impl Fleet {
    pub fn new() -> Self {
        Fleet { vhost: Vhost::new(), dir: tempfile::tempdir().unwrap(), s3: None, broker: None }
    }

    /// A fleet whose store is `s3://fleet/zkfleet` on a fresh S3-compatible server.
    pub fn on_s3() -> Self {
        let s3 = S3Server::start();
        s3.bucket(BUCKET);
        Fleet { s3: Some(s3), ..Self::new() }
    }

    /// The directory holding the objects under the fleet's S3 prefix.
    pub fn s3_objects(&self) -> PathBuf {
        self.s3.as_ref().expect("a fleet on S3").object_path(BUCKET, PREFIX)
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn env(&self, cmd: &mut Command) {
        let uri = self.broker.as_deref().map_or_else(|| self.vhost.uri(), |addr| self.vhost.uri_at(addr));
        cmd.envs(SMALL).env("ZKFLEET_AMQP_URI", uri);
        match &self.s3 {
            None => cmd.env("ZKFLEET_STORE", self.store()).env("ZKFLEET_CIRCUIT_CACHE", CIRCUIT_CACHE),
            Some(s3) => cmd
                .env("ZKFLEET_STORE", format!("s3://{BUCKET}/{PREFIX}"))
                .envs(s3.env())
                .env_remove("ZKFLEET_CIRCUIT_CACHE"),
        };
    }

    pub fn leader(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(leader_bin());
        cmd.args(args);
        self.env(&mut cmd);
        cmd
    }

    /// Starts `leader prove` of `input` into `output`, with `extra` flags.
    pub fn prove(&self, input: &Path, output: &Path, extra: &[&str]) -> Proc {
        let mut args = vec!["prove", "--input", input.to_str().unwrap(), "--output", output.to_str().unwrap()];
        args.extend_from_slice(extra);
        Proc::spawn(self.leader(&args))
    }

    /// Runs a leader command to its end.
    pub fn run_leader(&self, args: &[&str]) -> Output {
        let mut cmd = self.leader(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).env_remove("RUST_LOG");
        cmd.output().unwrap()
    }

    pub fn worker(&self, name: &str, extra: &[&str]) -> Proc {
        let mut cmd = Command::new(worker_bin());
        cmd.arg("--name").arg(name).args(extra);
        self.env(&mut cmd);
        Proc::spawn(cmd)
    }

    /// Writes `txs` synthetic transactions as batch 1 and returns the file.
    pub fn synth(&self, name: &str, txs: usize, seed: u64) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, self.synth_json(txs, seed, &[])).unwrap();
        path
    }

    /// `leader synth` of `txs` transactions under the small circuits' tree, with `extra` flags
    /// (`--chain-id`, `--batches`, …); returns its output.
    pub fn synth_json(&self, txs: usize, seed: u64, extra: &[&str]) -> Vec<u8> {
        let (txs, seed) = (txs.to_string(), seed.to_string());
        let mut args = vec!["synth", "--txs", &txs, "--accounts", "12", "--seed", &seed, "--tree-depth", "8"];
        args.extend_from_slice(extra);
        let out = self.run_leader(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// The public values a proof file claims (without verifying it: each circuit build costs a
    /// minute, so only the tests about proof correctness verify).
    pub fn values(&self, proof: &Path) -> serde_json::Value {
        let file: serde_json::Value = serde_json::from_slice(&std::fs::read(proof).unwrap()).unwrap();
        file["public_values"].clone()
    }

    /// Verifies a proof file and returns its public values.
    pub fn verify(&self, proof: &Path) -> serde_json::Value {
        let out = self.run_leader(&["verify", "--proof", proof.to_str().unwrap()]);
        assert!(out.status.success(), "verify failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// The job ids a leader logged when it published its jobs.
pub fn job_ids(line: &str) -> Vec<String> {
    let rest = line.split("jobs=").nth(1).expect("a jobs= field");
    rest.split_whitespace().next().unwrap().split(',').map(String::from).collect()
}

/// The plan of a job of `txs` transactions in chunks of 4, aggregated two by two over two levels:
/// every round has at least one task (16 transactions: 1 witness, 4 basic, 3 aggregate, 1 final,
/// 1 compress). Its input is stored, so a worker with the no-op backend can run every task.
pub async fn noop_job(store: &common::Store, job: &str, txs: u64) -> common::plan::Plan {
    let shape = common::plan::JobShape {
        job: job.into(),
        batch: 7,
        tx_count: txs,
        chunk_size: 4,
        arity: 2,
        levels: 2,
        input_key: format!("jobs/{job}/input/0-0"),
        previous_final_key: None,
        params: vec![],
        meta: Default::default(),
    };
    store.put(&shape.input_key, b"{}").await.unwrap();
    let plan = common::plan::plan(&shape).unwrap();
    // The journal `leader status` reads, as `leader prove` writes it when it stages a job.
    let expected = prover::proof_file::PublicValues {
        chain_id: 1,
        batch_number: shape.batch,
        pre_state_root: String::new(),
        post_state_root: String::new(),
        tx_commitment: String::new(),
        tx_count: txs,
        previous_verified: false,
    };
    let journal = leader::journal::Journal {
        format: leader::journal::FORMAT.into(),
        job: job.into(),
        shape,
        after: None,
        expected,
        staged: Default::default(),
    };
    leader::journal::write(store, &journal).await.unwrap();
    plan
}

/// Drives one planned job through the broker fleet at `uri`, as `leader prove` does after it
/// staged the job, and returns when its last task is done (at most `timeout`).
pub async fn drive(uri: &str, store: &common::Store, plan: &common::plan::Plan, timeout: Duration) {
    let job = plan.tasks[0].task.job.clone();
    let connection = leader::broker_fleet::connect(uri).await.unwrap();
    let mut fleet =
        leader::broker_fleet::start(connection, uri, store.clone(), std::slice::from_ref(&job)).await.unwrap();
    let mut progress = leader::progress::Progress::new(&[(job, 7, plan.tasks[0].task.tx_range.1)]);
    let none_done = std::collections::HashSet::new();
    let mut digests = std::collections::HashMap::new();
    let run = leader::coordinator::run_jobs(
        &mut fleet,
        std::slice::from_ref(plan),
        &[None],
        &none_done,
        &mut digests,
        &mut progress,
        Some(store),
    );
    tokio::time::timeout(timeout, run).await.expect("the job finishes in time").expect("the job succeeds");
    fleet.stop().await;
}

/// Runs an HTTP GET and returns the body.
pub fn http_get(url: &str) -> String {
    ureq::get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}")).body_mut().read_to_string().unwrap()
}

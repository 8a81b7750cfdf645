//! `leader serve` over real HTTP on loopback, with a real broker and the small circuits: jobs
//! submitted, followed, fetched and verified; chains linked; bad requests refused with nothing
//! queued; a cancelled job left alone by the workers and forgotten once past its retention; a
//! service killed mid-job finishing it after a restart.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{Fleet, Proc};

const TOKEN: &str = "test-token-7f3a";

/// A running service and how to talk to it.
struct Service {
    proc: Proc,
    base: String,
    agent: ureq::Agent,
}

struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

impl Service {
    fn start(fleet: &Fleet, extra: &[&str]) -> Self {
        let token_file = fleet.path("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--api-token-file", token_file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let proc = Proc::spawn(fleet.leader(&args));
        let line = proc.wait_for(&["serving the prover API"], Duration::from_secs(60));
        let addr = line.split("addr=").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Service { proc, base: format!("http://{addr}"), agent }
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&[u8]>) -> Reply {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut response = match (method, body) {
            ("POST", Some(body)) => {
                let mut req = self.agent.post(&url).header("content-type", "application/json");
                if let Some(a) = &auth {
                    req = req.header("authorization", a);
                }
                req.send(body)
            }
            ("GET", None) | ("DELETE", None) => {
                let mut req = if method == "GET" { self.agent.get(&url) } else { self.agent.delete(&url) };
                if let Some(a) = &auth {
                    req = req.header("authorization", a);
                }
                req.call()
            }
            _ => unreachable!(),
        }
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        let body = response.body_mut().with_config().limit(256 << 20).read_to_vec().unwrap();
        Reply { status, body }
    }

    /// Sends only the headers of a POST announcing `length` bytes and returns the status the
    /// service answers with.
    fn status_of_announced_body(&self, length: usize) -> u16 {
        use std::io::{Read, Write};
        let addr = self.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            stream,
            "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        )
        .unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        let line = String::from_utf8_lossy(&head).to_string();
        line.trim_start_matches("HTTP/1.1 ").trim().parse().unwrap_or_else(|_| panic!("status line {line:?}"))
    }

    fn submit(&self, witness: &[u8]) -> String {
        let reply = self.call("POST", "/v1/jobs", Some(TOKEN), Some(witness));
        assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));
        reply.json()["id"].as_str().unwrap().to_string()
    }

    /// Polls a job until it leaves `running` (at most `timeout`) and returns its view.
    fn wait_done(&self, id: &str, timeout: Duration, workers: &[&Proc]) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let view = self.call("GET", &format!("/v1/jobs/{id}"), Some(TOKEN), None).json();
            if view["state"] != "running" {
                return view;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = workers.iter().map(|w| w.stderr().join("\n")).collect();
                panic!(
                    "job {id} still running after {timeout:?}: {view}\nservice:\n{}\nworkers:\n{}",
                    self.proc.stderr().join("\n"),
                    logs.join("\n")
                );
            }
            std::thread::park_timeout(Duration::from_millis(200));
        }
    }

    /// Fetches a done job's proof into `path`.
    fn fetch_proof(&self, id: &str, path: &Path) {
        let reply = self.call("GET", &format!("/v1/jobs/{id}/proof"), Some(TOKEN), None);
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        std::fs::write(path, &reply.body).unwrap();
    }
}

/// `batches` consecutive batches of 8 transactions of chain `chain`, one JSON document each.
fn chain(fleet: &Fleet, chain: u64, batches: usize, seed: u64) -> Vec<Vec<u8>> {
    let (chain, batches) = (chain.to_string(), batches.to_string());
    let out = fleet.synth_json(8, seed, &["--chain-id", &chain, "--batches", &batches]);
    match serde_json::from_slice::<serde_json::Value>(&out).unwrap() {
        serde_json::Value::Array(all) => all.iter().map(|b| serde_json::to_vec(b).unwrap()).collect(),
        one => vec![serde_json::to_vec(&one).unwrap()],
    }
}

/// Headless Chromium, as the tests run it: no sandbox (root), no background traffic.
fn chromium(fleet: &Fleet, args: &[&str]) -> std::process::Output {
    let profile = fleet.path("chromium-profile");
    std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs (scripts/start-services installs it)")
}

/// The jobs page as Chromium renders it, once it shows `job` running with its rounds; a
/// screenshot of it is kept in the test's target directory.
fn jobs_page_showing(fleet: &Fleet, service: &Service, job: &str) -> String {
    let url = format!("{}/", service.base);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = chromium(fleet, &["--dump-dom", &url]);
        let dom = String::from_utf8_lossy(&out.stdout).to_string();
        let row = dom.lines().find(|l| l.contains(&format!("data-job=\"{job}\""))).unwrap_or_default().to_string();
        if row.contains(">running<") && row.contains("data-round=\"basic\"") {
            let shot = concat!(env!("CARGO_TARGET_TMPDIR"), "/serve-jobs-page.png");
            let out = chromium(fleet, &["--window-size=1280,600", &format!("--screenshot={shot}"), &url]);
            assert!(
                out.status.success() && Path::new(shot).exists(),
                "screenshot: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return dom;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {job} running with its rounds:\n{dom}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::park_timeout(Duration::from_millis(500));
    }
}

#[test]
fn jobs_submitted_over_http_are_proved_and_chains_are_linked() {
    let fleet = Fleet::new();
    let w1 = fleet.worker("w1", &[]);
    let w2 = fleet.worker("w2", &[]);
    let service = Service::start(&fleet, &[]);
    let a = chain(&fleet, 1, 2, 5);
    let b = chain(&fleet, 2, 1, 6);

    // Two batches of two chains at once.
    let a1 = service.submit(&a[0]);
    let b1 = service.submit(&b[0]);
    // The next batch of chain 1 cannot go yet: the one before it is still being proved.
    let early = service.call("POST", "/v1/jobs", Some(TOKEN), Some(&a[1]));
    assert_eq!(early.status, 409);
    assert!(early.json()["error"].as_str().unwrap().contains("submit batch 2 once it is done"), "{}", early.json());

    // The jobs page, in a real browser, shows the running job with its rounds.
    let page = jobs_page_showing(&fleet, &service, &a1);
    assert!(page.contains(&b1), "{page}");
    assert!(page.contains("RabbitMQ management"), "{page}");

    for (id, chain_id) in [(&a1, 1), (&b1, 2)] {
        let view = service.wait_done(id, Duration::from_secs(400), &[&w1, &w2]);
        assert_eq!(view["state"], "done", "{view}");
        assert_eq!(view["rounds"]["basic"]["done"], 2, "{view}");
        assert_eq!(view["proof_url"], format!("/v1/jobs/{id}/proof"));
        let path = fleet.path(&format!("{id}.proof"));
        service.fetch_proof(id, &path);
        let values = fleet.verify(&path);
        assert_eq!(values["chain_id"], chain_id);
        assert_eq!(values["batch_number"], 1);
        assert_eq!(values["previous_verified"], false);
    }

    // Batch 2 of chain 1, submitted alone, is proved on top of batch 1's proof.
    let a2 = service.submit(&a[1]);
    let view = service.wait_done(&a2, Duration::from_secs(400), &[&w1, &w2]);
    assert_eq!(view["state"], "done", "{view}");
    let path = fleet.path("a2.proof");
    service.fetch_proof(&a2, &path);
    let values = fleet.verify(&path);
    assert_eq!(values["batch_number"], 2);
    assert_eq!(values["previous_verified"], true);

    // A batch already proved, or one past the next, does not continue the chain.
    for (witness, expected) in [(&a[0], "the next batch expected is 3"), (&a[1], "the next batch expected is 3")] {
        let reply = service.call("POST", "/v1/jobs", Some(TOKEN), Some(witness));
        assert_eq!(reply.status, 409);
        assert!(reply.json()["error"].as_str().unwrap().contains(expected), "{}", reply.json());
    }
    let listed = service.call("GET", "/v1/jobs", Some(TOKEN), None).json();
    let ids: Vec<&str> = listed["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "{listed}");
    for id in [&a1, &b1, &a2] {
        assert!(ids.contains(&id.as_str()), "{id} in {ids:?}");
    }
    assert_eq!(service.call("GET", "/v1/jobs/b9-00000000/proof", Some(TOKEN), None).status, 404);
}

#[test]
fn bad_requests_are_refused_and_a_cancelled_job_is_left_alone() {
    let fleet = Fleet::new();
    let service = Service::start(&fleet, &["--max-witness-mib", "1"]);
    let witness = chain(&fleet, 1, 1, 7).remove(0);

    // No token, a wrong one.
    assert_eq!(service.call("POST", "/v1/jobs", None, Some(&witness)).status, 401);
    assert_eq!(service.call("GET", "/v1/jobs", Some("wrong"), None).status, 401);
    // The health and metrics endpoints need none.
    assert_eq!(service.call("GET", "/livez", None, None).status, 200);
    assert_eq!(service.call("GET", "/readyz", None, None).status, 200);

    // A bad witness: 400 with one line naming what is wrong; nothing staged or queued.
    let mut duplicated =
        serde_json::to_string(&serde_json::from_slice::<serde_json::Value>(&witness).unwrap()).unwrap();
    duplicated.insert_str(1, "\"version\":1,");
    let reply = service.call("POST", "/v1/jobs", Some(TOKEN), Some(duplicated.as_bytes()));
    assert_eq!(reply.status, 400);
    let error = reply.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("version") && !error.contains('\n'), "{error}");
    let reply = service.call("POST", "/v1/jobs", Some(TOKEN), Some(b"\xff\xfe{}"));
    assert_eq!(reply.status, 400);
    assert!(reply.json()["error"].as_str().unwrap().contains("not UTF-8"), "{}", reply.json());
    // Larger than --max-witness-mib: refused on its Content-Length, before the body is read (a
    // client sending it would meet a closed connection; this one waits for the answer first).
    assert_eq!(service.status_of_announced_body(2 << 20), 413);
    assert!(!fleet.store().join("jobs").exists(), "nothing staged");
    let queues = support::management_get(&format!("/api/queues/{}", fleet.vhost.name));
    let holding: Vec<&serde_json::Value> =
        queues.as_array().unwrap().iter().filter(|q| q["messages"].as_u64().unwrap_or(0) > 0).collect();
    assert!(holding.is_empty(), "nothing queued: {holding:?}");

    // A job cancelled while queued: the worker that comes later starts none of its tasks.
    let id = service.submit(&witness);
    let reply = service.call("DELETE", &format!("/v1/jobs/{id}"), Some(TOKEN), None);
    assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));
    let worker = fleet.worker("late", &[]);
    worker.wait_for(&["dropping a task of a cancelled job"], Duration::from_secs(60));
    let view = service.wait_done(&id, Duration::from_secs(60), &[&worker]);
    assert_eq!(view["state"], "cancelled", "{view}");
    assert!(!worker.stderr().iter().any(|l| l.contains("task started")), "{}", worker.stderr().join("\n"));
    assert_eq!(service.call("GET", &format!("/v1/jobs/{id}/proof"), Some(TOKEN), None).status, 409);

    // Restarted with a retention of zero, the service forgets the finished job, record and all.
    let record = fleet.store().join(format!("service/jobs/{id}.json"));
    assert!(record.exists());
    drop(service);
    let service = Service::start(&fleet, &["--proof-retention-hours", "0"]);
    assert_eq!(service.call("GET", &format!("/v1/jobs/{id}"), Some(TOKEN), None).status, 404);
    assert!(!record.exists(), "{} removed", record.display());
}

#[test]
fn a_service_killed_mid_job_finishes_it_after_a_restart() {
    let fleet = Fleet::new();
    let worker = fleet.worker("w", &[]);
    let mut service = Service::start(&fleet, &[]);
    let witness = chain(&fleet, 3, 1, 8).remove(0);
    let id = service.submit(&witness);
    worker.wait_for(&["task done", "round=basic"], Duration::from_secs(120));
    service.proc.kill9();

    let service = Service::start(&fleet, &[]);
    service.proc.wait_for(&["resuming a submission left running", &id], Duration::from_secs(30));
    let view = service.wait_done(&id, Duration::from_secs(400), &[&worker]);
    assert_eq!(view["state"], "done", "{view}");
    let path = fleet.path("resumed.proof");
    service.fetch_proof(&id, &path);
    assert_eq!(fleet.verify(&path)["chain_id"], 3);
}

#[test]
fn without_a_token_the_service_listens_on_loopback_only() {
    let fleet = Fleet::new();
    let out = fleet.run_leader(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loopback only") && stderr.trim().lines().count() == 1, "{stderr}");
}

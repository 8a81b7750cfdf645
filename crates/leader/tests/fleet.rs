//! The broker fleet as an operator runs it: worker processes and leaders that share nothing but
//! a real RabbitMQ (a virtual host of each test's own) and a store directory, with workers killed,
//! leaders killed, jobs cancelled and garbage on a task queue. Broker restarts are in
//! `broker_faults.rs` (they would disturb the tests here).

mod support;

use std::process::Command;
use std::time::Duration;

use support::{job_ids, Fleet, Proc};

// A bound, not a pace: two tests share 2 cores and each worker builds its circuits first.
const JOB_TIMEOUT: Duration = Duration::from_secs(600);

/// Publishes raw bytes on a task queue, as a broken or hostile client would.
fn publish_garbage(fleet: &Fleet) {
    let uri = fleet.vhost.uri();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let connection = common::broker::connect(&uri, "test").await.unwrap();
        let publisher = common::broker::Publisher::new(&connection).await.unwrap();
        common::topology::declare(publisher.channel()).await.unwrap();
        publisher
            .publish(common::topology::TASK_EXCHANGE, "basic", b"\xc1 not a task", Default::default())
            .await
            .unwrap();
    });
}

#[test]
fn two_workers_prove_two_jobs_at_once_and_survive_garbage() {
    let fleet = Fleet::new();
    publish_garbage(&fleet);
    let w1 = fleet.worker("w1", &[]);
    w1.wait_for(&["undecodable task"], Duration::from_secs(60));
    let workers = [w1, fleet.worker("w2", &[])];

    let a = fleet.synth("a.json", 12, 1);
    let b = fleet.synth("b.json", 6, 2);
    let (pa, pb) = (fleet.path("a.proof"), fleet.path("b.proof"));
    let job_a = fleet.prove(&a, &pa, &[]);
    let job_b = fleet.prove(&b, &pb, &[]);
    for job in [job_a, job_b] {
        let (code, _, err) = job.finish(JOB_TIMEOUT);
        assert_eq!(code, Some(0), "{}", err.join("\n"));
    }
    let values_a = fleet.verify(&pa);
    assert_eq!(fleet.values(&pb)["tx_count"], 6);
    assert_eq!(values_a["tx_count"], 12);

    // The embedded fleet proves the same values.
    let embedded = fleet.path("a-embedded.proof");
    let mut cmd = fleet.leader(&["prove", "--input", a.to_str().unwrap(), "--output", embedded.to_str().unwrap()]);
    cmd.env_remove("ZKFLEET_AMQP_URI");
    let (code, _, err) = Proc::spawn(cmd).finish(JOB_TIMEOUT);
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    assert_eq!(fleet.values(&embedded), values_a);

    // The garbage is dead-lettered and shown; both workers still serve.
    let out = fleet.run_leader(&["dead"]);
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("unreadable") && listing.contains("reason=rejected"), "{listing}");
    for w in &workers {
        assert!(w.wait_for(&["task done"], Duration::from_secs(1)).contains("task done"));
    }
    // Nothing of the jobs is left: results queues and artifacts are gone.
    let queues = support::management_get(&format!("/api/queues/{}", fleet.vhost.name));
    assert!(!queues.as_array().unwrap().iter().any(|q| q["name"].as_str().unwrap().starts_with("zkfleet.results.")));
    assert_eq!(std::fs::read_dir(fleet.store().join("jobs")).unwrap().count(), 0);
}

#[test]
fn a_worker_killed_in_the_middle_of_a_task_costs_nothing() {
    let fleet = Fleet::new();
    let mut w1 = fleet.worker("w1", &[]);
    let input = fleet.synth("a.json", 16, 3);
    let proof = fleet.path("a.proof");
    let leader = fleet.prove(&input, &proof, &["--keep-artifacts"]);
    // w1 takes the witness task and then the first basic task; kill it while it proves one.
    let started = w1.wait_for(&["task started", "round=basic"], JOB_TIMEOUT);
    w1.kill9();
    let _w2 = fleet.worker("w2", &[]);
    let (code, _, err) = leader.finish(JOB_TIMEOUT);
    assert_eq!(code, Some(0), "{}\n(killed during: {started})", err.join("\n"));
    let values = fleet.verify(&proof);
    assert_eq!(values["tx_count"], 16);
    // The killed task was redelivered and done once: every basic output exists, one per chunk.
    let basic = std::fs::read_dir(fleet.store().join("jobs")).unwrap().next().unwrap().unwrap().path().join("basic");
    assert_eq!(std::fs::read_dir(basic).unwrap().count(), 4);
}

/// A leader stopped with SIGTERM (as Kubernetes stops a pod) cancels nothing, says how to resume
/// and exits 1; `leader resume` then finishes the job. (A leader killed with SIGKILL leaves the
/// same state behind without a word; the service's restart test resumes after one.)
#[test]
fn a_leader_stopped_by_sigterm_is_resumed() {
    let fleet = Fleet::new();
    let _w = fleet.worker("w1", &[]);
    let input = fleet.synth("a.json", 16, 4);
    let mut leader = fleet.prove(&input, &fleet.path("lost.proof"), &[]);
    let jobs = job_ids(&leader.wait_for(&["jobs staged"], Duration::from_secs(60)));
    leader.wait_for(&["txs_proved=4 "], JOB_TIMEOUT);
    leader.terminate();
    let (code, _, err) = leader.finish(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{}", err.join("\n"));
    let last = err.last().cloned().unwrap_or_default();
    assert!(
        last.contains("stopped (SIGTERM)") && last.contains(&format!("leader resume {}", jobs.join(" "))),
        "{}",
        err.join("\n")
    );

    let proof = fleet.path("a.proof");
    let mut args = vec!["resume", "--output", proof.to_str().unwrap()];
    args.extend(jobs.iter().map(String::as_str));
    let (code, _, err) = Proc::spawn(fleet.leader(&args)).finish(JOB_TIMEOUT);
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    assert!(err.iter().any(|l| l.contains("resuming") && !l.contains("tasks_done=0")), "{}", err.join("\n"));
    assert_eq!(fleet.values(&proof)["tx_count"], 16);
    assert!(!fleet.path("lost.proof").exists());
}

#[test]
fn a_cancelled_job_stops_and_the_other_goes_on() {
    let fleet = Fleet::new();
    let w1 = fleet.worker("w1", &[]);
    let w2 = fleet.worker("w2", &[]);
    let (a, b) = (fleet.synth("a.json", 16, 5), fleet.synth("b.json", 8, 6));
    let leader_a = fleet.prove(&a, &fleet.path("a.proof"), &[]);
    let job_a = job_ids(&leader_a.wait_for(&["jobs staged"], Duration::from_secs(60))).remove(0);
    let leader_b = fleet.prove(&b, &fleet.path("b.proof"), &[]);
    leader_a.wait_for(&["txs_proved=4 "], JOB_TIMEOUT);

    let out = fleet.run_leader(&["cancel", &job_a]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, stdout, err) = leader_a.finish(Duration::from_secs(30));
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty());
    assert!(err.last().unwrap().contains(&format!("job {job_a} was cancelled")), "{}", err.join("\n"));

    let (code, _, err) = leader_b.finish(JOB_TIMEOUT);
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    assert_eq!(fleet.values(&fleet.path("b.proof"))["tx_count"], 8);
    // After each worker heard of the cancellation it started nothing of that job.
    for w in [&w1, &w2] {
        let lines = w.stderr();
        let heard = lines.iter().position(|l| l.contains("job cancelled") && l.contains(&job_a));
        let heard = heard.unwrap_or_else(|| panic!("worker never heard of the cancellation:\n{}", lines.join("\n")));
        let late = lines[heard..].iter().find(|l| l.contains("task started") && l.contains(&job_a));
        assert!(late.is_none(), "started after the cancellation: {late:?}");
    }
    assert!(!fleet.path("a.proof").exists());
    // `status` shows the job as cancelled, and nothing of it is queued.
    let out = fleet.run_leader(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(table.lines().any(|l| l.starts_with(&job_a) && l.contains("cancelled")), "{table}");
    assert_eq!(fleet.vhost.depth("zkfleet.tasks.basic"), (0, 0));
    // `resume` proves it after all, on the workers that heard it cancelled.
    let proof = fleet.path("a-resumed.proof");
    let resume = fleet.leader(&["resume", "--keep-artifacts", "--output", proof.to_str().unwrap(), &job_a]);
    let (code, _, err) = Proc::spawn(resume).finish_beside(JOB_TIMEOUT, &[&w1, &w2]);
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    assert_eq!(fleet.values(&proof)["tx_count"], 16);
    // `purge` removes what is left of it.
    assert!(fleet.run_leader(&["purge", &job_a]).status.success());
    assert!(!fleet.store().join("jobs").join(&job_a).exists());
}

#[test]
fn an_unreachable_or_refusing_broker_is_one_line_and_exit_1() {
    let fleet = Fleet::new();
    let input = fleet.synth("a.json", 4, 7);
    let bad = [
        "amqp://guest:wrong@127.0.0.1:5672/%2f".to_string(),
        "amqp://guest:guest@127.0.0.1:1/%2f".to_string(),
        format!("amqp://guest:guest@127.0.0.1:5672/{}-missing", fleet.vhost.name),
    ];
    for uri in &bad {
        let started = std::time::Instant::now();
        let mut cmd = fleet.leader(&["prove", "--input", input.to_str().unwrap()]);
        cmd.env("ZKFLEET_AMQP_URI", uri);
        let (code, stdout, err) = Proc::spawn(cmd).finish(Duration::from_secs(30));
        assert_eq!(code, Some(1), "{uri}: {}", err.join("\n"));
        assert!(stdout.is_empty());
        assert_eq!(err.len(), 1, "{uri}: {}", err.join("\n"));
        assert!(err[0].contains("cannot connect to the broker") && !err[0].contains("wrong"), "{}", err[0]);
        assert!(started.elapsed() < Duration::from_secs(20));

        let mut cmd = Command::new(support::worker_bin());
        cmd.env("ZKFLEET_AMQP_URI", uri).env("ZKFLEET_STORE", fleet.store());
        let (code, _, err) = Proc::spawn(cmd).finish(Duration::from_secs(30));
        assert_eq!(code, Some(1), "{uri}: {}", err.join("\n"));
        assert_eq!(err.len(), 1, "{uri}: {}", err.join("\n"));
    }
    // Nothing was staged.
    assert!(
        !fleet.store().join("jobs").exists() || std::fs::read_dir(fleet.store().join("jobs")).unwrap().count() == 0
    );
}

#[test]
fn a_worker_reports_ready_and_stops_cleanly_on_sigterm() {
    let fleet = Fleet::new();
    let port = 20_000 + (rand::random::<u16>() % 20_000);
    let addr = format!("127.0.0.1:{port}");
    let mut w = fleet.worker("w1", &["--metrics-addr", &addr, "--grace-period", "5"]);
    w.wait_for(&["worker started"], Duration::from_secs(60));
    let get = |path: &str| ureq::get(&format!("http://{addr}{path}")).call().map(|r| r.status().as_u16());
    assert_eq!(get("/livez").unwrap(), 200);
    // Ready once its consumers are in place, just after the start line.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get("/readyz").ok() != Some(200) {
        assert!(std::time::Instant::now() < deadline, "never ready");
        std::thread::yield_now();
    }

    w.terminate();
    let started = std::time::Instant::now();
    let (code, _, err) = w.finish(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(err.iter().any(|l| l.contains("worker stopped")), "{}", err.join("\n"));
}

#[test]
fn a_preloading_worker_takes_tasks_only_with_its_circuits_ready() {
    let fleet = Fleet::new();
    let port = 20_000 + (rand::random::<u16>() % 20_000);
    let addr = format!("127.0.0.1:{port}");
    // The circuit parameters come from the same environment as the leader's (support::SMALL).
    let w = fleet.worker("w1", &["--preload", "--metrics-addr", &addr]);
    w.wait_for(&["circuits ready"], JOB_TIMEOUT);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ureq::get(&format!("http://{addr}/readyz")).call().map(|r| r.status().as_u16()).ok() != Some(200) {
        assert!(std::time::Instant::now() < deadline, "never ready");
        std::thread::yield_now();
    }

    let batch = fleet.synth("a.json", 6, 3);
    let proof = fleet.path("a.proof");
    let (code, _, err) = fleet.prove(&batch, &proof, &[]).finish(JOB_TIMEOUT);
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    assert_eq!(fleet.values(&proof)["tx_count"], 6);

    // Every circuit of every round was there before the first task: none loaded or built after.
    let log = w.stderr();
    let ready = log.iter().position(|l| l.contains("circuits ready")).unwrap();
    let circuits =
        |lines: &[String]| lines.iter().filter(|l| l.contains("circuit loaded") || l.contains("circuit built")).count();
    // Aggregate 1 and 2, final, compress (the basic round is a STARK with no circuit to build).
    assert_eq!(circuits(&log[..ready]), 4, "{}", log.join("\n"));
    assert_eq!(circuits(&log[ready..]), 0, "{}", log.join("\n"));
    assert!(log[ready..].iter().any(|l| l.contains("task done")), "{}", log.join("\n"));
}

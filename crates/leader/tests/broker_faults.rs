//! The whole broker disturbed in the middle of a job: a restart, and a memory alarm that blocks
//! every publisher. Workers and leader ride both out and the job completes. Alone in a test
//! binary of their own because they disturb the whole local broker, and one at a time.

mod support;

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::{Fleet, Proc};

/// Held by each test: they disturb the same broker.
static BROKER: Mutex<()> = Mutex::new(());

fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl").args(args).output().expect("rabbitmqctl runs");
    assert!(out.status.success(), "rabbitmqctl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `done` holds, asking again every 100 ms, for at most `bound`.
fn until(bound: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !done() {
        assert!(Instant::now() < deadline, "not within {bound:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One worker serves the `basic` queue alone (its consumer stays in place while it is busy), the
/// other every other round (it cancels and consumes again): both ways of consuming must come back.
#[test]
fn a_broker_restart_mid_job_is_ridden_out() {
    let _broker = BROKER.lock().unwrap_or_else(|e| e.into_inner());
    let fleet = Fleet::new();
    let mut w1 = fleet.worker("w1", &["--rounds", "basic"]);
    let mut w2 = fleet.worker("w2", &["--rounds", "witness,aggregate,final,compress"]);
    let input = fleet.synth("a.json", 16, 11);
    let proof = fleet.path("a.proof");
    let leader =
        Proc::spawn(fleet.leader(&["prove", "--input", input.to_str().unwrap(), "--output", proof.to_str().unwrap()]));
    leader.wait_for(&["txs_proved=4 "], Duration::from_secs(300));

    let before = [w1.stderr().len(), w2.stderr().len()];
    rabbitmqctl(&["stop_app"]);
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);

    let (code, _, err) = leader.finish_beside(Duration::from_secs(300), &[&w1, &w2]);
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    assert_eq!(fleet.values(&proof)["tx_count"], 16);
    // The leader follows results on a connection of its own, which it opened again itself.
    assert!(err.iter().any(|l| l.contains("broker connection for results reopened")), "{}", err.join("\n"));
    // The workers rode it out too: still running, and proving after the restart.
    let mut after = Vec::new();
    for (w, n) in [(&mut w1, before[0]), (&mut w2, before[1])] {
        assert!(w.child.try_wait().unwrap().is_none(), "a worker exited:\n{}", w.stderr().join("\n"));
        let lines = w.stderr().split_off(n);
        // Each consumes on a new connection of its own, not on consumers a recovery registered.
        assert!(lines.iter().any(|l| l.contains("broker connection for consuming reopened")), "{}", lines.join("\n"));
        after.extend(lines);
    }
    assert!(after.iter().any(|l| l.contains("task done")), "{}", after.join("\n"));
    // The queue w1 serves alone is consumed again, by one consumer it registered after the
    // restart: consumer tags end with the worker's count of consumes, 1 before the restart (its
    // consumer stays in place while it is busy).
    let queue = common::topology::task_queue(common::Round::Basic);
    let basic = support::management_get(&format!("/api/queues/{}/{queue}", fleet.vhost.name));
    let tags: Vec<&str> =
        basic["consumer_details"].as_array().unwrap().iter().filter_map(|c| c["consumer_tag"].as_str()).collect();
    assert_eq!(tags.len(), 1, "one consumer on {queue}: {tags:?}");
    let generation: u64 = tags[0].strip_prefix("w1/basic/").and_then(|g| g.parse().ok()).unwrap_or(0);
    assert!(generation >= 2, "w1 consumes {queue} again after the restart: {tags:?}");
}

/// A memory alarm blocks every connection that publishes: tasks and results wait in their
/// publishers until it clears. Nothing is lost and nothing dies: the job completes, and nothing
/// reaches the dead-letter queue.
#[test]
fn a_memory_alarm_mid_job_holds_publishers_and_the_job_completes_after_it() {
    let _broker = BROKER.lock().unwrap_or_else(|e| e.into_inner());
    let fleet = Fleet::new();
    let mut worker = fleet.worker("w1", &[]);
    let input = fleet.synth("a.json", 16, 12);
    let proof = fleet.path("a.proof");
    let leader =
        Proc::spawn(fleet.leader(&["prove", "--input", input.to_str().unwrap(), "--output", proof.to_str().unwrap()]));
    leader.wait_for(&["txs_proved=4 "], Duration::from_secs(300));

    let watermark = rabbitmqctl(&["eval", "vm_memory_monitor:get_vm_memory_high_watermark()."]);
    rabbitmqctl(&["set_vm_memory_high_watermark", "0.0000001"]);
    let blocked = || {
        let listed = rabbitmqctl(&["list_connections", "-q", "--no-table-headers", "vhost", "state"]);
        listed.lines().any(|l| l.starts_with(&format!("{}\t", fleet.vhost.name)) && l.ends_with("\tblocked"))
    };
    let alarm = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        until(Duration::from_secs(120), "a publisher of the job is blocked", blocked)
    }));
    // Cleared whatever happened above, so the broker is left as it was found.
    rabbitmqctl(&["eval", &format!("vm_memory_monitor:set_vm_memory_high_watermark({}).", watermark.trim())]);
    alarm.unwrap();

    let (code, _, err) = leader.finish_beside(Duration::from_secs(300), &[&worker]);
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    assert_eq!(fleet.values(&proof)["tx_count"], 16);
    assert!(worker.child.try_wait().unwrap().is_none(), "the worker rode it out:\n{}", worker.stderr().join("\n"));
    assert_eq!(fleet.vhost.depth(common::topology::DEAD_LETTER_QUEUE), (0, 0), "nothing was dead-lettered");
}

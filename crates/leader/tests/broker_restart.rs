//! A broker restart in the middle of a job: workers and leader ride it out and the job completes.
//! Alone in its own test binary because it stops the whole local broker for a moment.
//!
//! One worker serves the `basic` queue alone (its consumer stays in place while it is busy), the
//! other every other round (it cancels and consumes again): both ways of consuming must come back.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Fleet, Proc};

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl").args(args).status().expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

#[test]
fn a_broker_restart_mid_job_is_ridden_out() {
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

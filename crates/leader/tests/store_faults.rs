//! The store misbehaving under the broker fleet: an artifact whose bytes change at rest is caught
//! by its digest and written again by the task that produced it; an S3-compatible server stopped
//! in the middle of a job costs retries, not the job; one stopped for longer than the task policy
//! waits fails the job in one line and leaves it for `leader resume`.

mod support;

use std::time::Duration;

use common::{keys, Round};
use support::{job_ids, Fleet, Proc};

// A bound, not a pace: workers build their circuits first (on S3, into the test's own bucket).
const JOB_TIMEOUT: Duration = Duration::from_secs(600);

#[test]
fn a_byte_flipped_in_an_artifact_is_caught_and_its_producer_runs_again() {
    let fleet = Fleet::new();
    let input = fleet.synth("a.json", 8, 21);
    let proof = fleet.path("a.proof");
    // One worker proves the chunks; the rounds above wait for the second, started once the
    // chunks' proofs are in the store.
    let chunks = fleet.worker("chunks", &["--rounds", "witness,basic"]);
    let leader = fleet.prove(&input, &proof, &["--keep-artifacts"]);
    let job = job_ids(&leader.wait_for(&["jobs staged"], Duration::from_secs(60))).remove(0);
    leader.wait_for(&["txs_proved=8 "], JOB_TIMEOUT);

    let key = keys::artifact(&job, Round::Basic, 0, 0);
    let path = fleet.store().join(&key);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let upper = fleet.worker("upper", &["--rounds", "aggregate,final,compress"]);

    let (code, _, err) = leader.finish_beside(JOB_TIMEOUT, &[&chunks, &upper]);
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    let noticed = err.iter().find(|l| l.contains("input corrupted in the store; its producer runs again"));
    let noticed = noticed.unwrap_or_else(|| panic!("no line about the corrupted input: {}", err.join("\n")));
    assert!(noticed.contains(&format!("input={key}")) && noticed.contains("integrity"), "{noticed}");
    chunks.wait_for(&["task done", "round=basic", "index=0", "attempt=2"], Duration::from_secs(5));
    upper.wait_for(&["task failed", "round=aggregate", "integrity"], Duration::from_secs(5));
    assert_ne!(std::fs::read(&path).unwrap(), bytes, "the artifact was written again");
    assert_eq!(fleet.verify(&proof)["tx_count"], 8);
}

#[test]
fn an_s3_outage_mid_job_costs_retries_and_a_longer_one_leaves_the_job_resumable() {
    let mut fleet = Fleet::on_s3();
    let worker = fleet.worker("w1", &[]);
    worker.wait_for(&["worker started"], Duration::from_secs(60));

    // Down for a moment: stopped once the first chunk is proved, started again as soon as a task
    // has failed on it. The job completes.
    let input = fleet.synth("a.json", 8, 22);
    let proof = fleet.path("a.proof");
    let leader = fleet.prove(&input, &proof, &[]);
    leader.wait_for(&["txs_proved=4 "], JOB_TIMEOUT);
    fleet.s3.as_mut().unwrap().stop();
    let retried = leader.wait_for(&["retrying task"], JOB_TIMEOUT);
    assert!(retried.contains("store unavailable"), "{retried}");
    fleet.s3.as_mut().unwrap().restart();
    let (code, _, err) = leader.finish_beside(JOB_TIMEOUT, &[&worker]);
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    assert_eq!(fleet.verify(&proof)["tx_count"], 8);

    // Down for longer than the task policy waits: the job fails in one line that says how to
    // resume it, and `leader resume` finishes it once the store is back.
    let input = fleet.synth("b.json", 8, 23);
    let proof = fleet.path("b.proof");
    let leader = fleet.prove(&input, &proof, &[]);
    let jobs = job_ids(&leader.wait_for(&["jobs staged"], Duration::from_secs(60)));
    leader.wait_for(&["txs_proved=4 "], JOB_TIMEOUT);
    fleet.s3.as_mut().unwrap().stop();
    let (code, stdout, err) = leader.finish_beside(JOB_TIMEOUT, &[&worker]);
    assert_eq!(code, Some(1), "{}", err.join("\n"));
    assert!(stdout.is_empty());
    let last = err.last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("error: ")
            && last.contains("failed 3 times, last: ")
            && last.contains("store unavailable")
            && last.contains(&format!("leader resume {}", jobs.join(" "))),
        "{}",
        err.join("\n")
    );
    fleet.s3.as_mut().unwrap().restart();
    let mut args = vec!["resume", "--output", proof.to_str().unwrap()];
    args.extend(jobs.iter().map(String::as_str));
    let (code, _, err) = Proc::spawn(fleet.leader(&args)).finish_beside(JOB_TIMEOUT, &[&worker]);
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    assert_eq!(fleet.verify(&proof)["tx_count"], 8);
}

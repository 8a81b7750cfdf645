//! The leader's metrics: jobs running and finished, tasks dispatched by round, transactions
//! proved. Served on `--metrics-addr` while `prove` or `resume` runs, together with the store's
//! metrics and, for the embedded fleet, the worker's.

use common::Round;
use metrics::{counter, describe_counter, describe_gauge, gauge};

pub const JOBS_RUNNING: &str = "zkfleet_leader_jobs_running";
pub const JOBS_FINISHED: &str = "zkfleet_leader_jobs_finished_total";
pub const TASKS_DISPATCHED: &str = "zkfleet_leader_tasks_dispatched_total";
pub const TRANSACTIONS_PROVED: &str = "zkfleet_leader_transactions_proved_total";

/// Every metric this crate declares, for checks that compare dashboards with the code.
pub const NAMES: [&str; 4] = [JOBS_RUNNING, JOBS_FINISHED, TASKS_DISPATCHED, TRANSACTIONS_PROVED];

/// Describes the leader's metrics to the installed recorder.
pub fn describe() {
    describe_gauge!(JOBS_RUNNING, "Jobs this leader is driving right now");
    describe_counter!(JOBS_FINISHED, "Jobs this leader finished, by outcome (succeeded, failed)");
    describe_counter!(
        TASKS_DISPATCHED,
        "Tasks handed to the fleet (published to the broker), by round, retries included"
    );
    describe_counter!(TRANSACTIONS_PROVED, "Transactions covered by finished basic proofs");
}

// The two counters below are updated once per task: without a recorder, not even their keys
// are built.

pub fn task_dispatched(round: Round) {
    if common::metrics::installed() {
        counter!(TASKS_DISPATCHED, "round" => round.as_str()).increment(1);
    }
}

pub fn transactions_proved(count: u64) {
    if common::metrics::installed() {
        counter!(TRANSACTIONS_PROVED).increment(count);
    }
}

/// The jobs of one run, counted as running until each finishes; those still running when the
/// guard drops count as failed.
pub struct JobsRunning {
    left: usize,
}

impl JobsRunning {
    pub fn start(jobs: usize) -> Self {
        gauge!(JOBS_RUNNING).increment(jobs as f64);
        Self { left: jobs }
    }

    pub fn succeeded(&mut self) {
        if self.left > 0 {
            self.left -= 1;
            gauge!(JOBS_RUNNING).decrement(1.0);
            counter!(JOBS_FINISHED, "outcome" => "succeeded").increment(1);
        }
    }
}

impl Drop for JobsRunning {
    fn drop(&mut self) {
        if self.left > 0 {
            gauge!(JOBS_RUNNING).decrement(self.left as f64);
            counter!(JOBS_FINISHED, "outcome" => "failed").increment(self.left as u64);
        }
    }
}

//! The worker's metrics: tasks by round, pool and outcome, how long they take, how long they
//! waited in their queue, and the proofs in hand. Names and label sets are documented in
//! docs/observability.md; label values come from fixed sets (round, pool, outcome), never ids.

use std::time::Duration;

// Without a recorder (no `--metrics-addr`) every per-task update below returns first: a metric
// macro builds its key, labels included, before the no-op recorder drops it.
use common::metrics::installed;
use common::Round;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};

pub const TASKS_STARTED: &str = "zkfleet_worker_tasks_started_total";
pub const TASKS_FINISHED: &str = "zkfleet_worker_tasks_finished_total";
pub const TASK_DURATION: &str = "zkfleet_worker_task_duration_seconds";
pub const QUEUE_WAIT: &str = "zkfleet_worker_queue_wait_seconds";
pub const PROOFS_IN_FLIGHT: &str = "zkfleet_worker_proofs_in_flight";

/// Every metric this crate declares, for checks that compare dashboards with the code.
pub const NAMES: [&str; 5] = [TASKS_STARTED, TASKS_FINISHED, TASK_DURATION, QUEUE_WAIT, PROOFS_IN_FLIGHT];

/// The `pool` label of tasks that the leader's embedded fleet runs.
pub const EMBEDDED_POOL: &str = "embedded";

/// How a task ended, as the `outcome` label says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its outputs are in the store (proven now or found there).
    Succeeded,
    /// A transient failure: the task goes back for another attempt.
    Retried,
    /// A permanent failure or invalid input: the job fails.
    Failed,
    /// Its job was cancelled while the task was in hand.
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Retried => "retried",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// Describes the worker's metrics to the installed recorder.
pub fn describe() {
    describe_counter!(TASKS_STARTED, "Tasks taken, by round and pool");
    describe_counter!(
        TASKS_FINISHED,
        "Tasks ended, by round, pool and outcome (succeeded, retried, failed, cancelled)"
    );
    describe_histogram!(
        TASK_DURATION,
        Unit::Seconds,
        "Time from taking a task to its outputs being durable, by round and pool"
    );
    describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "Time a task spent between the leader's publish and a worker taking it, by round"
    );
    describe_gauge!(PROOFS_IN_FLIGHT, "Tasks a worker has in hand right now, by pool");
}

/// A task in hand: counted as started and in flight until dropped.
pub struct InFlight {
    pool: &'static str,
}

/// Counts a task as started; the returned guard keeps it in flight.
pub fn task_started(round: Round, pool: &'static str) -> InFlight {
    if installed() {
        counter!(TASKS_STARTED, "round" => round.as_str(), "pool" => pool).increment(1);
        gauge!(PROOFS_IN_FLIGHT, "pool" => pool).increment(1.0);
    }
    InFlight { pool }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if installed() {
            gauge!(PROOFS_IN_FLIGHT, "pool" => self.pool).decrement(1.0);
        }
    }
}

/// Counts a task as ended and records its duration.
pub fn task_finished(round: Round, pool: &'static str, outcome: Outcome, duration: Duration) {
    if !installed() {
        return;
    }
    counter!(TASKS_FINISHED, "round" => round.as_str(), "pool" => pool, "outcome" => outcome.as_str()).increment(1);
    if outcome != Outcome::Cancelled {
        histogram!(TASK_DURATION, "round" => round.as_str(), "pool" => pool).record(duration.as_secs_f64());
    }
}

/// Records how long a task published at `published_ms` (milliseconds since the Unix epoch, the
/// leader's clock) waited in its queue until now.
pub fn queue_wait(round: Round, published_ms: u64) {
    if !installed() {
        return;
    }
    let waited = Duration::from_millis(common::broker::unix_ms().saturating_sub(published_ms));
    histogram!(QUEUE_WAIT, "round" => round.as_str()).record(waited.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `name{labels}` on a Prometheus text page.
    fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        page.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            let all = labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            (metric == name && all).then(|| value.parse().ok())?
        })
    }

    #[test]
    fn tasks_are_counted_by_round_pool_and_outcome() {
        // Before the recorder: nothing counted.
        task_finished(Round::Basic, "cpu", Outcome::Succeeded, Duration::from_millis(5));
        let handle = common::metrics::install();
        for _ in 0..3 {
            drop(task_started(Round::Basic, "cpu"));
            task_finished(Round::Basic, "cpu", Outcome::Succeeded, Duration::from_millis(5));
        }
        let held = task_started(Round::Aggregate, EMBEDDED_POOL);
        task_finished(Round::Aggregate, EMBEDDED_POOL, Outcome::Retried, Duration::from_millis(5));
        drop(task_started(Round::Basic, "gpu"));
        queue_wait(Round::Basic, common::broker::unix_ms() - 2);

        let page = handle.render();
        let basic_cpu = [("round", "basic"), ("pool", "cpu")];
        assert_eq!(sample(&page, TASKS_STARTED, &basic_cpu), Some(3.0), "{page}");
        let succeeded = [("round", "basic"), ("pool", "cpu"), ("outcome", "succeeded")];
        assert_eq!(sample(&page, TASKS_FINISHED, &succeeded), Some(3.0), "{page}");
        assert_eq!(sample(&page, &format!("{TASK_DURATION}_count"), &basic_cpu), Some(3.0), "{page}");
        assert_eq!(sample(&page, PROOFS_IN_FLIGHT, &[("pool", "cpu")]), Some(0.0), "{page}");
        assert_eq!(sample(&page, PROOFS_IN_FLIGHT, &[("pool", EMBEDDED_POOL)]), Some(1.0), "{page}");
        let retried = [("round", "aggregate"), ("pool", EMBEDDED_POOL), ("outcome", "retried")];
        assert_eq!(sample(&page, TASKS_FINISHED, &retried), Some(1.0), "{page}");
        assert_eq!(sample(&page, TASKS_STARTED, &[("round", "basic"), ("pool", "gpu")]), Some(1.0), "{page}");
        assert_eq!(sample(&page, &format!("{QUEUE_WAIT}_count"), &[("round", "basic")]), Some(1.0), "{page}");
        drop(held);
    }
}

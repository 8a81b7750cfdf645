//! The worker's metrics: tasks by round, pool and outcome, how long they take, how long they
//! waited in their queue, and the proofs in hand. Names and label sets are documented in
//! docs/observability.md; label values come from fixed sets (round, pool, outcome), never ids.

use std::sync::OnceLock;
use std::time::Duration;

use common::topology::Pool;
use common::Round;
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter, Gauge, Histogram, Unit,
};

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

/// Pools the per-task handles are kept for: the two worker pools and the embedded fleet. Any
/// other label value is looked up at every update.
const POOLS: [&str; 3] = [Pool::Cpu.as_str(), Pool::Gpu.as_str(), EMBEDDED_POOL];
const ROUNDS: usize = Round::ALL.len();
// `Cancelled` is the last of the outcomes.
const OUTCOMES: usize = Outcome::Cancelled as usize + 1;

// The handles of every label set of the per-task metrics, registered on first use. The macros
// build a metric's key (its labels in a new allocation) and look it up in the recorder's registry
// at every update; a task makes five updates, and with no-op tasks that was a measurable share of
// the metrics' cost (docs/benchmarks.md, telemetry overhead).
static STARTED: [OnceLock<Counter>; ROUNDS * POOLS.len()] = [const { OnceLock::new() }; ROUNDS * POOLS.len()];
static FINISHED: [OnceLock<Counter>; ROUNDS * POOLS.len() * OUTCOMES] =
    [const { OnceLock::new() }; ROUNDS * POOLS.len() * OUTCOMES];
static DURATIONS: [OnceLock<Histogram>; ROUNDS * POOLS.len()] = [const { OnceLock::new() }; ROUNDS * POOLS.len()];
static IN_FLIGHT: [OnceLock<Gauge>; POOLS.len()] = [const { OnceLock::new() }; POOLS.len()];
static QUEUE_WAITS: [OnceLock<Histogram>; ROUNDS] = [const { OnceLock::new() }; ROUNDS];

fn pool_index(pool: &str) -> Option<usize> {
    POOLS.iter().position(|p| *p == pool)
}

/// Where the handle of `round` and the pool at `pool_index` is kept in `STARTED` and `DURATIONS`.
fn round_pool(round: Round, pool_index: usize) -> usize {
    round as usize * POOLS.len() + pool_index
}

/// Runs `update` on the handle kept in `slot`, registering it with `register` the first time;
/// without a slot, on a handle registered for this update only. Before the recorder is installed
/// nothing runs: every handle would be a no-op (and one kept then would stay a no-op), and a
/// worker without `--metrics-addr` should not build each metric's key per task only to drop it.
fn with<T>(slot: Option<&OnceLock<T>>, register: impl FnOnce() -> T, update: impl FnOnce(&T)) {
    if !common::metrics::installed() {
        return;
    }
    match slot {
        Some(slot) => update(slot.get_or_init(register)),
        None => update(&register()),
    }
}

/// A task in hand: counted as started and in flight until dropped.
pub struct InFlight {
    pool: &'static str,
}

/// Counts a task as started; the returned guard keeps it in flight.
pub fn task_started(round: Round, pool: &'static str) -> InFlight {
    let p = pool_index(pool);
    with(
        p.map(|p| &STARTED[round_pool(round, p)]),
        || counter!(TASKS_STARTED, "round" => round.as_str(), "pool" => pool),
        |c| c.increment(1),
    );
    with(p.map(|p| &IN_FLIGHT[p]), || gauge!(PROOFS_IN_FLIGHT, "pool" => pool), |g| g.increment(1.0));
    InFlight { pool }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let pool = self.pool;
        with(
            pool_index(pool).map(|p| &IN_FLIGHT[p]),
            || gauge!(PROOFS_IN_FLIGHT, "pool" => pool),
            |g| g.decrement(1.0),
        );
    }
}

/// Counts a task as ended and records its duration.
pub fn task_finished(round: Round, pool: &'static str, outcome: Outcome, duration: Duration) {
    let p = pool_index(pool);
    with(
        p.map(|p| &FINISHED[round_pool(round, p) * OUTCOMES + outcome as usize]),
        || counter!(TASKS_FINISHED, "round" => round.as_str(), "pool" => pool, "outcome" => outcome.as_str()),
        |c| c.increment(1),
    );
    if outcome != Outcome::Cancelled {
        with(
            p.map(|p| &DURATIONS[round_pool(round, p)]),
            || histogram!(TASK_DURATION, "round" => round.as_str(), "pool" => pool),
            |h| h.record(duration.as_secs_f64()),
        );
    }
}

/// Records how long a task published at `published_ms` (milliseconds since the Unix epoch, the
/// leader's clock) waited in its queue until now. The clock is read only with a recorder.
pub fn queue_wait(round: Round, published_ms: u64) {
    with(
        Some(&QUEUE_WAITS[round as usize]),
        || histogram!(QUEUE_WAIT, "round" => round.as_str()),
        |h| h.record(Duration::from_millis(common::broker::unix_ms().saturating_sub(published_ms)).as_secs_f64()),
    );
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
    fn kept_handles_count_as_the_macros_do() {
        // Before the recorder: nothing kept, nothing counted.
        task_finished(Round::Basic, "cpu", Outcome::Succeeded, Duration::from_millis(5));
        let handle = common::metrics::install();
        for _ in 0..3 {
            drop(task_started(Round::Basic, "cpu"));
            task_finished(Round::Basic, "cpu", Outcome::Succeeded, Duration::from_millis(5));
        }
        let held = task_started(Round::Aggregate, EMBEDDED_POOL);
        task_finished(Round::Aggregate, EMBEDDED_POOL, Outcome::Retried, Duration::from_millis(5));
        // A pool outside the kept set is counted all the same.
        drop(task_started(Round::Basic, "other"));
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
        assert_eq!(sample(&page, TASKS_STARTED, &[("round", "basic"), ("pool", "other")]), Some(1.0), "{page}");
        assert_eq!(sample(&page, &format!("{QUEUE_WAIT}_count"), &[("round", "basic")]), Some(1.0), "{page}");
        drop(held);
    }
}

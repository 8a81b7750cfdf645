//! What `leader status` shows of a job: a record the job's leader keeps in the store
//! (`jobs/{job}/status.json`, rewritten at most every [`RECORD_INTERVAL`] while the job runs),
//! the estimate of the time left, and the table. Everything here but [`write`] is pure.
//!
//! The record holds, per round: tasks planned, done, handed to the fleet and not done yet
//! (in flight), failed attempts, and the summed worker time of the done tasks. The broker alone
//! cannot say which job a queued message belongs to: `leader status` splits a job's in-flight
//! tasks into queued and running with the ratio of its round queue's ready and unacked
//! messages, and marks the split with `~` unless the queue holds this job's tasks alone.

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Round, Store};
use serde::{Deserialize, Serialize};

/// How often a running leader rewrites its jobs' records, at most.
pub const RECORD_INTERVAL: Duration = Duration::from_secs(2);

pub fn key(job: &str) -> String {
    common::keys::status(job)
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundRecord {
    pub planned: u64,
    pub done: u64,
    /// Handed to the fleet, not done yet: queued or running.
    pub in_flight: u64,
    /// Attempts that ended in a failure (retried or fatal).
    pub failed: u64,
    /// Summed worker time of the done tasks, in milliseconds.
    pub busy_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job: String,
    pub batch: u64,
    /// When this leader started driving the job (ms since the Unix epoch).
    pub started_ms: u64,
    pub updated_ms: u64,
    pub rounds: BTreeMap<Round, RoundRecord>,
}

impl JobRecord {
    pub fn done(&self) -> u64 {
        self.rounds.values().map(|r| r.done).sum()
    }

    pub fn planned(&self) -> u64 {
        self.rounds.values().map(|r| r.planned).sum()
    }
}

/// The time left, from what the job has shown so far: the worker time the remaining tasks need
/// (each round's mean task time so far, or the mean over every done task for a round that has
/// none done yet), divided by the rate at which the fleet has delivered worker time to this job
/// (done worker time over elapsed wall time). `None` until a task is done.
pub fn estimate_left(record: &JobRecord, elapsed: Duration) -> Option<Duration> {
    let (done, busy): (u64, u64) = record.rounds.values().fold((0, 0), |(d, b), r| (d + r.done, b + r.busy_ms));
    if done == 0 || busy == 0 {
        return None;
    }
    let overall_mean = busy as f64 / done as f64;
    let left_ms: f64 = record
        .rounds
        .values()
        .map(|r| {
            let mean = if r.done > 0 { r.busy_ms as f64 / r.done as f64 } else { overall_mean };
            r.planned.saturating_sub(r.done) as f64 * mean
        })
        .sum();
    let rate = busy as f64 / elapsed.as_millis().max(1) as f64;
    Some(Duration::from_millis((left_ms / rate).round() as u64))
}

/// A round queue's depth, from the management API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub ready: u64,
    pub unacked: u64,
}

/// Splits `in_flight` tasks of a job into (queued, running, exact) by the queue's ratio. Exact
/// when the queue holds exactly this job's in-flight tasks.
pub fn split(in_flight: u64, queue: QueueDepth) -> (u64, u64, bool) {
    let total = queue.ready + queue.unacked;
    if in_flight == 0 {
        return (0, 0, true);
    }
    if total == 0 {
        // Published, not in the queue yet, or results on their way back.
        return (in_flight, 0, false);
    }
    let running = ((in_flight as f64) * queue.unacked as f64 / total as f64).round() as u64;
    let running = running.min(in_flight);
    (in_flight - running, running, total == in_flight)
}

/// `1h02m`, `3m07s`, `42s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The per-round table of one job: one line per round, then the job's total with its elapsed
/// time and the estimate of the time left.
pub fn render(record: &JobRecord, state: &str, now_ms: u64, queues: &BTreeMap<Round, QueueDepth>) -> String {
    let elapsed = Duration::from_millis(now_ms.saturating_sub(record.started_ms));
    let mut out = format!(
        "job {} (batch {}): {state}, {}/{} tasks done, elapsed {}, left {}\n",
        record.job,
        record.batch,
        record.done(),
        record.planned(),
        human(elapsed),
        match (state, estimate_left(record, elapsed)) {
            ("done", _) => "0s".to_string(),
            (_, Some(left)) => format!("~{}", human(left)),
            (_, None) => "?".to_string(),
        }
    );
    out.push_str(&format!(
        "  {:<10} {:>9} {:>7} {:>8} {:>7} {:>9}\n",
        "ROUND", "DONE", "QUEUED", "RUNNING", "FAILED", "MEAN"
    ));
    for (round, r) in &record.rounds {
        let (queued, running, exact) = split(r.in_flight, queues.get(round).copied().unwrap_or_default());
        let mark = if exact { "" } else { "~" };
        let mean = if r.done > 0 { format!("{:.1}s", r.busy_ms as f64 / r.done as f64 / 1000.0) } else { "-".into() };
        out.push_str(&format!(
            "  {:<10} {:>9} {:>7} {:>8} {:>7} {:>9}\n",
            round.as_str(),
            format!("{}/{}", r.done, r.planned),
            format!("{mark}{queued}"),
            format!("{mark}{running}"),
            r.failed,
            mean
        ));
    }
    out
}

/// Stores the record (replacing the one before).
pub async fn write(store: &Store, record: &JobRecord) -> Result<(), common::store::StoreError> {
    let bytes = serde_json::to_vec(record).expect("records serialize");
    store.replace(&key(&record.job), &bytes).await
}

pub async fn read(store: &Store, job: &str) -> Option<JobRecord> {
    let bytes = store.get(&key(job)).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The records of a leader's jobs as it drives them, written to the store now and then.
pub struct Records {
    store: Option<Store>,
    jobs: Vec<JobRecord>,
    dirty: bool,
    written: Option<std::time::Instant>,
}

impl Records {
    /// Records for `plans` (in the coordinator's order), written to `store` when one is given.
    pub fn new(store: Option<Store>, plans: &[common::plan::Plan]) -> Self {
        let now = common::broker::unix_ms();
        let jobs = plans
            .iter()
            .map(|plan| {
                let first = &plan.tasks[0].task;
                let mut rounds: BTreeMap<Round, RoundRecord> = BTreeMap::new();
                for t in &plan.tasks {
                    rounds.entry(t.task.round).or_default().planned += 1;
                }
                JobRecord { job: first.job.clone(), batch: first.batch, started_ms: now, updated_ms: now, rounds }
            })
            .collect();
        Self { store, jobs, dirty: true, written: None }
    }

    fn round(&mut self, job: usize, round: Round) -> &mut RoundRecord {
        self.dirty = true;
        self.jobs[job].rounds.entry(round).or_default()
    }

    /// A task found done before it was dispatched (a resumed job).
    pub fn found_done(&mut self, job: usize, round: Round) {
        self.round(job, round).done += 1;
    }

    pub fn dispatched(&mut self, job: usize, round: Round) {
        self.round(job, round).in_flight += 1;
    }

    pub fn done(&mut self, job: usize, round: Round, duration_ms: u64) {
        let r = self.round(job, round);
        r.in_flight = r.in_flight.saturating_sub(1);
        r.done += 1;
        r.busy_ms += duration_ms;
    }

    /// A task counted done runs again.
    pub fn undone(&mut self, job: usize, round: Round) {
        let r = self.round(job, round);
        r.done = r.done.saturating_sub(1);
    }

    pub fn failed(&mut self, job: usize, round: Round) {
        let r = self.round(job, round);
        r.in_flight = r.in_flight.saturating_sub(1);
        r.failed += 1;
    }

    /// When the next write is due, if one is.
    pub fn due_in(&self) -> Option<Duration> {
        if !self.dirty || self.store.is_none() {
            return None;
        }
        Some(self.written.map_or(Duration::ZERO, |at| RECORD_INTERVAL.saturating_sub(at.elapsed())))
    }

    /// Writes the records if they changed and the last write is old enough (or `now`). A store
    /// failure only costs `leader status` its freshness, so it is logged, not raised.
    pub async fn flush(&mut self, now: bool) {
        let Some(store) = &self.store else { return };
        if !self.dirty || (!now && self.due_in() != Some(Duration::ZERO)) {
            return;
        }
        let at = common::broker::unix_ms();
        for record in &mut self.jobs {
            record.updated_ms = at;
            if let Err(e) = write(store, record).await {
                tracing::debug!(job = %record.job, error = %e, "status record not written");
            }
        }
        self.dirty = false;
        self.written = Some(std::time::Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> JobRecord {
        let round =
            |planned, done, in_flight, failed, busy_ms| RoundRecord { planned, done, in_flight, failed, busy_ms };
        JobRecord {
            job: "b7-0000abcd".into(),
            batch: 7,
            started_ms: 1_000_000,
            updated_ms: 1_060_000,
            rounds: BTreeMap::from([
                (Round::Witness, round(1, 1, 0, 0, 1_000)),
                (Round::Basic, round(8, 4, 4, 1, 40_000)),
                (Round::Aggregate, round(7, 0, 0, 0, 0)),
                (Round::Final, round(1, 0, 0, 0, 0)),
                (Round::Compress, round(1, 0, 0, 0, 0)),
            ]),
        }
    }

    #[test]
    fn the_estimate_scales_the_work_left_by_the_rate_so_far() {
        // Done: 41 s of worker time in 60 s of wall time. Left: 4 basic tasks at 10 s, and 9
        // tasks of rounds without a measurement at the overall mean (41/5 = 8.2 s): 113.8 s of
        // worker time, at 41/60 worker-seconds per second.
        let left = estimate_left(&record(), Duration::from_secs(60)).unwrap();
        let expected: f64 = (40_000.0 + 9.0 * 8_200.0) / (41_000.0 / 60_000.0);
        assert_eq!(left.as_millis() as f64, expected.round());
        // Nothing done: no estimate.
        let mut fresh = record();
        fresh.rounds.values_mut().for_each(|r| {
            r.done = 0;
            r.busy_ms = 0;
        });
        assert_eq!(estimate_left(&fresh, Duration::from_secs(60)), None);
        // All done: nothing left.
        let mut finished = record();
        finished.rounds.values_mut().for_each(|r| r.done = r.planned);
        assert_eq!(estimate_left(&finished, Duration::from_secs(60)), Some(Duration::ZERO));
    }

    #[test]
    fn in_flight_tasks_split_by_the_queue_ratio() {
        // The queue holds this job's four tasks alone: exact.
        assert_eq!(split(4, QueueDepth { ready: 3, unacked: 1 }), (3, 1, true));
        // Another job shares the queue: an estimate.
        assert_eq!(split(4, QueueDepth { ready: 6, unacked: 2 }), (3, 1, false));
        assert_eq!(split(0, QueueDepth { ready: 6, unacked: 2 }), (0, 0, true));
        assert_eq!(split(2, QueueDepth::default()), (2, 0, false));
    }

    #[tokio::test]
    async fn a_leader_records_its_jobs_for_status() {
        let store = Store::open("memory:").unwrap();
        let shape = common::plan::JobShape {
            job: "j1".into(),
            batch: 7,
            tx_count: 16,
            chunk_size: 4,
            arity: 2,
            levels: 2,
            input_key: "jobs/j1/input/0-0".into(),
            previous_final_key: None,
            params: vec![],
            meta: Default::default(),
        };
        let plan = common::plan::plan(&shape).unwrap();
        let mut records = Records::new(Some(store.clone()), std::slice::from_ref(&plan));
        // The first write is due at once; later ones wait for the interval.
        assert_eq!(records.due_in(), Some(Duration::ZERO));
        records.flush(false).await;
        assert_eq!(records.due_in(), None, "nothing changed since");
        records.dispatched(0, Round::Basic);
        records.dispatched(0, Round::Basic);
        records.done(0, Round::Basic, 1_500);
        records.failed(0, Round::Basic);
        assert!(records.due_in().unwrap() > Duration::ZERO, "not before the interval");
        records.flush(false).await;
        assert_eq!(read(&store, "j1").await.unwrap().rounds[&Round::Basic].done, 0, "not written yet");
        records.flush(true).await;
        let record = read(&store, "j1").await.unwrap();
        let basic = &record.rounds[&Round::Basic];
        assert_eq!((basic.planned, basic.done, basic.in_flight, basic.failed, basic.busy_ms), (4, 1, 0, 1, 1_500));
        assert_eq!(record.planned(), 10);
        assert_eq!(record.batch, 7);
        // Without a store nothing is due and nothing is written.
        let mut none = Records::new(None, std::slice::from_ref(&plan));
        none.dispatched(0, Round::Witness);
        assert_eq!(none.due_in(), None);
    }

    #[test]
    fn the_table_reads_per_round() {
        let queues = BTreeMap::from([(Round::Basic, QueueDepth { ready: 3, unacked: 1 })]);
        let table = render(&record(), "running", 1_060_000, &queues);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "job b7-0000abcd (batch 7): running, 5/18 tasks done, elapsed 1m00s, left ~2m46s");
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["ROUND", "DONE", "QUEUED", "RUNNING", "FAILED", "MEAN"]
        );
        assert_eq!(lines[3].split_whitespace().collect::<Vec<_>>(), ["basic", "4/8", "3", "1", "1", "10.0s"]);
        assert_eq!(lines[4].split_whitespace().collect::<Vec<_>>(), ["aggregate", "0/7", "0", "0", "0", "-"]);
        assert_eq!(lines.len(), 2 + 5);
        assert_eq!(human(Duration::from_secs(3725)), "1h02m");
    }
}

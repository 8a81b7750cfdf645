//! The task protocol: what the leader sends a worker and what comes back, encoded with
//! MessagePack (rmp-serde). Messages stay small: ids, store keys and metadata; every payload lives
//! in the store under the keys a message names.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::telemetry::TraceContext;

/// The rounds of a job, in the order they run. Each has its own queue in a broker fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Round {
    Witness,
    Basic,
    Aggregate,
    Final,
    Compress,
}

impl Round {
    pub const ALL: [Round; 5] = [Round::Witness, Round::Basic, Round::Aggregate, Round::Final, Round::Compress];

    pub fn as_str(self) -> &'static str {
        match self {
            Round::Witness => "witness",
            Round::Basic => "basic",
            Round::Aggregate => "aggregate",
            Round::Final => "final",
            Round::Compress => "compress",
        }
    }
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One unit of work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub job: String,
    /// The batch number the job proves (for logs and spans).
    pub batch: u64,
    pub round: Round,
    /// Aggregation level: 0 for every round but `aggregate`, which counts from 1.
    pub level: u32,
    /// Position within the round and level.
    pub index: u32,
    /// Transactions covered, `[start, end)`, for logs and progress.
    pub tx_range: (u64, u64),
    /// Store keys of the inputs, in the order the backend takes them.
    pub inputs: Vec<String>,
    /// SHA-256 of each input, where the leader knows it (from the result that wrote the input, or
    /// from staging it); the worker refuses an input whose bytes differ.
    #[serde(default)]
    pub input_digests: Vec<Option<String>>,
    /// Store keys the task writes. A task whose outputs all exist is done already.
    pub outputs: Vec<String>,
    /// Backend parameters (opaque to the fleet; the reference backend puts its circuit
    /// parameters here).
    pub params: Vec<u8>,
    /// Round-specific values the backend needs besides its inputs (for `final`: chain id and
    /// batch number).
    pub meta: BTreeMap<String, String>,
    /// Delivery attempt, from 1.
    pub attempt: u32,
    /// Trace context (W3C `traceparent` and friends), so one job is one trace. Filled in the
    /// leader's and the worker's process; over the broker it travels in the message headers
    /// instead (the body goes out with it empty).
    pub trace: TraceContext,
}

/// `job/round/level-index`: unique within a fleet, used in logs and as a message id.
fn task_id(job: &str, round: Round, level: u32, index: u32) -> String {
    format!("{job}/{round}/{level}-{index}")
}

impl Task {
    pub fn id(&self) -> String {
        task_id(&self.job, self.round, self.level, self.index)
    }

    /// The aggregation level where it tells tasks apart (aggregate tasks), for spans and log lines.
    pub fn shown_level(&self) -> Option<u32> {
        (self.round == Round::Aggregate).then_some(self.level)
    }

    /// The attempt from a second attempt on, for spans and log lines.
    pub fn shown_attempt(&self) -> Option<u32> {
        (self.attempt > 1).then_some(self.attempt)
    }

    /// The digest recorded for input `i`, if any.
    pub fn input_digest(&self, i: usize) -> Option<&str> {
        self.input_digests.get(i).and_then(|d| d.as_deref())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskOutcome {
    /// The outputs are in the store, with these SHA-256 digests in output order. `reused` is set
    /// when they were there already: before proving, or when writing them (a copy of the task
    /// proved at the same time wrote first). Unset, this attempt wrote every output.
    Done {
        reused: bool,
        digests: Vec<String>,
    },
    Failed(TaskError),
}

/// What a worker reports after a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskResult {
    pub job: String,
    pub round: Round,
    pub level: u32,
    pub index: u32,
    pub outcome: TaskOutcome,
    /// Time spent on the task, from taking it to its outputs being durable.
    pub duration_ms: u64,
    pub worker: String,
}

impl TaskResult {
    /// The id of the task this result reports on.
    pub fn task_id(&self) -> String {
        task_id(&self.job, self.round, self.level, self.index)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("malformed message: {0}")]
pub struct DecodeError(String);

pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(message).expect("protocol messages always serialize")
}

pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, DecodeError> {
    rmp_serde::from_slice(bytes).map_err(|e| DecodeError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_round_trip_through_messagepack() {
        let task = Task {
            job: "j1".into(),
            batch: 7,
            round: Round::Aggregate,
            level: 2,
            index: 3,
            tx_range: (0, 64),
            inputs: vec!["jobs/j1/aggregate/1-6".into(), "jobs/j1/aggregate/1-7".into()],
            input_digests: vec![Some("ab".repeat(32)), None],
            outputs: vec!["jobs/j1/aggregate/2-3".into()],
            params: vec![1, 2, 3],
            meta: BTreeMap::new(),
            attempt: 1,
            trace: TraceContext::from_pairs(BTreeMap::from([("traceparent".into(), "00-abc-def-01".into())])),
        };
        let bytes = encode(&task);
        assert!(bytes.len() < 640, "messages stay small: {} bytes", bytes.len());
        assert_eq!(decode::<Task>(&bytes).unwrap(), task);
        assert_eq!(task.id(), "j1/aggregate/2-3");
        let result = TaskResult {
            job: task.job.clone(),
            round: task.round,
            level: task.level,
            index: task.index,
            outcome: TaskOutcome::Done { reused: false, digests: vec!["cd".repeat(32)] },
            duration_ms: 1,
            worker: "w".into(),
        };
        assert_eq!(result.task_id(), task.id(), "a result names the task it reports on");
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(decode::<Task>(b"\xc1not messagepack").is_err());
    }
}

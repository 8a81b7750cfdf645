//! The error a task ends with; its kind decides what the fleet does next.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskErrorKind {
    /// Worth another attempt: the store or broker was unavailable, the process is shutting down.
    Transient,
    /// The task cannot succeed on any worker (a prover bug or an impossible task); fails the job.
    Permanent,
    /// The job's input is invalid; fails the job with a message for the user.
    InvalidInput,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct TaskError {
    pub kind: TaskErrorKind,
    pub message: String,
    /// The input whose bytes failed their integrity check, when that is why the task failed: the
    /// leader then runs the task that wrote it again (absent from results of older workers).
    #[serde(default)]
    pub corrupt_input: Option<String>,
}

impl TaskError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self { kind: TaskErrorKind::Transient, message: message.into(), corrupt_input: None }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self { kind: TaskErrorKind::Permanent, message: message.into(), corrupt_input: None }
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self { kind: TaskErrorKind::InvalidInput, message: message.into(), corrupt_input: None }
    }

    /// Input `key` is not the bytes its producer wrote: permanent for this task as it stands.
    pub fn corrupt_input(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { corrupt_input: Some(key.into()), ..Self::permanent(message) }
    }
}

/// How a task's transient failures are retried, the same on both fleets: the leader's coordinator
/// decides (a worker reports every failure as its result and frees its slot at once), waits
/// [`RetryPolicy::backoff`] without holding a worker, then dispatches the task again with its
/// `attempt` raised. A worker that dies mid-task is another matter: the broker redelivers its
/// task, up to the queues' delivery limit ([`crate::topology::DELIVERY_LIMIT`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts of one task, the first included, before a transient failure fails the job.
    pub attempts: u32,
    /// The wait after the first failed attempt; it doubles after each further one.
    pub first_backoff: std::time::Duration,
    /// The longest wait.
    pub max_backoff: std::time::Duration,
}

impl RetryPolicy {
    /// The fleets' policy: 3 attempts, waits of about 1 s then 2 s.
    pub const TASKS: RetryPolicy = RetryPolicy {
        attempts: 3,
        first_backoff: std::time::Duration::from_secs(1),
        max_backoff: std::time::Duration::from_secs(30),
    };

    /// Whether a task whose attempt `attempt` (1-based) failed transiently gets another.
    pub fn retries(&self, attempt: u32) -> bool {
        attempt < self.attempts
    }

    /// The wait before the attempt after `attempt`: `first_backoff` doubled per earlier failure,
    /// capped at `max_backoff`, then scaled by a random factor in [0.5, 1] so that tasks failed by
    /// one outage do not all come back at the same instant.
    pub fn backoff(&self, attempt: u32) -> std::time::Duration {
        let doubled = self.first_backoff.saturating_mul(1 << attempt.saturating_sub(1).min(16));
        doubled.min(self.max_backoff).mul_f64(rand::random::<f64>().mul_add(0.5, 0.5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_backoff_doubles_with_jitter_and_stops_at_its_cap() {
        let policy = RetryPolicy::TASKS;
        assert!(policy.retries(1) && policy.retries(2) && !policy.retries(3));
        for (attempt, full) in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 30.0), (40, 30.0)] {
            let waits: Vec<Duration> = (0..200).map(|_| policy.backoff(attempt)).collect();
            let (low, high) = (waits.iter().min().unwrap().as_secs_f64(), waits.iter().max().unwrap().as_secs_f64());
            assert!(
                low >= full * 0.5 && high <= full,
                "attempt {attempt}: waits {low}..{high} outside [{}, {full}]",
                full * 0.5
            );
            assert!(high - low > full * 0.2, "attempt {attempt}: waits {low}..{high} are not spread");
        }
    }
}

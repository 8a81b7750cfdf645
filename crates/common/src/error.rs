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
}

impl TaskError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self { kind: TaskErrorKind::Transient, message: message.into() }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self { kind: TaskErrorKind::Permanent, message: message.into() }
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self { kind: TaskErrorKind::InvalidInput, message: message.into() }
    }
}

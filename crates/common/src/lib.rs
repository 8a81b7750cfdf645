//! Pieces every zkfleet process shares: the task protocol, the round planner, the object store,
//! telemetry and metrics setup, and the broker topology and connection.

pub mod backend;
pub mod broker;
pub mod cli;
pub mod error;
pub mod keys;
pub mod metrics;
mod otlp;
pub mod plan;
pub mod protocol;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod topology;

pub use backend::ProvingBackend;
pub use error::{RetryPolicy, TaskError, TaskErrorKind};
pub use protocol::{Round, Task, TaskOutcome, TaskResult};
pub use store::Store;

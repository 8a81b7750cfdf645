//! Pieces every zkfleet process shares: the task protocol, the round planner, the object store
//! and telemetry setup.

pub mod backend;
pub mod cli;
pub mod error;
pub mod plan;
pub mod protocol;
pub mod store;
pub mod telemetry;

pub use backend::ProvingBackend;
pub use error::{TaskError, TaskErrorKind};
pub use protocol::{Round, Task, TaskOutcome, TaskResult};
pub use store::Store;

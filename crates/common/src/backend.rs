//! The one seam between the fleet and a proof system.

use crate::error::TaskError;
use crate::protocol::Task;

/// Proves one task: takes the bytes of `task.inputs` in order and returns the bytes of
/// `task.outputs` in order. Runs on a blocking thread; it may take minutes.
pub trait ProvingBackend: Send + Sync + 'static {
    fn prove(&self, task: &Task, inputs: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, TaskError>;
}

//! The one seam between the fleet and a proof system.

use crate::error::TaskError;
use crate::protocol::{Round, Task};

/// Proves one task: takes the bytes of `task.inputs` in order and returns the bytes of
/// `task.outputs` in order. Runs on a blocking thread; it may take minutes.
pub trait ProvingBackend: Send + Sync + 'static {
    fn prove(&self, task: &Task, inputs: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, TaskError>;

    /// Gets ready to prove tasks of `rounds` with `params` (the bytes tasks carry in
    /// [`Task::params`]): loads or builds what they need, so that the first of them does not
    /// wait for it. Runs on a blocking thread before a worker takes tasks. The default does
    /// nothing.
    fn prepare(&self, _params: &[u8], _rounds: &[Round]) -> Result<(), TaskError> {
        Ok(())
    }

    /// Why this process can no longer prove, once it cannot (a lost GPU): the worker then puts
    /// its task back on the queue and exits, so that the task goes to another worker and the
    /// process is restarted. The default never gives up.
    fn fatal(&self) -> Option<String> {
        None
    }
}

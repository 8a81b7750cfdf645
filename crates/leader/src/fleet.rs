//! The embedded fleet: `N` workers in this process, fed through a bounded in-process queue, each
//! running exactly the worker's task code ([`worker::execute_task`]). It is what `leader prove`
//! uses when no broker is given.

use std::sync::Arc;

use common::{ProvingBackend, Store, Task, TaskResult};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The leader's side of a fleet: where tasks go and results come from.
pub struct FleetHandle {
    pub tasks: mpsc::Sender<Task>,
    pub results: mpsc::Receiver<TaskResult>,
    workers: JoinSet<()>,
    shutdown: CancellationToken,
}

impl FleetHandle {
    /// Stops the workers: no new task is taken; a proof in hand is abandoned with the process.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        drop(self.tasks);
        while self.workers.join_next().await.is_some() {}
    }
}

pub fn start_embedded(workers: usize, store: Store, backend: Arc<dyn ProvingBackend>) -> FleetHandle {
    let workers = workers.max(1);
    // Bounded like a broker's prefetch: one task waiting per worker.
    let (task_tx, task_rx) = mpsc::channel::<Task>(workers);
    // Room for every worker's result, so a worker never waits on the leader to report.
    let (result_tx, result_rx) = mpsc::channel::<TaskResult>(workers * 2);
    let task_rx = Arc::new(Mutex::new(task_rx));
    let shutdown = CancellationToken::new();
    let mut set = JoinSet::new();
    for i in 0..workers {
        let (task_rx, result_tx) = (task_rx.clone(), result_tx.clone());
        let (store, backend, shutdown) = (store.clone(), backend.clone(), shutdown.clone());
        let name = format!("embedded-{i}");
        set.spawn(async move {
            loop {
                let task = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    task = async { task_rx.lock().await.recv().await } => match task {
                        Some(task) => task,
                        None => break,
                    },
                };
                let result = worker::execute_task(&task, &store, backend.clone(), &name).await;
                if result_tx.send(result).await.is_err() {
                    break;
                }
            }
        });
    }
    FleetHandle { tasks: task_tx, results: result_rx, workers: set, shutdown }
}

//! The leader's view of a fleet: a channel for tasks and one for events, whatever carries them.
//!
//! The embedded fleet is `N` workers in this process, fed through a bounded in-process queue, each
//! running exactly the worker's task code ([`worker::execute_task`]); `leader prove` uses it when
//! no broker is given. The broker fleet is in [`crate::broker_fleet`].

use std::sync::Arc;

use common::{ProvingBackend, Store, Task, TaskResult};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What a fleet tells the leader.
#[derive(Debug)]
pub enum FleetEvent {
    Result(TaskResult),
    /// The broker gave up on a task: it was delivered too often or was unreadable.
    DeadLettered {
        task_id: String,
        reason: String,
        last_error: Option<String>,
    },
    /// An operator cancelled the job.
    Cancelled {
        job: String,
    },
    /// The fleet cannot go on (the broker is gone for good).
    Lost(String),
}

/// The leader's side of a fleet: where tasks go and events come from.
pub struct FleetHandle {
    pub tasks: mpsc::Sender<Task>,
    pub events: mpsc::Receiver<FleetEvent>,
    /// The store the fleet's workers read and write.
    pub store: Store,
    pub(crate) background: JoinSet<()>,
    pub(crate) shutdown: CancellationToken,
}

impl FleetHandle {
    /// Stops the fleet's background work and waits for it: embedded workers finish the proof in
    /// hand, a broker connection is closed.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        drop(self.tasks);
        while self.background.join_next().await.is_some() {}
    }
}

pub fn start_embedded(workers: usize, store: Store, backend: Arc<dyn ProvingBackend>) -> FleetHandle {
    let workers = workers.max(1);
    // Bounded like a broker's prefetch: one task waiting per worker.
    let (task_tx, task_rx) = mpsc::channel::<Task>(workers);
    // Room for every worker's result, so a worker never waits on the leader to report.
    let (result_tx, result_rx) = mpsc::channel::<FleetEvent>(workers * 2);
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
                let result =
                    worker::execute_task(&task, &store, backend.clone(), &name, worker::metrics::EMBEDDED_POOL).await;
                if result_tx.send(FleetEvent::Result(result)).await.is_err() {
                    break;
                }
            }
        });
    }
    FleetHandle { tasks: task_tx, events: result_rx, store, background: set, shutdown }
}

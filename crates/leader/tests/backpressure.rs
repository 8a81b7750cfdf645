//! A busy worker does not sit on tasks that an idle one could take: a worker whose every slot is
//! taken holds no further task, whether it consumes one queue (its prefetch bounds it) or several
//! (it cancels its consumers while full). The workers run in this process, one of them on a
//! backend that holds every task until the test lets go, the other on the no-op backend; tasks go
//! through the real broker.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::testing::empty_task;
use common::{ProvingBackend, Round, Store, Task, TaskError};
use leader::fleet::{FleetEvent, FleetHandle};
use support::Vhost;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Proves nothing, and holds every task until [`Gate::open`].
#[derive(Default)]
struct Gate {
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Gate {
    fn open(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }

    /// Waits until `n` tasks are held; false after `TIMEOUT`.
    fn wait_held(&self, n: usize) -> bool {
        let state = self.state.lock().unwrap();
        let (state, _) = self.changed.wait_timeout_while(state, TIMEOUT, |(held, _)| *held < n).unwrap();
        state.0 >= n
    }
}

/// Opens the gate when dropped: a failing test must not leave proof threads waiting, or the
/// runtime's drop would wait for them for ever.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

struct GatedBackend(Arc<Gate>);

impl ProvingBackend for GatedBackend {
    fn prove(&self, task: &Task, _inputs: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, TaskError> {
        let gate = &self.0;
        let mut state = gate.state.lock().unwrap();
        state.0 += 1;
        gate.changed.notify_all();
        let _open = gate.changed.wait_while(state, |(_, open)| !*open).unwrap();
        Ok(vec![Vec::new(); task.outputs.len()])
    }
}

fn worker(
    uri: &str,
    store: &Store,
    name: &str,
    rounds: &[Round],
    backend: Arc<dyn ProvingBackend>,
) -> worker::daemon::Config {
    worker::daemon::Config {
        rounds: rounds.to_vec(),
        concurrency: 2,
        grace: Duration::from_secs(5),
        ..worker::daemon::Config::new(uri, store.clone(), name, backend)
    }
}

/// Waits for `n` results and returns who did each task (by index).
async fn results(fleet: &mut FleetHandle, n: usize) -> BTreeMap<u32, String> {
    let mut done = BTreeMap::new();
    while done.len() < n {
        match tokio::time::timeout(TIMEOUT, fleet.events.recv()).await {
            Ok(Some(FleetEvent::Result(r))) => {
                done.insert(r.index, r.worker);
            }
            Ok(Some(other)) => panic!("unexpected event {other:?}"),
            Ok(None) => panic!("the fleet stopped"),
            Err(_) => panic!("only {} of {n} results within {TIMEOUT:?}: {done:?}", done.len()),
        }
    }
    done
}

/// The busy worker takes two tasks (one of each of `first`) and holds them; eight more queued on
/// `rounds` are all done by the idle worker while it still holds them.
fn busy_worker_leaves_the_rest(rounds: &[Round], first: [Round; 2]) {
    let vhost = Vhost::new();
    let store = Store::open("memory:").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let gate = Arc::new(Gate::default());
    let _open = OpenOnDrop(gate.clone());
    runtime.block_on(async {
        let job = "backpressure".to_string();
        let connection = leader::broker_fleet::connect(&vhost.uri()).await.ok().unwrap();
        let mut fleet =
            leader::broker_fleet::start(connection, &vhost.uri(), store.clone(), std::slice::from_ref(&job))
                .await
                .ok()
                .unwrap();
        let shutdown = CancellationToken::new();
        let busy = tokio::spawn(worker::daemon::run(
            worker(&vhost.uri(), &store, "busy", rounds, Arc::new(GatedBackend(gate.clone()))),
            shutdown.clone(),
        ));
        for (i, round) in first.into_iter().enumerate() {
            fleet.tasks.send(empty_task(&job, round, i as u32)).await.unwrap();
        }
        let held = gate.clone();
        assert!(
            tokio::task::spawn_blocking(move || held.wait_held(2)).await.unwrap(),
            "the busy worker took two tasks"
        );

        let idle = tokio::spawn(worker::daemon::run(
            worker(&vhost.uri(), &store, "idle", rounds, Arc::new(worker::cli::NoopBackend)),
            shutdown.clone(),
        ));
        for i in 0..8u32 {
            fleet.tasks.send(empty_task(&job, rounds[i as usize % rounds.len()], 100 + i)).await.unwrap();
        }
        let rest = results(&mut fleet, 8).await;
        assert_eq!(rest.keys().copied().collect::<Vec<_>>(), (100..108).collect::<Vec<_>>());
        assert!(rest.values().all(|w| w == "idle"), "every queued task went to the idle worker: {rest:?}");

        gate.open();
        let held = results(&mut fleet, 2).await;
        assert!(held.values().all(|w| w == "busy"), "the held tasks finish where they are: {held:?}");
        fleet.stop().await;
        shutdown.cancel();
        for w in [busy, idle] {
            tokio::time::timeout(TIMEOUT, w).await.unwrap().unwrap().unwrap();
        }
    });
}

#[test]
fn a_busy_worker_on_one_queue_leaves_queued_tasks_to_an_idle_one() {
    busy_worker_leaves_the_rest(&[Round::Basic], [Round::Basic, Round::Basic]);
}

#[test]
fn a_busy_worker_on_two_queues_leaves_queued_tasks_to_an_idle_one() {
    busy_worker_leaves_the_rest(&[Round::Basic, Round::Aggregate], [Round::Basic, Round::Aggregate]);
}

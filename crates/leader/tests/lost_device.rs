//! A worker whose backend can no longer prove (a lost GPU: `ProvingBackend::fatal`) puts its task
//! back on the queue at once and stops with an error, so that another worker takes the task and
//! Kubernetes restarts the pod. Real RabbitMQ, the worker's daemon in process.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::topology::{self, TASK_EXCHANGE};
use common::{ProvingBackend, Round, Store, Task, TaskError};
use tokio_util::sync::CancellationToken;
use worker::daemon::{Config, WorkerError};

const LOST: &str = "CUDA device lost: an illegal memory access was encountered on the test device";

/// Fails its first task the way the CUDA engine does when its device goes, and gives up after.
#[derive(Default)]
struct LosesItsDevice {
    lost: AtomicBool,
    proofs: std::sync::atomic::AtomicUsize,
}

impl ProvingBackend for LosesItsDevice {
    fn prove(&self, _task: &Task, _inputs: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, TaskError> {
        self.proofs.fetch_add(1, Ordering::SeqCst);
        self.lost.store(true, Ordering::SeqCst);
        Err(TaskError::transient(LOST))
    }

    fn fatal(&self) -> Option<String> {
        self.lost.load(Ordering::SeqCst).then(|| LOST.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_device_is_lost_puts_its_task_back_and_stops() {
    let vhost = support::Vhost::new();
    let connection = common::broker::connect(&vhost.uri(), "test").await.unwrap();
    let publisher = common::broker::Publisher::new(&connection).await.unwrap();
    topology::declare(publisher.channel()).await.unwrap();
    let task = common::testing::empty_task("job-lost-device", Round::Basic, 0);
    let (payload, properties) = leader::broker_fleet::task_message(&task);
    publisher.publish(TASK_EXCHANGE, Round::Basic.as_str(), &payload, properties).await.unwrap();

    let backend = Arc::new(LosesItsDevice::default());
    let config = Config {
        pool: common::topology::Pool::Gpu,
        rounds: vec![Round::Basic],
        ..Config::new(vhost.uri(), Store::open("memory:").unwrap(), "gpu-0", backend.clone())
    };
    let ended = tokio::time::timeout(Duration::from_secs(60), worker::daemon::run(config, CancellationToken::new()))
        .await
        .expect("the worker stops by itself");
    match ended {
        Err(WorkerError::Backend(why)) => assert_eq!(why, LOST),
        other => panic!("expected the worker to stop on the lost device, got {other:?}"),
    }
    let shown = WorkerError::Backend(LOST.into()).to_string();
    assert!(shown.contains("restarted"), "{shown}");
    assert_eq!(backend.proofs.load(Ordering::SeqCst), 1, "one attempt, no retry on the lost device");
    // The task is back in its queue, ready for another worker.
    let channel = connection.create_channel().await.unwrap();
    let queue = topology::task_queue(Round::Basic);
    let back = channel
        .basic_get(queue.as_str().into(), lapin::options::BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the task is back in its queue");
    assert_eq!(back.delivery.properties.message_id().as_ref().map(|id| id.as_str()), Some(task.id().as_str()));
}

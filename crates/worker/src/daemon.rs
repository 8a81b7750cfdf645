//! The worker daemon: consumes the task queues of its rounds from RabbitMQ, runs each task with
//! [`crate::execute_task`], and reports.
//!
//! The order for every task is: output in the store, result published and confirmed, then ack.
//! A worker that dies anywhere before the ack leaves the task to be redelivered, and the
//! redelivered task finds its output in the store and is not proven again.
//!
//! Backpressure: every consumer has a prefetch of `concurrency`. A worker that consumes one
//! queue needs nothing more: the broker hands it at most `concurrency` unacked tasks. Quorum
//! queues cannot share one prefetch across a channel, so a worker that consumes several queues
//! cancels its consumers when every slot is busy and consumes again once a slot frees. Either
//! way a busy worker does not sit on tasks that an idle one could take.
//!
//! Tasks are consumed on a connection of their own that does not recover by itself (see
//! [`Consuming`]); results and cancellations travel on the worker's recovering connection.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::broker::{self, BrokerError, Publisher};
use common::topology::{self, Pool, CONTROL_EXCHANGE, KIND_CANCEL, KIND_RESULT, PUBLISHED_HEADER};
use common::{ProvingBackend, Round, Store, Task, TaskErrorKind, TaskOutcome};
use futures_util::stream::{SelectAll, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, Consumer};
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub struct Config {
    pub amqp_uri: String,
    pub store: Store,
    pub pool: Pool,
    pub rounds: Vec<Round>,
    pub concurrency: usize,
    /// Unique in the fleet: consumer tags and result messages carry it.
    pub name: String,
    pub backend: Arc<dyn ProvingBackend>,
    /// After a shutdown signal, how long tasks in hand may run before they are requeued.
    pub grace: Duration,
    /// Where to serve `/livez` and `/readyz`.
    pub http: Option<SocketAddr>,
    /// Stop after this many tasks.
    pub max_tasks: Option<u64>,
    /// Stop after this long without a task.
    pub idle_exit: Option<Duration>,
    /// Parameters (as tasks carry them) whose circuits are made ready before taking tasks.
    pub preload: Option<Vec<u8>>,
    /// The GPU the backend commits on (the GPU pool), as `/readyz` and the start line show it.
    pub device: Option<String>,
}

/// Tasks in hand at once unless told otherwise (`--concurrency`).
pub const DEFAULT_CONCURRENCY: usize = 1;
/// The grace period after a shutdown signal unless one is given (`--grace-period`).
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(25);

impl Config {
    /// A worker named `name` of the CPU pool (every round), with the command line's defaults for
    /// the rest: one task at a time, the default grace period, no HTTP endpoint, no task or idle
    /// limit, nothing preloaded. Change a field with struct update syntax.
    pub fn new(
        amqp_uri: impl Into<String>,
        store: Store,
        name: impl Into<String>,
        backend: Arc<dyn ProvingBackend>,
    ) -> Self {
        Self {
            amqp_uri: amqp_uri.into(),
            store,
            pool: Pool::Cpu,
            rounds: Pool::Cpu.rounds().to_vec(),
            concurrency: DEFAULT_CONCURRENCY,
            name: name.into(),
            backend,
            grace: DEFAULT_GRACE_PERIOD,
            http: None,
            max_tasks: None,
            idle_exit: None,
            preload: None,
            device: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    /// The backend can no longer prove here (a lost GPU); the task in hand went back.
    #[error("{0}; the worker stopped so that it is restarted")]
    Backend(String),
}

/// What every task handler shares.
struct Shared {
    store: Store,
    /// The `pool` metrics label.
    pool: &'static str,
    backend: Arc<dyn ProvingBackend>,
    name: String,
    publisher: Publisher,
    cancelled: Mutex<HashSet<String>>,
    cancels: broadcast::Sender<String>,
    /// Set when the backend gave up ([`ProvingBackend::fatal`]); the worker then stops.
    fatal: Mutex<Option<String>>,
    stop: CancellationToken,
}

/// Makes the backend ready for the rounds served (loading or building circuits) before the first
/// task is taken. Returns false when `shutdown` came first. A failure is logged and the worker
/// goes on: its tasks then prepare what they need themselves.
async fn prepare(config: &Config, params: &[u8], shutdown: &CancellationToken) -> bool {
    let started = std::time::Instant::now();
    info!(rounds = ?config.rounds.iter().map(|r| r.as_str()).collect::<Vec<_>>(), "preparing circuits before taking tasks");
    let (backend, params, rounds) = (config.backend.clone(), params.to_vec(), config.rounds.clone());
    let preparing = tokio::task::spawn_blocking(move || backend.prepare(&params, &rounds).map_err(|e| e.to_string()));
    tokio::select! {
        prepared = preparing => match prepared.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok(()) => info!(ms = started.elapsed().as_millis() as u64, "circuits ready"),
            Err(e) => warn!(error = %e, "preparing circuits failed; tasks will prepare their own"),
        },
        _ = shutdown.cancelled() => {
            info!("stopping before any task was taken");
            return false;
        }
    }
    true
}

/// Runs the worker until `shutdown` fires (then drains within the grace period) or the broker is
/// lost for good.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let ready = Arc::new(AtomicBool::new(false));
    let connection = Arc::new(broker::connect(&config.amqp_uri, &format!("zkfleet-worker {}", config.name)).await?);
    if let Some(addr) = config.http {
        crate::http::serve(addr, ready.clone(), connection.clone(), config.device.clone(), shutdown.clone()).await?;
    }
    let publisher = Publisher::new(&connection).await?;
    topology::declare(publisher.channel()).await?;

    let (cancels, _) = broadcast::channel(64);
    let shared = Arc::new(Shared {
        store: config.store.clone(),
        pool: config.pool.as_str(),
        backend: config.backend.clone(),
        name: config.name.clone(),
        publisher,
        cancelled: Mutex::new(HashSet::new()),
        cancels,
        fatal: Mutex::new(None),
        stop: shutdown.clone(),
    });
    let control = follow_cancellations(&connection, &config.name, shared.clone()).await?;

    let mut consuming = Some(Consuming::open(&config).await?);
    info!(
        worker = %config.name,
        pool = config.pool.as_str(),
        rounds = ?config.rounds.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        concurrency = config.concurrency,
        broker = %broker::redact(&config.amqp_uri),
        device = config.device.as_deref().unwrap_or("none"),
        "worker started"
    );

    if let Some(params) = &config.preload {
        if !prepare(&config, params, &shutdown).await {
            return Ok(());
        }
    }

    let mut consumers: SelectAll<Consumer> = SelectAll::new();
    let mut tags: Vec<String> = Vec::new();
    let mut generation = 0u64;
    let mut held: VecDeque<Delivery> = VecDeque::new();
    let mut running: JoinSet<()> = JoinSet::new();
    let mut stopping = false;
    let far = Duration::from_secs(365 * 24 * 3600);
    let deadline = tokio::time::sleep(far);
    tokio::pin!(deadline);
    let idle = tokio::time::sleep(config.idle_exit.unwrap_or(far));
    tokio::pin!(idle);
    let mut finished = 0u64;
    // With one queue the prefetch bounds the tasks in hand; cancelling there would only cost two
    // broker round trips (a cancel and a consume) per task while the worker is busy.
    let cancel_when_full = config.rounds.len() > 1;

    loop {
        while running.len() < config.concurrency && !stopping {
            let Some(delivery) = held.pop_front() else { break };
            running.spawn(handle(delivery, shared.clone()));
        }
        let full = running.len() >= config.concurrency;
        if let Some(c) = consuming.as_ref().filter(|_| ((full && cancel_when_full) || stopping) && !tags.is_empty()) {
            for tag in tags.drain(..) {
                if let Err(e) = c.channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await {
                    warn!(error = %e, "cancelling a consumer: the broker connection for consuming is lost");
                    Consuming::drop_lost(&mut consuming);
                    break;
                }
            }
        }
        if full && cancel_when_full && !held.is_empty() {
            // Each consumer has a prefetch of its own, so the broker may still hand out tasks
            // between the last slot filling and the cancel above taking effect. Held here they
            // would wait for a slot, as long as a proof, while another worker may be idle: they
            // go back to their queues. Only tasks never returned before: on RabbitMQ before 4.3
            // every return counts towards the delivery limit, and this must not spend more than
            // one of a task's returns. A task returned before waits here for a slot.
            let (fresh, returned): (VecDeque<_>, VecDeque<_>) =
                held.drain(..).partition(|d| broker::delivery_count(&d.properties) == 0);
            held = returned;
            if !fresh.is_empty() {
                debug!(tasks = fresh.len(), "slots full: returning tasks that arrived while cancelling");
            }
            for delivery in fresh {
                let _ = delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await;
            }
        }
        // Every consumer ended without an error: the broker cancelled them (a queue deleted) or
        // closed the connection.
        if consumers.is_empty() && !tags.is_empty() {
            tags.clear();
            if consuming.as_ref().is_some_and(|c| !c.connection.status().connected()) {
                Consuming::drop_lost(&mut consuming);
            }
        }
        if consuming.is_none() && !stopping {
            // Deliveries of the lost connection are void: the broker has put them back.
            consumers = SelectAll::new();
            tags.clear();
            held.clear();
            ready.store(false, Ordering::Relaxed);
            // `None`: shutting down, which the select below takes up.
            if let Some(c) = Consuming::reopen(&config, &shutdown).await {
                info!("broker connection for consuming reopened");
                consuming = Some(c);
            }
        }
        if let Some(c) = consuming.as_ref().filter(|_| !full && !stopping && tags.is_empty()) {
            generation += 1;
            for round in &config.rounds {
                let tag = format!("{}/{round}/{generation}", config.name);
                let queue = topology::task_queue(*round);
                let options = BasicConsumeOptions::default();
                match c
                    .channel
                    .basic_consume(queue.as_str().into(), tag.as_str().into(), options, FieldTable::default())
                    .await
                {
                    Ok(consumer) => {
                        consumers.push(consumer);
                        tags.push(tag);
                    }
                    Err(e) => {
                        warn!(error = %e, "consuming: the broker connection for consuming is lost");
                        Consuming::drop_lost(&mut consuming);
                        break;
                    }
                }
            }
            if consuming.is_none() {
                continue;
            }
            ready.store(true, Ordering::Relaxed);
        }

        if !running.is_empty() || !held.is_empty() {
            idle.as_mut().reset(tokio::time::Instant::now() + config.idle_exit.unwrap_or(far));
        }
        let enough = config.max_tasks.is_some_and(|max| finished + (running.len() as u64) >= max);
        if enough && !stopping {
            info!(tasks = finished + running.len() as u64, "task limit reached: no new tasks");
            shutdown.cancel();
        }

        tokio::select! {
            _ = shutdown.cancelled(), if !stopping => {
                info!(in_hand = running.len(), grace_s = config.grace.as_secs(), "stopping: no new tasks");
                stopping = true;
                ready.store(false, Ordering::Relaxed);
                deadline.as_mut().reset(tokio::time::Instant::now() + config.grace);
            }
            item = consumers.next(), if !consumers.is_empty() => match item {
                Some(Ok(delivery)) => held.push_back(delivery),
                Some(Err(e)) => {
                    warn!(error = %e, "broker connection for consuming lost");
                    Consuming::drop_lost(&mut consuming);
                }
                None => {}
            },
            Some(_) = running.join_next(), if !running.is_empty() => finished += 1,
            _ = &mut idle, if config.idle_exit.is_some() && !stopping => {
                info!("idle for too long: stopping");
                shutdown.cancel();
            }
            _ = &mut deadline, if stopping => {
                warn!(in_hand = running.len(), "grace period over: requeueing the tasks in hand");
                break;
            }
        }
        if stopping && running.is_empty() {
            break;
        }
    }
    // Unstarted deliveries go back to their queues now; those in hand go back when the channel
    // closes. Either way another worker takes them.
    for delivery in held {
        let _ = delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await;
    }
    running.abort_all();
    control.abort();
    if let Some(c) = consuming {
        let _ = c.channel.close(200, "worker stopping".into()).await;
        let _ = c.connection.close(200, "worker stopping".into()).await;
    }
    let _ = connection.close(200, "worker stopping".into()).await;
    if let Some(why) = shared.fatal.lock().unwrap().take() {
        return Err(WorkerError::Backend(why));
    }
    info!("worker stopped");
    Ok(())
}

/// The connection and channel a worker consumes its task queues on.
///
/// It does not recover by itself: a recovering connection would register the worker's consumers
/// again on its own, concurrently with the worker's cancels, and a consumer cancelled just before
/// the recovery registered it again would hold tasks that no one reads. When this connection is
/// lost the worker drops it and opens a new one, with new consumers; the deliveries of the lost
/// connection go back to their queues. Publishing and cancellations stay on the worker's
/// recovering connection, so a proof in hand still reports.
struct Consuming {
    connection: Connection,
    channel: lapin::Channel,
}

impl Consuming {
    async fn open(config: &Config) -> Result<Self, WorkerError> {
        let connection =
            broker::connect_once(&config.amqp_uri, &format!("zkfleet-worker {} tasks", config.name)).await?;
        let channel = connection.create_channel().await?;
        channel.basic_qos(config.concurrency.min(u16::MAX as usize) as u16, BasicQosOptions::default()).await?;
        Ok(Self { connection, channel })
    }

    /// Lets go of a lost connection (closing it, in case only the channel failed).
    fn drop_lost(consuming: &mut Option<Self>) {
        if let Some(lost) = consuming.take() {
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), lost.connection.close(200, "reopening".into())).await;
            });
        }
    }

    /// Opens it again, with a growing pause between tries (0.2 s doubling to 5 s) until it
    /// succeeds; `None` when `shutdown` comes first.
    async fn reopen(config: &Config, shutdown: &CancellationToken) -> Option<Self> {
        let mut pause = Duration::from_millis(200);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                opened = Self::open(config) => match opened {
                    Ok(c) => return Some(c),
                    Err(e) => debug!(error = %e, "reopening the broker connection for consuming"),
                },
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
}

/// Binds this worker's own queue to the control exchange and records cancelled jobs.
async fn follow_cancellations(
    connection: &Connection,
    name: &str,
    shared: Arc<Shared>,
) -> Result<tokio::task::JoinHandle<()>, WorkerError> {
    let channel = connection.create_channel().await?;
    let queue = format!("zkfleet.control.{name}");
    let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
    channel.queue_declare(queue.as_str().into(), options, FieldTable::default()).await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            CONTROL_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let options = BasicConsumeOptions { no_ack: true, ..Default::default() };
    let mut consumer = channel
        .basic_consume(queue.as_str().into(), format!("{name}/control").as_str().into(), options, FieldTable::default())
        .await?;
    Ok(tokio::spawn(async move {
        while let Some(item) = consumer.next().await {
            match item {
                Ok(delivery) => {
                    let kind = delivery.properties.kind().as_ref().map(|k| k.as_str().to_string());
                    if kind.as_deref() != Some(KIND_CANCEL) {
                        continue;
                    }
                    let job = String::from_utf8_lossy(&delivery.data).into_owned();
                    info!(job = %job, "job cancelled");
                    shared.cancelled.lock().unwrap().insert(job.clone());
                    let _ = shared.cancels.send(job);
                }
                Err(e) => {
                    if channel.wait_for_recovery(e).await.is_err() {
                        return;
                    }
                }
            }
        }
    }))
}

/// Whether `job` is cancelled: its marker is in the store. The marker also covers cancellations
/// sent before this worker started, and `leader resume` deletes it, so a job cancelled and then
/// resumed runs again on a worker that heard the cancellation. A worker that cannot read the
/// store goes by what it heard.
async fn is_cancelled(shared: &Shared, job: &str) -> bool {
    match shared.store.exists(&common::keys::cancel_marker(job)).await {
        Ok(true) => true,
        Ok(false) => {
            shared.cancelled.lock().unwrap().remove(job);
            false
        }
        Err(_) => shared.cancelled.lock().unwrap().contains(job),
    }
}

async fn handle(delivery: Delivery, shared: Arc<Shared>) {
    let mut task: Task = match common::protocol::decode(&delivery.data) {
        Ok(task) => task,
        Err(e) => {
            // Nothing can make this message readable: dead-letter it for an operator to see.
            warn!(routing_key = %delivery.routing_key, bytes = delivery.data.len(), error = %e, "undecodable task: dead-lettering it");
            let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
            return;
        }
    };
    if let Some(published) = broker::int_header(&delivery.properties, PUBLISHED_HEADER) {
        crate::metrics::queue_wait(task.round, published);
    }
    // Over the broker the trace context travels in the message headers, not in the body.
    let trace = broker::trace_context(&delivery.properties);
    if !trace.is_empty() {
        task.trace = trace;
    }
    if is_cancelled(&shared, &task.job).await {
        info!(task = %task.id(), "dropping a task of a cancelled job");
        ack(&delivery).await;
        return;
    }
    let mut cancels = shared.cancels.subscribe();
    let job = task.job.clone();
    let cancelled = async move {
        loop {
            match cancels.recv().await {
                Ok(j) if j == job => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    };
    let result = tokio::select! {
        result = crate::execute_task(&task, &shared.store, shared.backend.clone(), &shared.name, shared.pool) => result,
        _ = cancelled => {
            crate::metrics::task_finished(task.round, shared.pool, crate::metrics::Outcome::Cancelled, Duration::ZERO);
            // The proof thread runs out on its own; nothing of it is reported.
            info!(task = %task.id(), "job cancelled while its task was in hand: dropping it");
            ack(&delivery).await;
            return;
        }
    };
    if let Some(why) = shared.backend.fatal() {
        tracing::error!(task = %task.id(), error = %why, "the backend cannot prove here any more: the task goes back to its queue and the worker stops");
        let _ = delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await;
        shared.fatal.lock().unwrap().get_or_insert(why);
        shared.stop.cancel();
        return;
    }
    // A transient failure is reported like any result, at once: the leader decides whether and
    // when the task runs again (common::RetryPolicy), and this slot is free meanwhile. The error
    // is also kept in the store, where a dead-lettered task's report finds its last one.
    if let TaskOutcome::Failed(e) = &result.outcome {
        if e.kind == TaskErrorKind::Transient {
            let record = serde_json::json!({ "worker": shared.name, "error": e.to_string() });
            let _ = shared.store.replace(&common::keys::task_error(&task), record.to_string().as_bytes()).await;
        }
    }
    let properties = BasicProperties::default()
        .with_type(KIND_RESULT.into())
        .with_message_id(task.id().as_str().into())
        .with_content_type("application/msgpack".into());
    let payload = common::protocol::encode(&result);
    match shared.publisher.publish("", &topology::results_queue(&task.job), &payload, properties).await {
        Ok(()) => ack(&delivery).await,
        // Without a confirmed result the task must not be acked: it comes back, and its stored
        // output makes the retry cheap.
        Err(e) => warn!(task = %task.id(), error = %e, "result not published; the task will be redelivered"),
    }
}

async fn ack(delivery: &Delivery) {
    if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
        // After a connection recovery the old delivery tag is void; the broker redelivers.
        debug!(error = %e, "ack failed");
    }
}

//! The broker fleet as the coordinator sees it: tasks published to the round queues with
//! confirms, events read from the jobs' results queues.
//!
//! A results queue carries three kinds of message (the AMQP `type` property): results from
//! workers, dead-lettered copies of the job's own tasks (routed there by the dead-letter
//! exchange), and cancellations from `leader cancel`.

use std::time::Duration;

use common::broker::{self, Publisher};
use common::topology::{self, JOB_HEADER, KIND_CANCEL, KIND_RESULT, KIND_TASK, PUBLISHED_HEADER, TASK_EXCHANGE};
use common::{Store, Task, TaskResult};
use futures_util::stream::{BoxStream, SelectAll, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Acker, BasicProperties, Channel, Connection};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::fleet::{FleetEvent, FleetHandle};
use crate::Exit;

/// Tasks the leader may have published and not yet seen confirmed.
const PUBLISH_WINDOW: usize = 256;

/// Results the leader takes before it acks them, at most (fewer when no more are waiting).
const ACK_BATCH: usize = 64;

/// Connects to the broker, or says in one line why not (exit 1).
pub async fn connect(uri: &str) -> Result<Connection, Exit> {
    broker::connect(uri, "zkfleet-leader").await.map_err(|e| Exit::Other(e.to_string()))
}

/// A task as it travels: the body without the trace context, and the properties; see
/// [`task_properties`].
pub fn task_message(task: &Task) -> (Vec<u8>, BasicProperties) {
    let properties = task_properties(task);
    let body = Task { trace: Default::default(), ..task.clone() };
    (common::protocol::encode(&body), properties)
}

/// How a task travels: persistent, with its id in the properties, and in the headers its job,
/// its publish time and its trace context (W3C `traceparent`, `tracestate`).
pub fn task_properties(task: &Task) -> BasicProperties {
    let mut headers = broker::headers(std::iter::once((JOB_HEADER, task.job.as_str())).chain(task.trace.pairs()));
    headers.insert(PUBLISHED_HEADER.into(), AMQPValue::LongLongInt(broker::unix_ms() as i64));
    BasicProperties::default()
        .with_type(KIND_TASK.into())
        .with_message_id(task.id().as_str().into())
        .with_content_type("application/msgpack".into())
        .with_headers(headers)
}

/// Declares the topology and the jobs' results queues, then runs the fleet's two sides in the
/// background until the handle stops. `connection` (recovering) publishes tasks; results are
/// followed on a connection of the leader's own (see [`Following`]), opened from `uri`.
pub async fn start(connection: Connection, uri: &str, store: Store, jobs: &[String]) -> Result<FleetHandle, Exit> {
    let broker_err = |e: lapin::Error| Exit::Other(format!("broker: {e}"));
    let publisher = Publisher::new(&connection).await.map_err(|e| Exit::Other(e.to_string()))?;
    topology::declare(publisher.channel()).await.map_err(broker_err)?;
    for job in jobs {
        topology::declare_results(publisher.channel(), job).await.map_err(broker_err)?;
    }
    let following = Following::open(uri, jobs).await.map_err(|e| Exit::Other(format!("broker: {e}")))?;

    let (task_tx, mut task_rx) = mpsc::channel::<Task>(PUBLISH_WINDOW);
    let (event_tx, event_rx) = mpsc::channel::<FleetEvent>(PUBLISH_WINDOW);
    let shutdown = CancellationToken::new();
    let mut background = JoinSet::new();

    // Publishing: many tasks in flight at once, each waiting for its own confirm.
    let events = event_tx.clone();
    let stop = shutdown.clone();
    background.spawn(async move {
        let mut inflight = JoinSet::new();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                task = task_rx.recv(), if inflight.len() < PUBLISH_WINDOW => {
                    let Some(task) = task else { break };
                    let publisher = publisher.clone();
                    inflight.spawn(async move {
                        let (payload, properties) = task_message(&task);
                        let routing_key = task.round.as_str();
                        publisher.publish(TASK_EXCHANGE, routing_key, &payload, properties).await
                            .map_err(|e| format!("publishing task {}: {e}", task.id()))
                    });
                }
                Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                    if let Ok(Err(message)) = done {
                        let _ = events.send(FleetEvent::Lost(message)).await;
                        break;
                    }
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), connection.close(200, "leader done".into())).await;
    });

    let (uri, jobs, stop, following_store) = (uri.to_string(), jobs.to_vec(), shutdown.clone(), store.clone());
    background.spawn(async move {
        let outcome = follow(following, &uri, &jobs, &following_store, &event_tx, &stop).await;
        if let Err(message) = outcome {
            let _ = event_tx.send(FleetEvent::Lost(message)).await;
        }
    });

    Ok(FleetHandle { tasks: task_tx, events: event_rx, store, background, shutdown })
}

/// How long the leader keeps trying to open its connection for results again before the job
/// fails (and stays resumable): as long as the recovering connection's 120 tries.
const REOPEN_BUDGET: Duration = Duration::from_secs(600);

/// The connection the leader follows the jobs' results queues on, one channel per queue.
///
/// Like a worker's connection for consuming tasks, it does not recover by itself: when it is
/// lost, whatever the cause, the leader opens a new one and consumes afresh, and knows that it
/// does. A consumer registered again by a recovering connection is invisible to its owner; on one
/// run of the broker-restart test in CI the leader's took four results after the restart and no
/// more, and the leader waited for its last result until the test gave up.
struct Following {
    connection: Connection,
    /// One per job, held open (a channel closes when its last handle goes): delivery tags count
    /// per channel, so acking the latest delivery of a channel with `multiple` covers exactly the
    /// messages already handed over.
    _channels: Vec<Channel>,
    consumers: SelectAll<BoxStream<'static, (usize, lapin::Result<Delivery>)>>,
}

impl Following {
    async fn open(uri: &str, jobs: &[String]) -> Result<Self, String> {
        let connection = broker::connect_once(uri, "zkfleet-leader results").await.map_err(|e| e.to_string())?;
        let mut channels = Vec::with_capacity(jobs.len());
        let mut consumers = SelectAll::new();
        for job in jobs {
            let consume = async {
                let channel = connection.create_channel().await?;
                channel.basic_qos(PUBLISH_WINDOW as u16, BasicQosOptions::default()).await?;
                let queue = topology::results_queue(job);
                let consumer = channel
                    .basic_consume(
                        queue.as_str().into(),
                        format!("leader/{job}").as_str().into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                lapin::Result::Ok((channel, consumer))
            };
            let (channel, consumer) = consume.await.map_err(|e| e.to_string())?;
            let i = channels.len();
            consumers.push(consumer.map(move |item| (i, item)).boxed());
            channels.push(channel);
        }
        Ok(Self { connection, _channels: channels, consumers })
    }

    /// Opens it again, with a growing pause between tries (0.2 s doubling to 5 s), for at most
    /// [`REOPEN_BUDGET`]; `Ok(None)` when `stop` comes first.
    async fn reopen(uri: &str, jobs: &[String], stop: &CancellationToken) -> Result<Option<Self>, String> {
        let deadline = tokio::time::Instant::now() + REOPEN_BUDGET;
        let mut pause = Duration::from_millis(200);
        loop {
            let error = tokio::select! {
                _ = stop.cancelled() => return Ok(None),
                opened = Self::open(uri, jobs) => match opened {
                    Ok(following) => return Ok(Some(following)),
                    Err(e) => e,
                },
            };
            tracing::debug!(error = %error, "reopening the broker connection for results");
            if tokio::time::Instant::now() + pause > deadline {
                return Err(format!(
                    "broker connection for results lost and not reopened within {}s: {error}",
                    REOPEN_BUDGET.as_secs()
                ));
            }
            tokio::select! {
                _ = stop.cancelled() => return Ok(None),
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// Lets go of a lost connection (closing it, in case only a channel failed). Its unacked
    /// deliveries go back to their queues and come again on the next connection.
    fn drop_lost(following: &mut Option<Self>) {
        if let Some(lost) = following.take() {
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), lost.connection.close(200, "reopening".into())).await;
            });
        }
    }
}

/// Following: every message of the results queues becomes an event, until `stop`. Acks are
/// batched: once a message is handed over, the latest delivery of its channel is acked with
/// `multiple` (which covers the earlier ones) when no further message is waiting or every
/// `ACK_BATCH` messages. The follower does not wait on a broker round trip per result, and the
/// broker handles one ack frame per batch. A leader that dies with acks pending sees those results
/// again on resume; the coordinator ignores a result it has already taken, as it does the results
/// redelivered after a lost connection. `Err` when the connection is lost and cannot be reopened.
async fn follow(
    following: Following,
    uri: &str,
    jobs: &[String],
    store: &Store,
    events: &mpsc::Sender<FleetEvent>,
    stop: &CancellationToken,
) -> Result<(), String> {
    let mut following = Some(following);
    let mut pending: Vec<Option<Acker>> = vec![None; jobs.len()];
    let mut unacked = 0usize;
    loop {
        let f = match following.as_mut() {
            Some(f) => f,
            None => {
                pending.fill(None);
                unacked = 0;
                match Following::reopen(uri, jobs, stop).await? {
                    Some(f) => {
                        tracing::info!("broker connection for results reopened");
                        following.insert(f)
                    }
                    None => break,
                }
            }
        };
        let item = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            item = f.consumers.next() => item,
            // Reached only when no message is waiting.
            () = std::future::ready(()), if unacked > 0 => {
                ack_pending(&mut pending).await;
                unacked = 0;
                continue;
            }
        };
        match item {
            Some((i, Ok(delivery))) => {
                if let Some(event) = event_of(&delivery, store).await {
                    if events.send(event).await.is_err() {
                        break;
                    }
                }
                pending[i] = Some(delivery.acker);
                unacked += 1;
                if unacked >= ACK_BATCH {
                    ack_pending(&mut pending).await;
                    unacked = 0;
                }
            }
            Some((_, Err(e))) => {
                tracing::warn!(error = %e, "broker connection for results lost");
                Following::drop_lost(&mut following);
            }
            // The broker cancelled the consumers (a results queue deleted) or closed the connection.
            None => {
                tracing::warn!("the broker ended the leader's consumers of results");
                Following::drop_lost(&mut following);
            }
        }
    }
    ack_pending(&mut pending).await;
    if let Some(f) = following {
        let _ = tokio::time::timeout(Duration::from_secs(5), f.connection.close(200, "leader done".into())).await;
    }
    Ok(())
}

/// Acks, on each channel, every delivery up to the latest one handed over.
async fn ack_pending(pending: &mut [Option<Acker>]) {
    for acker in pending.iter_mut().filter_map(Option::take) {
        // On a lost connection the delivery tags are void; the broker redelivers those messages.
        if let Err(e) = acker.ack(BasicAckOptions { multiple: true }).await {
            tracing::debug!(error = %e, "ack failed");
        }
    }
}

async fn event_of(delivery: &Delivery, store: &Store) -> Option<FleetEvent> {
    let kind = delivery.properties.kind().as_ref().map(|k| k.to_string());
    match kind.as_deref() {
        Some(KIND_RESULT) => match common::protocol::decode::<TaskResult>(&delivery.data) {
            Ok(result) => Some(FleetEvent::Result(result)),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable result message: ignored");
                None
            }
        },
        Some(KIND_TASK) => {
            let task: Task = common::protocol::decode(&delivery.data).ok()?;
            let reason = broker::death(&delivery.properties).map_or_else(|| "unknown".into(), |d| d.reason);
            let last_error = last_error(store, &task).await;
            Some(FleetEvent::DeadLettered { task_id: task.id(), reason, last_error })
        }
        Some(KIND_CANCEL) => Some(FleetEvent::Cancelled { job: String::from_utf8_lossy(&delivery.data).into_owned() }),
        _ => None,
    }
}

/// The last transient error a worker recorded for a task, if any.
pub async fn last_error(store: &Store, task: &Task) -> Option<String> {
    let bytes = store.get(&common::keys::task_error(task)).await.ok()?;
    let record: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some(format!("{} (worker {})", record["error"].as_str()?, record["worker"].as_str().unwrap_or("?")))
}

//! Fleet operations: `status`, `cancel`, `dead`, `purge`, and what `resume` starts from (resuming
//! itself drives jobs, in `prove.rs`). Each works from the broker and the store alone, so any
//! machine with the fleet's URI and store can run them, including while the job's own leader runs
//! or after it died.

use std::collections::{BTreeMap, HashSet};

use base64::Engine;
use common::broker::{self, Publisher};
use common::keys::cancel_marker;
use common::plan::plan;
use common::topology::{
    self, Pool, CONTROL_EXCHANGE, DEAD_LETTER_QUEUE, KIND_CANCEL, RESULTS_QUEUE_PREFIX, TASK_EXCHANGE,
};
use common::{Round, Store, Task};
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeleteOptions, QueuePurgeOptions};
use lapin::BasicProperties;
use serde::Deserialize;

use crate::broker_fleet;
use crate::job_status;
use crate::journal::{self, Journal};
use crate::Exit;

fn store_err(e: common::store::StoreError) -> Exit {
    Exit::Other(format!("store: {e}"))
}

fn broker_err(e: impl std::fmt::Display) -> Exit {
    Exit::Other(format!("broker: {e}"))
}

/// Cancels jobs: a marker in the store (workers drop the job's queued tasks when they reach
/// them), a broadcast to every worker (they drop the job's task in hand), and a message to the
/// job's leader (it stops and says so).
pub async fn cancel(uri: &str, store: &Store, jobs: &[String]) -> Result<(), Exit> {
    for job in jobs {
        store.put(&cancel_marker(job), b"cancelled").await.map_err(store_err)?;
    }
    let connection = broker_fleet::connect(uri).await?;
    let publisher = Publisher::new(&connection).await.map_err(broker_err)?;
    topology::declare(publisher.channel()).await.map_err(broker_err)?;
    for job in jobs {
        let properties = || BasicProperties::default().with_type(KIND_CANCEL.into());
        publisher.publish(CONTROL_EXCHANGE, "", job.as_bytes(), properties()).await.map_err(broker_err)?;
        publisher.publish("", &topology::results_queue(job), job.as_bytes(), properties()).await.map_err(broker_err)?;
        tracing::info!(job = %job, "cancelled");
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

/// Cancels jobs and removes their artifacts and results queues.
pub async fn purge(uri: &str, store: &Store, jobs: &[String]) -> Result<(), Exit> {
    cancel(uri, store, jobs).await?;
    delete_results_queues(uri, jobs).await?;
    for job in jobs {
        store.delete_prefix(&common::keys::job(job)).await.map_err(store_err)?;
        tracing::info!(job = %job, "purged");
    }
    Ok(())
}

pub async fn delete_results_queues(uri: &str, jobs: &[String]) -> Result<(), Exit> {
    let connection = broker_fleet::connect(uri).await?;
    let channel = connection.create_channel().await.map_err(broker_err)?;
    for job in jobs {
        channel
            .queue_delete(topology::results_queue(job).as_str().into(), QueueDeleteOptions::default())
            .await
            .map_err(broker_err)?;
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

/// What resuming jobs starts from: a broker connection, their journals (in batch order) and the
/// ids of the tasks whose outputs are in the store.
pub async fn prepare_resume(
    uri: &str,
    store: &Store,
    jobs: &[String],
) -> Result<(lapin::Connection, Vec<Journal>, HashSet<String>), Exit> {
    let mut journals: Vec<Journal> = Vec::with_capacity(jobs.len());
    for job in jobs {
        journals.push(journal::read(store, job).await?);
    }
    journals.sort_by_key(|j| j.shape.batch);
    for j in &journals {
        if let (Some(before), Some(key)) = (&j.after, &j.shape.previous_final_key) {
            let together = journals.iter().any(|k| &k.job == before);
            if !together && !store.exists(key).await.map_err(store_err)? {
                return Err(Exit::Usage(format!(
                    "job {} needs the final proof of job {before}: resume them together",
                    j.job
                )));
            }
        }
    }
    let connection = broker_fleet::connect(uri).await?;
    // Old results, dead letters and cancellations on the results queues describe the past: the
    // store says what is done. Purge first, then look at the store, so no result is lost between.
    {
        let channel = connection.create_channel().await.map_err(broker_err)?;
        for j in &journals {
            let queue = topology::declare_results(&channel, &j.job).await.map_err(broker_err)?;
            channel.queue_purge(queue.as_str().into(), QueuePurgeOptions::default()).await.map_err(broker_err)?;
        }
    }
    let mut done = HashSet::new();
    for j in &journals {
        store.delete(&cancel_marker(&j.job)).await.map_err(store_err)?;
        let planned = plan(&j.shape).map_err(|e| Exit::Other(format!("job {}: {e}", j.job)))?;
        for t in &planned.tasks {
            if outputs_exist(store, &t.task).await? {
                done.insert(t.task.id());
            }
        }
    }
    tracing::info!(jobs = %jobs.join(" "), tasks_done = done.len(), "resuming");
    Ok((connection, journals, done))
}

async fn outputs_exist(store: &Store, task: &Task) -> Result<bool, Exit> {
    for key in &task.outputs {
        if !store.exists(key).await.map_err(store_err)? {
            return Ok(false);
        }
    }
    Ok(!task.outputs.is_empty())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadAction {
    List,
    Requeue,
    Discard,
}

/// Lists dead-lettered tasks on stdout, one line each; with `Requeue` puts the readable ones back
/// on their round's queue, with `Discard` drops them all.
pub async fn dead(uri: &str, store: &Store, action: DeadAction) -> Result<(), Exit> {
    let connection = broker_fleet::connect(uri).await?;
    let publisher = Publisher::new(&connection).await.map_err(broker_err)?;
    topology::declare(publisher.channel()).await.map_err(broker_err)?;
    let channel = connection.create_channel().await.map_err(broker_err)?;
    // Fetched without ack: whatever is not acked goes back to the queue when the channel closes.
    let mut messages = Vec::new();
    while let Some(message) =
        channel.basic_get(DEAD_LETTER_QUEUE.into(), BasicGetOptions::default()).await.map_err(broker_err)?
    {
        messages.push(message);
    }
    let mut out = String::new();
    let (mut requeued, mut discarded) = (0, 0);
    for message in &messages {
        let delivery = &message.delivery;
        let (reason, queue) =
            broker::death(&delivery.properties).map_or_else(|| ("unknown".into(), "?".into()), |d| (d.reason, d.queue));
        match common::protocol::decode::<Task>(&delivery.data) {
            Ok(mut task) => {
                // A requeued task stays in its job's trace.
                task.trace = broker::trace_context(&delivery.properties);
                let last = broker_fleet::last_error(store, &task).await.unwrap_or_else(|| "-".into());
                out.push_str(&format!("{}\treason={reason}\tqueue={queue}\tlast_error={last}\n", task.id()));
                if action == DeadAction::Requeue {
                    let (payload, properties) = broker_fleet::task_message(&task);
                    publisher
                        .publish(TASK_EXCHANGE, task.round.as_str(), &payload, properties)
                        .await
                        .map_err(broker_err)?;
                    delivery.ack(BasicAckOptions::default()).await.map_err(broker_err)?;
                    requeued += 1;
                }
            }
            Err(e) => {
                out.push_str(&format!(
                    "(unreadable: {} bytes)\treason={reason}\tqueue={queue}\tlast_error={e}\n",
                    delivery.data.len()
                ));
            }
        }
        if action == DeadAction::Discard {
            delivery.ack(BasicAckOptions::default()).await.map_err(broker_err)?;
            discarded += 1;
        }
    }
    print!("{out}");
    let summary = match action {
        DeadAction::List => format!("{} dead-lettered task(s)", messages.len()),
        DeadAction::Requeue => format!("{requeued} of {} dead-lettered task(s) requeued", messages.len()),
        DeadAction::Discard => format!("{discarded} dead-lettered task(s) discarded"),
    };
    eprintln!("{summary}");
    let _ = channel.close(200, "done".into()).await;
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

/// Where the RabbitMQ management HTTP API is, and how to log in: from `--management-url` or the
/// AMQP URI's host on port 15672, with the AMQP URI's credentials.
pub struct Management {
    base: String,
    vhost: String,
    authorization: String,
}

impl Management {
    pub fn new(amqp_uri: &str, url: Option<&str>) -> Result<Self, Exit> {
        let parsed: lapin::uri::AMQPUri = amqp_uri.parse().map_err(|e| Exit::Usage(format!("--amqp-uri: {e}")))?;
        let base = match url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{}:15672", parsed.authority.host),
        };
        let user = &parsed.authority.userinfo;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", user.username, user.password));
        Ok(Self { base, vhost: parsed.vhost, authorization: format!("Basic {token}") })
    }

    /// The management UI's and API's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, Exit> {
        let url = format!("{}{path}", self.base);
        let fail = |e: ureq::Error| Exit::Other(format!("management api at {}: {e}", self.base));
        ureq::get(&url)
            .header("Authorization", &self.authorization)
            .config()
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .build()
            .call()
            .map_err(fail)?
            .body_mut()
            .read_json()
            .map_err(fail)
    }

    /// The fleet's queues with their depths.
    pub fn queues(&self) -> Result<Vec<QueueInfo>, Exit> {
        let vhost = percent_encode(&self.vhost);
        let all: Vec<QueueInfo> =
            self.get(&format!("/api/queues/{vhost}?columns=name,messages_ready,messages_unacknowledged,consumers"))?;
        Ok(all
            .into_iter()
            .filter(|q| q.name.starts_with("zkfleet.") && !q.name.starts_with("zkfleet.control."))
            .collect())
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(Debug, Deserialize)]
pub struct QueueInfo {
    pub name: String,
    #[serde(default)]
    pub messages_ready: u64,
    #[serde(default)]
    pub messages_unacknowledged: u64,
    #[serde(default)]
    pub consumers: u64,
}

/// Prints the fleet's queues and, for every job with a results queue, its progress by round.
pub async fn status(uri: &str, management_url: Option<&str>, store: &Store) -> Result<(), Exit> {
    let management = Management::new(uri, management_url)?;
    let queues = tokio::task::spawn_blocking(move || management.queues())
        .await
        .map_err(|e| Exit::Other(format!("management api: {e}")))??;

    let mut out = String::new();
    out.push_str(&format!("{:<28} {:>8} {:>8} {:>10}  {}\n", "QUEUE", "READY", "UNACKED", "CONSUMERS", "POOLS"));
    let pools_of = |round: Round| {
        Pool::ALL.iter().filter(|p| p.rounds().contains(&round)).map(|p| p.as_str()).collect::<Vec<_>>().join(",")
    };
    let by_name: BTreeMap<&str, &QueueInfo> = queues.iter().map(|q| (q.name.as_str(), q)).collect();
    for round in Round::ALL {
        let name = topology::task_queue(round);
        let (ready, unacked, consumers) = by_name
            .get(name.as_str())
            .map_or((0, 0, 0), |q| (q.messages_ready, q.messages_unacknowledged, q.consumers));
        out.push_str(&format!("{name:<28} {ready:>8} {unacked:>8} {consumers:>10}  {}\n", pools_of(round)));
    }
    if let Some(q) = by_name.get(DEAD_LETTER_QUEUE) {
        out.push_str(&format!(
            "{:<28} {:>8} {:>8} {:>10}\n",
            q.name, q.messages_ready, q.messages_unacknowledged, q.consumers
        ));
    }

    let jobs: Vec<&str> = queues.iter().filter_map(|q| q.name.strip_prefix(RESULTS_QUEUE_PREFIX)).collect();
    out.push('\n');
    out.push_str(&format!("{:<20} {:>6} {:<10} {:>9}", "JOB", "BATCH", "STATE", "DONE"));
    for round in Round::ALL {
        out.push_str(&format!(" {:>9}", round.as_str()));
    }
    out.push('\n');
    let depths: BTreeMap<Round, job_status::QueueDepth> = Round::ALL
        .into_iter()
        .filter_map(|round| {
            let q = by_name.get(topology::task_queue(round).as_str())?;
            Some((round, job_status::QueueDepth { ready: q.messages_ready, unacked: q.messages_unacknowledged }))
        })
        .collect();
    let mut details = String::new();
    for job in jobs {
        let line = match journal::read(store, job).await {
            Ok(j) => {
                let (line, state) = job_line(store, &j).await?;
                // The per-round view needs the record the job's leader keeps.
                if let Some(record) = job_status::read(store, job).await {
                    details.push('\n');
                    details.push_str(&job_status::render(&record, state, broker::unix_ms(), &depths));
                }
                line
            }
            Err(_) => format!("{job:<20} {:>6} {:<10}\n", "?", "unknown"),
        };
        out.push_str(&line);
    }
    out.push_str(&details);
    print!("{out}");
    Ok(())
}

/// A job's summary line (done per round, from the store), and its state.
async fn job_line(store: &Store, j: &Journal) -> Result<(String, &'static str), Exit> {
    let planned = plan(&j.shape).map_err(|e| Exit::Other(format!("job {}: {e}", j.job)))?;
    let mut per_round: BTreeMap<Round, (usize, usize)> = BTreeMap::new();
    let mut done_all = 0;
    for t in &planned.tasks {
        let entry = per_round.entry(t.task.round).or_default();
        entry.1 += 1;
        if outputs_exist(store, &t.task).await? {
            entry.0 += 1;
            done_all += 1;
        }
    }
    let state = if store.exists(&cancel_marker(&j.job)).await.map_err(store_err)? {
        "cancelled"
    } else if done_all == planned.tasks.len() {
        "done"
    } else {
        "running"
    };
    let mut line = format!(
        "{:<20} {:>6} {:<10} {:>9}",
        j.job,
        j.shape.batch,
        state,
        format!("{done_all}/{}", planned.tasks.len())
    );
    for round in Round::ALL {
        let (d, n) = per_round.get(&round).copied().unwrap_or_default();
        line.push_str(&format!(" {:>9}", format!("{d}/{n}")));
    }
    line.push('\n');
    Ok((line, state))
}

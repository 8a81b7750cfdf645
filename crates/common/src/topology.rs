//! The broker topology: every exchange, queue, argument and header name the fleet uses, in one
//! place, and the declarations that create them. Declaring is idempotent: the leader, every worker
//! and the operator commands declare the same things with the same arguments.
//!
//! - `zkfleet.tasks` (direct): routing key = round; one durable quorum queue per round
//!   (`zkfleet.tasks.<round>`), shared by every job, with a delivery limit and dead-lettering.
//! - `zkfleet.dead` (headers): where task queues dead-letter. Bound to the durable queue
//!   `zkfleet.dead` (everything, for operators) and to each job's results queue (that job's tasks
//!   only, by the [`JOB_HEADER`]), so a leader learns at once that one of its tasks died.
//! - `zkfleet.results.<job>`: durable, one per job, deleted by the broker after [`RESULTS_EXPIRY`]
//!   without use, so an abandoned job cleans itself up.
//! - `zkfleet.control` (fanout): cancellations; each worker binds an exclusive queue of its own.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};
use serde::Serialize;

use crate::Round;

pub const TASK_EXCHANGE: &str = "zkfleet.tasks";
pub const DEAD_LETTER_EXCHANGE: &str = "zkfleet.dead";
pub const DEAD_LETTER_QUEUE: &str = "zkfleet.dead";
pub const CONTROL_EXCHANGE: &str = "zkfleet.control";
pub const RESULTS_QUEUE_PREFIX: &str = "zkfleet.results.";
pub const TASK_QUEUE_PREFIX: &str = "zkfleet.tasks.";

/// Deliveries of one task message before the broker dead-letters it. A worker killed in the
/// middle of a proof costs one; a transient failure does not (the worker reports it and the
/// leader retries the task as a new message, [`crate::RetryPolicy`]).
pub const DELIVERY_LIMIT: u32 = 5;

/// A results queue unused this long is deleted by the broker.
pub const RESULTS_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Header naming the job of a task message (routes its dead-lettered copy to the job's leader).
pub const JOB_HEADER: &str = "zkfleet-job";

/// Header with the time a task was published, in milliseconds since the Unix epoch: a worker
/// measures the task's queue wait from it (across machines, so clock skew counts too).
pub const PUBLISHED_HEADER: &str = "zkfleet-published-ms";

/// AMQP `type` property values: what a message on a results queue carries.
pub const KIND_TASK: &str = "task";
pub const KIND_RESULT: &str = "result";
pub const KIND_CANCEL: &str = "cancel";

pub fn task_queue(round: Round) -> String {
    format!("{TASK_QUEUE_PREFIX}{round}")
}

pub fn results_queue(job: &str) -> String {
    format!("{RESULTS_QUEUE_PREFIX}{job}")
}

/// A worker pool: the rounds its workers serve unless `--rounds` narrows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pool {
    /// Every round: a CPU pool alone can prove a whole job.
    Cpu,
    /// The heavy round only.
    Gpu,
}

impl Pool {
    pub const ALL: [Pool; 2] = [Pool::Cpu, Pool::Gpu];

    pub const fn as_str(self) -> &'static str {
        match self {
            Pool::Cpu => "cpu",
            Pool::Gpu => "gpu",
        }
    }

    pub fn rounds(self) -> &'static [Round] {
        match self {
            Pool::Cpu => &Round::ALL,
            Pool::Gpu => &[Round::Basic],
        }
    }
}

/// The topology as data: what `worker --print-topology` prints, for deployment checks that must
/// read queue names from the code rather than from a second list.
#[derive(Serialize)]
pub struct Description {
    pub task_exchange: &'static str,
    pub dead_letter_exchange: &'static str,
    pub dead_letter_queue: &'static str,
    pub control_exchange: &'static str,
    pub results_queue_prefix: &'static str,
    pub delivery_limit: u32,
    pub task_queues: std::collections::BTreeMap<&'static str, String>,
    pub pools: std::collections::BTreeMap<&'static str, Vec<&'static str>>,
}

pub fn describe() -> Description {
    Description {
        task_exchange: TASK_EXCHANGE,
        dead_letter_exchange: DEAD_LETTER_EXCHANGE,
        dead_letter_queue: DEAD_LETTER_QUEUE,
        control_exchange: CONTROL_EXCHANGE,
        results_queue_prefix: RESULTS_QUEUE_PREFIX,
        delivery_limit: DELIVERY_LIMIT,
        task_queues: Round::ALL.iter().map(|r| (r.as_str(), task_queue(*r))).collect(),
        pools: Pool::ALL.iter().map(|p| (p.as_str(), p.rounds().iter().map(|r| r.as_str()).collect())).collect(),
    }
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions { durable: true, ..Default::default() }
}

/// Declares the shared part of the topology: exchanges, task queues, the dead-letter queue.
pub async fn declare(channel: &Channel) -> lapin::Result<()> {
    let exchange = ExchangeDeclareOptions { durable: true, ..Default::default() };
    channel.exchange_declare(TASK_EXCHANGE.into(), ExchangeKind::Direct, exchange, FieldTable::default()).await?;
    channel
        .exchange_declare(DEAD_LETTER_EXCHANGE.into(), ExchangeKind::Headers, exchange, FieldTable::default())
        .await?;
    channel.exchange_declare(CONTROL_EXCHANGE.into(), ExchangeKind::Fanout, exchange, FieldTable::default()).await?;

    let quorum = text("quorum");
    channel.queue_declare(DEAD_LETTER_QUEUE.into(), durable(), table(&[("x-queue-type", quorum.clone())])).await?;
    // No header to match: the operators' queue takes every dead letter.
    channel
        .queue_bind(
            DEAD_LETTER_QUEUE.into(),
            DEAD_LETTER_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            table(&[("x-match", text("all"))]),
        )
        .await?;

    let task_args = table(&[
        ("x-queue-type", quorum),
        ("x-delivery-limit", AMQPValue::LongInt(DELIVERY_LIMIT as i32)),
        ("x-dead-letter-exchange", text(DEAD_LETTER_EXCHANGE)),
    ]);
    for round in Round::ALL {
        let queue = task_queue(round);
        channel.queue_declare(queue.as_str().into(), durable(), task_args.clone()).await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                TASK_EXCHANGE.into(),
                round.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Declares a job's results queue and routes the job's dead-lettered tasks to it.
pub async fn declare_results(channel: &Channel, job: &str) -> lapin::Result<String> {
    let queue = results_queue(job);
    channel
        .queue_declare(
            queue.as_str().into(),
            durable(),
            table(&[("x-expires", AMQPValue::LongInt(RESULTS_EXPIRY.as_millis() as i32))]),
        )
        .await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            DEAD_LETTER_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            table(&[("x-match", text("all")), (JOB_HEADER, text(job))]),
        )
        .await?;
    Ok(queue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_round_has_a_queue_and_a_pool() {
        let d = describe();
        assert_eq!(d.task_queues.len(), Round::ALL.len());
        for round in Round::ALL {
            assert_eq!(d.task_queues[round.as_str()], format!("zkfleet.tasks.{round}"));
            assert!(Pool::ALL.iter().any(|p| p.rounds().contains(&round)), "{round} has no pool");
        }
        // The expiry must fit the AMQP signed 32-bit argument.
        assert!(RESULTS_EXPIRY.as_millis() < i32::MAX as u128);
    }
}

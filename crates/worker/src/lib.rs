//! The worker's task code: read a task's inputs from the store, prove on a blocking thread, write
//! the outputs, report. The embedded fleet and the broker fleet run exactly this function; only
//! how tasks arrive and results leave differs. [`daemon`] is the broker side, [`cli`] the command
//! line of the `worker` binary.

pub mod cli;
pub mod daemon;
pub mod gpu;
pub mod http;
pub mod metrics;

use std::sync::Arc;
use std::time::Instant;

use common::store::{digest, StoreError};
use common::{ProvingBackend, Store, Task, TaskError, TaskErrorKind, TaskOutcome, TaskResult};
use tracing::Instrument as _;

fn store_error(e: StoreError) -> TaskError {
    match e {
        // An input that is not there will not appear by retrying: the job was purged or planned
        // wrongly.
        _ if e.is_transient() => TaskError::transient(e.to_string()),
        // A corrupt object stays corrupt, and an input that is not there will not appear by
        // retrying (the job was purged or planned wrongly).
        _ => TaskError::permanent(e.to_string()),
    }
}

/// A log line about `task`, with the task's ids as fields (its span's attributes): `job`, `batch`,
/// `round`, `index`, `tx_range`, and `level` on aggregate tasks, `attempt` from a second attempt on.
macro_rules! task_event {
    ($level:ident, $task:expr, $($rest:tt)*) => {
        tracing::$level!(job = %$task.job, batch = $task.batch, round = %$task.round, level = $task.shown_level(),
            index = $task.index, tx_range = ?$task.tx_range, attempt = $task.shown_attempt(), $($rest)*)
    };
}

/// Runs one task to a result. Never panics on bad input: every failure is a [`TaskOutcome::Failed`]
/// whose kind tells the caller whether to retry.
///
/// The task has one span ([`common::telemetry::task_span`]) with the task's ids as fields, a child
/// of the trace context the task carries (the leader's job span), so one job is one trace. It is
/// entered here and on the proving thread, so every line written while the task runs (the
/// store's, the prover's) carries the ids; the task's own lines carry them as fields too, and the
/// span records how the task ended (`outcome`). `pool` is the metrics label of the fleet that
/// runs it (`cpu`, `gpu`, or `embedded`).
pub async fn execute_task(
    task: &Task,
    store: &Store,
    backend: Arc<dyn ProvingBackend>,
    worker: &str,
    pool: &'static str,
) -> TaskResult {
    let span = common::telemetry::task_span(task);
    let in_flight = metrics::task_started(task.round, pool);
    let started = Instant::now();
    task_event!(info, task, "task started");
    let outcome = match run(task, store, backend).instrument(span.clone()).await {
        Ok((reused, digests)) => TaskOutcome::Done { reused, digests },
        Err(e) => TaskOutcome::Failed(e),
    };
    let elapsed = started.elapsed();
    drop(in_flight);
    let duration_ms = elapsed.as_millis() as u64;
    let counted = match &outcome {
        TaskOutcome::Done { .. } => metrics::Outcome::Succeeded,
        TaskOutcome::Failed(e) if e.kind == TaskErrorKind::Transient => metrics::Outcome::Retried,
        TaskOutcome::Failed(_) => metrics::Outcome::Failed,
    };
    span.record("outcome", counted.as_str());
    drop(span);
    match &outcome {
        TaskOutcome::Done { reused, .. } => task_event!(info, task, duration_ms, reused, "task done"),
        TaskOutcome::Failed(e) => task_event!(warn, task, duration_ms, kind = ?e.kind, error = %e, "task failed"),
    }
    metrics::task_finished(task.round, pool, counted, elapsed);
    TaskResult {
        job: task.job.clone(),
        round: task.round,
        level: task.level,
        index: task.index,
        outcome,
        duration_ms,
        worker: worker.to_string(),
    }
}

/// Proves `task` unless its outputs exist; returns whether they did (before proving, or when
/// writing them), and their digests.
async fn run(task: &Task, store: &Store, backend: Arc<dyn ProvingBackend>) -> Result<(bool, Vec<String>), TaskError> {
    // Redelivery is safe: a task whose outputs all exist is not proven again.
    let mut all_exist = !task.outputs.is_empty();
    for key in &task.outputs {
        if !store.exists(key).await.map_err(store_error)? {
            all_exist = false;
            break;
        }
    }
    if all_exist {
        return Ok((true, stored_digests(store, &task.outputs).await?));
    }
    let mut inputs = Vec::with_capacity(task.inputs.len());
    for (i, key) in task.inputs.iter().enumerate() {
        let bytes = store.get_verified(key, task.input_digest(i)).await.map_err(|e| match e {
            StoreError::Integrity { .. } => TaskError::corrupt_input(key, e.to_string()),
            e => store_error(e),
        })?;
        inputs.push(bytes);
    }
    let owned = task.clone();
    // Proving is CPU-bound and long: keep it off the async runtime, in the task's span.
    let span = tracing::Span::current();
    let outputs = tokio::task::spawn_blocking(move || span.in_scope(|| backend.prove(&owned, inputs)))
        .await
        .map_err(|e| TaskError::permanent(format!("the prover panicked: {e}")))??;
    if outputs.len() != task.outputs.len() {
        return Err(TaskError::permanent(format!(
            "backend returned {} outputs for {} keys",
            outputs.len(),
            task.outputs.len()
        )));
    }
    let (mut digests, mut reused) = (Vec::with_capacity(outputs.len()), false);
    for (key, bytes) in task.outputs.iter().zip(&outputs) {
        if store.put(key, bytes).await.map_err(store_error)? {
            digests.push(digest(bytes));
        } else {
            // Another attempt (a redelivered copy, proving at the same time) wrote first: what the
            // store holds is the output, and this attempt wrote nothing.
            digests.extend(stored_digests(store, std::slice::from_ref(key)).await?);
            reused = true;
        }
    }
    Ok((reused, digests))
}

/// The digests of objects as the store holds them.
async fn stored_digests(store: &Store, keys: &[String]) -> Result<Vec<String>, TaskError> {
    let mut digests = Vec::with_capacity(keys.len());
    for key in keys {
        digests.push(digest(&store.get(key).await.map_err(store_error)?));
    }
    Ok(digests)
}

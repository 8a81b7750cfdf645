//! The worker's task code: read a task's inputs from the store, prove on a blocking thread, write
//! the outputs, report. The embedded fleet and the broker fleet run exactly this function; only
//! how tasks arrive and results leave differs. [`daemon`] is the broker side, [`cli`] the command
//! line of the `worker` binary.

pub mod cli;
pub mod daemon;
pub mod http;
pub mod metrics;

use std::sync::Arc;
use std::time::Instant;

use common::store::{digest, StoreError};
use common::{ProvingBackend, Round, Store, Task, TaskError, TaskErrorKind, TaskOutcome, TaskResult};
use tracing::{info, info_span, warn};

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

/// Runs one task to a result. Never panics on bad input: every failure is a [`TaskOutcome::Failed`]
/// whose kind tells the caller whether to retry.
///
/// The task runs in one `task` span with the task's ids as fields (`level` on aggregates,
/// `attempt` from the second attempt on); the span is a child of the trace context the task
/// carries (the leader's job span), so one job is one trace. `pool` is
/// the metrics label of the fleet that runs it (`cpu`, `gpu`, or `embedded`).
pub async fn execute_task(
    task: &Task,
    store: &Store,
    backend: Arc<dyn ProvingBackend>,
    worker: &str,
    pool: &'static str,
) -> TaskResult {
    // `level` only where it tells tasks apart (aggregates) and `attempt` only on retries: every
    // field is paid for on each task when spans are exported. `job` and `round` are displayed
    // (`%`) so that text log lines show them unquoted.
    let span = info_span!(
        "task",
        job = %task.job,
        batch = task.batch,
        round = %task.round,
        level = tracing::field::Empty,
        index = task.index,
        tx_range = ?task.tx_range,
        attempt = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    if task.round == Round::Aggregate {
        span.record("level", task.level);
    }
    if task.attempt > 1 {
        span.record("attempt", task.attempt);
    }
    common::telemetry::set_parent(&span, &task.trace);
    let in_flight = metrics::task_started(task.round, pool);
    let started = Instant::now();
    // The span is entered only to log in it, and only when its lines are wanted: `run` logs
    // nothing, and entering it at every poll, or for lines filtered out, would cost each task
    // span switches for nothing.
    let logging = tracing::enabled!(tracing::Level::INFO);
    if logging {
        span.in_scope(|| info!("task started"));
    }
    let outcome = match run(task, store, backend).await {
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
    match &outcome {
        TaskOutcome::Done { reused, .. } if logging => span.in_scope(|| info!(duration_ms, reused, "task done")),
        TaskOutcome::Done { .. } => {}
        TaskOutcome::Failed(e) => span.in_scope(|| warn!(duration_ms, kind = ?e.kind, error = %e, "task failed")),
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

/// Proves `task` unless its outputs exist; returns whether they did, and their digests.
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
        inputs.push(store.get_verified(key, task.input_digest(i)).await.map_err(store_error)?);
    }
    let owned = task.clone();
    // Proving is CPU-bound and long: keep it off the async runtime.
    let outputs = tokio::task::spawn_blocking(move || backend.prove(&owned, inputs))
        .await
        .map_err(|e| TaskError::permanent(format!("the prover panicked: {e}")))??;
    if outputs.len() != task.outputs.len() {
        return Err(TaskError::permanent(format!(
            "backend returned {} outputs for {} keys",
            outputs.len(),
            task.outputs.len()
        )));
    }
    let mut digests = Vec::with_capacity(outputs.len());
    for (key, bytes) in task.outputs.iter().zip(&outputs) {
        if store.put(key, bytes).await.map_err(store_error)? {
            digests.push(digest(bytes));
        } else {
            // Another attempt wrote first: what the store holds is the output.
            digests.extend(stored_digests(store, std::slice::from_ref(key)).await?);
        }
    }
    Ok((false, digests))
}

/// The digests of objects as the store holds them.
async fn stored_digests(store: &Store, keys: &[String]) -> Result<Vec<String>, TaskError> {
    let mut digests = Vec::with_capacity(keys.len());
    for key in keys {
        digests.push(digest(&store.get(key).await.map_err(store_error)?));
    }
    Ok(digests)
}

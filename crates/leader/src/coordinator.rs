//! Drives planned jobs through a fleet: publishes each task once all of its inputs exist, follows
//! results, retries transient failures ([`RetryPolicy::TASKS`], the same on both fleets: the wait
//! happens here, not on a worker), runs a task again when an output of it is found corrupted
//! (deleted, rewritten, then its reader runs again), and stops at the first failure that neither
//! fixes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use common::plan::Plan;
use common::{RetryPolicy, Round, Store, Task, TaskErrorKind, TaskOutcome, TaskResult};

use crate::fleet::{FleetEvent, FleetHandle};
use crate::job_status::Records;
use crate::metrics;
use crate::progress::Progress;

/// Times one artifact may be found corrupted and written again before its job fails: a store that
/// corrupts what it keeps is not something to loop on.
pub const CORRUPT_REWRITES: u32 = 2;

/// One finished task, for reports and benchmarks.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TaskTiming {
    pub job: String,
    pub round: Round,
    pub level: u32,
    pub index: u32,
    pub duration_ms: u64,
    pub worker: String,
}

#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    /// The input was invalid: the message is for the user.
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Failed(String),
}

struct Node {
    task: Task,
    /// Index of the node's plan.
    job: usize,
    waiting_on: usize,
    dependents: Vec<usize>,
    done: bool,
}

/// Runs `plans` to completion. `after[j]` names a job that job `j`'s `final` task must wait for
/// (the previous batch, whose final proof it verifies). Tasks whose ids are in `done` are not
/// dispatched (a resumed job whose outputs exist already). `digests` holds the SHA-256 of the
/// artifacts known so far by store key; each task goes out with its inputs' digests, and each
/// result adds its outputs'.
///
/// With `store`, each job's progress is recorded there for `leader status` (see
/// [`crate::job_status`]).
pub async fn run_jobs(
    fleet: &mut FleetHandle,
    plans: &[Plan],
    after: &[Option<usize>],
    done: &HashSet<String>,
    digests: &mut HashMap<String, String>,
    progress: &mut Progress,
    store: Option<&Store>,
) -> Result<Vec<TaskTiming>, JobFailure> {
    let mut records = Records::new(store.cloned(), plans);
    let outcome = run_graph(fleet, plans, after, done, digests, progress, &mut records).await;
    records.flush(true).await;
    outcome
}

async fn run_graph(
    fleet: &mut FleetHandle,
    plans: &[Plan],
    after: &[Option<usize>],
    done: &HashSet<String>,
    digests: &mut HashMap<String, String>,
    progress: &mut Progress,
    records: &mut Records,
) -> Result<Vec<TaskTiming>, JobFailure> {
    // Flatten every plan into one graph. Each job is one trace: a root `job` span, whose context
    // every task of the job carries to the worker that runs it.
    let mut nodes: Vec<Node> = Vec::new();
    let mut final_of: Vec<usize> = Vec::new();
    let mut job_spans: Vec<Option<tracing::Span>> = Vec::with_capacity(plans.len());
    let mut left_in_job: Vec<usize> = Vec::with_capacity(plans.len());
    let mut running = metrics::JobsRunning::start(plans.len());
    for (j, plan) in plans.iter().enumerate() {
        let base = nodes.len();
        let first = &plan.tasks.first().expect("a plan is never empty").task;
        let span =
            tracing::info_span!(parent: None, "job", job = %first.job, batch = first.batch, tasks = plan.tasks.len());
        let trace = common::telemetry::inject(&span);
        job_spans.push(Some(span));
        left_in_job.push(plan.tasks.len());
        for planned in &plan.tasks {
            let mut task = planned.task.clone();
            task.trace = trace.clone();
            nodes.push(Node { task, job: j, waiting_on: 0, dependents: vec![], done: false });
        }
        for (i, planned) in plan.tasks.iter().enumerate() {
            for &d in &planned.deps {
                link(&mut nodes, base + d, base + i);
            }
        }
        let fin = plan.tasks.iter().position(|t| t.task.round == Round::Final).expect("plans have a final task");
        final_of.push(base + fin);
    }
    for (j, prev) in after.iter().enumerate() {
        if let Some(p) = prev {
            link(&mut nodes, final_of[*p], final_of[j]);
        }
    }

    let mut remaining = nodes.len();
    for i in 0..nodes.len() {
        if done.contains(&nodes[i].task.id()) {
            nodes[i].done = true;
            remaining -= 1;
            left_in_job[nodes[i].job] -= 1;
            records.found_done(nodes[i].job, nodes[i].task.round);
            progress.task_done(&nodes[i].task);
            for d in std::mem::take(&mut nodes[i].dependents) {
                nodes[d].waiting_on -= 1;
            }
        }
    }
    let mut ready: VecDeque<usize> = (0..nodes.len()).filter(|&i| !nodes[i].done && nodes[i].waiting_on == 0).collect();
    let mut timings = Vec::with_capacity(nodes.len());
    let by_id: HashMap<String, usize> = nodes.iter().enumerate().map(|(i, n)| (n.task.id(), i)).collect();
    let producer_of: HashMap<String, usize> =
        nodes.iter().enumerate().flat_map(|(i, n)| n.task.outputs.iter().map(move |k| (k.clone(), i))).collect();
    let mut rewrites: HashMap<String, u32> = HashMap::new();
    let tick = Duration::from_secs(10);
    let mut last_line = Instant::now();
    let policy = RetryPolicy::TASKS;
    // Tasks waiting out their backoff, with when they may go again.
    let mut backing_off: Vec<(tokio::time::Instant, usize)> = Vec::new();
    let far = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);

    while remaining > 0 {
        tokio::select! {
            permit = fleet.tasks.reserve(), if !ready.is_empty() => {
                let permit = permit.map_err(|_| JobFailure::Failed("the fleet stopped".into()))?;
                let i = ready.pop_front().expect("guarded by the branch condition");
                metrics::task_dispatched(nodes[i].task.round);
                records.dispatched(nodes[i].job, nodes[i].task.round);
                let mut task = nodes[i].task.clone();
                task.input_digests = task.inputs.iter().map(|k| digests.get(k).cloned()).collect();
                permit.send(task);
            }
            event = fleet.events.recv() => {
                let result: TaskResult = match event.ok_or_else(|| JobFailure::Failed("the fleet stopped".into()))? {
                    FleetEvent::Result(result) => result,
                    FleetEvent::DeadLettered { task_id, reason, last_error } => {
                        if !by_id.contains_key(&task_id) {
                            continue;
                        }
                        let last = last_error.map(|e| format!("; last error: {e}")).unwrap_or_default();
                        return Err(JobFailure::Failed(format!(
                            "task {task_id} was dead-lettered ({reason}){last}"
                        )));
                    }
                    FleetEvent::Cancelled { job } => return Err(JobFailure::Failed(format!("job {job} was cancelled"))),
                    FleetEvent::Lost(message) => return Err(JobFailure::Failed(message)),
                };
                let id = result.task_id();
                let Some(&i) = by_id.get(&id) else { continue };
                match result.outcome {
                    TaskOutcome::Done { digests: written, .. } => {
                        if nodes[i].done {
                            continue;
                        }
                        if written.len() != nodes[i].task.outputs.len() {
                            return Err(JobFailure::Failed(format!(
                                "task {id} reported {} digests for {} outputs",
                                written.len(),
                                nodes[i].task.outputs.len()
                            )));
                        }
                        digests.extend(nodes[i].task.outputs.iter().cloned().zip(written));
                        nodes[i].done = true;
                        remaining -= 1;
                        progress.task_done(&nodes[i].task);
                        let task = &nodes[i].task;
                        if task.round == Round::Basic {
                            metrics::transactions_proved(task.tx_range.1 - task.tx_range.0);
                        }
                        let j = nodes[i].job;
                        records.done(j, task.round, result.duration_ms);
                        left_in_job[j] -= 1;
                        if left_in_job[j] == 0 {
                            // Closing the span ends the job's trace at its last task.
                            job_spans[j] = None;
                            running.succeeded();
                        }
                        timings.push(TaskTiming {
                            job: result.job,
                            round: result.round,
                            level: result.level,
                            index: result.index,
                            duration_ms: result.duration_ms,
                            worker: result.worker,
                        });
                        for d in std::mem::take(&mut nodes[i].dependents) {
                            nodes[d].waiting_on -= 1;
                            if nodes[d].waiting_on == 0 {
                                ready.push_back(d);
                            }
                        }
                    }
                    TaskOutcome::Failed(e) => {
                        // A failure reported after the task succeeded, or twice (a redelivered
                        // task reports again), changes nothing; nor does one of a task already
                        // waiting for a corrupted input to be written again.
                        if nodes[i].done || nodes[i].waiting_on > 0 || backing_off.iter().any(|&(_, k)| k == i) {
                            continue;
                        }
                        records.failed(nodes[i].job, nodes[i].task.round);
                        if let Some(key) = &e.corrupt_input {
                            // The producer writes the artifact again, then this task runs again.
                            let Some(&p) = producer_of.get(key) else {
                                return Err(JobFailure::Failed(format!("task {id} failed: {e} (a staged input)")));
                            };
                            let count = rewrites.entry(key.clone()).or_default();
                            *count += 1;
                            if *count > CORRUPT_REWRITES {
                                return Err(JobFailure::Failed(format!(
                                    "task {id} failed: {e} (written again {CORRUPT_REWRITES} times already)"
                                )));
                            }
                            tracing::warn!(task = %id, input = %key, producer = %nodes[p].task.id(), error = %e,
                                "input corrupted in the store; its producer runs again");
                            if nodes[p].done {
                                fleet.store.delete(key).await.map_err(|err| {
                                    JobFailure::Failed(format!("task {id}: cannot delete corrupted input {key}: {err}"))
                                })?;
                                digests.remove(key);
                                nodes[p].done = false;
                                nodes[p].task.attempt += 1;
                                remaining += 1;
                                left_in_job[nodes[p].job] += 1;
                                progress.task_undone(&nodes[p].task);
                                records.undone(nodes[p].job, nodes[p].task.round);
                                ready.push_back(p);
                            }
                            nodes[p].dependents.push(i);
                            nodes[i].waiting_on += 1;
                            nodes[i].task.attempt += 1;
                            continue;
                        }
                        match e.kind {
                            TaskErrorKind::Transient if policy.retries(nodes[i].task.attempt) => {
                                let wait = policy.backoff(nodes[i].task.attempt);
                                nodes[i].task.attempt += 1;
                                tracing::warn!(task = %id, attempt = nodes[i].task.attempt, wait_ms = wait.as_millis() as u64, error = %e, "retrying task");
                                backing_off.push((tokio::time::Instant::now() + wait, i));
                            }
                            TaskErrorKind::InvalidInput => return Err(JobFailure::InvalidInput(e.message)),
                            TaskErrorKind::Transient => {
                                return Err(JobFailure::Failed(format!(
                                    "task {id} failed {} times, last: {}",
                                    nodes[i].task.attempt, e.message
                                )))
                            }
                            _ => return Err(JobFailure::Failed(format!("task {id} failed: {}", e.message))),
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(backing_off.iter().map(|(due, _)| *due).min().unwrap_or(far)), if !backing_off.is_empty() => {
                let now = tokio::time::Instant::now();
                backing_off.retain(|&(due, i)| {
                    if due <= now && !nodes[i].done {
                        ready.push_back(i);
                    }
                    due > now
                });
            }
            _ = tokio::time::sleep(tick.saturating_sub(last_line.elapsed()).min(records.due_in().unwrap_or(tick))) => {}
        }
        records.flush(false).await;
        if last_line.elapsed() >= tick {
            progress.heartbeat();
            last_line = Instant::now();
        }
    }
    Ok(timings)
}

fn link(nodes: &mut [Node], from: usize, to: usize) {
    nodes[from].dependents.push(to);
    nodes[to].waiting_on += 1;
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use common::plan::{plan, JobShape};
    use common::store::digest;
    use common::{TaskError, TaskOutcome};
    use tokio::sync::mpsc;

    use super::*;

    /// A job of 4 transactions in chunks of 2: witness, basic 0 and 1, one aggregate, final,
    /// compress. The aggregate reads `jobs/j/basic/0-0` and `0-1`.
    fn job() -> Plan {
        plan(&JobShape {
            job: "j".into(),
            batch: 1,
            tx_count: 4,
            chunk_size: 2,
            arity: 2,
            levels: 1,
            input_key: "jobs/j/input".into(),
            previous_final_key: None,
            params: vec![],
            meta: Default::default(),
        })
        .unwrap()
    }

    /// The tasks a test fleet was given, in order: id and attempt.
    type Given = Arc<Mutex<Vec<(String, u32)>>>;

    /// A fleet whose one worker is `answer`: it writes each task's outputs (one byte, the attempt)
    /// unless `answer` fails the task; returns the fleet and the tasks it was given.
    fn fleet(store: Store, answer: impl Fn(&Task) -> Option<TaskError> + Send + 'static) -> (FleetHandle, Given) {
        let (task_tx, mut task_rx) = mpsc::channel::<Task>(1);
        let (event_tx, event_rx) = mpsc::channel(8);
        let given = Arc::new(Mutex::new(Vec::new()));
        let (seen, worker_store) = (given.clone(), store.clone());
        let mut background = tokio::task::JoinSet::new();
        background.spawn(async move {
            while let Some(task) = task_rx.recv().await {
                seen.lock().unwrap().push((task.id(), task.attempt));
                let outcome = match answer(&task) {
                    Some(error) => TaskOutcome::Failed(error),
                    None => {
                        let bytes = [task.attempt as u8];
                        for key in &task.outputs {
                            worker_store.put(key, &bytes).await.unwrap();
                        }
                        TaskOutcome::Done { reused: false, digests: vec![digest(&bytes); task.outputs.len()] }
                    }
                };
                let result = TaskResult {
                    job: task.job.clone(),
                    round: task.round,
                    level: task.level,
                    index: task.index,
                    outcome,
                    duration_ms: 1,
                    worker: "w".into(),
                };
                if event_tx.send(FleetEvent::Result(result)).await.is_err() {
                    break;
                }
            }
        });
        let handle = FleetHandle {
            tasks: task_tx,
            events: event_rx,
            store,
            background,
            shutdown: tokio_util::sync::CancellationToken::new(),
        };
        (handle, given)
    }

    async fn run(mut fleet: FleetHandle) -> Result<Vec<TaskTiming>, JobFailure> {
        let mut progress = Progress::silent(&[("j".into(), 1, 4)]);
        let plans = [job()];
        run_jobs(&mut fleet, &plans, &[None], &HashSet::new(), &mut HashMap::new(), &mut progress, None).await
    }

    fn corrupt(key: &str) -> Option<TaskError> {
        Some(TaskError::corrupt_input(key, format!("object {key} failed its integrity check")))
    }

    #[tokio::test]
    async fn a_corrupted_output_is_deleted_written_again_and_read_again() {
        let store = Store::open("memory:").unwrap();
        let first_read = Arc::new(Mutex::new(true));
        let (fleet, given) = fleet(store.clone(), move |task| match task.round {
            Round::Aggregate if std::mem::replace(&mut *first_read.lock().unwrap(), false) => {
                corrupt("jobs/j/basic/0-0")
            }
            _ => None,
        });
        run(fleet).await.expect("the job completes");
        let given = given.lock().unwrap().clone();
        let order: Vec<(&str, u32)> = given.iter().map(|(id, a)| (id.as_str(), *a)).collect();
        assert_eq!(
            order,
            [
                ("j/witness/0-0", 1),
                ("j/basic/0-0", 1),
                ("j/basic/0-1", 1),
                ("j/aggregate/1-0", 1),
                ("j/basic/0-0", 2),
                ("j/aggregate/1-0", 2),
                ("j/final/0-0", 1),
                ("j/compress/0-0", 1),
            ]
        );
        assert_eq!(store.get("jobs/j/basic/0-0").await.unwrap(), [2], "the artifact was deleted and written again");
    }

    #[tokio::test]
    async fn an_artifact_corrupted_again_and_again_fails_the_job_in_one_line() {
        let (fleet, given) = fleet(Store::open("memory:").unwrap(), |task| match task.round {
            Round::Aggregate => corrupt("jobs/j/basic/0-1"),
            _ => None,
        });
        let err = run(fleet).await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "task j/aggregate/1-0 failed: object jobs/j/basic/0-1 failed its integrity check \
                 (written again {CORRUPT_REWRITES} times already)"
            )
        );
        let rewritten = given.lock().unwrap().iter().filter(|(id, _)| id == "j/basic/0-1").count();
        assert_eq!(rewritten as u32, 1 + CORRUPT_REWRITES);
    }

    #[tokio::test]
    async fn a_corrupted_staged_input_fails_the_job() {
        let (fleet, given) = fleet(Store::open("memory:").unwrap(), |task| match task.round {
            Round::Witness => corrupt("jobs/j/input"),
            _ => None,
        });
        let err = run(fleet).await.unwrap_err().to_string();
        assert!(
            err.starts_with("task j/witness/0-0 failed: object jobs/j/input failed")
                && err.ends_with("(a staged input)"),
            "{err}"
        );
        assert_eq!(given.lock().unwrap().len(), 1);
    }
}

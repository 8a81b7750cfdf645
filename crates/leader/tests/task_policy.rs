//! One task policy for both fleets: the same transient fault, injected into the same job on the
//! embedded fleet and on the broker fleet (real RabbitMQ, a worker daemon in process), is retried
//! the same number of times, each retry with its attempt number; a fault that outlasts the
//! policy fails the job naming the task and its last error.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use common::plan::{plan, JobShape, Plan};
use common::{ProvingBackend, RetryPolicy, Round, Store, Task, TaskError};
use leader::coordinator::{run_jobs, JobFailure};
use leader::fleet::FleetHandle;
use leader::progress::Progress;
use tokio_util::sync::CancellationToken;

const FAULT: &str = "the store is unavailable (injected)";

/// Fails the first `failures` attempts of every task transiently, then proves nothing (empty
/// outputs); remembers the attempts it saw per task.
struct Flaky {
    failures: u32,
    seen: Mutex<HashMap<String, Vec<u32>>>,
}

impl Flaky {
    fn new(failures: u32) -> Arc<Self> {
        Arc::new(Self { failures, seen: Mutex::default() })
    }

    fn seen(&self) -> BTreeMap<String, Vec<u32>> {
        self.seen.lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl ProvingBackend for Flaky {
    fn prove(&self, task: &Task, _inputs: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, TaskError> {
        self.seen.lock().unwrap().entry(task.id()).or_default().push(task.attempt);
        if task.attempt <= self.failures {
            return Err(TaskError::transient(FAULT));
        }
        Ok(vec![Vec::new(); task.outputs.len()])
    }
}

/// A job of 4 transactions in chunks of 2: witness, 2 basic, 1 aggregate, final, compress.
async fn job(name: &str, store: &Store) -> Plan {
    let shape = JobShape {
        job: name.into(),
        batch: 1,
        tx_count: 4,
        chunk_size: 2,
        arity: 2,
        levels: 1,
        input_key: format!("jobs/{name}/input"),
        previous_final_key: None,
        params: vec![],
        meta: Default::default(),
    };
    store.put(&shape.input_key, b"witness").await.unwrap();
    plan(&shape).unwrap()
}

async fn run(mut fleet: FleetHandle, plan: &Plan) -> Result<(), JobFailure> {
    let first = &plan.tasks[0].task;
    let mut progress = Progress::silent(&[(first.job.clone(), first.batch, 4)]);
    let outcome = run_jobs(
        &mut fleet,
        std::slice::from_ref(plan),
        &[None],
        &HashSet::new(),
        &mut HashMap::new(),
        &mut progress,
        None,
    )
    .await;
    fleet.stop().await;
    outcome.map(|_| ())
}

/// Runs `plan` on the broker fleet of a fresh virtual host with one in-process worker on `backend`.
async fn on_broker(plan: &Plan, store: &Store, backend: Arc<Flaky>) -> Result<(), JobFailure> {
    let vhost = support::Vhost::new();
    let stop = CancellationToken::new();
    let config = worker::daemon::Config {
        concurrency: 2,
        ..worker::daemon::Config::new(vhost.uri(), store.clone(), "w", backend)
    };
    let worker = tokio::spawn(worker::daemon::run(config, stop.clone()));
    let connection = leader::broker_fleet::connect(&vhost.uri()).await.unwrap();
    let jobs = vec![plan.tasks[0].task.job.clone()];
    let fleet = leader::broker_fleet::start(connection, &vhost.uri(), store.clone(), &jobs).await.unwrap();
    let outcome = run(fleet, plan).await;
    stop.cancel();
    worker.await.unwrap().unwrap();
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_fleets_retry_a_transient_fault_the_same_way() {
    let store = Store::open("memory:").unwrap();
    let embedded = Flaky::new(1);
    let plan = job("policy-embedded", &store).await;
    run(leader::fleet::start_embedded(2, store.clone(), embedded.clone()), &plan).await.expect("the job succeeds");
    let broker = Flaky::new(1);
    let plan = job("policy-broker", &store).await;
    on_broker(&plan, &store, broker.clone()).await.expect("the job succeeds");

    // Every task failed once and succeeded at its second attempt, on both fleets.
    let attempts = |seen: BTreeMap<String, Vec<u32>>| -> Vec<Vec<u32>> { seen.into_values().collect() };
    let (embedded, broker) = (attempts(embedded.seen()), attempts(broker.seen()));
    assert_eq!(embedded.len(), 6, "{embedded:?}");
    assert!(embedded.iter().all(|a| a == &[1, 2]), "embedded: {embedded:?}");
    assert_eq!(broker, embedded, "the broker fleet retried differently");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_that_outlasts_the_policy_fails_the_job_on_both_fleets() {
    let store = Store::open("memory:").unwrap();
    let attempts = RetryPolicy::TASKS.attempts;
    for broker in [false, true] {
        let backend = Flaky::new(attempts);
        let plan = job(if broker { "outlasts-broker" } else { "outlasts-embedded" }, &store).await;
        let outcome = if broker {
            on_broker(&plan, &store, backend.clone()).await
        } else {
            run(leader::fleet::start_embedded(2, store.clone(), backend.clone()), &plan).await
        };
        let witness = plan.tasks.iter().find(|t| t.task.round == Round::Witness).unwrap().task.id();
        match outcome {
            Err(JobFailure::Failed(message)) => assert_eq!(
                message,
                format!("task {witness} failed {attempts} times, last: {FAULT}"),
                "broker fleet: {broker}"
            ),
            other => panic!("broker fleet {broker}: expected the job to fail, got {:?}", other.err()),
        }
        // The witness task ran `attempts` times and nothing after it ran at all.
        assert_eq!(backend.seen(), BTreeMap::from([(witness, (1..=attempts).collect())]), "broker fleet: {broker}");
    }
}

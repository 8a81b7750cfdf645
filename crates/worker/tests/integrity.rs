//! A worker never proves over an input whose bytes are not the ones its reference recorded: a
//! task over a corrupted or substituted object in a real S3-compatible store fails with an
//! integrity error and writes nothing.

use std::sync::Arc;

use common::store::digest;
use common::testing::S3Server;
use common::{Round, Store, Task, TaskErrorKind, TaskOutcome};
use worker::cli::NoopBackend;

fn task(input_digest: Option<String>) -> Task {
    Task {
        job: "j".into(),
        batch: 1,
        round: Round::Basic,
        level: 0,
        index: 0,
        tx_range: (0, 4),
        inputs: vec!["jobs/j/witness/0-0".into()],
        input_digests: vec![input_digest],
        outputs: vec!["jobs/j/basic/0-0".into()],
        params: vec![],
        meta: Default::default(),
        attempt: 1,
        trace: Default::default(),
    }
}

async fn run(store: &Store, task: &Task) -> TaskOutcome {
    worker::execute_task(task, store, Arc::new(NoopBackend), "w", "cpu").await.outcome
}

fn integrity_failure(outcome: &TaskOutcome) -> bool {
    matches!(outcome, TaskOutcome::Failed(e) if e.kind == TaskErrorKind::Permanent && e.message.contains("integrity"))
}

/// A store on a fresh server holding the task's input; returns the input's digest as recorded.
async fn with_input(witness: &[u8]) -> (S3Server, Store, String) {
    let server = S3Server::start();
    let bucket = server.bucket("fleet");
    let store = server.store(&bucket, "").await;
    store.put("jobs/j/witness/0-0", witness).await.unwrap();
    (server, store, digest(witness))
}

#[tokio::test]
async fn a_corrupted_input_fails_the_task_with_an_integrity_error() {
    let witness = b"chunk witness bytes".to_vec();
    let (server, store, recorded) = with_input(&witness).await;

    // Bytes changed in the bucket behind the store's back.
    let mut rotten = witness.clone();
    rotten[0] ^= 1;
    std::fs::write(server.object_path("fleet", "jobs/j/witness/0-0"), &rotten).unwrap();
    for reference in [Some(recorded.clone()), None] {
        let outcome = run(&store, &task(reference.clone())).await;
        assert!(integrity_failure(&outcome), "with reference {reference:?}: {outcome:?}");
        assert!(!store.exists("jobs/j/basic/0-0").await.unwrap(), "nothing is written");
    }
}

#[tokio::test]
async fn a_substituted_input_fails_against_the_recorded_digest() {
    let (_server, store, recorded) = with_input(b"chunk witness bytes").await;
    // A whole, self-consistent object that is not the one the task was planned over.
    store.replace("jobs/j/witness/0-0", b"another witness").await.unwrap();
    let outcome = run(&store, &task(Some(recorded))).await;
    assert!(integrity_failure(&outcome), "{outcome:?}");
    assert!(!store.exists("jobs/j/basic/0-0").await.unwrap());

    // With the right reference the task runs and reports its output's digest.
    let outcome = run(&store, &task(Some(digest(b"another witness")))).await;
    assert_eq!(outcome, TaskOutcome::Done { reused: false, digests: vec![digest(b"")] });
    let again = run(&store, &task(Some(digest(b"another witness")))).await;
    assert_eq!(
        again,
        TaskOutcome::Done { reused: true, digests: vec![digest(b"")] },
        "a redelivery reports the stored output"
    );
}

/// Proves only once both copies of a task are proving.
struct Together(std::sync::Barrier);

impl common::ProvingBackend for Together {
    fn prove(&self, task: &Task, _inputs: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, common::TaskError> {
        self.0.wait();
        Ok(vec![b"proof".to_vec(); task.outputs.len()])
    }
}

/// Two copies of one task (a publish whose confirm was lost is sent again) proving at once: one
/// writes the output, the other finds it written and says so, and both report its digest. On the
/// in-memory store: the S3-compatible test server checks `If-None-Match` before it writes, not
/// atomically as S3 does, so two writes at once both pass there.
#[tokio::test]
async fn of_two_copies_proving_at_once_one_writes_and_the_other_reports_reused() {
    let store = Store::open("memory:").unwrap();
    store.put("jobs/j/witness/0-0", b"chunk witness bytes").await.unwrap();
    let recorded = digest(b"chunk witness bytes");
    let backend: Arc<dyn common::ProvingBackend> = Arc::new(Together(std::sync::Barrier::new(2)));
    let task = task(Some(recorded));
    let (a, b) = tokio::join!(
        worker::execute_task(&task, &store, backend.clone(), "a", "cpu"),
        worker::execute_task(&task, &store, backend.clone(), "b", "cpu"),
    );
    let mut reused: Vec<bool> = [a.outcome, b.outcome]
        .into_iter()
        .map(|outcome| match outcome {
            TaskOutcome::Done { reused, digests } => {
                assert_eq!(digests, vec![digest(b"proof")]);
                reused
            }
            failed => panic!("{failed:?}"),
        })
        .collect();
    reused.sort();
    assert_eq!(reused, [false, true], "one copy wrote the output");
}

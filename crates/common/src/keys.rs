//! The store's key layout, in one place: every process that reads or writes the store names its
//! objects through these functions.
//!
//! | key | what |
//! |---|---|
//! | `jobs/<job>/<round>/<level>-<index>` | a task's output (the level is 0 outside aggregation) |
//! | `jobs/<job>/input/0-0`, `jobs/<job>/previous/0-0` | a job's batch and the proof it continues |
//! | `jobs/<job>/journal.json`, `jobs/<job>/status.json` | the job's journal and its progress record |
//! | `jobs/<job>/errors/<round>-<level>-<index>` | a task's last transient failure |
//! | `cancelled/<job>` | a cancelled job's marker (outside `jobs/`, so purging the job keeps it) |
//! | `circuits/<set>/<name>` | a built circuit of one parameter set |
//! | `service/index.json`, `service/jobs/<id>.json`, `service/proofs/<id>.json` | `leader serve`'s records |
//!
//! Everything of a job lives under [`job`]: removing that prefix removes the job.

use crate::{Round, Task};

/// The prefix holding everything of a job.
pub fn job(job: &str) -> String {
    format!("jobs/{job}")
}

/// A task's output.
pub fn artifact(job: &str, round: Round, level: u32, index: u32) -> String {
    format!("jobs/{job}/{round}/{level}-{index}")
}

/// A job's batch, as staged by the leader.
pub fn input(job: &str) -> String {
    format!("jobs/{job}/input/0-0")
}

/// The proof a job's batch continues, as staged by the leader.
pub fn previous(job: &str) -> String {
    format!("jobs/{job}/previous/0-0")
}

pub fn journal(job: &str) -> String {
    format!("jobs/{job}/journal.json")
}

pub fn status(job: &str) -> String {
    format!("jobs/{job}/status.json")
}

/// Where a worker records the last transient failure of a task, for `leader dead`.
pub fn task_error(task: &Task) -> String {
    format!("jobs/{}/errors/{}-{}-{}", task.job, task.round, task.level, task.index)
}

/// A cancelled job's marker.
pub fn cancel_marker(job: &str) -> String {
    format!("cancelled/{job}")
}

/// The circuit `name` of the parameter set `set`.
pub fn circuit(set: &str, name: &str) -> String {
    format!("circuits/{set}/{name}")
}

pub const SERVICE_INDEX: &str = "service/index.json";

pub fn service_record(id: &str) -> String {
    format!("service/jobs/{id}.json")
}

pub fn service_proof(id: &str) -> String {
    format!("service/proofs/{id}.json")
}

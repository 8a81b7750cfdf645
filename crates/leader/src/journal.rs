//! A job's journal: what a leader needs to pick the job up again, kept in the store next to the
//! job's artifacts (`jobs/{job}/journal.json`). Together with the artifacts themselves (a task is
//! done when its outputs exist) it is the whole state of a job; the broker holds none that
//! matters.

use std::collections::BTreeMap;

use common::plan::JobShape;
use common::Store;
use prover::proof_file::PublicValues;
use serde::{Deserialize, Serialize};

use crate::Exit;

pub const FORMAT: &str = "zkfleet-journal/1";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Journal {
    pub format: String,
    pub job: String,
    /// What the planner planned the job from.
    pub shape: JobShape,
    /// The job whose final proof this job's final task verifies (the previous batch of the same
    /// input), if any.
    pub after: Option<String>,
    /// The values the proof must bind, as the leader computed them from the witness.
    pub expected: PublicValues,
    /// SHA-256 of each object the leader stored for the job (its input, a previous proof), by
    /// key: a resumed job still checks them.
    #[serde(default)]
    pub staged: BTreeMap<String, String>,
}

pub fn key(job: &str) -> String {
    common::keys::journal(job)
}

pub async fn write(store: &Store, journal: &Journal) -> Result<(), Exit> {
    let bytes = serde_json::to_vec_pretty(journal).expect("journals serialize");
    store.put(&key(&journal.job), &bytes).await.map_err(|e| Exit::Other(format!("store: {e}")))?;
    Ok(())
}

pub async fn read(store: &Store, job: &str) -> Result<Journal, Exit> {
    let bytes = match store.get(&key(job)).await {
        Ok(b) => b,
        Err(common::store::StoreError::NotFound(_)) => {
            return Err(Exit::Other(format!("job {job}: no journal in the store (finished, purged, or another store)")))
        }
        Err(e) => return Err(Exit::Other(format!("store: {e}"))),
    };
    let journal: Journal =
        serde_json::from_slice(&bytes).map_err(|e| Exit::Other(format!("job {job}: unreadable journal: {e}")))?;
    if journal.format != FORMAT {
        return Err(Exit::Other(format!("job {job}: journal format {:?} is not {FORMAT}", journal.format)));
    }
    Ok(journal)
}

//! The reference backend as the fleet sees it: [`ProvingBackend`] over [`Backend`].
//!
//! Task parameters are the MessagePack of [`Params`]; one [`Backend`] (and so one set of built
//! circuits) is kept per parameter set for the life of the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::{ProvingBackend, Round, Task, TaskError};

use crate::batch::parse_batches;
use crate::execute::execute;
use crate::params::Params;
use crate::proof_file::ProofFile;
use crate::{Backend, CircuitCache, CommitmentEngine, CpuEngine, ProveError};

/// Meta keys of the `final` task.
pub const META_CHAIN_ID: &str = "chain_id";
pub const META_BATCH_NUMBER: &str = "batch_number";

pub fn encode_params(params: &Params) -> Vec<u8> {
    rmp_serde::to_vec_named(params).expect("params serialize")
}

pub struct ReferenceBackend {
    backends: Mutex<HashMap<Params, Arc<Backend>>>,
    cache: Option<Arc<dyn CircuitCache>>,
    /// Commits to `basic` traces for every parameter set: the CPU, or a GPU engine.
    engine: Arc<dyn CommitmentEngine>,
}

impl Default for ReferenceBackend {
    fn default() -> Self {
        Self::with_cache(None)
    }
}

impl ReferenceBackend {
    /// A backend that builds every circuit it needs.
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend that loads circuits from `cache` and saves the ones it builds there.
    pub fn with_cache(cache: Option<Arc<dyn CircuitCache>>) -> Self {
        Self { backends: Mutex::default(), cache, engine: Arc::new(CpuEngine) }
    }

    /// The backend with `engine` committing to `basic` traces instead of the CPU.
    pub fn with_engine(mut self, engine: Arc<dyn CommitmentEngine>) -> Self {
        self.engine = engine;
        self
    }

    /// Loads, and builds none of, the circuits after `basic` that the cache holds for `params`
    /// ([`crate::CircuitSet::load_cached`]).
    pub fn load_cached(&self, params: &[u8]) {
        if let Ok(params) = decode_params(params) {
            self.backend(params).circuits().load_cached();
        }
    }

    /// The backend for `params`, created on first use and shared afterwards.
    pub fn backend(&self, params: Params) -> Arc<Backend> {
        let mut backends = self.backends.lock().unwrap();
        backends
            .entry(params)
            .or_insert_with(|| {
                Arc::new(Backend::with_cache(params, self.cache.clone()).with_engine(self.engine.clone()))
            })
            .clone()
    }
}

impl From<ProveError> for TaskError {
    fn from(e: ProveError) -> Self {
        match e {
            ProveError::InvalidInput(m) => TaskError::invalid_input(m),
            ProveError::Failed(m) => TaskError::permanent(m),
            ProveError::Unavailable(m) => TaskError::transient(m),
        }
    }
}

fn meta_u64(task: &Task, key: &str) -> Result<u64, TaskError> {
    task.meta
        .get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| TaskError::permanent(format!("task {} lacks meta {key}", task.id())))
}

fn decode_params(bytes: &[u8]) -> Result<Params, String> {
    let params: Params = rmp_serde::from_slice(bytes).map_err(|e| format!("unreadable params: {e}"))?;
    params.validate()?;
    Ok(params)
}

impl ProvingBackend for ReferenceBackend {
    fn fatal(&self) -> Option<String> {
        self.engine.lost()
    }

    fn prepare(&self, params: &[u8], rounds: &[Round]) -> Result<(), TaskError> {
        let backend = self.backend(decode_params(params).map_err(TaskError::permanent)?);
        for &round in rounds {
            backend.circuits().prepare(round);
        }
        Ok(())
    }

    fn prove(&self, task: &Task, inputs: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, TaskError> {
        let params =
            decode_params(&task.params).map_err(|e| TaskError::permanent(format!("task {}: {e}", task.id())))?;
        let backend = self.backend(params);
        let expect_inputs = |n: std::ops::RangeInclusive<usize>| {
            if n.contains(&inputs.len()) {
                Ok(())
            } else {
                Err(TaskError::permanent(format!("task {} has {} inputs", task.id(), inputs.len())))
            }
        };
        match task.round {
            Round::Witness => {
                expect_inputs(1..=1)?;
                let text = std::str::from_utf8(&inputs[0])
                    .map_err(|_| TaskError::invalid_input("batch witness is not utf-8"))?;
                let batches = parse_batches(text).map_err(|e| TaskError::invalid_input(e.to_string()))?;
                let [batch] = batches.as_slice() else {
                    return Err(TaskError::invalid_input("a witness task takes exactly one batch"));
                };
                let executed = execute(batch, &params).map_err(|e| TaskError::invalid_input(e.to_string()))?;
                if executed.chunks.len() != task.outputs.len() {
                    return Err(TaskError::permanent(format!(
                        "batch has {} chunks but the task plans {}",
                        executed.chunks.len(),
                        task.outputs.len()
                    )));
                }
                Ok(executed.chunks.iter().map(|c| rmp_serde::to_vec(c).expect("chunks serialize")).collect())
            }
            Round::Basic => {
                expect_inputs(1..=1)?;
                let chunk = rmp_serde::from_slice(&inputs[0])
                    .map_err(|e| TaskError::invalid_input(format!("chunk witness does not decode: {e}")))?;
                Ok(vec![backend.prove_basic(&chunk)?])
            }
            Round::Aggregate => {
                expect_inputs(1..=params.arity)?;
                Ok(vec![backend.prove_aggregate(task.level as usize, &inputs)?])
            }
            Round::Final => {
                expect_inputs(1..=2)?;
                let chain_id = meta_u64(task, META_CHAIN_ID)?;
                let batch_number = meta_u64(task, META_BATCH_NUMBER)?;
                let previous = inputs.get(1).map(Vec::as_slice);
                Ok(vec![backend.prove_final(&inputs[0], chain_id, batch_number, previous)?])
            }
            Round::Compress => {
                expect_inputs(1..=1)?;
                let compressed = backend.prove_compress(&inputs[0])?;
                let file = ProofFile::new(backend.circuits(), &compressed, &inputs[0])
                    .map_err(|e| TaskError::permanent(e.to_string()))?;
                Ok(vec![serde_json::to_vec_pretty(&file).expect("proof files serialize")])
            }
        }
    }
}

//! zkfleet's reference proving backend: a rollup-style batch prover on plonky2.
//!
//! - [`batch`]: the batch witness (JSON, version 1) and its strict parser;
//! - [`state`]: accounts, leaf encoding and the sparse Merkle state tree;
//! - [`execute`]: the transaction rules and the per-chunk witnesses;
//! - [`stark`]: the `basic` round, a STARK of the transfer AIR, and its commitment seam;
//! - [`circuits`]: the `aggregate`, `final` and `compress` circuits;
//! - [`proof_file`]: the proof file a user keeps, and its verification.
//!
//! [`Backend`] is the face the fleet sees: bytes in, bytes out, one call per task.

pub mod batch;
pub mod circuits;
pub mod cli;
pub mod execute;
pub mod fleet;
pub mod hash;
pub mod params;
pub mod proof_file;
pub mod stark;
pub mod state;

use std::sync::Arc;

use plonky2::field::goldilocks_field::GoldilocksField;
use plonky2::plonk::circuit_data::CommonCircuitData;
use plonky2::plonk::config::PoseidonGoldilocksConfig;
use plonky2::plonk::proof::ProofWithPublicInputs;

use circuits::aggregate::ChildProofs;
pub use circuits::cache::{CircuitCache, StoreCache};
pub use circuits::CircuitSet;
pub use params::Params;
pub use stark::{CommitmentEngine, CpuEngine, StarkProof};

pub const D: usize = 2;
pub type C = PoseidonGoldilocksConfig;
pub type F = GoldilocksField;
pub type Proof = ProofWithPublicInputs<F, C, D>;

/// Why the backend could not produce a proof.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// The inputs are not what this round takes: a corrupt or foreign artifact, or a chain link
    /// that does not hold. Retrying cannot help.
    #[error("{0}")]
    InvalidInput(String),
    /// The prover itself failed (for example plonky2's rare permutation-argument failure).
    #[error("proving failed: {0}")]
    Failed(String),
    /// The commitment engine cannot prove now (its device is out of memory or lost); another
    /// attempt, here or on another worker, may.
    #[error("{0}")]
    Unavailable(String),
}

fn decode(bytes: &[u8], common: &CommonCircuitData<F, D>, what: &str) -> Result<Proof, ProveError> {
    Proof::from_bytes(bytes.to_vec(), common)
        .map_err(|e| ProveError::InvalidInput(format!("{what} is not a proof of the expected circuit: {e}")))
}

fn failed(e: anyhow::Error) -> ProveError {
    ProveError::Failed(format!("{e:#}"))
}

/// The proving backend for one parameter set. Cheap to create: circuits are loaded or built on
/// first use.
pub struct Backend {
    circuits: CircuitSet,
    /// Commits to `basic` traces: the CPU, or an accelerator where the worker has one.
    engine: Arc<dyn CommitmentEngine>,
}

impl Backend {
    pub fn new(params: Params) -> Self {
        Self::with_cache(params, None)
    }

    pub fn with_cache(params: Params, cache: Option<Arc<dyn CircuitCache>>) -> Self {
        Self { circuits: CircuitSet::with_cache(params, cache), engine: Arc::new(CpuEngine) }
    }

    /// The backend with `engine` committing to `basic` traces instead of the CPU.
    pub fn with_engine(mut self, engine: Arc<dyn CommitmentEngine>) -> Self {
        self.engine = engine;
        self
    }

    /// The name of the engine that commits to `basic` traces, for logs and metrics.
    pub fn engine_name(&self) -> &str {
        self.engine.name()
    }

    /// Why the engine can no longer prove in this process, once it cannot.
    pub fn engine_lost(&self) -> Option<String> {
        self.engine.lost()
    }

    pub fn params(&self) -> &Params {
        self.circuits.params()
    }

    pub fn circuits(&self) -> &CircuitSet {
        &self.circuits
    }

    pub fn prove_basic(&self, chunk: &execute::ChunkWitness) -> Result<Vec<u8>, ProveError> {
        if chunk.txs.len() > self.params().chunk_size {
            return Err(ProveError::InvalidInput(format!(
                "chunk at transaction {} has {} transactions, more than the chunk size {}",
                chunk.first_tx,
                chunk.txs.len(),
                self.params().chunk_size
            )));
        }
        let stark = self.circuits.basic_stark();
        let trace = stark.generate_trace(chunk, self.circuits.basic_rows()).map_err(failed)?;
        // A witness that breaks a constraint would give a proof that does not verify (and trips
        // starky's own check in debug builds): refuse it first, naming the transaction.
        if let Some(row) = stark::transfer::first_failing_row(&stark, &trace) {
            let k = row / stark::transfer::rows_per_transfer(self.params().tree_depth);
            return Err(ProveError::InvalidInput(match chunk.txs.get(k) {
                Some(_) => format!(
                    "transaction {} breaks the transfer constraints (basic trace row {row})",
                    chunk.first_tx + k
                ),
                None => format!(
                    "chunk at transaction {} breaks the transfer constraints at padding row {row}",
                    chunk.first_tx
                ),
            }));
        }
        let proof = stark::prove(&stark, &trace, self.engine.as_ref()).map_err(|e| {
            match e.downcast::<stark::Unavailable>() {
                Ok(stark::Unavailable(why)) => ProveError::Unavailable(why),
                Err(e) => failed(e),
            }
        })?;
        Ok(rmp_serde::to_vec(&proof).expect("a STARK proof serializes"))
    }

    /// Decodes and verifies one `basic` proof, so that a foreign or forged child is refused with
    /// its index before the aggregate circuit spends seconds on it.
    fn decode_basic(&self, bytes: &[u8], i: usize) -> Result<StarkProof, ProveError> {
        let proof: StarkProof = rmp_serde::from_slice(bytes)
            .map_err(|e| ProveError::InvalidInput(format!("child {i} is not a basic STARK proof: {e}")))?;
        let stark = self.circuits.basic_stark();
        let config = stark::config();
        let rows = self.circuits.basic_rows();
        if proof.public_inputs.len() != circuits::CHUNK_PUBLIC_LEN
            || proof.proof.recover_degree_bits(&config) != rows.trailing_zeros() as usize
        {
            return Err(ProveError::InvalidInput(format!(
                "child {i} is not a basic proof of these parameters (trace of {rows} rows)"
            )));
        }
        stark::verify(&stark, &proof)
            .map_err(|e| ProveError::InvalidInput(format!("child {i} does not verify: {e:#}")))?;
        Ok(proof)
    }

    /// Proves an aggregate of `level` (1-based) over its children's proofs, in chunk order.
    pub fn prove_aggregate(&self, level: usize, children: &[Vec<u8>]) -> Result<Vec<u8>, ProveError> {
        if !(1..=self.params().levels).contains(&level) {
            return Err(ProveError::InvalidInput(format!("aggregate level {level} does not exist")));
        }
        let circuit = self.circuits.aggregate(level);
        if children.is_empty() || children.len() > circuit.arity() {
            return Err(ProveError::InvalidInput(format!(
                "an aggregate takes 1 to {} children, got {}",
                circuit.arity(),
                children.len()
            )));
        }
        let invalid_run =
            |e: anyhow::Error| ProveError::InvalidInput(format!("children do not form a valid run of chunks: {e:#}"));
        let proof = if level == 1 {
            let children = children
                .iter()
                .enumerate()
                .map(|(i, bytes)| self.decode_basic(bytes, i))
                .collect::<Result<Vec<_>, _>>()?;
            circuit.prove(ChildProofs::Basic(&children)).map_err(invalid_run)?
        } else {
            let child_common = &self.circuits.aggregate(level - 1).data.common;
            let children = children
                .iter()
                .enumerate()
                .map(|(i, bytes)| decode(bytes, child_common, &format!("child {i}")))
                .collect::<Result<Vec<_>, _>>()?;
            circuit.prove(ChildProofs::Aggregate(&children)).map_err(invalid_run)?
        };
        Ok(proof.to_bytes())
    }

    pub fn prove_final(
        &self,
        top: &[u8],
        chain_id: u64,
        batch_number: u64,
        previous_final: Option<&[u8]>,
    ) -> Result<Vec<u8>, ProveError> {
        let fin = self.circuits.final_circuit();
        let top = decode(top, &self.circuits.aggregate(self.params().levels).data.common, "top aggregate")?;
        let previous = previous_final
            .map(|bytes| {
                let p = decode(bytes, &fin.data.common, "previous final proof")?;
                fin.verify(&p)
                    .map_err(|e| ProveError::InvalidInput(format!("previous final proof does not verify: {e:#}")))?;
                Ok::<_, ProveError>(p)
            })
            .transpose()?;
        let proof = fin.prove(&top, chain_id, batch_number, previous.as_ref()).map_err(failed)?;
        Ok(proof.to_bytes())
    }

    pub fn prove_compress(&self, final_proof: &[u8]) -> Result<Vec<u8>, ProveError> {
        let fin = decode(final_proof, &self.circuits.final_circuit().data.common, "final proof")?;
        let proof = self.circuits.compress().prove(&fin).map_err(failed)?;
        Ok(proof.to_bytes())
    }
}

//! The `basic` round as a STARK (starky): one chunk of transfers proved by an AIR whose rows are
//! Poseidon permutations ([`transfer`]), its trace committed by a [`CommitmentEngine`], verified
//! natively here and recursively by level 1 of the aggregate round.
//!
//! Security: blowup 2 (rate bits 1, constraint degree 3), 84 FRI queries and 16 bits of proof of
//! work give 84·1 + 16 = 100 bits of conjectured security, with two challenges in the quadratic
//! extension for the constraint combination and the lookups (starky's `standard_fast_config`).

pub mod algebra;
pub mod engine;
pub mod gpu;
pub mod poseidon;
pub mod transfer;

use plonky2::iop::challenger::Challenger;
use plonky2::util::timing::TimingTree;
use starky::config::StarkConfig;
use starky::proof::StarkProofWithPublicInputs;

pub use engine::{CommitmentEngine, CpuEngine, Unavailable};
pub use transfer::{Trace, TransferStark};

use crate::{C, D, F};

pub type StarkProof = StarkProofWithPublicInputs<F, C, D>;

/// The proof parameters of the `basic` STARK (see the module doc for their security).
pub fn config() -> StarkConfig {
    StarkConfig::standard_fast_config()
}

/// Proves `trace` with the trace commitment from `engine`: the same proof as
/// `starky::prover::prove`, which computes the commitment itself.
pub fn prove(stark: &TransferStark, trace: &Trace, engine: &dyn CommitmentEngine) -> anyhow::Result<StarkProof> {
    prove_timed(stark, trace, engine, &mut TimingTree::default())
}

/// [`prove`], recording plonky2's and starky's timing scopes in `timing` (they are only kept
/// when plonky2's `timing` feature is on: the prover's `profile` feature).
pub fn prove_timed(
    stark: &TransferStark,
    trace: &Trace,
    engine: &dyn CommitmentEngine,
    timing: &mut TimingTree,
) -> anyhow::Result<StarkProof> {
    let config = config();
    let fri = &config.fri_config;
    timing.push("trace commitment", log::Level::Debug);
    let commitment = engine.commit(&trace.columns, fri.rate_bits, fri.cap_height, timing);
    timing.pop();
    let commitment = commitment?;
    let mut challenger = Challenger::new();
    challenger.observe_elements(&trace.public_inputs);
    config.observe(&mut challenger);
    challenger.observe_cap(&commitment.merkle_tree.cap);
    starky::prover::prove_with_commitment(
        stark,
        &config,
        &trace.columns,
        &commitment,
        None,
        None,
        &mut challenger,
        &trace.public_inputs,
        None,
        None,
        timing,
    )
}

/// Verifies a `basic` STARK proof natively.
pub fn verify(stark: &TransferStark, proof: &StarkProof) -> anyhow::Result<()> {
    starky::verifier::verify_stark_proof(*stark, proof.clone(), &config(), None)
}

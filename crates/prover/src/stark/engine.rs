//! The commitment seam: the one step of a STARK proof that an engine other than the CPU may do.
//!
//! The trace commitment (low-degree extension of every column, leaf hashing, Merkle tree) is the
//! bulk of a `basic` proof's work and the part a GPU does well. starky's `prove_with_commitment`
//! takes it from the caller, so the prover asks a [`CommitmentEngine`] for it and knows nothing
//! else about the engine. An engine must return exactly what the CPU engine returns: the proof
//! then verifies the same way whichever engine ran.

use plonky2::field::polynomial::PolynomialValues;
use plonky2::field::types::Field;
use plonky2::fri::oracle::PolynomialBatch;
use plonky2::timed;
use plonky2::util::timing::TimingTree;
use plonky2::util::{log2_strict, reverse_index_bits_in_place, transpose};
use rayon::prelude::*;

use crate::{C, D, F};

/// Turns trace columns into the trace commitment.
pub trait CommitmentEngine: Send + Sync {
    /// For logs and metrics: `cpu`, `cuda`.
    fn name(&self) -> &'static str;

    /// The commitment to `columns` (each one a column of the trace, in row order), extended by
    /// `2^rate_bits`, with a Merkle cap of `2^cap_height` digests: what
    /// `PolynomialBatch::from_values(columns, rate_bits, false, cap_height, ..)` returns.
    fn commit(
        &self,
        columns: &[PolynomialValues<F>],
        rate_bits: usize,
        cap_height: usize,
        timing: &mut TimingTree,
    ) -> anyhow::Result<PolynomialBatch<F, C, D>>;

    /// Why the engine can no longer commit in this process (its device was lost), once it
    /// cannot. The CPU never gives up.
    fn lost(&self) -> Option<String> {
        None
    }
}

/// A commitment an engine could not make now, that another attempt may: its device is out of
/// memory, or lost (and then [`CommitmentEngine::lost`] says so). Returned inside the
/// `anyhow::Error` of [`CommitmentEngine::commit`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// plonky2's commitment on the CPU's threads: `PolynomialBatch::from_values`, step for step,
/// with the leaves hashed by [`crate::hash::merkle_tree`] (eight at a time on AVX-512).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuEngine;

impl CommitmentEngine for CpuEngine {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn commit(
        &self,
        columns: &[PolynomialValues<F>],
        rate_bits: usize,
        cap_height: usize,
        timing: &mut TimingTree,
    ) -> anyhow::Result<PolynomialBatch<F, C, D>> {
        // The steps and timing scopes of `PolynomialBatch::from_values`, without blinding.
        let polynomials = timed!(timing, "IFFT", columns.par_iter().map(|v| v.clone().ifft()).collect::<Vec<_>>());
        let lde = timed!(
            timing,
            "FFT + blinding",
            polynomials
                .par_iter()
                .map(|p| p.lde(rate_bits).coset_fft_with_options(F::coset_shift(), Some(rate_bits), None).values)
                .collect::<Vec<_>>()
        );
        let mut leaves = timed!(timing, "transpose LDEs", transpose(&lde));
        drop(lde);
        reverse_index_bits_in_place(&mut leaves);
        let merkle_tree = timed!(timing, "build Merkle tree", crate::hash::merkle_tree(leaves, cap_height));
        let degree_log = log2_strict(polynomials[0].len());
        Ok(PolynomialBatch { polynomials, merkle_tree, degree_log, rate_bits, blinding: false })
    }
}

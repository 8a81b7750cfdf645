//! The GPU commitment engine's plan: the steps of a trace commitment, the tables they read and
//! how their results become a [`PolynomialBatch`] equal to the CPU engine's.
//!
//! The steps are the kernels of `crates/prover/cuda/commit.cu` (their arithmetic, in
//! `commit.cuh`, `poseidon.cuh` and `goldilocks.cuh`, is shared with a host build). Both the CUDA
//! engine ([`cuda`], feature `cuda`) and [`HostKernels`] run the same [`Plan::steps`] in the same
//! order: the host run is how the kernels' logic is tested bit for bit against plonky2 on machines
//! without a GPU (`crates/prover/tests/gpu.rs`). What the host run cannot test is the launch
//! itself (grid sizes, copies).

#[cfg(feature = "cuda")]
pub mod cuda;
pub mod host;

use plonky2::field::polynomial::{PolynomialCoeffs, PolynomialValues};
use plonky2::field::types::{Field, PrimeField64};
use plonky2::fri::oracle::PolynomialBatch;
use plonky2::hash::hash_types::HashOut;
use plonky2::hash::merkle_tree::{MerkleCap, MerkleTree};
use plonky2::plonk::config::GenericConfig;

pub use host::HostKernels;

use crate::{C, D, F};

/// Words in a digest.
pub const DIGEST: usize = 4;

/// The shape of one commitment: `ncols` columns of `2^log_n` values, extended to `2^log_lde`
/// rows, with a cap of `2^cap_height` digests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub ncols: usize,
    pub log_n: u32,
    pub log_lde: u32,
    pub cap_height: u32,
    /// Tree levels under the cap: `log_lde - cap_height`.
    pub layers: u32,
}

/// Which buffer a step reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buffer {
    /// The trace values, column after column (input).
    Values,
    /// The coefficients, column after column (output).
    Coeffs,
    /// The extended columns.
    Lde,
    /// The extended rows: the leaves (output).
    Rows,
    /// The digests under the cap (output).
    Digests,
    /// The cap (output).
    Cap,
    /// `w^-k` for the root `w` of order `2^log_n`, `k < 2^(log_n - 1)`.
    InverseTwiddles,
    /// `w^k` for the root `w` of order `2^log_lde`, `k < 2^(log_lde - 1)`.
    Twiddles,
    /// The coset shift's powers, `2^log_n` of them.
    ShiftPowers,
}

/// One kernel launch: `count` threads, one per index of the step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `Values` into `Coeffs` in bit-reversed order within each column.
    BitReverse { log_n: u32 },
    /// One decimation-in-time stage of the inverse NTT on `Coeffs`.
    Dit { log_n: u32, log_m: u32 },
    /// `Coeffs` times `1 / 2^log_n`.
    Scale { factor: u64 },
    /// `Coeffs` times the shift's powers, zero-padded, into `Lde`.
    Expand { log_n: u32, log_lde: u32 },
    /// One decimation-in-frequency stage of the forward NTT on `Lde`.
    Dif { log_n: u32, log_m: u32 },
    /// The leaf hashes, from `Lde` into `Digests` (or `Cap`).
    Leaf { ncols: u32, log_lde: u32, layers: u32 },
    /// One level of the tree, in `Digests` (the top one into `Cap`).
    Node { layers: u32, level: u32 },
    /// `Lde` into `Rows`.
    Transpose { ncols: u32, log_lde: u32 },
}

/// The stage a step belongs to, for timings: `ntt`, `hash`, `transpose`.
impl Step {
    pub fn stage(&self) -> &'static str {
        match self {
            Step::BitReverse { .. }
            | Step::Dit { .. }
            | Step::Scale { .. }
            | Step::Expand { .. }
            | Step::Dif { .. } => "lde",
            Step::Leaf { .. } | Step::Node { .. } => "merkle",
            Step::Transpose { .. } => "transpose",
        }
    }
}

/// The constant tables the steps read, computed on the host with plonky2's field.
pub struct Tables {
    pub inverse_twiddles: Vec<u64>,
    pub twiddles: Vec<u64>,
    pub shift_powers: Vec<u64>,
}

impl Plan {
    /// The plan for `columns` (all of one power-of-two length), as the CPU engine would commit them.
    pub fn new(columns: &[PolynomialValues<F>], rate_bits: usize, cap_height: usize) -> anyhow::Result<Plan> {
        let n = columns.first().map(|c| c.len()).ok_or_else(|| anyhow::anyhow!("no columns to commit to"))?;
        anyhow::ensure!(n.is_power_of_two() && n >= 2, "columns of {n} values: not a power of two of at least 2");
        anyhow::ensure!(columns.iter().all(|c| c.len() == n), "columns of different lengths");
        let log_n = n.trailing_zeros();
        let log_lde = log_n + rate_bits as u32;
        anyhow::ensure!(cap_height as u32 <= log_lde, "cap height {cap_height} above the tree's {log_lde} levels");
        anyhow::ensure!(columns.len() < u32::MAX as usize, "too many columns");
        Ok(Plan {
            ncols: columns.len(),
            log_n,
            log_lde,
            cap_height: cap_height as u32,
            layers: log_lde - cap_height as u32,
        })
    }

    /// Words in each buffer.
    pub fn len(&self, buffer: Buffer) -> usize {
        let (n, lde) = (1usize << self.log_n, 1usize << self.log_lde);
        match buffer {
            Buffer::Values | Buffer::Coeffs => self.ncols * n,
            Buffer::Lde | Buffer::Rows => self.ncols * lde,
            Buffer::Digests => DIGEST * 2 * (lde - (1 << self.cap_height)),
            Buffer::Cap => DIGEST << self.cap_height,
            Buffer::InverseTwiddles => n / 2,
            Buffer::Twiddles => lde / 2,
            Buffer::ShiftPowers => n,
        }
    }

    /// Device memory the commitment holds at its peak, in bytes.
    pub fn device_bytes(&self) -> u64 {
        use Buffer::*;
        let words: usize = [Values, Coeffs, Lde, Rows, Digests, Cap, InverseTwiddles, Twiddles, ShiftPowers]
            .iter()
            .map(|b| self.len(*b))
            .sum();
        8 * words as u64
    }

    pub fn tables(&self) -> Tables {
        let powers =
            |base: F, count: usize| base.powers().take(count).map(|x| x.to_canonical_u64()).collect::<Vec<u64>>();
        Tables {
            inverse_twiddles: powers(F::primitive_root_of_unity(self.log_n as usize).inverse(), 1 << (self.log_n - 1)),
            twiddles: powers(F::primitive_root_of_unity(self.log_lde as usize), 1 << (self.log_lde - 1)),
            shift_powers: powers(F::coset_shift(), 1 << self.log_n),
        }
    }

    /// The launches, in order.
    pub fn steps(&self) -> Vec<Step> {
        let (log_n, log_lde) = (self.log_n, self.log_lde);
        let mut steps = vec![Step::BitReverse { log_n }];
        steps.extend((0..log_n).map(|log_m| Step::Dit { log_n, log_m }));
        steps.push(Step::Scale { factor: F::from_canonical_u64(1 << log_n).inverse().to_canonical_u64() });
        steps.push(Step::Expand { log_n, log_lde });
        steps.extend((0..log_lde).rev().map(|log_m| Step::Dif { log_n: log_lde, log_m }));
        steps.push(Step::Leaf { ncols: self.ncols as u32, log_lde, layers: self.layers });
        steps.extend((1..=self.layers).map(|level| Step::Node { layers: self.layers, level }));
        steps.push(Step::Transpose { ncols: self.ncols as u32, log_lde });
        steps
    }

    /// Threads of `step`.
    pub fn count(&self, step: &Step) -> u64 {
        match *step {
            Step::BitReverse { .. } | Step::Scale { .. } => self.len(Buffer::Values) as u64,
            Step::Dit { .. } => self.len(Buffer::Values) as u64 / 2,
            Step::Expand { .. } | Step::Transpose { .. } => self.len(Buffer::Lde) as u64,
            Step::Dif { .. } => self.len(Buffer::Lde) as u64 / 2,
            Step::Leaf { .. } => 1 << self.log_lde,
            Step::Node { layers, level } => (1u64 << self.cap_height) << (layers - level),
        }
    }

    /// The trace values as one buffer, column after column.
    pub fn values(&self, columns: &[PolynomialValues<F>]) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.len(Buffer::Values));
        for column in columns {
            out.extend(column.values.iter().map(|x| x.to_canonical_u64()));
        }
        out
    }

    /// The commitment from the steps' outputs.
    pub fn assemble(
        &self,
        coeffs: &[u64],
        rows: &[u64],
        digests: &[u64],
        cap: &[u64],
        rate_bits: usize,
    ) -> PolynomialBatch<F, C, D> {
        let field = |words: &[u64]| words.iter().map(|&x| F::from_canonical_u64(x)).collect::<Vec<F>>();
        let hashes = |words: &[u64]| {
            words
                .chunks_exact(DIGEST)
                .map(|h| HashOut { elements: [h[0], h[1], h[2], h[3]].map(F::from_canonical_u64) })
                .collect::<Vec<_>>()
        };
        let n = 1usize << self.log_n;
        PolynomialBatch {
            polynomials: coeffs.chunks_exact(n).map(|c| PolynomialCoeffs::new(field(c))).collect(),
            merkle_tree: MerkleTree::<F, <C as GenericConfig<D>>::Hasher> {
                leaves: rows.chunks_exact(self.ncols).map(field).collect(),
                digests: hashes(digests),
                cap: MerkleCap(hashes(cap)),
            },
            degree_log: self.log_n as usize,
            rate_bits,
            blinding: false,
        }
    }
}

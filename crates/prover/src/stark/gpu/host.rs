//! The kernels' host build (`crates/prover/cuda/host.cpp`, compiled by `build.rs`): the same
//! steps as the CUDA kernels, run as loops on one CPU core.

use plonky2::field::polynomial::PolynomialValues;
use plonky2::fri::oracle::PolynomialBatch;
use plonky2::util::timing::TimingTree;

use super::{Buffer, Plan, Step};
use crate::stark::CommitmentEngine;
use crate::{C, D, F};

mod ffi {
    extern "C" {
        pub fn zk_gl_add_host(a: u64, b: u64) -> u64;
        pub fn zk_gl_sub_host(a: u64, b: u64) -> u64;
        pub fn zk_gl_mul_host(a: u64, b: u64) -> u64;
        pub fn zk_poseidon_host(state: *mut u64);
        pub fn zk_bit_reverse_host(src: *const u64, dst: *mut u64, log_n: u32, count: u64);
        pub fn zk_dit_host(a: *mut u64, log_n: u32, log_m: u32, twiddles: *const u64, count: u64);
        pub fn zk_dif_host(a: *mut u64, log_n: u32, log_m: u32, twiddles: *const u64, count: u64);
        pub fn zk_scale_host(a: *mut u64, factor: u64, count: u64);
        pub fn zk_expand_host(
            coeffs: *const u64,
            lde: *mut u64,
            log_n: u32,
            log_lde: u32,
            shift_powers: *const u64,
            count: u64,
        );
        pub fn zk_leaf_host(
            lde: *const u64,
            ncols: u32,
            log_lde: u32,
            layers: u32,
            digests: *mut u64,
            cap: *mut u64,
            count: u64,
        );
        pub fn zk_node_host(digests: *mut u64, cap: *mut u64, layers: u32, level: u32, count: u64);
        pub fn zk_transpose_host(lde: *const u64, rows: *mut u64, ncols: u32, log_lde: u32, count: u64);
    }
}

/// Goldilocks addition as the kernels compute it (canonical in and out).
pub fn gl_add(a: u64, b: u64) -> u64 {
    unsafe { ffi::zk_gl_add_host(a, b) }
}

pub fn gl_sub(a: u64, b: u64) -> u64 {
    unsafe { ffi::zk_gl_sub_host(a, b) }
}

pub fn gl_mul(a: u64, b: u64) -> u64 {
    unsafe { ffi::zk_gl_mul_host(a, b) }
}

/// The Poseidon permutation as the kernels compute it.
pub fn poseidon(mut state: [u64; 12]) -> [u64; 12] {
    unsafe { ffi::zk_poseidon_host(state.as_mut_ptr()) };
    state
}

/// A commitment engine that runs the CUDA engine's steps on the CPU, one core, scalar: the
/// reference the kernels' logic is tested against plonky2 with. Not for production use.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostKernels;

/// The buffers of one host run.
struct Buffers {
    values: Vec<u64>,
    coeffs: Vec<u64>,
    lde: Vec<u64>,
    rows: Vec<u64>,
    digests: Vec<u64>,
    cap: Vec<u64>,
}

impl CommitmentEngine for HostKernels {
    fn name(&self) -> &'static str {
        "host-kernels"
    }

    fn commit(
        &self,
        columns: &[PolynomialValues<F>],
        rate_bits: usize,
        cap_height: usize,
        _timing: &mut TimingTree,
    ) -> anyhow::Result<PolynomialBatch<F, C, D>> {
        let plan = Plan::new(columns, rate_bits, cap_height)?;
        let tables = plan.tables();
        let mut b = Buffers {
            values: plan.values(columns),
            coeffs: vec![0; plan.len(Buffer::Coeffs)],
            lde: vec![0; plan.len(Buffer::Lde)],
            rows: vec![0; plan.len(Buffer::Rows)],
            digests: vec![0; plan.len(Buffer::Digests)],
            cap: vec![0; plan.len(Buffer::Cap)],
        };
        for step in plan.steps() {
            let count = plan.count(&step);
            // SAFETY: every buffer has the length the plan gives it, which is what the step's
            // indices stay within (the same bounds the kernels rely on).
            unsafe {
                match step {
                    Step::BitReverse { log_n } => {
                        ffi::zk_bit_reverse_host(b.values.as_ptr(), b.coeffs.as_mut_ptr(), log_n, count)
                    }
                    Step::Dit { log_n, log_m } => {
                        ffi::zk_dit_host(b.coeffs.as_mut_ptr(), log_n, log_m, tables.inverse_twiddles.as_ptr(), count)
                    }
                    Step::Scale { factor } => ffi::zk_scale_host(b.coeffs.as_mut_ptr(), factor, count),
                    Step::Expand { log_n, log_lde } => ffi::zk_expand_host(
                        b.coeffs.as_ptr(),
                        b.lde.as_mut_ptr(),
                        log_n,
                        log_lde,
                        tables.shift_powers.as_ptr(),
                        count,
                    ),
                    Step::Dif { log_n, log_m } => {
                        ffi::zk_dif_host(b.lde.as_mut_ptr(), log_n, log_m, tables.twiddles.as_ptr(), count)
                    }
                    Step::Leaf { ncols, log_lde, layers } => ffi::zk_leaf_host(
                        b.lde.as_ptr(),
                        ncols,
                        log_lde,
                        layers,
                        b.digests.as_mut_ptr(),
                        b.cap.as_mut_ptr(),
                        count,
                    ),
                    Step::Node { layers, level } => {
                        ffi::zk_node_host(b.digests.as_mut_ptr(), b.cap.as_mut_ptr(), layers, level, count)
                    }
                    Step::Transpose { ncols, log_lde } => {
                        ffi::zk_transpose_host(b.lde.as_ptr(), b.rows.as_mut_ptr(), ncols, log_lde, count)
                    }
                }
            }
        }
        Ok(plan.assemble(&b.coeffs, &b.rows, &b.digests, &b.cap, rate_bits))
    }
}

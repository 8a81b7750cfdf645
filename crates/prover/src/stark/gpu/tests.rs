//! The kernels' arithmetic and steps, run by their host build, against plonky2 bit for bit.

use plonky2::field::polynomial::PolynomialValues;
use plonky2::field::types::{Field, Field64, PrimeField64, Sample};
use plonky2::hash::poseidon::{Poseidon, ALL_ROUND_CONSTANTS, N_ROUNDS};
use plonky2::util::timing::TimingTree;
use rand::{Rng, SeedableRng};

use super::host::{self, HostKernels};
use crate::stark::{CommitmentEngine, CpuEngine};
use crate::F;

const HEADER: &str = "cuda/poseidon_constants.cuh";

/// The constants header as plonky2's constants give it.
fn constants_header() -> String {
    let list = |values: &[u64], per_line: usize| {
        values
            .chunks(per_line)
            .map(|line| line.iter().map(|v| format!("0x{v:016x}ULL")).collect::<Vec<_>>().join(", "))
            .collect::<Vec<_>>()
            .join(", \\\n    ")
    };
    let rc = &ALL_ROUND_CONSTANTS[..12 * N_ROUNDS];
    format!(
        "// Generated from plonky2's Poseidon constants for Goldilocks by the prover's test\n\
         // `the_constants_header_is_plonky2s` (ZKFLEET_BLESS=1 rewrites it). Do not edit.\n\
         #pragma once\n\n\
         #define ZK_POSEIDON_ROUND_CONSTANTS {{ \\\n    {} }}\n\n\
         #define ZK_POSEIDON_MDS_CIRC {{ {} }}\n\n\
         #define ZK_POSEIDON_MDS_DIAG {{ {} }}\n",
        list(rc, 4),
        list(&<F as Poseidon>::MDS_MATRIX_CIRC, 12),
        list(&<F as Poseidon>::MDS_MATRIX_DIAG, 12),
    )
}

#[test]
fn the_constants_header_is_plonky2s() {
    assert!(ALL_ROUND_CONSTANTS.iter().all(|&c| c < F::ORDER), "round constants are canonical");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(HEADER);
    let want = constants_header();
    if std::env::var_os("ZKFLEET_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(have == want, "{HEADER} differs from plonky2's constants: rerun this test with ZKFLEET_BLESS=1");
}

fn rng() -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(0x002f_1ee7)
}

/// Canonical values, with the edges of the field and of its 32-bit halves well represented.
fn element(rng: &mut impl Rng) -> u64 {
    const EDGES: [u64; 8] = [0, 1, 2, F::ORDER - 1, F::ORDER - 2, 1 << 32, (1 << 32) - 1, F::ORDER >> 1];
    if rng.gen_ratio(1, 4) {
        EDGES[rng.gen_range(0..EDGES.len())]
    } else {
        rng.gen_range(0..F::ORDER)
    }
}

#[test]
fn field_arithmetic_is_plonky2s() {
    let mut rng = rng();
    for _ in 0..1_000_000 {
        let (a, b) = (element(&mut rng), element(&mut rng));
        let (fa, fb) = (F::from_canonical_u64(a), F::from_canonical_u64(b));
        assert_eq!(host::gl_add(a, b), (fa + fb).to_canonical_u64(), "{a} + {b}");
        assert_eq!(host::gl_sub(a, b), (fa - fb).to_canonical_u64(), "{a} - {b}");
        assert_eq!(host::gl_mul(a, b), (fa * fb).to_canonical_u64(), "{a} * {b}");
    }
}

#[test]
fn the_permutation_is_plonky2s() {
    let mut rng = rng();
    let mut states: Vec<[u64; 12]> = vec![[0; 12], [F::ORDER - 1; 12]];
    states.extend((0..200_000).map(|_| std::array::from_fn(|_| element(&mut rng))));
    for state in states {
        let theirs = F::poseidon(state.map(F::from_canonical_u64)).map(|x| x.to_canonical_u64());
        assert_eq!(host::poseidon(state), theirs, "permutation of {state:?}");
    }
}

/// `ncols` random columns of `2^log_n` values.
fn columns(ncols: usize, log_n: usize) -> Vec<PolynomialValues<F>> {
    (0..ncols).map(|_| PolynomialValues::new(F::rand_vec(1 << log_n))).collect()
}

#[test]
fn the_host_kernels_commit_as_the_cpu_engine_does() {
    // Leaves of one element and of four (not hashed), of five (one permutation, partly
    // overwritten), of 8 and 17 (several); the cap as wide as the leaves, a single root, between.
    for (ncols, log_n, rate_bits, cap_height) in
        [(1, 1, 1, 0), (4, 3, 1, 4), (5, 4, 2, 2), (8, 5, 1, 0), (17, 10, 1, 4), (13, 6, 3, 9), (41, 8, 1, 3)]
    {
        let columns = columns(ncols, log_n);
        let mut timing = TimingTree::default();
        let theirs = CpuEngine.commit(&columns, rate_bits, cap_height, &mut timing).unwrap();
        let ours = HostKernels.commit(&columns, rate_bits, cap_height, &mut timing).unwrap();
        let what = format!("{ncols} columns of 2^{log_n}, rate bits {rate_bits}, cap height {cap_height}");
        assert_eq!(ours.polynomials, theirs.polynomials, "coefficients, {what}");
        assert_eq!(ours.merkle_tree.leaves, theirs.merkle_tree.leaves, "leaves, {what}");
        assert_eq!(ours.merkle_tree.digests, theirs.merkle_tree.digests, "digests, {what}");
        assert_eq!(ours.merkle_tree.cap, theirs.merkle_tree.cap, "cap, {what}");
        assert_eq!((ours.degree_log, ours.rate_bits, ours.blinding), (theirs.degree_log, rate_bits, false), "{what}");
    }
}

#[test]
fn a_plan_refuses_what_it_cannot_commit() {
    let mut timing = TimingTree::default();
    // `PolynomialValues::new` would refuse it; the fields are public, so an engine may meet one.
    let odd = vec![PolynomialValues { values: F::rand_vec(6) }];
    let e = HostKernels.commit(&odd, 1, 0, &mut timing).unwrap_err();
    assert!(e.to_string().contains("not a power of two"), "{e}");
    let e = HostKernels.commit(&columns(2, 2), 1, 4, &mut timing).unwrap_err();
    assert!(e.to_string().contains("cap height 4"), "{e}");
    let e = HostKernels.commit(&[], 1, 0, &mut timing).unwrap_err();
    assert!(e.to_string().contains("no columns"), "{e}");
}

/// The CUDA engine on the first device, or `None` after printing `skipped: no CUDA device` (a
/// failure instead with `ZKFLEET_REQUIRE_GPU=1`, as on the GPU check's machine).
#[cfg(feature = "cuda")]
pub fn device_or_skip(test: &str) -> Option<super::cuda::CudaEngine> {
    match super::cuda::CudaEngine::new(0, None) {
        Ok(engine) => Some(engine),
        Err(e) if std::env::var("ZKFLEET_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("{test}: ZKFLEET_REQUIRE_GPU=1 but {e}")
        }
        Err(e) => {
            println!("{test}: skipped: no CUDA device ({e})");
            None
        }
    }
}

#[cfg(feature = "cuda")]
#[test]
fn the_cuda_engine_commits_as_the_cpu_engine_does() {
    let Some(engine) = device_or_skip("the_cuda_engine_commits_as_the_cpu_engine_does") else { return };
    println!("device: {}", engine.info());
    for (ncols, log_n, rate_bits, cap_height) in
        [(1, 1, 1, 0), (4, 3, 1, 4), (5, 4, 2, 2), (8, 5, 1, 0), (17, 10, 1, 4), (13, 6, 3, 9), (641, 12, 1, 4)]
    {
        let columns = columns(ncols, log_n);
        let mut timing = TimingTree::default();
        let theirs = CpuEngine.commit(&columns, rate_bits, cap_height, &mut timing).unwrap();
        let ours = engine.commit(&columns, rate_bits, cap_height, &mut timing).unwrap();
        let what = format!("{ncols} columns of 2^{log_n}, rate bits {rate_bits}, cap height {cap_height}");
        assert_eq!(ours.polynomials, theirs.polynomials, "coefficients, {what}");
        assert_eq!(ours.merkle_tree, theirs.merkle_tree, "tree, {what}");
    }
}

#[cfg(feature = "cuda")]
#[test]
fn the_cuda_engine_refuses_a_commitment_above_its_memory_limit() {
    let Some(_) = device_or_skip("the_cuda_engine_refuses_a_commitment_above_its_memory_limit") else { return };
    let engine = super::cuda::CudaEngine::new(0, Some(1 << 20)).unwrap();
    let e = engine.commit(&columns(64, 12), 1, 4, &mut TimingTree::default()).unwrap_err();
    assert!(e.to_string().contains("more than the 1 MiB allowed"), "{e}");
    assert_eq!(engine.lost(), None, "a refused commitment leaves the device usable");
}

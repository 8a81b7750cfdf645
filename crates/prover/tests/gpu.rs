//! The GPU commitment engine's kernels, run by their host build, against plonky2 bit for bit: the
//! field, the permutation, whole commitments and a basic proof; with the `cuda` feature the same
//! on a device, or `skipped: no CUDA device` without one (a failure with ZKFLEET_REQUIRE_GPU=1).
//! An integration test, so that CI's `cuda` run builds the prover library once for this and the
//! worker's tests.

use plonky2::field::polynomial::PolynomialValues;
use plonky2::field::types::{Field, Field64, PrimeField64, Sample};
use plonky2::fri::oracle::PolynomialBatch;
use plonky2::hash::poseidon::{Poseidon, ALL_ROUND_CONSTANTS, N_ROUNDS};
use plonky2::util::timing::TimingTree;
use rand::{Rng, SeedableRng};

use prover::batch::parse_batches;
use prover::execute::{execute, ChunkWitness};
use prover::stark::gpu::host::{self, HostKernels};
use prover::stark::transfer::{trace_rows, TransferStark};
use prover::stark::{self, CommitmentEngine, CpuEngine};
use prover::{Params, C, D, F};

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

/// Leaves of one element and of four (not hashed), of five (one permutation, partly overwritten),
/// of 8, 13, 17 and 41 (several); the cap as wide as the leaves, a single root, and between; rates
/// 2 to 8: (columns, log2 rows, rate bits, cap height).
const SHAPES: [(usize, usize, usize, usize); 7] =
    [(1, 1, 1, 0), (4, 3, 1, 4), (5, 4, 2, 2), (8, 5, 1, 0), (17, 10, 1, 4), (13, 6, 3, 9), (41, 8, 1, 3)];

/// `engine` commits to random columns of each shape exactly as plonky2's
/// `PolynomialBatch::from_values` does (what `starky::prover::prove` itself would do).
fn commits_as_plonky2(engine: &dyn CommitmentEngine, shapes: &[(usize, usize, usize, usize)]) {
    for &(ncols, log_n, rate_bits, cap_height) in shapes {
        let columns = columns(ncols, log_n);
        let mut timing = TimingTree::default();
        let theirs: PolynomialBatch<F, C, D> =
            PolynomialBatch::from_values(columns.clone(), rate_bits, false, cap_height, &mut timing, None);
        let ours = engine.commit(&columns, rate_bits, cap_height, &mut timing).unwrap();
        let what =
            format!("{}: {ncols} columns of 2^{log_n}, rate bits {rate_bits}, cap height {cap_height}", engine.name());
        assert_eq!(ours.polynomials, theirs.polynomials, "coefficients, {what}");
        assert_eq!(ours.merkle_tree.leaves, theirs.merkle_tree.leaves, "leaves, {what}");
        assert_eq!(ours.merkle_tree.digests, theirs.merkle_tree.digests, "digests, {what}");
        assert_eq!(ours.merkle_tree.cap, theirs.merkle_tree.cap, "cap, {what}");
        assert_eq!((ours.degree_log, ours.rate_bits, ours.blinding), (theirs.degree_log, rate_bits, false), "{what}");
    }
}

/// The CPU engine hashes leaves its own way (eight at a time on AVX-512); its commitment is still
/// plonky2's, field for field, up to a transfer trace's 641 columns.
#[test]
fn the_cpu_engine_commits_as_plonky2_does() {
    commits_as_plonky2(&CpuEngine, &SHAPES);
    commits_as_plonky2(&CpuEngine, &[(641, 6, 1, 4)]);
}

#[test]
fn the_host_kernels_commit_as_plonky2_does() {
    commits_as_plonky2(&HostKernels, &SHAPES);
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
fn device_or_skip(test: &str) -> Option<prover::stark::gpu::cuda::CudaEngine> {
    match prover::stark::gpu::cuda::CudaEngine::new(0, None) {
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
fn the_cuda_engine_commits_as_plonky2_does() {
    let Some(engine) = device_or_skip("the_cuda_engine_commits_as_plonky2_does") else { return };
    println!("device: {}", engine.info());
    // And a real trace's width, at a height the CPU engine commits in a moment.
    commits_as_plonky2(&engine, &SHAPES);
    commits_as_plonky2(&engine, &[(641, 12, 1, 4)]);
}

#[cfg(feature = "cuda")]
#[test]
fn the_cuda_engine_refuses_a_commitment_above_its_memory_limit() {
    let Some(_) = device_or_skip("the_cuda_engine_refuses_a_commitment_above_its_memory_limit") else { return };
    let engine = prover::stark::gpu::cuda::CudaEngine::new(0, Some(1 << 20)).unwrap();
    let e = engine.commit(&columns(64, 12), 1, 4, &mut TimingTree::default()).unwrap_err();
    assert!(e.to_string().contains("more than the 1 MiB allowed"), "{e}");
    assert_eq!(engine.lost(), None, "a refused commitment leaves the device usable");
}

fn params() -> Params {
    Params { tree_depth: 8, chunk_size: 3, arity: 2, levels: 1 }
}

/// A chunk of two transfers, one to a new account.
fn chunk() -> ChunkWitness {
    const A: &str = "0x52908400098527886e0f7030069857d2e4169ee7";
    const B: &str = "0x8617e340b3d01fa5f11f306f4090fd50e238070d";
    let json = format!(
        r#"{{"version":1,"chain_id":5,"batch_number":1,
            "accounts":[{{"address":"{A}","balance":"1000","nonce":3}}],
            "transactions":[{{"from":"{A}","to":"{B}","value":"250","nonce":3}},
                            {{"from":"{B}","to":"{B}","value":"50","nonce":0}}]}}"#
    );
    execute(&parse_batches(&json).unwrap()[0], &params()).unwrap().chunks.remove(0)
}

/// A basic proof whose trace `engine` committed has the CPU proof's trace cap and openings, and
/// verifies.
fn proves_as_the_cpu(engine: &dyn CommitmentEngine) {
    let stark = TransferStark { depth: params().tree_depth };
    let trace = stark.generate_trace(&chunk(), trace_rows(params().chunk_size, params().tree_depth)).unwrap();
    let cpu = stark::prove(&stark, &trace, &CpuEngine).expect("proves");
    let ours = stark::prove(&stark, &trace, engine).expect("proves");
    assert_eq!(ours.proof.trace_cap, cpu.proof.trace_cap, "{}", engine.name());
    assert_eq!(ours.proof.openings.local_values, cpu.proof.openings.local_values, "{}", engine.name());
    stark::verify(&stark, &ours).expect("verifies");
}

#[test]
fn a_proof_committed_by_the_kernels_is_the_cpus_and_verifies() {
    proves_as_the_cpu(&HostKernels);
}

#[cfg(feature = "cuda")]
#[test]
fn a_proof_committed_on_the_gpu_is_the_cpus_and_verifies() {
    let Some(engine) = device_or_skip("a_proof_committed_on_the_gpu_is_the_cpus_and_verifies") else { return };
    proves_as_the_cpu(&engine);
}

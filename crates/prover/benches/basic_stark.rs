//! One `basic` proof at the default parameters (a full chunk of transfers), what it costs and
//! what it gives: trace generation, the trace commitment (the engine's part), the rest of the
//! STARK prover, native verification, proof size, CPU seconds per transfer and Poseidon
//! permutations proved per CPU-second.
//!
//! `cargo bench -p prover --bench basic_stark [-- --runs N] [-- --chunk N]`
//!
//! With `--features profile` plonky2's and starky's own timing scopes are on and the bench also
//! prints the split of one proof into LDE/NTT, Merkle hashing, quotient and FRI (the scopes add a
//! little time of their own: compare totals only between runs without the feature).

use std::time::Instant;

use plonky2::field::types::Sample;
use prover::execute::execute;
use prover::stark::{self, poseidon, transfer, CommitmentEngine, CpuEngine};
use prover::{Params, C, D, F};
use support::{batch, cpu_seconds};

mod support;

/// Proves `rows` rows of random permutations in the layout of `Lanes<COLS>`: (wall s, CPU s).
fn layout<const COLS: usize>(rows: usize) -> (f64, f64) {
    let lanes = COLS / poseidon::LANE_COLS;
    let trace: Vec<[F; COLS]> = (0..rows)
        .map(|_| poseidon::Lanes::<COLS>::row(&(0..lanes).map(|_| F::rand_array()).collect::<Vec<_>>()))
        .collect();
    let trace = starky::util::trace_rows_to_poly_values(trace);
    let (cpu, t) = (cpu_seconds(), Instant::now());
    let proof = starky::prover::prove::<F, C, _, D>(
        poseidon::Lanes::<COLS>,
        &stark::config(),
        trace,
        &[],
        None,
        &mut plonky2::util::timing::TimingTree::default(),
    )
    .expect("random permutations prove");
    let out = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    starky::verifier::verify_stark_proof(poseidon::Lanes::<COLS>, proof, &stark::config(), None).expect("and verify");
    out
}

/// The commitment as `starky::prover::prove` makes it: plonky2's `from_values`, the baseline
/// the CPU engine is measured against.
struct Plonky2Engine;

impl CommitmentEngine for Plonky2Engine {
    fn name(&self) -> &'static str {
        "plonky2"
    }

    fn commit(
        &self,
        columns: &[plonky2::field::polynomial::PolynomialValues<F>],
        rate_bits: usize,
        cap_height: usize,
        timing: &mut plonky2::util::timing::TimingTree,
    ) -> anyhow::Result<plonky2::fri::oracle::PolynomialBatch<F, C, D>> {
        Ok(plonky2::fri::oracle::PolynomialBatch::from_values(
            columns.to_vec(),
            rate_bits,
            false,
            cap_height,
            timing,
            None,
        ))
    }
}

fn arg(name: &str) -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).map(|i| args[i + 1].parse().expect("a number"))
}

fn main() {
    #[cfg(feature = "profile")]
    profile::init();
    let defaults = Params::default();
    let params = Params { chunk_size: arg("--chunk").unwrap_or(defaults.chunk_size), ..defaults };
    params.validate().expect("valid parameters");
    let runs = arg("--runs").unwrap_or(3);
    let executed = execute(&batch(params.chunk_size), &params).expect("the synthetic batch is valid");
    let chunk = &executed.chunks[0];
    let stark = transfer::TransferStark { depth: params.tree_depth };
    let rows = transfer::trace_rows(params.chunk_size, params.tree_depth);
    // Every row holds two Poseidon lanes, each one permutation, and a transfer's rows are all used.
    let perms = params.chunk_size * transfer::rows_per_transfer(params.tree_depth) * 2;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "chunk {} transfers at depth {}: trace {} rows x {} columns, {} permutations; {} threads",
        params.chunk_size,
        params.tree_depth,
        rows,
        transfer::COLUMNS,
        perms,
        threads
    );
    println!(
        "leaf hashing: {} (cpu engine); plonky2 = PolynomialBatch::from_values, the same commitment hashed one leaf at a time",
        prover::hash::implementation()
    );
    println!(
        "{:>4} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10} {:>11} {:>10} {:>9}",
        "run",
        "engine",
        "trace s",
        "commit s",
        "rest s",
        "prove s",
        "CPU s",
        "CPU ms/tx",
        "perm/CPU-s",
        "verify ms",
        "proof KB"
    );
    let engines: [&dyn CommitmentEngine; 2] = [&Plonky2Engine, &CpuEngine];
    let mut prove_seconds = [Vec::new(), Vec::new()];
    for run in 1..=runs {
        for (e, engine) in engines.iter().enumerate() {
            let cpu0 = cpu_seconds();
            let t0 = Instant::now();
            let trace = stark.generate_trace(chunk, rows).expect("the chunk fits");
            let trace_s = t0.elapsed().as_secs_f64();
            let trace_cpu = cpu_seconds() - cpu0;
            // The commitment alone, timed apart; the proof below computes it again inside stark::prove.
            let fri = stark::config().fri_config;
            let t1 = Instant::now();
            let mut timing = plonky2::util::timing::TimingTree::default();
            drop(engine.commit(&trace.columns, fri.rate_bits, fri.cap_height, &mut timing).unwrap());
            let commit_s = t1.elapsed().as_secs_f64();
            let cpu1 = cpu_seconds();
            let t2 = Instant::now();
            let proof = stark::prove(&stark, &trace, *engine).expect("the trace proves");
            let prove_s = t2.elapsed().as_secs_f64();
            let cpu_prove = trace_cpu + cpu_seconds() - cpu1;
            prove_seconds[e].push(prove_s);
            let t3 = Instant::now();
            stark::verify(&stark, &proof).expect("the proof verifies");
            let verify_ms = t3.elapsed().as_secs_f64() * 1e3;
            let size = rmp_serde::to_vec(&proof).unwrap().len();
            println!(
                "{:>4} {:>8} {:>8.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10.1} {:>11.0} {:>10.1} {:>9.1}",
                run,
                engine.name(),
                trace_s,
                commit_s,
                prove_s - commit_s,
                prove_s,
                cpu_prove,
                cpu_prove * 1e3 / params.chunk_size as f64,
                perms as f64 / cpu_prove,
                verify_ms,
                size as f64 / 1e3
            );
        }
    }
    let ratios: Vec<f64> = prove_seconds[0].iter().zip(&prove_seconds[1]).map(|(p, c)| p / c).collect();
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    let spread = ratios.iter().map(|r| (r - mean).abs()).fold(0.0, f64::max);
    println!("proof time, plonky2 engine / cpu engine, run by run: {mean:.2}x ± {spread:.2}");
    println!("CPU s covers trace generation and the proof (the separate commitment excluded)");

    // The layout choice: the same 2^15 random permutations as one lane per row (2^15 rows of
    // 248 columns) and as two lanes per row (2^14 rows of 496), proved alternately.
    println!("\nbare permutations, 2^15 of them: proof s (CPU s) per layout");
    println!("{:>4} {:>22} {:>22}", "run", "one lane, 2^15 rows", "two lanes, 2^14 rows");
    for run in 1..=runs {
        let one = layout::<{ poseidon::LANE_COLS }>(1 << 15);
        let two = layout::<{ 2 * poseidon::LANE_COLS }>(1 << 14);
        println!("{:>4} {:>13.2} ({:>5.2}) {:>13.2} ({:>5.2})", run, one.0, one.1, two.0, two.1);
    }

    #[cfg(feature = "profile")]
    profile::one_proof(&stark, chunk, rows);
}

/// The split of one proof by plonky2's and starky's timing scopes.
#[cfg(feature = "profile")]
mod profile {
    use std::sync::Mutex;

    use plonky2::util::timing::TimingTree;
    use prover::execute::ChunkWitness;
    use prover::stark::{self, transfer::TransferStark, CpuEngine};

    /// The scope lines `TimingTree::print` logs, collected for the split.
    static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

    struct Collect;

    impl log::Log for Collect {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            LINES.lock().unwrap().push(record.args().to_string());
        }
        fn flush(&self) {}
    }

    pub fn init() {
        log::set_logger(&Collect).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
    }

    pub fn one_proof(stark: &TransferStark, chunk: &ChunkWitness, rows: usize) {
        let trace = stark.generate_trace(chunk, rows).unwrap();
        let mut timing = TimingTree::new("basic proof", log::Level::Debug);
        stark::prove_timed(stark, &trace, &CpuEngine, &mut timing).unwrap();
        LINES.lock().unwrap().clear();
        timing.print();
        println!("\nscopes of one proof (plonky2/starky timing):");
        for line in LINES.lock().unwrap().iter() {
            println!("  {line}");
        }
    }
}

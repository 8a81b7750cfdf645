//! The trace commitment of one real `basic` trace (a full chunk at the default parameters) on the
//! CPU engine (plonky2, all of the machine's cores) and on the CUDA engine, side by side: the
//! time of each, the CUDA engine's split by stage, that both commitments are identical, and a
//! whole basic proof with each engine (which must verify). Run by `scripts/gpu-check` on a GPU
//! machine; needs the `cuda` feature.
//!
//! `cargo bench -p prover --features cuda --bench commit_engines [-- --runs N]`

use std::time::Instant;

use prover::execute::execute;
use prover::stark::gpu::cuda::CudaEngine;
use prover::stark::{self, transfer, CommitmentEngine, CpuEngine};
use prover::Params;

mod support;

fn arg(name: &str) -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).map(|i| args[i + 1].parse().expect("a number"))
}

fn main() {
    let runs = arg("--runs").unwrap_or(3);
    let engine = match CudaEngine::new(0, None) {
        Ok(engine) => engine,
        Err(e) => {
            println!("skipped: no CUDA device ({e})");
            if std::env::var("ZKFLEET_REQUIRE_GPU").as_deref() == Ok("1") {
                std::process::exit(1);
            }
            return;
        }
    };
    let params = Params::default();
    let witness = support::batch(params.chunk_size);
    let executed = execute(&witness, &params).expect("the synthetic batch is valid");
    let stark = transfer::TransferStark { depth: params.tree_depth };
    let rows = transfer::trace_rows(params.chunk_size, params.tree_depth);
    let trace = stark.generate_trace(&executed.chunks[0], rows).expect("the chunk fits");
    let fri = stark::config().fri_config;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("device: {}", engine.info());
    println!(
        "trace: {} rows x {} columns (chunk of {} transfers), rate bits {}, cap height {}; CPU engine on {} threads",
        rows,
        trace.columns.len(),
        params.chunk_size,
        fri.rate_bits,
        fri.cap_height,
        threads
    );
    println!("{:>4} {:>10} {:>10} {:>8}  cuda stages (ms)", "run", "cpu ms", "cuda ms", "ratio");
    for run in 1..=runs {
        let mut timing = plonky2::util::timing::TimingTree::default();
        let t = Instant::now();
        let cpu = CpuEngine.commit(&trace.columns, fri.rate_bits, fri.cap_height, &mut timing).unwrap();
        let cpu_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let (gpu, stages) = engine.commit_timed(&trace.columns, fri.rate_bits, fri.cap_height).unwrap();
        let gpu_ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(gpu.merkle_tree, cpu.merkle_tree, "the CUDA engine's tree differs from the CPU's");
        assert_eq!(gpu.polynomials, cpu.polynomials, "the CUDA engine's coefficients differ from the CPU's");
        let split: Vec<String> =
            stages.iter().map(|(stage, took)| format!("{stage} {:.1}", took.as_secs_f64() * 1e3)).collect();
        println!("{run:>4} {cpu_ms:>10.1} {gpu_ms:>10.1} {:>7.1}x  {}", cpu_ms / gpu_ms, split.join(", "));
    }
    println!("commitments identical (coefficients, leaves, digests, cap) in every run");

    println!("\nwhole basic proof: {:>4} {:>10} {:>10} {:>8}", "run", "cpu s", "cuda s", "ratio");
    for run in 1..=runs {
        let t = Instant::now();
        let cpu = stark::prove(&stark, &trace, &CpuEngine).expect("proves on the CPU");
        let cpu_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let gpu = stark::prove(&stark, &trace, &engine).expect("proves with the CUDA engine");
        let gpu_s = t.elapsed().as_secs_f64();
        stark::verify(&stark, &gpu).expect("the proof committed on the GPU verifies");
        stark::verify(&stark, &cpu).expect("the CPU's proof verifies");
        println!("{:>18} {run:>4} {cpu_s:>10.2} {gpu_s:>10.2} {:>7.2}x", "", cpu_s / gpu_s);
    }
    println!("every proof verifies");
}

//! The `leader` binary: parse the command line, set up logging, run, map the outcome to an exit
//! code (0 success, 2 invalid input, 1 other failure, 64 bad usage).

use leader::{run, Cli};

/// jemalloc, for the proving rounds' large allocations (see the workspace Cargo.toml).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let cli: Cli = common::cli::parse_or_exit();
    let telemetry = common::telemetry::init(cli.log_format, "zkfleet-leader").unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(64);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("the async runtime starts");
    let result = runtime.block_on(run(cli));
    // Sends the spans still buffered before the process ends.
    drop(telemetry);
    if let Err(exit) = result {
        eprintln!("error: {}", common::cli::one_line(exit.message()));
        std::process::exit(exit.code());
    }
}

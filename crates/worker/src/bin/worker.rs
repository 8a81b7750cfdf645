//! The `worker` binary: parse the command line, set up logging, run the daemon until SIGTERM or
//! SIGINT. Exit codes: 0 stopped on a signal, 1 the broker or the store was lost or unreachable (or
//! the GPU was lost), 64 bad usage, 69 a GPU-pool worker without a usable device.

use tokio_util::sync::CancellationToken;
use worker::cli::Cli;

/// jemalloc, for the proving rounds' large allocations (see the workspace Cargo.toml).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let cli: Cli = common::cli::parse_or_exit();
    if cli.print_topology {
        println!("{}", serde_json::to_string(&common::topology::describe()).expect("topology serializes"));
        return;
    }
    let log_format = cli.log_format;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("the async runtime starts");
    let config = runtime.block_on(cli.config()).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    });
    let telemetry = common::telemetry::init(log_format, "zkfleet-worker").unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(64);
    });
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler installs");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            signal.cancel();
        });
        worker::daemon::run(config, shutdown).await
    });
    // Proof threads still running after the grace period end with the process.
    runtime.shutdown_background();
    // Sends the spans still buffered before the process ends.
    drop(telemetry);
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

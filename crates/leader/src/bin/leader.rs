//! The `leader` binary: parse the command line, set up logging, run, map the outcome to an exit
//! code (0 success, 2 invalid input, 1 other failure, 64 bad usage).

use leader::{run, Cli};

fn main() {
    let cli: Cli = common::cli::parse_or_exit();
    common::telemetry::init(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts");
    if let Err(exit) = runtime.block_on(run(cli)) {
        eprintln!("error: {}", exit.message());
        std::process::exit(exit.code());
    }
}

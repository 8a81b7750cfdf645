//! The `worker` binary. The broker transport that feeds it tasks is not part of this build yet:
//! today tasks reach the same worker code through `leader prove --workers N`.

use clap::Parser;

/// zkfleet worker: consumes proving tasks, proves them, stores the outputs.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// RabbitMQ URI of the fleet.
    #[arg(long, env = "ZKFLEET_AMQP_URI", hide_env_values = true)]
    amqp_uri: Option<String>,
}

fn main() {
    let cli: Cli = common::cli::parse_or_exit();
    let _ = cli.amqp_uri;
    eprintln!("worker: this build has no broker transport yet; run the embedded fleet with `leader prove --workers N`");
    std::process::exit(64);
}

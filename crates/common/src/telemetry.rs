//! Logging setup: human-readable lines on stderr, filtered by `RUST_LOG` (default `info`, with the
//! AMQP client's own logs off: the fleet logs connection loss and recovery itself, once each).
//! Stdout is reserved for results (a proof, a batch), so nothing here writes to it.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,lapin=off"));
    // A second call (tests that run several entry points in one process) keeps the first setup.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

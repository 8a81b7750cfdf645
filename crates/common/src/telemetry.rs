//! Logging setup: human-readable lines on stderr, filtered by `RUST_LOG` (default `info`, with the
//! AMQP client's own logs off: the fleet logs connection loss and recovery itself, once each).
//! Stdout is reserved for results (a proof, a batch), so nothing here writes to it.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines look: for people at a terminal, or one JSON object per line for log pipelines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,lapin=off"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    // A second call (tests that run several entry points in one process) keeps the first setup.
    let _ = match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
    };
}

//! The zkfleet leader: generates batches (`synth`), proves them on a fleet (`prove`), checks
//! proofs (`verify`), serves proving as an HTTP API on a broker fleet (`serve`) and operates a
//! broker fleet (`status`, `cancel`, `resume`, `dead`, `purge`).
//! The binary parses the command line and calls [`run`].

pub mod broker_fleet;
pub mod coordinator;
pub mod fleet;
pub mod job_status;
pub mod jobs_page;
pub mod journal;
pub mod metrics;
pub mod ops;
pub mod progress;
pub mod prove;
pub mod serve;
pub mod synth;
pub mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use common::broker::SecretUri;
use common::store::{CircuitCacheArgs, StoreArgs, StoreError};
use prover::cli::ParamsArgs;
use prover::Params;

/// How a command ends, and the exit code that tells a script.
#[derive(Debug)]
pub enum Exit {
    /// The input is invalid (bad witness, invalid transaction, a proof that does not verify): 2.
    Invalid(String),
    /// Bad usage or configuration: 64.
    Usage(String),
    /// Anything else: 1.
    Other(String),
}

impl Exit {
    pub fn code(&self) -> i32 {
        match self {
            Exit::Invalid(_) => 2,
            Exit::Usage(_) => 64,
            Exit::Other(_) => 1,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Exit::Invalid(m) | Exit::Usage(m) | Exit::Other(m) => m,
        }
    }
}

/// zkfleet leader: proves batches of transactions on a fleet of workers.
#[derive(Parser, Debug)]
#[command(name = "leader", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines as text or as one JSON object each (stderr).
    #[arg(long, env = "ZKFLEET_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    pub log_format: common::telemetry::LogFormat,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate valid, realistic batches (JSON on stdout).
    Synth(SynthArgs),
    /// Prove batches read from stdin or --input; the proof file goes to stdout or --output.
    Prove(ProveArgs),
    /// Verify a proof file and print its public values as JSON.
    Verify(VerifyArgs),
    /// Serve proving on the broker fleet as an HTTP API (POST /v1/jobs) until SIGTERM or ctrl-C.
    Serve(ServeArgs),
    /// Show the fleet's queues and the progress of every job on it.
    Status(StatusArgs),
    /// Cancel jobs: nothing more of them is proven, their queued tasks are dropped.
    Cancel(JobsArgs),
    /// Finish jobs whose leader is gone; the proof goes to stdout or --output.
    Resume(ResumeArgs),
    /// List dead-lettered tasks with their last error; requeue or discard them.
    Dead(DeadArgs),
    /// Cancel jobs and remove their artifacts and results queues.
    Purge(JobsArgs),
}

/// Where the fleet is.
#[derive(Args, Debug)]
pub struct FleetArgs {
    /// RabbitMQ URI of the fleet.
    #[arg(long, env = "ZKFLEET_AMQP_URI", hide_env_values = true)]
    pub amqp_uri: SecretUri,
    #[command(flatten)]
    pub store: StoreArgs,
}

impl FleetArgs {
    async fn store(&self) -> Result<common::Store, Exit> {
        open_store(&self.store).await
    }
}

/// Opens the circuit cache the flags name, failing like [`open_store`].
pub async fn open_circuit_cache(
    args: &CircuitCacheArgs,
    store_args: &StoreArgs,
    store: &common::Store,
) -> Result<Option<common::Store>, Exit> {
    args.open(store_args, store).await.map_err(|e| match e {
        StoreError::BadUrl { .. } => Exit::Usage(format!("--circuit-cache: {e}")),
        _ => Exit::Other(format!("circuit cache: {e}")),
    })
}

/// Opens the store the flags name: a malformed URL is a usage error (64); a store that cannot be
/// reached, or refuses the credentials, is one line and exit 1.
pub async fn open_store(args: &StoreArgs) -> Result<common::Store, Exit> {
    args.open().await.map_err(|e| match e {
        StoreError::BadUrl { .. } => Exit::Usage(format!("--store: {e}")),
        _ => Exit::Other(format!("store: {e}")),
    })
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// RabbitMQ management API base URL (default: http://<broker host>:15672).
    #[arg(long, env = "ZKFLEET_MANAGEMENT_URL")]
    pub management_url: Option<String>,
}

#[derive(Args, Debug)]
pub struct JobsArgs {
    /// Job ids, as `prove` logs them.
    #[arg(required = true)]
    pub jobs: Vec<String>,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

#[derive(Args, Debug)]
pub struct ResumeArgs {
    /// Job ids, as `prove` logs them; the jobs of one chained input go together.
    #[arg(required = true)]
    pub jobs: Vec<String>,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Write the proof file here instead of stdout.
    #[arg(long, env = "ZKFLEET_OUTPUT")]
    pub output: Option<PathBuf>,
    /// Keep the jobs' intermediate artifacts in the store after success.
    #[arg(long, env = "ZKFLEET_KEEP_ARTIFACTS")]
    pub keep_artifacts: bool,
    /// Serve Prometheus metrics on /metrics at this address while the jobs run, e.g. 0.0.0.0:9091.
    #[arg(long, env = "ZKFLEET_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

#[derive(Args, Debug)]
pub struct DeadArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Put the listed tasks back on their round's queue.
    #[arg(long, conflicts_with = "discard")]
    pub requeue: bool,
    /// Drop the listed tasks for good.
    #[arg(long)]
    pub discard: bool,
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Transactions per batch.
    #[arg(long, env = "ZKFLEET_TXS")]
    pub txs: usize,
    /// Accounts in the first batch's pre-state.
    #[arg(long, env = "ZKFLEET_ACCOUNTS", default_value_t = 1000)]
    pub accounts: usize,
    /// Consecutive batches; more than one gives a JSON array.
    #[arg(long, env = "ZKFLEET_BATCHES", default_value_t = 1)]
    pub batches: usize,
    /// Seed of the generator: the same seed gives the same batches.
    #[arg(long, env = "ZKFLEET_SEED", default_value_t = 0)]
    pub seed: u64,
    /// Chain id of the batches.
    #[arg(long, env = "ZKFLEET_CHAIN_ID", default_value_t = 1)]
    pub chain_id: u64,
    /// Number of the first batch.
    #[arg(long, env = "ZKFLEET_FIRST_BATCH", default_value_t = 1)]
    pub first_batch: u64,
    /// Tree depth the batches must prove under (addresses never collide at this depth).
    #[arg(long, env = "ZKFLEET_TREE_DEPTH", default_value_t = Params::default().tree_depth)]
    pub tree_depth: usize,
}

#[derive(Args, Debug)]
pub struct ProveArgs {
    /// Read the batch witness from this file instead of stdin.
    #[arg(long, env = "ZKFLEET_INPUT")]
    pub input: Option<PathBuf>,
    /// Write the proof file here instead of stdout.
    #[arg(long, env = "ZKFLEET_OUTPUT")]
    pub output: Option<PathBuf>,
    /// Largest witness accepted, in MiB; a larger one is refused (exit 2) before it is parsed.
    #[arg(long, env = "ZKFLEET_MAX_WITNESS_MIB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_witness_mib: u64,
    /// Proof file of the batch before the first one; the new proof verifies it.
    #[arg(long, env = "ZKFLEET_PREVIOUS_PROOF")]
    pub previous_proof: Option<PathBuf>,
    /// Workers of the embedded fleet.
    #[arg(long, env = "ZKFLEET_WORKERS", default_value_t = default_workers())]
    pub workers: usize,
    /// RabbitMQ URI of a worker fleet; without it the embedded fleet proves.
    #[arg(long, env = "ZKFLEET_AMQP_URI", hide_env_values = true)]
    pub amqp_uri: Option<SecretUri>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub circuit_cache: CircuitCacheArgs,
    /// Keep the job's intermediate artifacts in the store after success.
    #[arg(long, env = "ZKFLEET_KEEP_ARTIFACTS")]
    pub keep_artifacts: bool,
    /// Write per-task timings, wall time and peak memory as JSON to this file.
    #[arg(long, env = "ZKFLEET_STATS")]
    pub stats: Option<PathBuf>,
    /// Serve Prometheus metrics on /metrics at this address while the jobs run, e.g. 0.0.0.0:9091.
    #[arg(long, env = "ZKFLEET_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Commit the basic round's traces on a CUDA device (the embedded fleet; a build with the
    /// `cuda` feature).
    #[arg(long, env = "ZKFLEET_GPU")]
    pub gpu: bool,
    /// The CUDA device of --gpu, by ordinal.
    #[arg(long, env = "ZKFLEET_GPU_DEVICE", default_value_t = 0, requires = "gpu")]
    pub gpu_device: u32,
    #[command(flatten)]
    pub params: ParamsArgs,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address the API, /livez, /readyz and /metrics listen on.
    #[arg(long, env = "ZKFLEET_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// File holding the bearer token every /v1 request must carry (or set ZKFLEET_API_TOKEN).
    /// Without a token the service listens on loopback only.
    #[arg(long, env = "ZKFLEET_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Largest witness accepted, in MiB; a larger request body is refused with 413.
    #[arg(long, env = "ZKFLEET_MAX_WITNESS_MIB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_witness_mib: u64,
    /// Keep the jobs' intermediate artifacts in the store after success.
    #[arg(long, env = "ZKFLEET_KEEP_ARTIFACTS")]
    pub keep_artifacts: bool,
    /// RabbitMQ management UI the jobs page links to (default: http://<broker host>:15672).
    #[arg(long, env = "ZKFLEET_MANAGEMENT_URL")]
    pub management_url: Option<String>,
    /// Hours a finished job's record and proof are kept (and served) after it ends.
    #[arg(long, env = "ZKFLEET_PROOF_RETENTION_HOURS", default_value_t = 720)]
    pub proof_retention_hours: u64,
    #[command(flatten)]
    pub params: ParamsArgs,
}

impl ServeArgs {
    /// The bearer token: from the file when given, else from `ZKFLEET_API_TOKEN`.
    fn token(&self) -> Result<Option<String>, Exit> {
        let token = match &self.api_token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| Exit::Usage(format!("--api-token-file {}: {e}", path.display())))?
                    .trim()
                    .to_string(),
            ),
            None => std::env::var("ZKFLEET_API_TOKEN").ok(),
        };
        match token {
            Some(t) if t.is_empty() => Err(Exit::Usage("the API token is empty".into())),
            t => Ok(t),
        }
    }
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The proof file (one proof, or the array `prove` writes for several batches).
    #[arg(long, env = "ZKFLEET_PROOF")]
    pub proof: PathBuf,
    /// Proof file of the batch before; checks that the proof continues it.
    #[arg(long, env = "ZKFLEET_PREVIOUS_PROOF")]
    pub previous_proof: Option<PathBuf>,
    /// The store whose circuit cache holds the circuits (see --circuit-cache).
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub circuit_cache: CircuitCacheArgs,
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

pub async fn run(cli: Cli) -> Result<(), Exit> {
    match cli.command {
        Command::Synth(a) => {
            if a.batches == 0 {
                return Err(Exit::Usage("--batches must be at least 1".into()));
            }
            if !(4..=32).contains(&a.tree_depth) {
                return Err(Exit::Usage(format!("--tree-depth {} is outside 4..=32", a.tree_depth)));
            }
            // Addresses must land on distinct leaves; past half full, finding one gets slow.
            if (a.accounts as u128) * 2 > 1u128 << a.tree_depth {
                return Err(Exit::Usage(format!(
                    "--accounts {} does not fit a tree of depth {}: at most {} accounts (half its leaves)",
                    a.accounts,
                    a.tree_depth,
                    (1u128 << a.tree_depth) / 2
                )));
            }
            let batches = synth::synth(&synth::SynthOptions {
                txs: a.txs,
                accounts: a.accounts,
                batches: a.batches,
                seed: a.seed,
                chain_id: a.chain_id.min(prover::batch::MAX_ID),
                first_batch: a.first_batch,
                tree_depth: a.tree_depth,
            });
            let json = if batches.len() == 1 { serde_json::to_vec(&batches[0]) } else { serde_json::to_vec(&batches) };
            prove::write_output(None, &json.expect("batches serialize"))
        }
        Command::Prove(a) => {
            if a.workers == 0 {
                return Err(Exit::Usage("--workers must be at least 1".into()));
            }
            let _metrics = serve_metrics(a.metrics_addr).await?;
            prove::prove(prove::ProveOptions {
                input: a.input,
                max_witness_bytes: a.max_witness_mib << 20,
                output: a.output,
                previous_proof: a.previous_proof,
                workers: a.workers,
                store: a.store,
                circuit_cache: a.circuit_cache,
                params: a.params.params(),
                keep_artifacts: a.keep_artifacts,
                stats: a.stats,
                amqp_uri: a.amqp_uri.map(SecretUri::into_inner),
                gpu: a.gpu.then_some(a.gpu_device),
            })
            .await
        }
        Command::Verify(a) => {
            // The store is only where the circuits may be cached: with the cache off it is not opened.
            let cache = if a.circuit_cache.is_off() {
                None
            } else {
                open_circuit_cache(&a.circuit_cache, &a.store, &open_store(&a.store).await?).await?
            };
            tokio::task::spawn_blocking(move || verify::verify(&a.proof, a.previous_proof.as_deref(), cache))
                .await
                .expect("verification does not panic")
        }
        Command::Serve(a) => {
            let shutdown = tokio_util::sync::CancellationToken::new();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                stop.cancel();
            });
            serve::serve(
                serve::ServeOptions {
                    listen: a.listen,
                    token: a.token()?,
                    store: a.fleet.store().await?,
                    uri: a.fleet.amqp_uri.into_inner(),
                    params: a.params.params(),
                    max_witness_bytes: a.max_witness_mib << 20,
                    keep_artifacts: a.keep_artifacts,
                    management_url: a.management_url,
                    retention: std::time::Duration::from_secs(a.proof_retention_hours.saturating_mul(3600)),
                },
                shutdown,
            )
            .await
        }
        Command::Status(a) => {
            ops::status(&a.fleet.amqp_uri, a.management_url.as_deref(), &a.fleet.store().await?).await
        }
        Command::Cancel(a) => ops::cancel(&a.fleet.amqp_uri, &a.fleet.store().await?, &a.jobs).await,
        Command::Purge(a) => ops::purge(&a.fleet.amqp_uri, &a.fleet.store().await?, &a.jobs).await,
        Command::Resume(a) => {
            let _metrics = serve_metrics(a.metrics_addr).await?;
            prove::resume(prove::ResumeOptions {
                store: a.fleet.store().await?,
                uri: a.fleet.amqp_uri.into_inner(),
                jobs: a.jobs,
                output: a.output,
                keep_artifacts: a.keep_artifacts,
                stats: None,
            })
            .await
        }
        Command::Dead(a) => {
            let action = if a.requeue {
                ops::DeadAction::Requeue
            } else if a.discard {
                ops::DeadAction::Discard
            } else {
                ops::DeadAction::List
            };
            ops::dead(&a.fleet.amqp_uri, &a.fleet.store().await?, action).await
        }
    }
}

/// Stops the leader's `/metrics` endpoint when the command ends.
struct MetricsServer(tokio_util::sync::CancellationToken);

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Serves `/metrics` while a command runs, when an address is given.
async fn serve_metrics(addr: Option<SocketAddr>) -> Result<Option<MetricsServer>, Exit> {
    let Some(addr) = addr else { return Ok(None) };
    let token = tokio_util::sync::CancellationToken::new();
    worker::http::serve_metrics(addr, token.clone())
        .await
        .map_err(|e| Exit::Usage(format!("--metrics-addr {addr}: {e}")))?;
    metrics::describe();
    Ok(Some(MetricsServer(token)))
}

/// SIGTERM (how Kubernetes stops a pod) or ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler installs");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command that takes the broker's URI, parsed with a password in it: the parsed
    /// configuration's `Debug` (what a `{:?}` in a log line or a panic shows) never holds it.
    #[test]
    fn debug_output_holds_no_broker_password() {
        let uri = "amqp://zkfleet:s3cr3t-amqp@broker:5672/%2f";
        let commands: [&[&str]; 8] = [
            &["prove", "--amqp-uri", uri],
            &["serve", "--amqp-uri", uri],
            &["status", "--amqp-uri", uri],
            &["cancel", "b1-00000000", "--amqp-uri", uri],
            &["resume", "b1-00000000", "--amqp-uri", uri],
            &["dead", "--amqp-uri", uri],
            &["purge", "b1-00000000", "--amqp-uri", uri],
            &["prove", "--amqp-uri", uri, "--store", "s3://bucket/prefix"],
        ];
        for args in commands {
            let cli = Cli::try_parse_from(std::iter::once("leader").chain(args.iter().copied())).unwrap();
            let shown = format!("{cli:?}");
            assert!(shown.contains("zkfleet:***@broker"), "{shown}");
            assert!(!shown.contains("s3cr3t-amqp"), "{args:?}: {shown}");
        }
    }
}

//! The `worker` command line, turned into a [`daemon::Config`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use common::store::{CircuitCacheArgs, StoreArgs, StoreError};
use common::topology::Pool;
use common::{ProvingBackend, Round};

use prover::cli::ParamsArgs;

use crate::daemon;

/// zkfleet worker: consumes proving tasks from RabbitMQ, proves them, stores the outputs.
#[derive(Parser, Debug)]
#[command(name = "worker", version, about)]
pub struct Cli {
    /// RabbitMQ URI of the fleet, e.g. amqp://user:password@host:5672/%2f.
    #[arg(long, env = "ZKFLEET_AMQP_URI", hide_env_values = true)]
    pub amqp_uri: Option<common::broker::SecretUri>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub circuit_cache: CircuitCacheArgs,
    /// Worker pool; decides the rounds served unless --rounds is given.
    #[arg(long, env = "ZKFLEET_POOL", value_enum, default_value = "cpu")]
    pub pool: Pool,
    /// Rounds to serve, comma separated (witness,basic,aggregate,final,compress).
    #[arg(long, env = "ZKFLEET_ROUNDS", value_delimiter = ',', value_parser = parse_round)]
    pub rounds: Vec<Round>,
    /// Tasks proven at once (and the prefetch of each queue).
    #[arg(long, env = "ZKFLEET_CONCURRENCY", default_value_t = daemon::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Address of the HTTP endpoints (/livez, /readyz), e.g. 0.0.0.0:9090.
    #[arg(long, env = "ZKFLEET_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Seconds a task in hand may take to finish after SIGTERM before it is requeued.
    #[arg(long, env = "ZKFLEET_GRACE_PERIOD", default_value_t = daemon::DEFAULT_GRACE_PERIOD.as_secs())]
    pub grace_period: u64,
    /// Stop after this many tasks (for one-shot pods such as a KEDA ScaledJob).
    #[arg(long, env = "ZKFLEET_MAX_TASKS")]
    pub max_tasks: Option<u64>,
    /// Stop after this many seconds without a task (for one-shot pods).
    #[arg(long, env = "ZKFLEET_IDLE_EXIT")]
    pub idle_exit: Option<u64>,
    /// Load (or build) the circuits of the served rounds for the parameters below before taking
    /// tasks: the worker reports ready only then, and no task waits for a circuit.
    #[arg(long, env = "ZKFLEET_PRELOAD")]
    pub preload: bool,
    /// The circuit parameters that --preload prepares (tasks carry their own).
    #[command(flatten, next_help_heading = "Circuit parameters (with --preload)")]
    pub params: ParamsArgs,
    /// Log lines as text or as one JSON object each.
    #[arg(long, env = "ZKFLEET_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: common::telemetry::LogFormat,
    /// Name in logs, consumer tags and results (default: host name and process id).
    #[arg(long, env = "ZKFLEET_WORKER_NAME")]
    pub name: Option<String>,
    /// Print the broker topology (queues, exchanges, pools) as JSON and exit.
    #[arg(long)]
    pub print_topology: bool,
    /// CUDA device of a GPU-pool worker, by ordinal.
    #[arg(long, env = "ZKFLEET_GPU_DEVICE", default_value_t = 0)]
    pub gpu_device: u32,
    /// Device memory one commitment may hold, in MiB (default: the device's).
    #[arg(long, env = "ZKFLEET_GPU_MEMORY_MIB")]
    pub gpu_memory_mib: Option<u64>,
    /// Proving backend; `noop` (feature `testing` only) proves nothing, for tests and benchmarks.
    #[arg(long, env = "ZKFLEET_BACKEND", value_enum, default_value = "reference", hide = true)]
    pub backend: Backend,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Backend {
    Reference,
    #[cfg(feature = "testing")]
    Noop,
}

fn parse_round(s: &str) -> Result<Round, String> {
    Round::ALL
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| format!("unknown round {s:?} (rounds: witness, basic, aggregate, final, compress)"))
}

/// Proves nothing: every output is empty. Measures what the fleet costs around a proof.
#[cfg(feature = "testing")]
pub struct NoopBackend;

#[cfg(feature = "testing")]
impl ProvingBackend for NoopBackend {
    fn prove(&self, task: &common::Task, _inputs: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, common::TaskError> {
        Ok(vec![Vec::new(); task.outputs.len()])
    }
}

/// A name unique enough for a fleet: host, process and a random suffix.
fn default_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}-{:04x}", std::process::id(), rand::random::<u16>())
}

/// Why the worker cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The command line is wrong (exit 64).
    #[error("{0}")]
    Usage(String),
    /// The store cannot be reached or refuses the credentials (exit 1).
    #[error("store: {0}")]
    Store(StoreError),
    /// A GPU-pool worker without a usable device (exit 69).
    #[error("--pool gpu: {0}")]
    NoDevice(String),
}

impl ConfigError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Usage(_) => 64,
            ConfigError::Store(_) => 1,
            ConfigError::NoDevice(_) => 69,
        }
    }
}

impl Cli {
    /// The daemon's configuration, with the store opened (an S3 store is reached once to check
    /// the bucket and the credentials).
    pub async fn config(self) -> Result<daemon::Config, ConfigError> {
        let usage = |m: &str| ConfigError::Usage(m.into());
        let amqp_uri = self.amqp_uri.ok_or_else(|| usage("--amqp-uri is required"))?.into_inner();
        if self.max_tasks == Some(0) {
            return Err(usage("--max-tasks must be at least 1"));
        }
        if self.concurrency == 0 {
            return Err(usage("--concurrency must be at least 1"));
        }
        let preload = if self.preload {
            let params = self.params.params();
            params.validate().map_err(|e| ConfigError::Usage(format!("--preload: {e}")))?;
            Some(prover::fleet::encode_params(&params))
        } else {
            None
        };
        let store = self.store.open().await.map_err(|e| match e {
            StoreError::BadUrl { .. } => ConfigError::Usage(format!("--store: {e}")),
            e => ConfigError::Store(e),
        })?;
        let circuit_cache = self.circuit_cache.open(&self.store, &store).await.map_err(|e| match e {
            StoreError::BadUrl { .. } => ConfigError::Usage(format!("--circuit-cache: {e}")),
            e => ConfigError::Store(e),
        })?;
        let mut rounds = if self.rounds.is_empty() { self.pool.rounds().to_vec() } else { self.rounds };
        rounds.sort();
        rounds.dedup();
        // The GPU pool starts its device before it connects to the broker: without one it does
        // not start, and takes no task.
        let gpu = match (self.pool, self.backend) {
            (Pool::Gpu, Backend::Reference) => Some(
                crate::gpu::start(self.gpu_device, self.gpu_memory_mib.map(|m| m << 20))
                    .map_err(ConfigError::NoDevice)?,
            ),
            _ => None,
        };
        let device = gpu.as_ref().map(|g| g.device.clone());
        let backend: Arc<dyn ProvingBackend> = match self.backend {
            Backend::Reference => {
                let backend = prover::fleet::ReferenceBackend::with_cache(prover::StoreCache::shared(circuit_cache));
                Arc::new(match gpu {
                    Some(gpu) => backend.with_engine(gpu.engine),
                    None => backend,
                })
            }
            #[cfg(feature = "testing")]
            Backend::Noop => Arc::new(NoopBackend),
        };
        Ok(daemon::Config {
            amqp_uri,
            store,
            pool: self.pool,
            rounds,
            concurrency: self.concurrency,
            name: self.name.unwrap_or_else(default_name),
            backend,
            grace: Duration::from_secs(self.grace_period),
            http: self.metrics_addr,
            max_tasks: self.max_tasks,
            preload,
            idle_exit: self.idle_exit.map(Duration::from_secs),
            device,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parsed command line's `Debug` (what a `{:?}` in a log line or a panic shows) never holds
    /// the broker's password.
    #[test]
    fn debug_output_holds_no_broker_password() {
        let cli = Cli::try_parse_from(["worker", "--amqp-uri", "amqp://zkfleet:s3cr3t-amqp@broker:5672/%2f"]).unwrap();
        let shown = format!("{cli:?}");
        assert!(shown.contains("zkfleet:***@broker"), "{shown}");
        assert!(!shown.contains("s3cr3t-amqp"), "{shown}");
    }
}

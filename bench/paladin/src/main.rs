//! Dispatch-overhead benchmark of paladin-core 0.4.3 over RabbitMQ.
//!
//! The leader process starts `--workers` copies of itself as paladin workers (the hidden `worker`
//! subcommand, each running `WorkerRuntime::main_loop`), then times a no-op operation through
//! paladin's own leader API in three phases and prints one JSON line per phase on stdout:
//!
//! - `throughput`: `--tasks` tasks on one leased result channel, published the way paladin's
//!   `IndexedStream::map` does (`publish_all`, 10 publishes in flight) while results are read back;
//! - `latency-directive`: one `Literal(x).map(&Noop).run(&runtime)` at a time, which is what a
//!   single paladin call costs, result-queue setup and teardown included;
//! - `latency`: one task at a time on one leased channel, the unloaded per-task dispatch overhead.
//!
//! Logs go to stderr. The run is bounded by `--timeout-s`, and the broker objects it created are
//! deleted at the end, whether the phases succeeded or not.

use std::{
    io::Write,
    process::{ExitCode, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use paladin::{
    config::{Config, Runtime as RuntimeKind, Serializer},
    directive::{literal::Literal, Directive},
    operation::{marker::Marker, Operation, Result as OpResult},
    queue::{
        amqp::{AMQPConnection, AMQPConnectionOptions},
        Connection, Publisher, PublisherExt,
    },
    runtime::{Runtime, WorkerRuntime},
    task::Task,
    RemoteExecute,
};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::{Child, Command},
};
use tracing::{info, warn};

const SYSTEM: &str = "paladin-core 0.4.3";
/// Publishes in flight while a batch is sent: the constant paladin's `IndexedStream::map` uses.
const PALADIN_MAP_CONCURRENCY: usize = 10;
/// Name of the fanout exchange and queue that paladin workers declare for their IPC, fixed in
/// paladin's source (`runtime::IPC_ROUTING_KEY` is private).
const PALADIN_IPC_NAME: &str = "ipc-routing-key";
const EXIT_USAGE: u8 = 64;

#[derive(Parser)]
#[command(
    version,
    about = "Dispatch overhead of paladin-core 0.4.3 over RabbitMQ (no-op tasks)"
)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,

    #[command(subcommand)]
    role: Option<Role>,
}

#[derive(Subcommand)]
enum Role {
    /// Run one paladin worker (started by the benchmark itself)
    #[command(hide = true)]
    Worker {
        /// Queue the leader publishes tasks to
        #[arg(long)]
        task_queue: String,
    },
}

// No Debug: the AMQP URI carries a password.
#[derive(Args)]
struct BenchArgs {
    /// AMQP URI of the RabbitMQ broker [default: the local broker, as guest, vhost /]
    #[arg(
        long,
        env = "ZKFLEET_AMQP_URI",
        hide_env_values = true,
        hide_default_value = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        global = true
    )]
    amqp_uri: String,

    /// Tasks dispatched in the throughput phase
    #[arg(long, env = "ZKFLEET_BENCH_TASKS", default_value_t = 5000,
          value_parser = clap::value_parser!(u32).range(1..))]
    tasks: u32,

    /// Tasks dispatched one at a time in the latency phase
    #[arg(long, env = "ZKFLEET_BENCH_LATENCY_TASKS", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..))]
    latency_tasks: u32,

    /// One-task directives run one at a time in the latency-directive phase (0 skips it)
    #[arg(long, env = "ZKFLEET_BENCH_DIRECTIVE_TASKS", default_value_t = 500)]
    directive_tasks: u32,

    /// Worker processes, each running paladin's worker main loop
    #[arg(long, env = "ZKFLEET_BENCH_WORKERS", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: u32,

    /// Untimed tasks run first, so that every worker is consuming before the clock starts
    #[arg(long, env = "ZKFLEET_BENCH_WARMUP", default_value_t = 200)]
    warmup: u32,

    /// Upper bound on the whole run in seconds; cleanup still happens after it
    #[arg(long, env = "ZKFLEET_BENCH_TIMEOUT_S", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout_s: u64,
}

/// The operation under test: returns its input unchanged, so any time measured is paladin's.
#[derive(Serialize, Deserialize, RemoteExecute)]
struct Noop;

impl Operation for Noop {
    type Input = u64;
    type Output = u64;

    fn execute(&self, input: u64) -> OpResult<u64> {
        Ok(input)
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if err.use_stderr() => {
            // One line: clap's usage hint and help pointer would follow the message otherwise.
            let rendered = err.render().to_string();
            eprintln!("{}", rendered.lines().next().unwrap_or_default());
            return ExitCode::from(EXIT_USAGE);
        }
        Err(err) => err.exit(),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.role {
            Some(Role::Worker { task_queue }) => run_worker(&cli.bench.amqp_uri, &task_queue).await,
            None => run_leader(&cli.bench).await,
        }
    });
    let code = match outcome {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {err:#}");
            1
        }
    };
    // Exit with the async runtime still up: lapin's I/O thread outlives the AMQP close handshake
    // (and WorkerRuntime cannot close its connection at all), and dropping the runtime under it
    // makes it log a spurious connection error.
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

fn paladin_config(amqp_uri: &str, task_queue: &str) -> Config {
    Config {
        serializer: Serializer::Postcard,
        runtime: RuntimeKind::Amqp,
        num_workers: None,
        amqp_uri: Some(amqp_uri.to_owned()),
        task_bus_routing_key: Some(task_queue.to_owned()),
    }
}

/// A paladin worker: connects, tells the leader on stdout that it is up, then runs paladin's main
/// loop until the leader closes our stdin.
async fn run_worker(amqp_uri: &str, task_queue: &str) -> Result<()> {
    let runtime = WorkerRuntime::from_config(&paladin_config(amqp_uri, task_queue), Marker)
        .await
        .context("starting the paladin worker runtime")?;
    println!("ready");

    let mut stdin = tokio::io::stdin();
    let mut sink = Vec::new();
    tokio::select! {
        looped = runtime.main_loop() => looped.context("paladin worker loop"),
        // EOF (or an error) on stdin: the leader is done or gone. WorkerRuntime has no close();
        // exiting drops the connection and the broker requeues anything unacked.
        _ = stdin.read_to_end(&mut sink) => Ok(()),
    }
}

/// One phase's figures, printed as a single JSON line.
#[derive(Serialize, Debug)]
struct PhaseReport {
    system: &'static str,
    phase: &'static str,
    tasks: usize,
    workers: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks_per_s: Option<f64>,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
}

impl PhaseReport {
    fn new(phase: &'static str, workers: u32, latencies: &mut [Duration]) -> Self {
        latencies.sort_unstable();
        Self {
            system: SYSTEM,
            phase,
            tasks: latencies.len(),
            workers,
            tasks_per_s: None,
            p50_ms: millis(percentile(latencies, 0.50)),
            p90_ms: millis(percentile(latencies, 0.90)),
            p99_ms: millis(percentile(latencies, 0.99)),
        }
    }

    fn print(&self) -> Result<()> {
        println!(
            "{}",
            serde_json::to_string(self).context("encoding the phase report")?
        );
        Ok(())
    }
}

/// Nearest-rank percentile of an ascending slice.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The URI with its password replaced, for logs.
fn redact(uri: &str) -> String {
    let Some(scheme_end) = uri.find("://").map(|i| i + 3) else {
        return uri.to_owned();
    };
    let authority_end = uri[scheme_end..]
        .find('/')
        .map_or(uri.len(), |i| scheme_end + i);
    let Some(at) = uri[scheme_end..authority_end]
        .rfind('@')
        .map(|i| scheme_end + i)
    else {
        return uri.to_owned();
    };
    match uri[scheme_end..at].find(':') {
        Some(colon) => format!("{}:***{}", &uri[..scheme_end + colon], &uri[at..]),
        None => uri.to_owned(),
    }
}

async fn run_leader(args: &BenchArgs) -> Result<()> {
    // A queue name of our own, not paladin's shared default "default", so that a run never
    // consumes another run's leftovers and cleanup knows exactly what to delete.
    let task_queue = format!("paladin-bench.{}.tasks", std::process::id());
    info!(broker = %redact(&args.amqp_uri), %task_queue, workers = args.workers, "starting");

    let mut result_queues = Vec::new();
    let mut workers = Vec::new();
    let phases = tokio::time::timeout(
        Duration::from_secs(args.timeout_s),
        run_phases(args, &task_queue, &mut workers, &mut result_queues),
    )
    .await;

    stop_workers(workers).await;
    if let Err(err) = delete_broker_objects(&args.amqp_uri, &task_queue, &result_queues).await {
        warn!("cleanup: {err:#}");
    }
    match phases {
        Ok(outcome) => outcome,
        Err(_) => bail!("benchmark did not finish within {} s", args.timeout_s),
    }
}

async fn run_phases(
    args: &BenchArgs,
    task_queue: &str,
    workers: &mut Vec<Child>,
    result_queues: &mut Vec<String>,
) -> Result<()> {
    let config = paladin_config(&args.amqp_uri, task_queue);
    let runtime = Runtime::from_config(&config, Marker)
        .await
        .context("starting the paladin leader runtime")?;
    for n in 0..args.workers {
        workers.push(spawn_worker(&args.amqp_uri, task_queue, n).await?);
    }
    info!(workers = args.workers, "workers connected");

    if args.warmup > 0 {
        let batch = run_batch(&runtime, args.warmup as usize, result_queues)
            .await
            .context("warm-up")?;
        info!(
            tasks = args.warmup,
            elapsed_s = batch.elapsed.as_secs_f64(),
            "warm-up done"
        );
    }

    let mut batch = run_batch(&runtime, args.tasks as usize, result_queues)
        .await
        .context("throughput phase")?;
    let mut report = PhaseReport::new("throughput", args.workers, &mut batch.latencies);
    report.tasks_per_s =
        Some((batch.latencies.len() as f64 / batch.elapsed.as_secs_f64() * 10.0).round() / 10.0);
    report.print()?;

    if args.directive_tasks > 0 {
        let mut latencies = run_directives(&runtime, args.directive_tasks as usize)
            .await
            .context("latency-directive phase")?;
        PhaseReport::new("latency-directive", args.workers, &mut latencies).print()?;
    }

    let mut latencies = run_sequential(&runtime, args.latency_tasks as usize, result_queues)
        .await
        .context("latency phase")?;
    PhaseReport::new("latency", args.workers, &mut latencies).print()?;

    runtime
        .close()
        .await
        .context("closing the paladin leader runtime")?;
    Ok(())
}

async fn spawn_worker(amqp_uri: &str, task_queue: &str, n: u32) -> Result<Child> {
    let exe = std::env::current_exe().context("locating our own executable")?;
    let mut child = Command::new(exe)
        .args(["worker", "--task-queue", task_queue])
        // Through the environment rather than argv, so the password does not show in `ps`.
        .env("ZKFLEET_AMQP_URI", amqp_uri)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting worker {n}"))?;
    let stdout = child.stdout.take().context("worker stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .with_context(|| format!("worker {n} did not connect within 30 s"))?
        .with_context(|| format!("reading worker {n} stdout"))?;
    ensure!(
        first.as_deref() == Some("ready"),
        "worker {n} exited before connecting"
    );
    Ok(child)
}

/// Closes each worker's stdin, which ends its loop; kills any that has not exited in 5 s.
async fn stop_workers(workers: Vec<Child>) {
    for (n, mut child) in workers.into_iter().enumerate() {
        drop(child.stdin.take());
        match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => warn!(worker = n, %status, "worker exited with an error"),
            Ok(Err(err)) => warn!(worker = n, "waiting for worker: {err}"),
            Err(_) => {
                warn!(worker = n, "worker did not exit within 5 s, killing it");
                if let Err(err) = child.kill().await {
                    warn!(worker = n, "killing worker: {err}");
                }
            }
        }
    }
}

/// Deletes what paladin leaves on the broker: the task queue, the result queues we leased (paladin
/// deletes them from a detached task when a lease is dropped, which can lose the race with process
/// exit), and the workers' IPC exchange and queue, which paladin never deletes.
async fn delete_broker_objects(
    amqp_uri: &str,
    task_queue: &str,
    result_queues: &[String],
) -> Result<()> {
    let conn = AMQPConnection::new(AMQPConnectionOptions {
        uri: amqp_uri,
        qos: None,
        serializer: paladin::serializer::Serializer::Postcard,
    })
    .await
    .context("connecting for cleanup")?;
    // paladin's delete_queue, given a name it did not declare itself, deletes both the queue and
    // the exchange of that name; RabbitMQ treats deleting an absent one as success.
    let names = [task_queue, PALADIN_IPC_NAME]
        .into_iter()
        .chain(result_queues.iter().map(String::as_str));
    for name in names {
        conn.delete_queue(name)
            .await
            .with_context(|| format!("deleting {name}"))?;
    }
    conn.close().await?;
    info!(queues = result_queues.len() + 2, "broker objects deleted");
    Ok(())
}

struct Batch {
    latencies: Vec<Duration>,
    /// From the first publish to the last result received.
    elapsed: Duration,
}

/// Dispatches `n` no-op tasks on one leased result channel, publishing as paladin's
/// `IndexedStream::map` does while results are read back concurrently.
async fn run_batch(runtime: &Runtime, n: usize, result_queues: &mut Vec<String>) -> Result<Batch> {
    let (routing_key, sender, mut receiver) = runtime
        .lease_coordinated_task_channel::<Noop, u32>()
        .await
        .context("leasing a result channel")?;
    result_queues.push(routing_key.clone());

    let base = Instant::now();
    // Nanoseconds after `base` at which task i was handed to the publisher.
    let submitted: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();

    let publish = async {
        let tasks = futures::stream::iter(0..n).map(|i| {
            submitted[i].store(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
            Ok(Task {
                routing_key: routing_key.clone(),
                metadata: i as u32,
                op: &Noop,
                input: i as u64,
            })
        });
        sender
            .publish_all(tasks, PALADIN_MAP_CONCURRENCY)
            .await
            .context("publishing tasks")?;
        sender.close().await.context("closing the task publisher")
    };
    // Counts results instead of waiting for the stream to end: paladin ends it only when it is
    // polled after the publisher has closed, and nothing wakes it if every result arrived first.
    let collect = async {
        let mut latencies = Vec::with_capacity(n);
        let mut last = base;
        while latencies.len() < n {
            let (result, acker) = receiver.next().await.context("result stream ended early")?;
            let now = Instant::now();
            acker.ack().await.context("acking a result")?;
            let output = result.context("task failed on a worker")?;
            let i = output.metadata as usize;
            ensure!(
                i < n && output.output == i as u64,
                "task {i} came back as {}",
                output.output
            );
            let sent = base + Duration::from_nanos(submitted[i].load(Ordering::Relaxed));
            latencies.push(now - sent);
            last = now;
        }
        Ok((latencies, last))
    };
    let ((), (latencies, last)) = tokio::try_join!(publish, collect)?;
    let first = base + Duration::from_nanos(submitted[0].load(Ordering::Relaxed));
    Ok(Batch {
        latencies,
        elapsed: last - first,
    })
}

/// One task at a time on one leased result channel: publish, wait for its result, ack.
async fn run_sequential(
    runtime: &Runtime,
    n: usize,
    result_queues: &mut Vec<String>,
) -> Result<Vec<Duration>> {
    let (routing_key, sender, mut receiver) = runtime
        .lease_coordinated_task_channel::<Noop, u32>()
        .await
        .context("leasing a result channel")?;
    result_queues.push(routing_key.clone());

    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let task = Task {
            routing_key: routing_key.clone(),
            metadata: i as u32,
            op: &Noop,
            input: i as u64,
        };
        let start = Instant::now();
        sender.publish(&task).await.context("publishing a task")?;
        let (result, acker) = receiver.next().await.context("result stream ended early")?;
        let elapsed = start.elapsed();
        acker.ack().await.context("acking a result")?;
        let output = result.context("task failed on a worker")?;
        ensure!(
            output.metadata as usize == i && output.output == i as u64,
            "task {i} came back wrong"
        );
        latencies.push(elapsed);
    }
    sender.close().await.context("closing the task publisher")?;
    Ok(latencies)
}

/// One `Literal(x).map(&Noop).run(&runtime)` at a time: each leases, uses and releases its own
/// result queue, as any single paladin call does.
async fn run_directives(runtime: &Runtime, n: usize) -> Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let start = Instant::now();
        let Literal(output) = Literal(i)
            .map(&Noop)
            .run(runtime)
            .await
            .context("running a directive")?;
        latencies.push(start.elapsed());
        ensure!(output == i, "directive {i} came back as {output}");
    }
    Ok(latencies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&sorted, 0.90), Duration::from_millis(90));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&sorted[..1], 0.99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact("amqp://127.0.0.1:5672"), "amqp://127.0.0.1:5672");
        assert_eq!(redact("amqp://user@host/v"), "amqp://user@host/v");
    }
}

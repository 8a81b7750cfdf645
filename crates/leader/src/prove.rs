//! `leader prove`: check the whole input first, then plan, dispatch and collect.
//!
//! Every batch is parsed and executed here before the first task is published, so that an invalid
//! input fails with one clear line and leaves nothing behind: no task queued, no artifact stored,
//! nothing on stdout.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use common::plan::{plan, JobShape, Plan};
use common::store::{digest, CircuitCacheArgs, StoreArgs};
use common::Store;
use prover::batch::{parse_batches, Batch};
use prover::execute::{execute, ExecutedBatch};
use prover::fleet::{encode_params, ReferenceBackend, META_BATCH_NUMBER, META_CHAIN_ID};
use prover::proof_file::{hash_hex, ProofFile, PublicValues};
use prover::{Params, StoreCache};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::coordinator::{run_jobs, JobFailure, TaskTiming};
use crate::fleet::start_embedded;
use crate::journal::{self, Journal};
use crate::progress::Progress;
use crate::Exit;

pub struct ProveOptions {
    pub input: Option<PathBuf>,
    pub max_witness_bytes: u64,
    pub output: Option<PathBuf>,
    pub previous_proof: Option<PathBuf>,
    pub workers: usize,
    pub store: StoreArgs,
    pub circuit_cache: CircuitCacheArgs,
    pub params: Params,
    pub keep_artifacts: bool,
    pub stats: Option<PathBuf>,
    pub amqp_uri: Option<String>,
    /// The CUDA device the embedded fleet commits basic traces on (`--gpu`).
    pub gpu: Option<u32>,
}

/// What `--stats` writes: the raw figures behind the benchmark.
#[derive(Serialize)]
struct Stats<'a> {
    workers: usize,
    params: Params,
    transactions: u64,
    wall_ms: u64,
    peak_rss_kib: Option<u64>,
    /// CPU time of the whole process (every thread: the embedded workers run in it), and the
    /// cores it could use: how busy the machine was, where `tasks` says how busy the workers were.
    cpu_ms: Option<u64>,
    cores: usize,
    tasks: &'a [TaskTiming],
}

/// The witness text. A file or stream that cannot be read is exit 1; one above `limit` bytes or
/// not UTF-8 is the input's fault, exit 2.
pub fn read_input(path: Option<&Path>, limit: u64) -> Result<String, Exit> {
    let (reader, source): (Box<dyn std::io::Read>, String) = match path {
        Some(p) => (
            Box::new(std::fs::File::open(p).map_err(|e| Exit::Other(format!("reading {}: {e}", p.display())))?),
            p.display().to_string(),
        ),
        None => (Box::new(std::io::stdin()), "stdin".to_string()),
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(reader, limit + 1), &mut bytes)
        .map_err(|e| Exit::Other(format!("reading {source}: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(Exit::Invalid(format!(
            "{source}: the witness is larger than the limit of {} MiB (--max-witness-mib)",
            limit >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        Exit::Invalid(format!(
            "{source}: the witness is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// The link a batch must continue from: the previous batch of the input or the previous proof.
struct Link {
    chain_id: u64,
    batch_number: u64,
    post_root: String,
}

impl Link {
    fn of(proof: &ProofFile) -> Self {
        let values = &proof.public_values;
        Link { chain_id: values.chain_id, batch_number: values.batch_number, post_root: values.post_state_root.clone() }
    }
}

/// Whether `next` (executed) is the batch after the one `previous` proves.
pub fn continues(previous: &ProofFile, next: &ExecutedBatch) -> Result<(), Exit> {
    check_continues(&Link::of(previous), next)
}

fn check_continues(link: &Link, next: &ExecutedBatch) -> Result<(), Exit> {
    let invalid = |reason: String| Exit::Invalid(format!("batch {}: {reason}", next.batch_number));
    if next.chain_id != link.chain_id {
        return Err(invalid(format!("chain id {} differs from the previous batch's {}", next.chain_id, link.chain_id)));
    }
    if Some(next.batch_number) != link.batch_number.checked_add(1) {
        return Err(invalid(format!("does not follow batch {}", link.batch_number)));
    }
    let pre = hash_hex(next.pre_root);
    if pre != link.post_root {
        return Err(invalid(format!(
            "pre-state root {pre} is not the post-state root {} of batch {}",
            link.post_root, link.batch_number
        )));
    }
    Ok(())
}

pub fn job_id(batch: u64) -> String {
    format!("b{batch}-{:08x}", rand::random::<u32>())
}

/// Parses the witness and executes every batch, each continuing the one before it (the first
/// continuing `previous` when given): every error in the input surfaces here, before anything is
/// stored or published. `prove` and the service both start with it.
pub fn check(
    text: &str,
    previous: Option<&ProofFile>,
    params: &Params,
) -> Result<(Vec<Batch>, Vec<ExecutedBatch>), Exit> {
    let batches = parse_batches(text).map_err(|e| Exit::Invalid(e.to_string()))?;
    let mut link = previous.map(Link::of);
    let mut executed = Vec::with_capacity(batches.len());
    for batch in &batches {
        let out = execute(batch, params).map_err(|e| Exit::Invalid(e.to_string()))?;
        if let Some(link) = &link {
            check_continues(link, &out)?;
        }
        link =
            Some(Link { chain_id: out.chain_id, batch_number: out.batch_number, post_root: hash_hex(out.post_root) });
        executed.push(out);
    }
    Ok((batches, executed))
}

pub async fn prove(opts: ProveOptions) -> Result<(), Exit> {
    opts.params.validate().map_err(Exit::Usage)?;
    let text = read_input(opts.input.as_deref(), opts.max_witness_bytes)?;

    let previous = match &opts.previous_proof {
        Some(path) => {
            // A file of several proofs (what proving an array writes) continues from its last.
            let (mut files, _) = crate::verify::read_files(path)?;
            let file = files.pop().expect("read_files returns at least one proof");
            if file.params != opts.params {
                return Err(Exit::Invalid(format!(
                    "previous proof {} was made with other circuit parameters ({:?})",
                    path.display(),
                    file.params
                )));
            }
            Some(file)
        }
        None => None,
    };
    // Execute everything up front: all errors surface before any work is dispatched.
    let (batches, executed) = check(&text, previous.as_ref(), &opts.params)?;
    let engine = match (opts.gpu, &opts.amqp_uri) {
        (Some(_), Some(_)) => {
            return Err(Exit::Usage(
                "--gpu is for the embedded fleet: on a broker fleet the GPU pool's workers commit".into(),
            ))
        }
        (Some(device), None) => {
            let gpu = worker::gpu::start(device, None).map_err(|e| Exit::Other(format!("--gpu: {e}")))?;
            tracing::info!(device = %gpu.device, "basic traces are committed on the GPU");
            Some(gpu.engine)
        }
        (None, _) => None,
    };

    let store = crate::open_store(&opts.store).await?;
    // Only the embedded fleet proves in this process, so only it needs the circuits.
    let circuit_cache = match &opts.amqp_uri {
        None => crate::open_circuit_cache(&opts.circuit_cache, &opts.store, &store).await?,
        Some(_) => None,
    };
    // Reach the broker before storing anything: an unreachable fleet leaves nothing behind.
    let connection = match &opts.amqp_uri {
        Some(uri) => Some((crate::broker_fleet::connect(uri).await?, uri.clone())),
        None => None,
    };
    let jobs: Vec<String> = batches.iter().map(|b| job_id(b.batch_number)).collect();
    let journals = match stage(&opts.params, &store, &jobs, &batches, &executed, previous.as_ref()).await {
        Ok(journals) => journals,
        Err(e) => {
            remove_artifacts(&store, &jobs).await;
            return Err(e);
        }
    };
    if connection.is_some() {
        tracing::info!(jobs = %jobs.join(","), "jobs staged; if this leader stops, `leader resume` with these job ids finishes them");
    }
    let drive_opts = DriveOptions {
        workers: opts.workers,
        stats: opts.stats.clone(),
        keep_artifacts: opts.keep_artifacts,
        circuit_cache,
        signals: Signals::of_process(),
        progress: true,
        engine,
    };
    finish(
        drive(&drive_opts, &store, connection, &journals, &HashSet::new()).await,
        &drive_opts,
        &store,
        &jobs,
        opts.output.as_deref(),
    )
    .await
}

/// Ends a run the same way for `prove` and `resume`: writes the proof or explains the failure, and
/// leaves the store and the broker as the outcome calls for.
pub async fn finish(
    outcome: Result<Vec<u8>, Ended>,
    opts: &DriveOptions,
    store: &Store,
    jobs: &[String],
    output: Option<&Path>,
) -> Result<(), Exit> {
    let bytes = settle(outcome, opts, store, jobs).await?;
    write_output(output, &bytes)
}

/// Leaves the store and the broker as the outcome calls for and returns the proof file, or the
/// failure explained in one line.
pub async fn settle(
    outcome: Result<Vec<u8>, Ended>,
    opts: &DriveOptions,
    store: &Store,
    jobs: &[String],
) -> Result<Vec<u8>, Exit> {
    match outcome {
        Ok(bytes) => {
            if !opts.keep_artifacts {
                remove_artifacts(store, jobs).await;
            }
            Ok(bytes)
        }
        Err(Ended::Embedded(exit)) | Err(Ended::Early(exit)) => {
            remove_artifacts(store, jobs).await;
            Err(exit)
        }
        Err(Ended::Interrupted { uri }) => {
            let _ = crate::ops::purge(&uri, store, jobs).await;
            Err(Exit::Other("interrupted; the jobs were cancelled".into()))
        }
        Err(Ended::Stopped) => Err(Exit::Other(format!(
            "stopped (SIGTERM); nothing was cancelled and the workers go on with what is queued: `leader resume {}` finishes the jobs",
            jobs.join(" ")
        ))),
        Err(Ended::Failed { uri, exit }) => {
            let _ = crate::ops::cancel(&uri, store, jobs).await;
            let ids = jobs.join(" ");
            let message = format!(
                "{}; the job is cancelled and its artifacts kept: `leader resume {ids}` retries it, `leader purge {ids}` removes it",
                exit.message()
            );
            Err(match exit {
                Exit::Invalid(_) => Exit::Invalid(message),
                _ => Exit::Other(message),
            })
        }
    }
}

/// How the command line stops a run: ctrl-C interrupts it (the jobs are cancelled), SIGTERM (how
/// Kubernetes stops a pod) stops it and leaves the jobs to `leader resume`.
pub struct Signals {
    pub interrupt: CancellationToken,
    pub stop: CancellationToken,
}

impl Signals {
    /// Tokens that no signal cancels (the service's jobs).
    pub fn none() -> Self {
        Self { interrupt: CancellationToken::new(), stop: CancellationToken::new() }
    }

    /// Tokens cancelled by the process's first ctrl-C and SIGTERM.
    pub fn of_process() -> Self {
        let signals = Self::none();
        let interrupt = signals.interrupt.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupt.cancel();
            }
        });
        #[cfg(unix)]
        {
            let stop = signals.stop.clone();
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler installs");
            tokio::spawn(async move {
                if term.recv().await.is_some() {
                    stop.cancel();
                }
            });
        }
        signals
    }
}

async fn remove_artifacts(store: &Store, jobs: &[String]) {
    for job in jobs {
        let _ = store.delete_prefix(&common::keys::job(job)).await;
    }
}

/// Stores each job's input, the previous proof and the journal.
pub async fn stage(
    params: &Params,
    store: &Store,
    jobs: &[String],
    batches: &[prover::batch::Batch],
    executed: &[ExecutedBatch],
    previous: Option<&ProofFile>,
) -> Result<Vec<Journal>, Exit> {
    let store_err = |e: common::store::StoreError| Exit::Other(format!("store: {e}"));
    let params_bytes = encode_params(params);
    let mut journals: Vec<Journal> = Vec::with_capacity(batches.len());
    for (i, (batch, out)) in batches.iter().zip(executed).enumerate() {
        let job = &jobs[i];
        let input_key = common::keys::input(job);
        let single = serde_json::to_vec(batch).expect("batches serialize");
        store.put(&input_key, &single).await.map_err(store_err)?;
        let mut staged = BTreeMap::from([(input_key.clone(), digest(&single))]);
        let previous_final_key = if i > 0 {
            let before = plan(&journals[i - 1].shape).expect("planned once already");
            Some(before.final_key().to_string())
        } else if let Some(prev) = previous {
            let key = common::keys::previous(job);
            let bytes = prev.chain_proof_bytes().map_err(|e| Exit::Invalid(format!("previous proof: {e}")))?;
            store.put(&key, &bytes).await.map_err(store_err)?;
            staged.insert(key.clone(), digest(&bytes));
            Some(key)
        } else {
            None
        };
        let shape = JobShape {
            job: job.clone(),
            batch: batch.batch_number,
            tx_count: out.tx_count,
            chunk_size: params.chunk_size as u64,
            arity: params.arity,
            levels: params.levels,
            input_key,
            previous_final_key,
            params: params_bytes.clone(),
            meta: BTreeMap::from([
                (META_CHAIN_ID.to_string(), batch.chain_id.to_string()),
                (META_BATCH_NUMBER.to_string(), batch.batch_number.to_string()),
            ]),
        };
        plan(&shape).map_err(|e| Exit::Invalid(format!("batch {}: {e}", batch.batch_number)))?;
        let journal = Journal {
            format: journal::FORMAT.into(),
            job: job.clone(),
            shape,
            after: i.checked_sub(1).map(|p| jobs[p].clone()),
            expected: expected_values(out, previous.is_some() || i > 0),
            staged,
        };
        journal::write(store, &journal).await?;
        journals.push(journal);
    }
    Ok(journals)
}

pub struct DriveOptions {
    pub workers: usize,
    pub stats: Option<PathBuf>,
    pub keep_artifacts: bool,
    /// Where the embedded fleet keeps its circuits.
    pub circuit_cache: Option<Store>,
    /// Ctrl-C ends the run as [`Ended::Interrupted`], SIGTERM as [`Ended::Stopped`].
    pub signals: Signals,
    /// Progress lines (or a bar) on stderr; the service logs its jobs instead.
    pub progress: bool,
    /// What commits the embedded fleet's basic traces, when not the CPU (`--gpu`).
    pub engine: Option<Arc<dyn prover::CommitmentEngine>>,
}

impl DriveOptions {
    /// For the broker fleet: no workers or circuits in this process, no stats file.
    pub fn broker(keep_artifacts: bool, signals: Signals, progress: bool) -> Self {
        Self { workers: 0, stats: None, keep_artifacts, circuit_cache: None, signals, progress, engine: None }
    }
}

/// How a run that produced no proof ended.
pub enum Ended {
    /// Before any task went out (a bad journal, a store error).
    Early(Exit),
    /// The embedded fleet failed or was interrupted.
    Embedded(Exit),
    /// The broker fleet failed the job.
    Failed { uri: String, exit: Exit },
    /// Interrupted (ctrl-C) while the broker fleet proved: the jobs are to be cancelled.
    Interrupted { uri: String },
    /// Stopped (SIGTERM) while the broker fleet proved: the jobs stay staged for `leader resume`.
    Stopped,
}

/// Runs journaled jobs on the embedded fleet (no connection) or the broker fleet, skipping the
/// tasks in `done`, and returns the proof file bytes.
pub async fn drive(
    opts: &DriveOptions,
    store: &Store,
    connection: Option<(lapin::Connection, String)>,
    journals: &[Journal],
    done: &HashSet<String>,
) -> Result<Vec<u8>, Ended> {
    let store_err = |e: common::store::StoreError| Exit::Other(format!("store: {e}"));
    let mut plans: Vec<Plan> = Vec::with_capacity(journals.len());
    let mut after = Vec::with_capacity(journals.len());
    for j in journals {
        plans.push(plan(&j.shape).map_err(|e| Ended::Early(Exit::Other(format!("job {}: {e}", j.job))))?);
        after.push(j.after.as_ref().and_then(|a| journals.iter().position(|k| &k.job == a)));
    }
    let jobs: Vec<String> = journals.iter().map(|j| j.job.clone()).collect();

    let started = Instant::now();
    let progress_jobs: Vec<_> = journals.iter().map(|j| (j.job.clone(), j.shape.batch, j.shape.tx_count)).collect();
    let mut progress = if opts.progress { Progress::new(&progress_jobs) } else { Progress::silent(&progress_jobs) };
    // Digests of the artifacts referenced so far: what the leader staged, then what results report.
    let mut digests: HashMap<String, String> =
        journals.iter().flat_map(|j| j.staged.iter().map(|(k, d)| (k.clone(), d.clone()))).collect();
    let (mut fleet, uri) = match connection {
        None => {
            tracing::info!(jobs = jobs.len(), workers = opts.workers, store = %store.location(), "proving");
            let mut backend = ReferenceBackend::with_cache(StoreCache::shared(opts.circuit_cache.clone()));
            if let Some(engine) = &opts.engine {
                backend = backend.with_engine(engine.clone());
            }
            let backend = Arc::new(backend);
            // The circuits of the later rounds load from the cache while the first tasks prove.
            if let Some(first) = journals.first() {
                let (backend, params) = (backend.clone(), first.shape.params.clone());
                tokio::task::spawn_blocking(move || backend.load_cached(&params));
            }
            (start_embedded(opts.workers, store.clone(), backend), None)
        }
        Some((connection, uri)) => {
            tracing::info!(jobs = jobs.len(), broker = %common::broker::redact(&uri), store = %store.location(), "proving on the broker fleet");
            let fleet =
                crate::broker_fleet::start(connection, &uri, store.clone(), &jobs).await.map_err(Ended::Early)?;
            (fleet, Some(uri))
        }
    };
    let fail = |exit: Exit| match &uri {
        Some(uri) => Ended::Failed { uri: uri.clone(), exit },
        None => Ended::Embedded(exit),
    };
    let outcome = tokio::select! {
        outcome = run_jobs(&mut fleet, &plans, &after, done, &mut digests, &mut progress, uri.as_ref().map(|_| store)) => outcome,
        _ = opts.signals.interrupt.cancelled() => {
            progress.finish();
            fleet.stop().await;
            return Err(match &uri {
                Some(uri) => Ended::Interrupted { uri: uri.clone() },
                None => Ended::Embedded(Exit::Other("interrupted".into())),
            });
        }
        _ = opts.signals.stop.cancelled() => {
            progress.finish();
            fleet.stop().await;
            return Err(match &uri {
                Some(_) => Ended::Stopped,
                None => Ended::Embedded(Exit::Other("stopped (SIGTERM)".into())),
            });
        }
    };
    progress.finish();
    // Waits for proofs in hand, so that none writes after the caller cleans up.
    fleet.stop().await;
    let timings = outcome.map_err(|e| {
        fail(match e {
            JobFailure::InvalidInput(m) => Exit::Invalid(m),
            JobFailure::Failed(m) => Exit::Other(m),
        })
    })?;

    if let Some(path) = &opts.stats {
        let stats = Stats {
            workers: opts.workers,
            params: journals.first().map(|j| params_of(&j.shape)).unwrap_or_default(),
            transactions: journals.iter().map(|j| j.shape.tx_count).sum(),
            wall_ms: started.elapsed().as_millis() as u64,
            peak_rss_kib: peak_rss_kib(),
            cpu_ms: process_cpu_ms(),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            tasks: &timings,
        };
        std::fs::write(path, serde_json::to_vec_pretty(&stats).expect("stats serialize"))
            .map_err(|e| fail(Exit::Other(format!("writing {}: {e}", path.display()))))?;
    }

    let mut files = Vec::with_capacity(plans.len());
    for (plan, journal) in plans.iter().zip(journals) {
        let key = plan.output_key();
        let bytes =
            store.get_verified(key, digests.get(key).map(String::as_str)).await.map_err(|e| fail(store_err(e)))?;
        let file: ProofFile = serde_json::from_slice(&bytes)
            .map_err(|e| fail(Exit::Other(format!("stored proof file does not parse: {e}"))))?;
        check_values(&file.public_values, &journal.expected).map_err(fail)?;
        files.push(file);
    }
    if let Some(uri) = &uri {
        let _ = crate::ops::delete_results_queues(uri, &jobs).await;
    }
    let json = if files.len() == 1 { serde_json::to_vec_pretty(&files[0]) } else { serde_json::to_vec_pretty(&files) };
    Ok(json.expect("proof files serialize"))
}

fn params_of(shape: &JobShape) -> Params {
    rmp_serde::from_slice(&shape.params).unwrap_or_default()
}

fn expected_values(out: &ExecutedBatch, previous_verified: bool) -> PublicValues {
    PublicValues {
        chain_id: out.chain_id,
        batch_number: out.batch_number,
        pre_state_root: hash_hex(out.pre_root),
        post_state_root: hash_hex(out.post_root),
        tx_commitment: hash_hex(out.tx_commitment),
        tx_count: out.tx_count,
        previous_verified,
    }
}

/// The proof must bind what the leader computed itself: a fleet that returns a proof of
/// anything else is broken, and its proof must not reach the user.
fn check_values(values: &PublicValues, expected: &PublicValues) -> Result<(), Exit> {
    if values == expected {
        Ok(())
    } else {
        Err(Exit::Other(format!("the fleet returned a proof of other values for batch {}", expected.batch_number)))
    }
}

/// Peak resident set of this process (Linux), for the benchmark.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User and system CPU time of this process, all threads (Linux), for the benchmark.
fn process_cpu_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces: utime and
    // stime are the 12th and 13th, in clock ticks of 1/100 s (USER_HZ, fixed by the kernel ABI).
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 10)
}

/// Writes the proof atomically: a reader of `--output` never sees half a proof.
pub fn write_output(path: Option<&Path>, bytes: &[u8]) -> Result<(), Exit> {
    match path {
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)
                .and_then(|_| out.write_all(b"\n"))
                .and_then(|_| out.flush())
                .map_err(|e| Exit::Other(format!("writing stdout: {e}")))
        }
        Some(path) => {
            let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
            std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path)).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                Exit::Other(format!("writing {}: {e}", path.display()))
            })
        }
    }
}

/// What `leader resume` was asked to do.
pub struct ResumeOptions {
    pub uri: String,
    pub store: Store,
    pub jobs: Vec<String>,
    pub output: Option<PathBuf>,
    pub keep_artifacts: bool,
    pub stats: Option<PathBuf>,
}

/// Finishes jobs whose leader is gone: what is in the store is done, the rest is published again.
pub async fn resume(opts: ResumeOptions) -> Result<(), Exit> {
    let (connection, journals, done) = crate::ops::prepare_resume(&opts.uri, &opts.store, &opts.jobs).await?;
    let drive_opts = DriveOptions {
        stats: opts.stats.clone(),
        ..DriveOptions::broker(opts.keep_artifacts, Signals::of_process(), true)
    };
    let outcome = drive(&drive_opts, &opts.store, Some((connection, opts.uri.clone())), &journals, &done).await;
    let jobs: Vec<String> = journals.iter().map(|j| j.job.clone()).collect();
    finish(outcome, &drive_opts, &opts.store, &jobs, opts.output.as_deref()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_witness_limit_is_inclusive_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.json");
        std::fs::write(&path, vec![b' '; 1 << 20]).unwrap();
        assert_eq!(read_input(Some(&path), 1 << 20).unwrap().len(), 1 << 20);
        std::fs::write(&path, vec![b' '; (1 << 20) + 1]).unwrap();
        let err = read_input(Some(&path), 1 << 20).unwrap_err();
        assert_eq!(err.code(), 2);
        assert!(err.message().ends_with("larger than the limit of 1 MiB (--max-witness-mib)"), "{}", err.message());
        assert_eq!(read_input(Some(&dir.path().join("missing")), 1 << 20).unwrap_err().code(), 1);
    }
}

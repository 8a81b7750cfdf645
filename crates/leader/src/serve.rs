//! `leader serve`: the prover as a service on the broker fleet.
//!
//! A submission (`POST /v1/jobs`) is a witness, one batch or an array, checked exactly as `leader
//! prove` checks it; once accepted its batches are staged as jobs and driven on the fleet in the
//! background, and the client follows it by id. The service keeps its own records in the store:
//!
//! - `service/index.json`: the ids of every submission;
//! - `service/jobs/<id>.json`: one submission ([`Submission`]): its fleet jobs, state, error;
//! - `service/proofs/<id>.json`: the proof file of a done submission, as `prove` writes it.
//!
//! The id of a submission is the fleet job id of its first batch, so `leader status`, `cancel` and
//! `resume` name the same jobs. A restarted service reads the index, resumes every submission
//! still running (as `leader resume` would) and serves the proofs of the finished ones until
//! their retention (`--proof-retention-hours`) ends.
//!
//! Chains: the service remembers, per chain id, the last batch it proved. A submission whose first
//! batch is the next one is proved on top of that batch's proof; a submission that starts a chain
//! the service has not seen starts it. A gap, a batch already proved, or the next batch while the
//! one before it is still being proved is `409`, naming the batch expected.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::broker::unix_ms;
use common::Store;
use prover::proof_file::ProofFile;
use prover::Params;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::job_status;
use crate::journal::Journal;
use crate::prove::{self, DriveOptions};
use crate::Exit;

use common::keys::{service_proof as proof_key, service_record as record_key, SERVICE_INDEX as INDEX_KEY};

pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Bearer token every `/v1` request must carry; `None` only on a loopback address.
    pub token: Option<String>,
    pub uri: String,
    pub store: Store,
    pub params: Params,
    pub max_witness_bytes: u64,
    pub keep_artifacts: bool,
    /// The RabbitMQ management UI the jobs page links to.
    pub management_url: Option<String>,
    /// How long a finished job (its record and proof) is kept after it ends.
    pub retention: std::time::Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
    Failed,
    Cancelled,
}

/// One submission, as the service records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Submission {
    pub id: String,
    /// Fleet job ids, one per batch, in batch order.
    pub jobs: Vec<String>,
    pub chain_id: u64,
    pub batches: Vec<u64>,
    pub tx_count: u64,
    pub state: JobState,
    pub error: Option<String>,
    pub submitted_ms: u64,
    pub finished_ms: Option<u64>,
    /// Post-state root of the last batch (hex), once done: where the chain goes on from.
    pub post_state_root: Option<String>,
    /// Per-round progress when the submission finished (a running one's is read live).
    #[serde(default)]
    pub rounds: Option<BTreeMap<String, job_status::RoundRecord>>,
}

struct Service {
    uri: String,
    store: Store,
    params: Params,
    token: Option<String>,
    keep_artifacts: bool,
    max_witness_bytes: u64,
    retention: std::time::Duration,
    /// The RabbitMQ management UI, for the jobs page.
    management: String,
    /// Held for `/readyz`: the service is ready while it reaches the broker.
    connection: lapin::Connection,
    submissions: Mutex<BTreeMap<String, Submission>>,
    /// Running submissions' progress as last read from the store, and when: the jobs rewrite
    /// their records every [`job_status::RECORD_INTERVAL`] at most, so status requests in between
    /// are answered from here.
    progress: Mutex<HashMap<String, (std::time::Instant, Progress)>>,
    /// One submission is checked and staged at a time, so that two cannot claim the same place
    /// in a chain.
    admitting: tokio::sync::Mutex<()>,
}

/// Runs the service until `shutdown`: binds `listen`, resumes the unfinished submissions, serves.
/// Jobs running at shutdown stay staged; the next start resumes them.
pub async fn serve(opts: ServeOptions, shutdown: CancellationToken) -> Result<(), Exit> {
    opts.params.validate().map_err(Exit::Usage)?;
    if opts.token.is_none() && !opts.listen.ip().is_loopback() {
        return Err(Exit::Usage(format!(
            "--listen {}: without --api-token-file or ZKFLEET_API_TOKEN the service listens on loopback only",
            opts.listen
        )));
    }
    let management = crate::ops::Management::new(&opts.uri, opts.management_url.as_deref())?.base().to_string();
    let connection = crate::broker_fleet::connect(&opts.uri).await?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| Exit::Usage(format!("--listen {}: {e}", opts.listen)))?;
    let local = listener.local_addr().map_err(|e| Exit::Other(format!("--listen: {e}")))?;

    let submissions = load(&opts.store).await?;
    let service = Arc::new(Service {
        uri: opts.uri,
        store: opts.store,
        params: opts.params,
        token: opts.token,
        keep_artifacts: opts.keep_artifacts,
        max_witness_bytes: opts.max_witness_bytes,
        retention: opts.retention,
        management,
        connection,
        submissions: Mutex::new(submissions.iter().map(|s| (s.id.clone(), s.clone())).collect()),
        admitting: tokio::sync::Mutex::new(()),
        progress: Mutex::new(HashMap::new()),
    });
    // Retention: at start, then every hour (or sooner for a retention under an hour).
    expire(&service).await;
    let (sweeper, stop) = (service.clone(), shutdown.clone());
    tokio::spawn(async move {
        let period = opts.retention.clamp(std::time::Duration::from_secs(60), std::time::Duration::from_secs(3600));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => expire(&sweeper).await,
            }
        }
    });
    for s in submissions.into_iter().filter(|s| s.state == JobState::Running) {
        tracing::info!(id = %s.id, jobs = %s.jobs.join(" "), "resuming a submission left running");
        let service = service.clone();
        tokio::spawn(async move {
            let ended = match crate::ops::prepare_resume(&service.uri, &service.store, &s.jobs).await {
                Ok((connection, journals, done)) => run(&service, connection, &journals, &done).await,
                Err(e) => Ended { proof: Err(e), rounds: None },
            };
            conclude(&service, &s.id, ended).await;
        });
    }

    let api = Router::new()
        // The submission handler applies the witness limit itself.
        .route("/v1/jobs", get(list).post(submit).layer(DefaultBodyLimit::disable()))
        .route("/v1/jobs/{id}", get(show).delete(cancel))
        .route("/v1/jobs/{id}/proof", get(proof))
        .route_layer(axum::middleware::from_fn_with_state(service.clone(), authorize))
        .with_state(service.clone());
    let ready = service.clone();
    let app = worker::http::metrics_router(&shutdown)
        .route("/livez", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ok = ready.connection.status().connected();
                async move {
                    if ok {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                }
            }),
        )
        .route("/", get(page).with_state(service.clone()))
        .merge(api);
    crate::metrics::describe();
    tracing::info!(addr = %local, store = %service.store.location(), broker = %common::broker::redact(&service.uri), "serving the prover API on /v1/jobs");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|e| Exit::Other(format!("serving: {e}")))?;
    tracing::info!("stopped; running jobs stay staged and resume at the next start");
    Ok(())
}

async fn load(store: &Store) -> Result<Vec<Submission>, Exit> {
    let ids: Vec<String> = match store.get(INDEX_KEY).await {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Exit::Other(format!("{INDEX_KEY}: {e}")))?,
        Err(common::store::StoreError::NotFound(_)) => Vec::new(),
        Err(e) => return Err(Exit::Other(format!("store: {e}"))),
    };
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let bytes = store.get(&record_key(&id)).await.map_err(|e| Exit::Other(format!("store: {e}")))?;
        out.push(serde_json::from_slice(&bytes).map_err(|e| Exit::Other(format!("{}: {e}", record_key(&id))))?);
    }
    Ok(out)
}

/// An API error: the status and one line, as JSON `{"error": ...}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn authorize(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(token) = &service.token {
        let given =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        // Compared in constant time: the comparison does not tell how much of a guess was right.
        let ok = given.is_some_and(|g| {
            g.len() == token.len() && g.bytes().zip(token.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
        });
        if !ok {
            let mut response =
                ApiError(StatusCode::UNAUTHORIZED, "a valid bearer token is required".into()).into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
}

async fn submit(State(service): State<Arc<Service>>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    // A body announced too large is refused before any of it is read (a client that waits for
    // `100 Continue`, as curl does for large bodies, sends none of it); one that turns out too
    // large while it is read is refused as soon as it passes the limit.
    let limit = service.max_witness_bytes;
    let too_large = || {
        ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the witness is larger than the limit of {} MiB (--max-witness-mib)", limit >> 20),
        )
    };
    let announced =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(body, limit.min(usize::MAX as u64) as usize).await.map_err(|_| too_large())?;
    let text = String::from_utf8(body.to_vec()).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("the witness is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()),
        )
    })?;
    let _admitting = service.admitting.lock().await;
    let invalid = |e: Exit| match e {
        Exit::Invalid(m) | Exit::Usage(m) => ApiError(StatusCode::BAD_REQUEST, m),
        Exit::Other(m) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, m),
    };
    // Checked on its own (each batch continuing the one before it), then its first batch against
    // the proved batch it continues, if any.
    let (batches, executed) = check(text, service.params).await.map_err(invalid)?;
    let (chain_id, first_batch) = (executed[0].chain_id, executed[0].batch_number);
    let previous = chain_link(&service, chain_id, first_batch).await?;
    if let Some(p) = &previous {
        prove::continues(p, &executed[0]).map_err(|e| ApiError(StatusCode::CONFLICT, e.message().to_string()))?;
    }

    let jobs: Vec<String> = batches.iter().map(|b| prove::job_id(b.batch_number)).collect();
    let id = jobs[0].clone();
    let connection = crate::broker_fleet::connect(&service.uri)
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.message().to_string()))?;
    let journals =
        match prove::stage(&service.params, &service.store, &jobs, &batches, &executed, previous.as_ref()).await {
            Ok(journals) => journals,
            Err(e) => {
                for job in &jobs {
                    let _ = service.store.delete_prefix(&common::keys::job(job)).await;
                }
                return Err(invalid(e));
            }
        };
    let submission = Submission {
        id: id.clone(),
        jobs: jobs.clone(),
        chain_id,
        batches: executed.iter().map(|e| e.batch_number).collect(),
        tx_count: executed.iter().map(|e| e.tx_count).sum(),
        state: JobState::Running,
        error: None,
        submitted_ms: unix_ms(),
        finished_ms: None,
        post_state_root: None,
        rounds: None,
    };
    record(&service, &submission).await.map_err(internal)?;
    service.submissions.lock().unwrap().insert(id.clone(), submission);
    write_index(&service).await.map_err(internal)?;
    tracing::info!(id = %id, jobs = %jobs.join(" "), txs = executed.iter().map(|e| e.tx_count).sum::<u64>(), "submission accepted");

    let background = service.clone();
    let job = id.clone();
    tokio::spawn(async move {
        let ended = run(&background, connection, &journals, &HashSet::new()).await;
        conclude(&background, &job, ended).await;
    });
    let url = format!("/v1/jobs/{id}");
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, url.clone())], Json(json!({ "id": id, "url": url, "jobs": jobs })))
        .into_response())
}

/// [`prove::check`] off the async threads: executing a large batch takes a while.
async fn check(
    text: String,
    params: Params,
) -> Result<(Vec<prover::batch::Batch>, Vec<prover::execute::ExecutedBatch>), Exit> {
    tokio::task::spawn_blocking(move || prove::check(&text, None, &params))
        .await
        .map_err(|e| Exit::Other(format!("checking the witness: {e}")))?
}

/// The proof a submission starting at `batch` of `chain` continues from, if the service has
/// proved that chain; `409` when it does not continue the chain's last proved batch.
async fn chain_link(service: &Service, chain: u64, batch: u64) -> Result<Option<ProofFile>, ApiError> {
    let (tip, running) = {
        let subs = service.submissions.lock().unwrap();
        let on_chain = || subs.values().filter(|s| s.chain_id == chain);
        let tip = on_chain().filter(|s| s.state == JobState::Done).max_by_key(|s| s.batches.last().copied());
        let running =
            on_chain().filter(|s| s.state == JobState::Running).filter_map(|s| s.batches.last().copied()).max();
        (tip.cloned(), running)
    };
    let conflict = |m: String| Err(ApiError(StatusCode::CONFLICT, m));
    if let Some(last) = running {
        if batch <= last + 1 {
            return conflict(format!(
                "chain {chain}: batch {last} is still being proved; submit batch {} once it is done",
                last + 1
            ));
        }
    }
    let Some(tip) = tip else { return Ok(None) };
    let last = *tip.batches.last().expect("a submission has a batch");
    if batch != last + 1 {
        return conflict(format!(
            "chain {chain}: batch {batch} does not continue the proved chain; the next batch expected is {}",
            last + 1
        ));
    }
    let bytes = service.store.get(&proof_key(&tip.id)).await.map_err(internal)?;
    last_proof(&bytes).map(Some).map_err(internal)
}

/// The last proof of a proof file (one proof, or the array of a chained submission).
fn last_proof(bytes: &[u8]) -> Result<ProofFile, serde_json::Error> {
    match serde_json::from_slice::<serde_json::Value>(bytes)? {
        serde_json::Value::Array(mut files) => serde_json::from_value(files.pop().unwrap_or_default()),
        one => serde_json::from_value(one),
    }
}

/// Drives a submission's jobs to a proof file (or the failure, in one line), with the per-round
/// progress as it ended (read before the jobs' artifacts, which hold it, are removed).
async fn run(service: &Service, connection: lapin::Connection, journals: &[Journal], done: &HashSet<String>) -> Ended {
    // The service never interrupts a job: a stopped service leaves it staged to resume.
    let opts = DriveOptions::broker(service.keep_artifacts, prove::Signals::none(), false);
    let jobs: Vec<String> = journals.iter().map(|j| j.job.clone()).collect();
    let outcome = prove::drive(&opts, &service.store, Some((connection, service.uri.clone())), journals, done).await;
    let (rounds, _) = progress(&service.store, &jobs, false).await;
    Ended { proof: prove::settle(outcome, &opts, &service.store, &jobs).await, rounds: Some(rounds) }
}

/// How a submission's run ended.
struct Ended {
    proof: Result<Vec<u8>, Exit>,
    rounds: Option<BTreeMap<String, job_status::RoundRecord>>,
}

/// Per-round progress, and the time left in milliseconds.
type Progress = (BTreeMap<String, job_status::RoundRecord>, Option<u64>);

/// Per-round progress summed over `jobs` (the numbers `leader status` shows), and with
/// `estimate`, the time left of the slowest, in milliseconds.
async fn progress(store: &Store, jobs: &[String], estimate: bool) -> Progress {
    let mut rounds: BTreeMap<String, job_status::RoundRecord> = BTreeMap::new();
    let mut left_ms: Option<u64> = None;
    for job in jobs {
        let Some(record) = job_status::read(store, job).await else { continue };
        for (round, r) in &record.rounds {
            let sum = rounds.entry(round.as_str().to_string()).or_default();
            sum.planned += r.planned;
            sum.done += r.done;
            sum.in_flight += r.in_flight;
            sum.failed += r.failed;
            sum.busy_ms += r.busy_ms;
        }
        if estimate {
            let elapsed = std::time::Duration::from_millis(unix_ms().saturating_sub(record.started_ms));
            if let Some(left) = job_status::estimate_left(&record, elapsed) {
                left_ms = Some(left_ms.unwrap_or(0).max(left.as_millis() as u64));
            }
        }
    }
    (rounds, left_ms)
}

/// Records how a submission ended: its proof file, or its error.
async fn conclude(service: &Service, id: &str, ended: Ended) {
    let mut submission = match service.submissions.lock().unwrap().get(id) {
        Some(s) => s.clone(),
        None => return,
    };
    submission.rounds = ended.rounds;
    match ended.proof {
        Ok(bytes) => match service.store.replace(&proof_key(id), &bytes).await {
            Ok(()) => {
                submission.state = JobState::Done;
                submission.post_state_root = last_proof(&bytes).ok().map(|p| p.public_values.post_state_root);
            }
            Err(e) => {
                submission.state = JobState::Failed;
                submission.error = Some(format!("storing the proof: {e}"));
            }
        },
        Err(e) => {
            // A cancelled submission stays cancelled, whatever its jobs ended with.
            if submission.state != JobState::Cancelled {
                submission.state = JobState::Failed;
            }
            submission.error = Some(e.message().to_string());
        }
    }
    submission.finished_ms = Some(unix_ms());
    tracing::info!(id = %id, state = ?submission.state, error = submission.error.as_deref().unwrap_or(""), "submission finished");
    if let Err(e) = record(service, &submission).await {
        tracing::warn!(id = %id, error = %e, "recording a finished submission");
    }
    service.submissions.lock().unwrap().insert(id.to_string(), submission);
    service.progress.lock().unwrap().remove(id);
}

/// Rewrites the index from the submissions in memory.
async fn write_index(service: &Service) -> Result<(), common::store::StoreError> {
    let ids: Vec<String> = service.submissions.lock().unwrap().keys().cloned().collect();
    service.store.replace(INDEX_KEY, &serde_json::to_vec(&ids).expect("ids serialize")).await
}

/// Forgets the jobs that finished longer than the retention ago: their records and proofs leave
/// the store, and the API answers `404` for them.
async fn expire(service: &Service) {
    let cutoff = unix_ms().saturating_sub(service.retention.as_millis() as u64);
    let expired: Vec<String> = service
        .submissions
        .lock()
        .unwrap()
        .values()
        .filter(|s| s.state != JobState::Running && s.finished_ms.is_some_and(|f| f <= cutoff))
        .map(|s| s.id.clone())
        .collect();
    if expired.is_empty() {
        return;
    }
    for id in &expired {
        service.submissions.lock().unwrap().remove(id);
    }
    if let Err(e) = write_index(service).await {
        tracing::warn!(error = %e, "rewriting the index after expiring jobs");
        return;
    }
    for id in &expired {
        let _ = service.store.delete(&proof_key(id)).await;
        let _ = service.store.delete(&record_key(id)).await;
    }
    tracing::info!(jobs = %expired.join(" "), retention_h = service.retention.as_secs() / 3600, "finished jobs past their retention removed");
}

async fn record(service: &Service, submission: &Submission) -> Result<(), common::store::StoreError> {
    let bytes = serde_json::to_vec_pretty(submission).expect("submissions serialize");
    service.store.replace(&record_key(&submission.id), &bytes).await
}

fn find(service: &Service, id: &str) -> Result<Submission, ApiError> {
    service
        .submissions
        .lock()
        .unwrap()
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no job {id}")))
}

/// A submission as the API shows it: its record, per-round progress and, while running, an
/// estimate of the time left.
async fn view(service: &Service, s: &Submission) -> serde_json::Value {
    let (rounds, left_ms) = match &s.rounds {
        Some(rounds) => (rounds.clone(), None),
        None => {
            let fresh = |at: &std::time::Instant| at.elapsed() < job_status::RECORD_INTERVAL / 2;
            let cached =
                service.progress.lock().unwrap().get(&s.id).filter(|(at, _)| fresh(at)).map(|(_, p)| p.clone());
            match cached {
                Some(p) => p,
                None => {
                    let p = progress(&service.store, &s.jobs, s.state == JobState::Running).await;
                    service.progress.lock().unwrap().insert(s.id.clone(), (std::time::Instant::now(), p.clone()));
                    p
                }
            }
        }
    };
    let url = format!("/v1/jobs/{}", s.id);
    json!({
        "id": s.id,
        "url": url,
        "state": s.state,
        "jobs": s.jobs,
        "chain_id": s.chain_id,
        "batches": s.batches,
        "tx_count": s.tx_count,
        "submitted_ms": s.submitted_ms,
        "finished_ms": s.finished_ms,
        "error": s.error,
        "rounds": rounds,
        "time_left_ms": left_ms,
        "proof_url": (s.state == JobState::Done).then(|| format!("{url}/proof")),
    })
}

/// Every submission's view, newest first.
async fn views(service: &Service) -> Vec<serde_json::Value> {
    let mut subs: Vec<Submission> = service.submissions.lock().unwrap().values().cloned().collect();
    subs.sort_by_key(|s| std::cmp::Reverse(s.submitted_ms));
    let mut out = Vec::with_capacity(subs.len());
    for s in &subs {
        out.push(view(service, s).await);
    }
    out
}

async fn list(State(service): State<Arc<Service>>) -> Json<serde_json::Value> {
    Json(json!({ "jobs": views(&service).await }))
}

/// The jobs page: what `GET /v1/jobs` shows, without the token (proofs and actions need it).
async fn page(State(service): State<Arc<Service>>) -> axum::response::Html<String> {
    axum::response::Html(crate::jobs_page::render(&views(&service).await, &service.management))
}

async fn show(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let s = find(&service, &id)?;
    Ok(Json(view(&service, &s).await))
}

async fn proof(State(service): State<Arc<Service>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let s = find(&service, &id)?;
    if s.state != JobState::Done {
        let state = serde_json::to_value(s.state).expect("states serialize");
        return Err(ApiError(StatusCode::CONFLICT, format!("job {id} is {}: no proof", state.as_str().unwrap_or("?"))));
    }
    let bytes = service.store.get(&proof_key(&id)).await.map_err(|e| match e {
        // Deleted under the service, by a lifecycle rule of the bucket shorter than its retention.
        common::store::StoreError::NotFound(_) => {
            ApiError(StatusCode::GONE, format!("the proof of job {id} is no longer in the store"))
        }
        e => internal(e),
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

async fn cancel(State(service): State<Arc<Service>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let s = find(&service, &id)?;
    if s.state != JobState::Running {
        return Err(ApiError(StatusCode::CONFLICT, format!("job {id} is not running")));
    }
    // Finished as the user sees it: the retention counts from here, even if the service stops
    // before its jobs have wound down.
    let cancelled = Submission { state: JobState::Cancelled, finished_ms: Some(unix_ms()), ..s.clone() };
    // Recorded first: a service restarted meanwhile must not resume it.
    record(&service, &cancelled).await.map_err(internal)?;
    service.submissions.lock().unwrap().insert(id.clone(), cancelled);
    crate::ops::cancel(&service.uri, &service.store, &s.jobs).await.map_err(|e| internal(e.message()))?;
    tracing::info!(id = %id, "submission cancelled");
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id, "state": JobState::Cancelled }))).into_response())
}

//! Prometheus metrics: the process-wide recorder, and the metrics of what this crate owns (the
//! object store). Other crates declare theirs in their own `metrics.rs`.
//!
//! Names follow `zkfleet_<subsystem>_<name>_<unit>`: `_seconds` and `_bytes` for measurements,
//! `_total` for counters. Label values come from small fixed sets (`operation` here), never ids.
//! Without [`install`] every metric call is a no-op, and the per-task and per-operation ones
//! return before building a metric's key, so a process that serves no `/metrics` pays next to
//! nothing for them.

use std::sync::OnceLock;
use std::time::Instant;

use metrics::{counter, describe_counter, describe_histogram, histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const STORE_READ_BYTES: &str = "zkfleet_store_read_bytes_total";
pub const STORE_WRITTEN_BYTES: &str = "zkfleet_store_written_bytes_total";
pub const STORE_DURATION: &str = "zkfleet_store_operation_duration_seconds";
pub const STORE_ERRORS: &str = "zkfleet_store_errors_total";

/// Histogram buckets of every `_seconds` metric: from a millisecond (a store read, a no-op task)
/// to ten minutes (the longest proof with a circuit build), about 2.5x apart.
pub const SECONDS_BUCKETS: [f64; 18] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 600.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder for the whole process (once; later calls return the same
/// handle) and describes the store's metrics. Render the scrape page with
/// [`PrometheusHandle::render`]; call [`PrometheusHandle::run_upkeep`] now and then.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .expect("the buckets are not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder already installed (a test harness) keeps its place; this handle
            // then renders an empty page.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

/// Whether [`install`] has run in this process: handles registered before it are no-ops for good,
/// so a caller that keeps handles registers them only after it.
pub fn installed() -> bool {
    HANDLE.get().is_some()
}

fn describe() {
    describe_counter!(STORE_READ_BYTES, Unit::Bytes, "Bytes read from the object store");
    describe_counter!(STORE_WRITTEN_BYTES, Unit::Bytes, "Bytes written to the object store");
    describe_histogram!(
        STORE_DURATION,
        Unit::Seconds,
        "Time one object store operation took, by operation (get, put), failures included"
    );
    describe_counter!(STORE_ERRORS, "Object store operations that failed (a missing object is not a failure)");
}

/// How one store operation ended, as its metrics count it.
pub enum StoreEnded {
    /// Done, having moved this many bytes.
    Done {
        bytes: usize,
    },
    /// The object was not there: not a failure.
    Missing,
    Failed,
}

/// Times one store operation. The store calls it in one place per operation. Before [`install`]
/// it neither reads the clock nor records anything.
pub struct StoreTimer(Option<Instant>);

impl StoreTimer {
    pub fn start() -> Self {
        Self(installed().then(Instant::now))
    }

    /// Records a read that ended as `ended`.
    pub fn read(self, ended: StoreEnded) {
        self.record("get", STORE_READ_BYTES, ended);
    }

    /// Records a write that ended as `ended`.
    pub fn write(self, ended: StoreEnded) {
        self.record("put", STORE_WRITTEN_BYTES, ended);
    }

    fn record(self, operation: &'static str, moved: &'static str, ended: StoreEnded) {
        let Some(started) = self.0 else { return };
        histogram!(STORE_DURATION, "operation" => operation).record(started.elapsed().as_secs_f64());
        match ended {
            StoreEnded::Done { bytes } => counter!(moved).increment(bytes as u64),
            StoreEnded::Missing => {}
            StoreEnded::Failed => counter!(STORE_ERRORS, "operation" => operation).increment(1),
        }
    }
}

/// Every metric this crate declares, for checks that compare dashboards with the code.
pub const NAMES: [&str; 4] = [STORE_READ_BYTES, STORE_WRITTEN_BYTES, STORE_DURATION, STORE_ERRORS];

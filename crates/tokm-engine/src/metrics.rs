//! The engine's metrics, emitted through the `metrics` facade so the embedding service picks
//! the exporter (Prometheus, StatsD, ...), and the names every metric is published under.
//!
//! Handles are registered when the engine opens, with the recorder installed then; without
//! one every handle is a no-op. So install the recorder before [`Engine::open`]. Labels hold
//! only fixed names and stable error codes: never a token, a user id, a session id or a path.
//!
//! [`Engine::open`]: crate::Engine::open

use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Unit};
use tokm_domain::SessionError;

use crate::recovery::RecoveryReport;

/// Repository calls, by `operation` and `outcome` (`ok` or `error`; errors also carry the
/// stable `code`, e.g. `TM-SESS-4041`).
pub const OPERATIONS: &str = "tokm_operations_total";
/// Seconds each repository call took, by `operation` (successes and errors alike).
pub const OPERATION_SECONDS: &str = "tokm_operation_duration_seconds";
/// Sessions held in memory (live, or expired and not yet swept).
pub const SESSIONS: &str = "tokm_sessions";
/// 1 while the engine refuses writes after a log failure, else 0.
pub const READ_ONLY: &str = "tokm_read_only";
/// Expired sessions the sweep removed.
pub const EXPIRED_SWEPT: &str = "tokm_expired_swept_total";
/// Seconds one sweep tick took.
pub const SWEEP_SECONDS: &str = "tokm_sweep_duration_seconds";
/// Snapshots attempted, by `outcome` (`ok` or `error`).
pub const SNAPSHOTS: &str = "tokm_snapshots_total";
/// Seconds one snapshot took, from the pause to the file synced and named.
pub const SNAPSHOT_SECONDS: &str = "tokm_snapshot_duration_seconds";
/// Seconds writers were paused while a snapshot read the LSN and started its capture.
pub const SNAPSHOT_PAUSE_SECONDS: &str = "tokm_snapshot_pause_seconds";
/// Size of the last snapshot written, in bytes.
pub const SNAPSHOT_BYTES: &str = "tokm_snapshot_last_bytes";
/// Sessions in the last snapshot written.
pub const SNAPSHOT_SESSIONS: &str = "tokm_snapshot_last_sessions";
/// Log segments deleted by compaction.
pub const COMPACTED_SEGMENTS: &str = "tokm_wal_segments_compacted_total";
/// Seconds the last open took, from the call to serving.
pub const RECOVERY_SECONDS: &str = "tokm_recovery_duration_seconds";
/// Log records replayed by the last open.
pub const RECOVERY_REPLAYED: &str = "tokm_recovery_replayed_records";
/// Sessions the last open started serving with.
pub const RECOVERY_SESSIONS: &str = "tokm_recovery_sessions";
/// Damaged snapshots the last open fell back past.
pub const RECOVERY_FALLBACKS: &str = "tokm_recovery_snapshot_fallbacks";
/// Sessions the last open found expired and removed.
pub const RECOVERY_EXPIRED: &str = "tokm_recovery_expired_dropped";

/// Every name this crate emits (the log's own are in [`tokm_wal::METRIC_NAMES`]).
pub const NAMES: [&str; 17] = [
    OPERATIONS,
    OPERATION_SECONDS,
    SESSIONS,
    READ_ONLY,
    EXPIRED_SWEPT,
    SWEEP_SECONDS,
    SNAPSHOTS,
    SNAPSHOT_SECONDS,
    SNAPSHOT_PAUSE_SECONDS,
    SNAPSHOT_BYTES,
    SNAPSHOT_SESSIONS,
    COMPACTED_SEGMENTS,
    RECOVERY_SECONDS,
    RECOVERY_REPLAYED,
    RECOVERY_SESSIONS,
    RECOVERY_FALLBACKS,
    RECOVERY_EXPIRED,
];

/// The repository calls, each a value of the `operation` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Create,
    Get,
    Update,
    Delete,
    List,
    ListAfter,
    CountByUser,
    ListByUser,
    DeleteByUser,
    CleanupExpired,
    GetByTokenHash,
    Touch,
}

impl Operation {
    const ALL: [Operation; 12] = [
        Operation::Create,
        Operation::Get,
        Operation::Update,
        Operation::Delete,
        Operation::List,
        Operation::ListAfter,
        Operation::CountByUser,
        Operation::ListByUser,
        Operation::DeleteByUser,
        Operation::CleanupExpired,
        Operation::GetByTokenHash,
        Operation::Touch,
    ];

    fn label(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Get => "get",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::ListAfter => "list_after",
            Operation::CountByUser => "count_by_user",
            Operation::ListByUser => "list_by_user",
            Operation::DeleteByUser => "delete_by_user",
            Operation::CleanupExpired => "cleanup_expired",
            Operation::GetByTokenHash => "get_by_token_hash",
            Operation::Touch => "touch",
        }
    }
}

/// The engine's metric handles, registered once at open.
#[derive(Debug)]
pub(crate) struct EngineMetrics {
    succeeded: [Counter; Operation::ALL.len()],
    took: [Histogram; Operation::ALL.len()],
    sessions: Gauge,
    read_only: Gauge,
    expired_swept: Counter,
    sweep_seconds: Histogram,
    snapshots_ok: Counter,
    snapshots_failed: Counter,
    snapshot_seconds: Histogram,
    snapshot_pause_seconds: Histogram,
    snapshot_bytes: Gauge,
    snapshot_sessions: Gauge,
    compacted_segments: Counter,
}

impl EngineMetrics {
    /// Describes every metric and registers the handles with the installed recorder.
    pub(crate) fn register() -> EngineMetrics {
        describe();
        EngineMetrics {
            succeeded: Operation::ALL.map(|operation| {
                metrics::counter!(OPERATIONS, "operation" => operation.label(), "outcome" => "ok")
            }),
            took: Operation::ALL
                .map(|operation| metrics::histogram!(OPERATION_SECONDS, "operation" => operation.label())),
            sessions: metrics::gauge!(SESSIONS),
            read_only: metrics::gauge!(READ_ONLY),
            expired_swept: metrics::counter!(EXPIRED_SWEPT),
            sweep_seconds: metrics::histogram!(SWEEP_SECONDS),
            snapshots_ok: metrics::counter!(SNAPSHOTS, "outcome" => "ok"),
            snapshots_failed: metrics::counter!(SNAPSHOTS, "outcome" => "error"),
            snapshot_seconds: metrics::histogram!(SNAPSHOT_SECONDS),
            snapshot_pause_seconds: metrics::histogram!(SNAPSHOT_PAUSE_SECONDS),
            snapshot_bytes: metrics::gauge!(SNAPSHOT_BYTES),
            snapshot_sessions: metrics::gauge!(SNAPSHOT_SESSIONS),
            compacted_segments: metrics::counter!(COMPACTED_SEGMENTS),
        }
    }

    /// Runs one repository call, counting it by outcome and timing it.
    pub(crate) fn observe<T>(
        &self,
        operation: Operation,
        call: impl FnOnce() -> Result<T, SessionError>,
    ) -> Result<T, SessionError> {
        let started = Instant::now();
        let result = call();
        let index = operation as usize;
        self.took[index].record(started.elapsed());
        match &result {
            Ok(_) => self.succeeded[index].increment(1),
            // Registered on use: the codes an operation meets are few, and errors are rarer.
            Err(error) => metrics::counter!(
                OPERATIONS,
                "operation" => operation.label(),
                "outcome" => "error",
                "code" => error.code()
            )
            .increment(1),
        }
        result
    }

    pub(crate) fn sessions(&self, count: usize) {
        self.sessions.set(count as f64);
    }

    pub(crate) fn read_only(&self, read_only: bool) {
        self.read_only.set(if read_only { 1.0 } else { 0.0 });
    }

    pub(crate) fn swept(&self, removed: u64, took: Duration) {
        self.expired_swept.increment(removed);
        self.sweep_seconds.record(took);
    }

    pub(crate) fn snapshot_written(
        &self,
        took: Duration,
        pause: Duration,
        size_bytes: u64,
        sessions: u64,
    ) {
        self.snapshots_ok.increment(1);
        self.snapshot_seconds.record(took);
        self.snapshot_pause_seconds.record(pause);
        self.snapshot_bytes.set(size_bytes as f64);
        self.snapshot_sessions.set(sessions as f64);
    }

    pub(crate) fn snapshot_failed(&self) {
        self.snapshots_failed.increment(1);
    }

    pub(crate) fn compacted(&self, segments: usize) {
        self.compacted_segments.increment(segments as u64);
    }

    /// Publishes what the open that just finished did, as gauges that keep their values
    /// until the next open.
    pub(crate) fn recovered(&self, report: &RecoveryReport) {
        metrics::gauge!(RECOVERY_SECONDS).set(report.total.as_secs_f64());
        metrics::gauge!(RECOVERY_REPLAYED).set(report.replayed_count as f64);
        metrics::gauge!(RECOVERY_SESSIONS).set(report.session_count as f64);
        metrics::gauge!(RECOVERY_FALLBACKS).set(report.snapshot_fallbacks.len() as f64);
        metrics::gauge!(RECOVERY_EXPIRED).set(report.expired_count as f64);
        self.sessions(report.session_count);
        self.read_only(false);
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        OPERATIONS,
        Unit::Count,
        "Repository calls by operation and outcome"
    );
    describe_histogram!(
        OPERATION_SECONDS,
        Unit::Seconds,
        "Duration of repository calls"
    );
    describe_gauge!(SESSIONS, Unit::Count, "Sessions held in memory");
    describe_gauge!(
        READ_ONLY,
        "1 while the engine refuses writes after a log failure"
    );
    describe_counter!(
        EXPIRED_SWEPT,
        Unit::Count,
        "Expired sessions removed by the sweep"
    );
    describe_histogram!(SWEEP_SECONDS, Unit::Seconds, "Duration of one sweep tick");
    describe_counter!(SNAPSHOTS, Unit::Count, "Snapshots attempted by outcome");
    describe_histogram!(SNAPSHOT_SECONDS, Unit::Seconds, "Duration of one snapshot");
    describe_histogram!(
        SNAPSHOT_PAUSE_SECONDS,
        Unit::Seconds,
        "How long a snapshot paused writers"
    );
    describe_gauge!(SNAPSHOT_BYTES, Unit::Bytes, "Size of the last snapshot");
    describe_gauge!(
        SNAPSHOT_SESSIONS,
        Unit::Count,
        "Sessions in the last snapshot"
    );
    describe_counter!(
        COMPACTED_SEGMENTS,
        Unit::Count,
        "Log segments deleted by compaction"
    );
    describe_gauge!(RECOVERY_SECONDS, Unit::Seconds, "Duration of the last open");
    describe_gauge!(
        RECOVERY_REPLAYED,
        Unit::Count,
        "Log records replayed by the last open"
    );
    describe_gauge!(
        RECOVERY_SESSIONS,
        Unit::Count,
        "Sessions served after the last open"
    );
    describe_gauge!(
        RECOVERY_FALLBACKS,
        Unit::Count,
        "Damaged snapshots the last open fell back past"
    );
    describe_gauge!(
        RECOVERY_EXPIRED,
        Unit::Count,
        "Expired sessions removed by the last open"
    );
}

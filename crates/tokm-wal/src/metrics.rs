//! The log's metrics, emitted through the `metrics` facade.
//!
//! Handles are registered once, when the log opens, with whatever recorder is installed then
//! (none: every handle is a no-op and costs an inlined branch). So a service installs its
//! recorder before it opens the log. No label carries data: names and fixed values only.

use std::time::Duration;

use metrics::{Counter, Histogram, Unit};

/// Records appended (each payload of a batch counts once).
pub(crate) const APPENDS: &str = "tokm_wal_appends_total";
/// Payload bytes appended.
pub(crate) const APPENDED_BYTES: &str = "tokm_wal_appended_bytes_total";
/// Seconds one `fdatasync` of a segment took.
pub(crate) const FSYNC_SECONDS: &str = "tokm_wal_fsync_duration_seconds";
/// Records one group commit wrote with one `write` call.
pub(crate) const GROUP_COMMIT_RECORDS: &str = "tokm_wal_group_commit_records";
/// Segments created (at open and at every rotation).
pub(crate) const SEGMENTS_CREATED: &str = "tokm_wal_segments_created_total";

/// Every name this module emits, for documentation checks and tests.
pub const NAMES: [&str; 5] = [
    APPENDS,
    APPENDED_BYTES,
    FSYNC_SECONDS,
    GROUP_COMMIT_RECORDS,
    SEGMENTS_CREATED,
];

/// The log's metric handles.
#[derive(Debug)]
pub(crate) struct WalMetrics {
    appends: Counter,
    appended_bytes: Counter,
    fsync_seconds: Histogram,
    group_commit_records: Histogram,
    segments_created: Counter,
}

impl WalMetrics {
    /// Describes the metrics and registers their handles with the installed recorder.
    pub(crate) fn register() -> WalMetrics {
        metrics::describe_counter!(
            APPENDS,
            Unit::Count,
            "Records appended to the write-ahead log"
        );
        metrics::describe_counter!(APPENDED_BYTES, Unit::Bytes, "Payload bytes appended");
        metrics::describe_histogram!(
            FSYNC_SECONDS,
            Unit::Seconds,
            "Duration of one fdatasync of a log segment"
        );
        metrics::describe_histogram!(
            GROUP_COMMIT_RECORDS,
            Unit::Count,
            "Records written by one group commit"
        );
        metrics::describe_counter!(
            SEGMENTS_CREATED,
            Unit::Count,
            "Log segments created (open and rotation)"
        );
        WalMetrics {
            appends: metrics::counter!(APPENDS),
            appended_bytes: metrics::counter!(APPENDED_BYTES),
            fsync_seconds: metrics::histogram!(FSYNC_SECONDS),
            group_commit_records: metrics::histogram!(GROUP_COMMIT_RECORDS),
            segments_created: metrics::counter!(SEGMENTS_CREATED),
        }
    }

    pub(crate) fn appended(&self, records: usize, bytes: usize) {
        self.appends.increment(records as u64);
        self.appended_bytes.increment(bytes as u64);
    }

    pub(crate) fn synced(&self, took: Duration) {
        self.fsync_seconds.record(took);
    }

    pub(crate) fn group_committed(&self, records: usize) {
        // Exact for any group a log can hold (f64 represents every integer below 2^53).
        self.group_commit_records.record(records as f64);
    }

    pub(crate) fn segment_created(&self) {
        self.segments_created.increment(1);
    }
}

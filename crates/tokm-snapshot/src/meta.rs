//! What the store reports about snapshots: metadata, load and retention reports.

use tokm_crypto_adaptive::{Algorithm, KeyId};
use tokm_domain::{SessionRecord, Timestamp};
use tokm_storage::Lsn;

use crate::error::LoadError;

/// How a snapshot's blocks are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encryption {
    /// Blocks are stored as encoded.
    None,
    /// Blocks are sealed under a per-file subkey of key `key_id`.
    Sealed {
        /// The algorithm written in the header.
        algorithm: Algorithm,
        /// The key the file's subkey derives from.
        key_id: KeyId,
    },
}

/// A snapshot's header facts, as written and as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// File name inside the snapshot directory.
    pub file_name: String,
    /// Unique per file; bound into every sealed block's associated data.
    pub snapshot_id: u64,
    /// Every log entry with an LSN up to and including this one is reflected, none after.
    pub covered_lsn: Lsn,
    /// When the snapshot was taken, by the store's clock.
    pub created_at: Timestamp,
    /// The node that wrote it.
    pub node_id: String,
    /// Number of sessions it holds.
    pub session_count: u64,
    /// Whether and how its blocks are sealed.
    pub encryption: Encryption,
    /// Size of the file.
    pub size_bytes: u64,
}

/// A snapshot read back in full.
#[derive(Clone, Debug)]
pub struct LoadedSnapshot {
    /// Its header facts; replay the log after `meta.covered_lsn`.
    pub meta: SnapshotMeta,
    /// Every session, in no particular order (blocks are encoded on several threads).
    pub records: Vec<SessionRecord>,
}

/// A snapshot that failed a check while loading and was renamed aside.
#[derive(Debug)]
pub struct Fallback {
    /// The snapshot's file name.
    pub file_name: String,
    /// What it was renamed to (`<file_name>.broken`); rename it back to retry it.
    pub renamed_to: String,
    /// Why it was refused; `error.code()` and `error.cause_code()` give the codes.
    pub error: LoadError,
}

/// Everything `load_newest` skipped on its way to the snapshot it returned.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Newest first: each damaged snapshot tried before the one loaded.
    pub fallbacks: Vec<Fallback>,
}

/// The result of [`SnapshotStore::load_newest`](crate::SnapshotStore::load_newest).
#[derive(Debug)]
pub struct LoadOutcome {
    /// The newest valid snapshot, or `None` when the directory holds no snapshot at all.
    pub snapshot: Option<LoadedSnapshot>,
    /// What was skipped and why.
    pub report: LoadReport,
}

/// One snapshot file as [`SnapshotStore::list`](crate::SnapshotStore::list) sees it.
#[derive(Debug)]
pub struct SnapshotInfo {
    /// File name inside the snapshot directory.
    pub file_name: String,
    /// The LSN its name carries.
    pub covered_lsn: Lsn,
    /// The creation time its name carries.
    pub created_at: Timestamp,
    /// Its header and footer, checked against their checksums; blocks are not read, so a
    /// listed snapshot can still fail to load.
    pub meta: Result<SnapshotMeta, LoadError>,
}

/// What [`SnapshotStore::apply_retention`](crate::SnapshotStore::apply_retention) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// File names removed, newest first.
    pub removed: Vec<String>,
    /// File names kept, newest first.
    pub kept: Vec<String>,
}

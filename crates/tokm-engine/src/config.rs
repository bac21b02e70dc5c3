//! [`EngineConfig`]: where the engine keeps its files and how it trades latency for durability.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokm_crypto_adaptive::Keyring;
use tokm_domain::{Clock, Quota, SystemClock};
use tokm_storage::{FsStorage, Storage};
use tokm_wal::RecoveryMode;

pub use tokm_wal::Durability;

/// Everything [`Engine::open`](crate::Engine::open) needs. Build with [`EngineConfig::new`] and
/// adjust the public fields; the defaults are the seed's.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Data directory: `wal/`, `snapshots/` and the `LOCK` file live inside it.
    pub dir: PathBuf,
    /// `Sync`: a write returns after its log record is on disk. `Batch`: after it is buffered;
    /// a crash loses at most [`LogPolicy::sync_interval`] of writes.
    pub durability: Durability,
    /// Segment sizes, sync cadence and group-commit limits of the write-ahead log.
    pub log: LogPolicy,
    /// What recovery does when acknowledged records after the snapshot cannot all be read
    /// (default `RefuseLoss`: refuse to open and change nothing; dropping them is the explicit
    /// choice of `PointInTime` or `SkipDamaged`). See `docs/ARCHITECTURE.md`, "Recovery
    /// decisions".
    pub recovery_mode: RecoveryMode,
    /// Per-user session limit and what `create` does at it (default 50, reject).
    pub quota: Quota,
    /// Sessions to reserve room for at open (default 0: tables grow as needed). The store's
    /// tables are sized for the larger of this and an eighth more than the snapshot holds;
    /// sized up front they stay about 84% full, while tables that grew by doubling average
    /// lower, so a service that knows its scale saves memory (about 90 bytes per session at
    /// a million) and the rehashing as it fills.
    pub expected_sessions: usize,
    /// When set, log records and snapshot blocks are sealed with its active key.
    pub keyring: Option<Arc<Keyring>>,
    /// The only source of time: expiry, timestamps, snapshot ages, rotation.
    pub clock: Arc<dyn Clock>,
    /// File I/O (tests pass `tokm_storage::testkit::SimStorage`).
    pub storage: Arc<dyn Storage>,
    /// Written into segment and snapshot headers.
    pub node_id: u64,
    /// Snapshot triggers and retention.
    pub snapshots: SnapshotPolicy,
    /// How the maintenance thread removes expired sessions.
    pub sweep: SweepPolicy,
    /// A `touch` is logged at most once per session per window; touches inside it change
    /// memory only (default 1 s). After a crash `last_active` may be this much older than the
    /// last touch, so an idle timeout can end a session up to this much early.
    pub touch_log_window: Duration,
}

/// When the engine takes snapshots and how many it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Take one when this long has passed since the last (default 1 h); `None` turns the
    /// timer off.
    pub interval: Option<Duration>,
    /// Take one when this many bytes were logged since the last (default 1 GiB); `None`
    /// turns it off.
    pub wal_bytes: Option<u64>,
    /// Take one right after a cold start that replayed more records than this (default
    /// 100,000), so the next start is fast; `None` turns it off.
    pub after_replay_records: Option<u64>,
    /// Keep at least this many snapshots (default 5).
    pub retention_count: usize,
    /// Keep every snapshot younger than this, by the engine's clock (default 7 days).
    pub retention_age: Duration,
    /// Log segments the compactor always keeps (default 3).
    pub wal_segments_kept: usize,
    /// How often the background thread checks the triggers (default 1 s).
    pub check_interval: Duration,
}

impl Default for SnapshotPolicy {
    fn default() -> SnapshotPolicy {
        SnapshotPolicy {
            interval: Some(Duration::from_secs(60 * 60)),
            wal_bytes: Some(1 << 30),
            after_replay_records: Some(100_000),
            retention_count: 5,
            retention_age: Duration::from_secs(7 * 24 * 60 * 60),
            wal_segments_kept: 3,
            check_interval: Duration::from_secs(1),
        }
    }
}

/// The write-ahead log's limits and cadence. Every time here is measured by
/// [`EngineConfig::clock`]. [`Engine::open`](crate::Engine::open) refuses a policy the log
/// would refuse, with [`EngineError::InvalidLogPolicy`](crate::EngineError::InvalidLogPolicy)
/// carrying the log's own error (`TM-WAL-4001`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogPolicy {
    /// A segment is sealed and a new one started before it grows past this (default 64 MiB,
    /// at most 1 GiB). Smaller segments let compaction free space sooner.
    pub segment_bytes_max: u64,
    /// ... or once it holds this many records (default 100,000).
    pub segment_records_max: u64,
    /// ... or once it is this old (default 1 h).
    pub segment_age_max: Duration,
    /// `Batch` durability: the flusher syncs at least this often, so a crash loses at most
    /// this much of acknowledged writes (default 1 s).
    pub sync_interval: Duration,
    /// `Batch` durability: the flusher syncs early once this many bytes are written but
    /// unsynced (default 4 MiB).
    pub sync_bytes_max: u64,
    /// One group commit (one write and, in `Sync` mode, one fsync for many writers) takes at
    /// most this many records (default 100) ...
    pub group_commit_records_max: usize,
    /// ... and this many bytes (default 1 MiB).
    pub group_commit_bytes_max: usize,
    /// The largest encoded write the log accepts (default 1 MiB, at most 32 MiB). A
    /// `delete_by_user` of a user with many sessions is one record.
    pub record_bytes_max: usize,
}

impl Default for LogPolicy {
    fn default() -> LogPolicy {
        LogPolicy {
            segment_bytes_max: 64 * 1024 * 1024,
            segment_records_max: 100_000,
            segment_age_max: Duration::from_secs(60 * 60),
            sync_interval: Duration::from_secs(1),
            sync_bytes_max: 4 * 1024 * 1024,
            group_commit_records_max: 100,
            group_commit_bytes_max: 1024 * 1024,
            record_bytes_max: 1024 * 1024,
        }
    }
}

/// How the maintenance thread removes sessions past their expiry (or idle timeout).
///
/// Expired sessions are already invisible to reads; the sweep frees their memory and keeps
/// them out of later snapshots. It deletes through the log like any write, in batches of at
/// most `batch_max` sessions: one log append each, holding the stripes of the users in the
/// batch (a writer of one of them waits for at most that append). A tick removes at most
/// `per_tick_max`, at most `sessions_per_second_max`; when more remain, the next check
/// continues at once instead of waiting for `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepPolicy {
    /// Sweep when this long (by the engine's clock) has passed since the last sweep
    /// (default 10 s); `None` turns the sweep off (then call
    /// [`SessionRepository::cleanup_expired`](tokm_domain::SessionRepository::cleanup_expired)
    /// yourself).
    pub interval: Option<Duration>,
    /// Sessions deleted per logged batch (default 64, at least 1): a batch holds its users'
    /// stripes while it is logged and applied.
    pub batch_max: usize,
    /// Sessions deleted per maintenance tick (default 10,000, at least `batch_max`).
    pub per_tick_max: usize,
    /// The sweep deletes at most this many sessions per second (default 20,000), pausing
    /// between batches: every delete is log data that the fsyncs of writers beside the sweep
    /// carry, so a backlog drains at a pace they do not feel. `None` sweeps at full speed.
    pub sessions_per_second_max: Option<u64>,
}

impl Default for SweepPolicy {
    fn default() -> SweepPolicy {
        SweepPolicy {
            interval: Some(Duration::from_secs(10)),
            batch_max: 64,
            per_tick_max: 10_000,
            sessions_per_second_max: Some(20_000),
        }
    }
}

impl EngineConfig {
    /// Defaults for a data directory: `Sync` durability, real files, the system clock, no
    /// encryption.
    pub fn new(dir: &Path) -> EngineConfig {
        EngineConfig {
            dir: dir.to_path_buf(),
            durability: Durability::Sync,
            log: LogPolicy::default(),
            recovery_mode: RecoveryMode::default(),
            quota: Quota::default(),
            expected_sessions: 0,
            keyring: None,
            clock: Arc::new(SystemClock),
            storage: Arc::new(FsStorage),
            node_id: 0,
            snapshots: SnapshotPolicy::default(),
            sweep: SweepPolicy::default(),
            touch_log_window: Duration::from_secs(1),
        }
    }

    /// The log directory.
    pub fn wal_dir(&self) -> PathBuf {
        self.dir.join("wal")
    }

    /// The snapshot directory.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.dir.join("snapshots")
    }
}

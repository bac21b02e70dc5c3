//! Cold start: lock the directory, recover (examine, decide, act: `recovery.rs`), drop what
//! expired while down, then serve.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use tokm_cmap::ShardedMap;
use tokm_domain::ErrorChain;
use tokm_storage::FsStorage;

use crate::config::EngineConfig;
use crate::engine::{Engine, Published, Shared, SnapshotState, SweepState, spawn_background};
use crate::error::EngineError;
use crate::metrics::EngineMetrics;
use crate::recovery::{self, Acted, RecoveryReport};

/// Name of the lock file inside the data directory.
const LOCK_FILE_NAME: &str = "LOCK";

impl Engine {
    /// Opens (creating if needed) the data directory and recovers, then serves.
    ///
    /// Recovery first examines everything, reading only: the log's headers and keys, the
    /// newest snapshot that passes every check (falling back past damaged ones), then the log
    /// from that snapshot's LSN in one streaming pass. It then decides under
    /// `config.recovery_mode` (the rules are in `docs/ARCHITECTURE.md`, "Recovery decisions"),
    /// and only an open that goes ahead changes files: damaged snapshots renamed `*.broken`, a
    /// torn tail truncated, what the policy drops quarantined. After a policy dropped or
    /// skipped records, a snapshot is taken at once, so later opens no longer need them.
    /// Sessions that expired while the engine was down are then deleted through the log.
    ///
    /// # Errors
    /// Each of these leaves the directory as it was (only a fresh directory and its `LOCK`
    /// file may have been created): [`EngineError::InvalidConfig`]; [`EngineError::Locked`] when
    /// another engine has the directory; [`EngineError::WouldDropRecords`] when opening would
    /// lose acknowledged records and the mode does not allow it; a key problem as
    /// [`EngineError::Wal`] (`TM-WAL-4031`) or [`EngineError::Snapshot`] (`TM-SNAP-4031`,
    /// `TM-SNAP-4032`), naming the file and the key id it needs; a foreign or newer file;
    /// [`EngineError::UndecodableRecord`], [`EngineError::Replay`]; I/O as
    /// [`EngineError::Io`], [`EngineError::Wal`] or [`EngineError::Snapshot`]. An I/O failure
    /// while carrying the decision out, or a failed snapshot after a policy dropped records,
    /// can leave part of it done; the next open decides the same way.
    pub fn open(config: EngineConfig) -> Result<(Engine, RecoveryReport), EngineError> {
        let started = Instant::now();
        let _span = tracing::info_span!("tokm.open").entered();
        validate(&config)?;
        let lock_file = lock_data_dir(&config.dir)?;
        let examined = recovery::examine(&config)?;
        let plan = examined.decide(&config)?;
        let (acted, store) = recovery::act(&config, examined, &plan)?;
        let Acted {
            wal,
            snapshots,
            mut report,
        } = acted;
        let opened_at = config.clock.now();
        let last_at = report
            .snapshot
            .as_ref()
            .map_or(opened_at, |meta| meta.created_at);
        let shared = Arc::new(Shared {
            store,
            wal,
            snapshots,
            write_gate: RwLock::new(()),
            snapshot_state: Mutex::new(SnapshotState {
                last: report.snapshot.clone(),
                last_at,
            }),
            published: Mutex::new(Published {
                last_snapshot: report.snapshot.clone(),
                ..Published::default()
            }),
            logged_bytes_since_snapshot: AtomicU64::new(0),
            touch_logged_at: ShardedMap::new(),
            sweep_state: Mutex::new(SweepState::new(opened_at)),
            read_only: AtomicBool::new(false),
            last_error: Mutex::new(None),
            metrics: EngineMetrics::register(),
            _lock_file: lock_file,
            config,
        });
        // Sessions that expired while the engine was down go through the ordinary write path,
        // so their deletes are logged and a later start does not see them again.
        report.expired_count = shared
            .cleanup_expired()
            .map_err(|source| EngineError::Sweep { source })?;
        report.session_count = shared.store.len();
        report.snapshot_after_recovery = snapshot_after_recovery(&shared, &report)?;
        report.total = started.elapsed();
        shared.metrics.recovered(&report);
        let background = spawn_background(Arc::clone(&shared))?;
        tracing::info!(
            sessions = report.session_count,
            replayed = report.replayed_count,
            millis = report.total.as_millis() as u64,
            "tokm engine open"
        );
        Ok((
            Engine {
                shared,
                background: Some(background),
            },
            report,
        ))
    }

    /// What [`Engine::open`] with `config` would do, without doing it: examines the directory
    /// (loading the snapshot and replaying the log into a scratch store) and decides, but
    /// renames, truncates, quarantines and creates nothing, and takes no lock, so it can run
    /// beside a service that has the directory open (it then sees a moment of a moving log).
    ///
    /// # Errors
    /// As [`Engine::open`]: a refusal is the error `open` would return.
    pub fn plan_recovery(config: &EngineConfig) -> Result<RecoveryReport, EngineError> {
        let started = Instant::now();
        validate(config)?;
        let examined = recovery::examine(config)?;
        let plan = examined.decide(config)?;
        let mut report = examined.report(&plan);
        report.snapshot_fallbacks = examined.planned_fallbacks(&plan);
        report.total = started.elapsed();
        Ok(report)
    }
}

/// Takes the snapshot that makes a lossy decision last (after `PointInTime` or `SkipDamaged`
/// dropped records, a later open under the default policy must not meet the same damage
/// again) or that shortens the next start after a long replay.
///
/// # Errors
/// Only when the snapshot was needed to make a lossy decision last; a snapshot for speed that
/// fails is recorded in the status and the open goes on.
fn snapshot_after_recovery(
    shared: &Shared,
    report: &RecoveryReport,
) -> Result<Option<tokm_snapshot::SnapshotMeta>, EngineError> {
    let lossy = report.wal.loss.is_some();
    let long_replay = shared
        .config
        .snapshots
        .after_replay_records
        .is_some_and(|threshold| report.replayed_count > threshold);
    if !lossy && !long_replay {
        return Ok(None);
    }
    match shared.take_snapshot() {
        Ok(meta) => Ok(Some(meta)),
        Err(error) if lossy => Err(error),
        Err(error) => {
            tracing::warn!(code = error.code(), error = %ErrorChain(&error), "snapshot after recovery failed");
            Ok(None)
        }
    }
}

fn validate(config: &EngineConfig) -> Result<(), EngineError> {
    let invalid = |reason: &str| {
        Err(EngineError::InvalidConfig {
            reason: reason.to_owned(),
        })
    };
    if config.snapshots.retention_count == 0 {
        return invalid("snapshots.retention_count must be at least 1");
    }
    if config.snapshots.wal_segments_kept == 0 {
        return invalid("snapshots.wal_segments_kept must be at least 1");
    }
    if config.snapshots.check_interval.is_zero() {
        return invalid("snapshots.check_interval must be above zero");
    }
    if config.sweep.batch_max == 0 || config.sweep.per_tick_max < config.sweep.batch_max {
        return invalid("sweep.batch_max must be at least 1 and at most sweep.per_tick_max");
    }
    if config.sweep.sessions_per_second_max == Some(0) {
        return invalid("sweep.sessions_per_second_max must be above zero (None: no limit)");
    }
    if config
        .sweep
        .interval
        .is_some_and(|interval| interval.is_zero())
    {
        return invalid("sweep.interval must be above zero (None turns the sweep off)");
    }
    crate::recovery::wal_options(config)
        .validate()
        .map_err(|source| EngineError::InvalidLogPolicy { source })
}

/// Creates the data directory (0700) and takes an exclusive lock on its `LOCK` file, held for
/// the engine's life. The lock is on the real file system even when the log and snapshots use
/// another `Storage`, so two engines can never share a directory.
fn lock_data_dir(dir: &Path) -> Result<File, EngineError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EngineError::Io { path, source }
    };
    // Durably: a power cut must not take the directory (and so every acknowledged write in
    // it) away with an unsynced entry in its parent.
    tokm_storage::create_dir_all_durable(&FsStorage, dir).map_err(io_error(dir))?;
    let lock_path = dir.join(LOCK_FILE_NAME);
    let lock_file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_error(&lock_path))?;
    match lock_file.try_lock() {
        Ok(()) => Ok(lock_file),
        Err(TryLockError::WouldBlock) => Err(EngineError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(source)) => Err(EngineError::Io {
            path: lock_path,
            source,
        }),
    }
}

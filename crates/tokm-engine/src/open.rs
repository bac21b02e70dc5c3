//! Cold start: lock the directory, load the newest valid snapshot, replay the log after it,
//! drop what expired while down, then serve.

use std::fs::{File, OpenOptions, TryLockError};
use std::ops::ControlFlow;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokm_cmap::ShardedMap;
use tokm_domain::{Mutation, Session};
use tokm_memory_store::{MemoryStore, Replayed, StoreOptions};
use tokm_snapshot::{Fallback, SnapshotMeta, SnapshotOptions, SnapshotStore};
use tokm_wal::{FsStorage, Lsn, RecoveryMode, Wal, WalOptions};

use crate::config::EngineConfig;
use crate::engine::{Engine, Shared, SnapshotState, spawn_background};
use crate::error::EngineError;

/// Name of the lock file inside the data directory.
const LOCK_FILE_NAME: &str = "LOCK";

/// What [`Engine::open`] found and did.
#[derive(Debug)]
pub struct RecoveryReport {
    /// The snapshot loaded, if any.
    pub snapshot: Option<SnapshotMeta>,
    /// Newer snapshots that failed a check and were renamed aside, newest first.
    pub snapshot_fallbacks: Vec<Fallback>,
    /// What the log's recovery found: records, truncated tail, damage.
    pub wal: tokm_wal::RecoveryReport,
    /// Log records applied after the snapshot.
    pub replayed_records: u64,
    /// Log records the snapshot already reflected.
    pub replay_skipped: u64,
    /// Sessions that expired while the engine was down, removed after replay.
    pub expired_dropped: u64,
    /// Sessions in memory when the engine started serving.
    pub sessions: usize,
    /// Time spent loading the snapshot.
    pub snapshot_load: Duration,
    /// Time spent opening and replaying the log.
    pub wal_replay: Duration,
    /// Time from the call to serving.
    pub total: Duration,
}

impl Engine {
    /// Opens (creating if needed) the data directory and recovers: newest valid snapshot (or
    /// empty), log replay after its LSN under `config.recovery_mode`, expired sessions dropped,
    /// then serving. Returns what recovery found.
    ///
    /// # Errors
    /// [`EngineError::InvalidConfig`], [`EngineError::Locked`] when another engine has the
    /// directory, [`EngineError::Io`], [`EngineError::Snapshot`], [`EngineError::Wal`] (under
    /// `RecoveryMode::Absolute`, any damage), [`EngineError::UndecodableRecord`],
    /// [`EngineError::LogGap`], [`EngineError::Replay`].
    pub fn open(config: EngineConfig) -> Result<(Engine, RecoveryReport), EngineError> {
        let started = Instant::now();
        validate(&config)?;
        let lock_file = lock_data_dir(&config.dir)?;

        let snapshots = SnapshotStore::open(
            &config.snapshot_dir(),
            SnapshotOptions {
                storage: Arc::clone(&config.storage),
                keyring: config.keyring.clone(),
                retention_count: config.snapshots.retention_count,
                retention_days: config.snapshots.retention_days,
                clock: Arc::clone(&config.clock),
                node_id: config.node_id.to_string(),
            },
        )?;
        let loaded = snapshots.load_newest()?;
        let snapshot_sessions = loaded
            .snapshot
            .as_ref()
            .map_or(0, |snapshot| snapshot.sessions.len());
        let store = MemoryStore::new(
            Arc::clone(&config.clock),
            StoreOptions {
                quota: config.quota,
                capacity: snapshot_sessions,
            },
        )
        .map_err(|error| EngineError::InvalidConfig {
            reason: error.to_string(),
        })?;
        let (snapshot, covered) = match loaded.snapshot {
            Some(snapshot) => {
                load_sessions(&store, snapshot.sessions, snapshot.meta.covered_lsn)?;
                let covered = snapshot.meta.covered_lsn;
                (Some(snapshot.meta), covered)
            }
            None => (None, 0),
        };
        let snapshot_load = started.elapsed();

        let replay_started = Instant::now();
        let (wal, wal_report) = Wal::open(&config.wal_dir(), wal_options(&config))?;
        let (replayed_records, replay_skipped) = replay(&wal, &store, covered, &config)?;
        let wal_replay = replay_started.elapsed();

        let mut report = RecoveryReport {
            snapshot: snapshot.clone(),
            snapshot_fallbacks: loaded.report.fallbacks,
            wal: wal_report,
            replayed_records,
            replay_skipped,
            expired_dropped: 0,
            sessions: 0,
            snapshot_load,
            wal_replay,
            total: started.elapsed(),
        };
        let last_at = snapshot
            .as_ref()
            .map_or_else(|| config.clock.now(), |meta| meta.created_at);
        let shared = Arc::new(Shared {
            store,
            wal,
            snapshots,
            write_gate: RwLock::new(()),
            snapshot_state: Mutex::new(SnapshotState {
                last: snapshot,
                last_pause: None,
                last_at,
            }),
            logged_bytes_since_snapshot: AtomicU64::new(0),
            touch_logged_at: ShardedMap::new(),
            read_only: AtomicBool::new(false),
            last_error: Mutex::new(None),
            _lock_file: lock_file,
            config,
        });
        // Sessions that expired while the engine was down go through the ordinary write path,
        // so their deletes are logged and a later start does not see them again.
        report.expired_dropped = shared
            .write(|store, hook| store.cleanup_expired_with(hook))
            .map_err(|error| EngineError::Replay {
                lsn: shared.wal.last_lsn().get(),
                reason: error.to_string(),
            })?;
        report.sessions = shared.store.len();
        report.total = started.elapsed();
        if shared
            .config
            .snapshots
            .after_replay_records
            .is_some_and(|threshold| replayed_records > threshold)
        {
            shared.take_snapshot()?;
        }
        let background = spawn_background(Arc::clone(&shared))?;
        tracing::info!(
            sessions = report.sessions,
            replayed = report.replayed_records,
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
    if config.sync_interval.is_zero() {
        return invalid("sync_interval must be above zero");
    }
    Ok(())
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
    tokm_wal::create_dir_all_durable(&FsStorage, dir).map_err(io_error(dir))?;
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

fn wal_options(config: &EngineConfig) -> WalOptions {
    let mut options = WalOptions::default()
        .with_storage(Arc::clone(&config.storage))
        .with_clock(Arc::clone(&config.clock))
        .with_node_id(config.node_id)
        .with_recovery_mode(config.recovery_mode)
        .with_sync_interval(config.sync_interval);
    if let Some(keyring) = &config.keyring {
        options = options.with_keyring(Arc::clone(keyring));
    }
    options
}

/// Applies every log record after `covered` to `store`; returns (applied, skipped).
fn replay(
    wal: &Wal,
    store: &MemoryStore,
    covered: u64,
    config: &EngineConfig,
) -> Result<(u64, u64), EngineError> {
    let last = wal.last_lsn().get();
    if last < covered {
        return Err(EngineError::LogGap {
            covered_lsn: covered,
            reason: format!("the log ends at lsn {last}"),
        });
    }
    // Under `SkipDamaged` the log itself may skip records, by the caller's choice; otherwise
    // the first record replayed must directly follow the snapshot.
    let check_first = config.recovery_mode != RecoveryMode::SkipDamaged;
    let mut expected_first = Some(covered + 1).filter(|_| check_first);
    let (mut applied, mut skipped) = (0u64, 0u64);
    let mut failure = None;
    wal.replay(Lsn::new(covered), |lsn, payload| {
        let lsn = lsn.get();
        if let Some(expected) = expected_first.take()
            && lsn != expected
        {
            failure = Some(EngineError::LogGap {
                covered_lsn: covered,
                reason: format!("the first record after it is lsn {lsn}"),
            });
            return ControlFlow::Break(());
        }
        let outcome = tokm_proto::decode_mutation(payload)
            .map_err(|source| EngineError::UndecodableRecord { lsn, source })
            .and_then(|logged| apply(store, &logged.mutation, lsn));
        match outcome {
            Ok(Replayed::Applied) => applied += 1,
            Ok(Replayed::Skipped) => skipped += 1,
            Err(error) => {
                failure = Some(error);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    match failure {
        Some(error) => Err(error),
        None => Ok((applied, skipped)),
    }
}

/// Inserts a snapshot's sessions, split across the available cores: the sessions of one
/// snapshot never conflict (distinct ids and tokens), and the store is built for concurrent
/// writers, so this is the same result as one thread inserting them in order.
fn load_sessions(
    store: &MemoryStore,
    sessions: Vec<Arc<Session>>,
    covered_lsn: u64,
) -> Result<(), EngineError> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk_len = sessions.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = sessions
            .chunks(chunk_len)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk.iter().try_for_each(|session| {
                        apply(store, &Mutation::Create(Arc::clone(session)), covered_lsn).map(drop)
                    })
                })
            })
            .collect();
        workers.into_iter().try_for_each(|worker| {
            worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    })
}

fn apply(store: &MemoryStore, mutation: &Mutation, lsn: u64) -> Result<Replayed, EngineError> {
    store
        .apply_replayed(mutation)
        .map_err(|error| EngineError::Replay {
            lsn,
            reason: error.to_string(),
        })
}

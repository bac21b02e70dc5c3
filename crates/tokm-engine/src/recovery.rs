//! Cold-start recovery in three steps: examine the directory (reading only), decide
//! (`decide.rs`, pure), act (the only step that changes files). An open that fails before the
//! last step leaves every byte of the directory as it was.
//!
//! Examination reads each file once: the log's headers and keys
//! ([`tokm_wal::LogSurvey`]), snapshots newest first until one passes every check
//! ([`tokm_snapshot::SnapshotReader`]), then the whole log in one streaming pass from that
//! snapshot's LSN, applying each record to the memory store as it is read.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokm_crypto_adaptive::KeyId;
use tokm_domain::{ErrorChain, Mutation, SessionRecord};
use tokm_memory_store::{MemoryStore, MemoryStoreError, Replayed, StoreOptions};
use tokm_snapshot::{
    Encryption, Fallback, LoadError, SnapshotMeta, SnapshotOptions, SnapshotReader, SnapshotStore,
};
use tokm_storage::Lsn;
use tokm_wal::{LogSurvey, LogWalk, OpenError, Wal, WalOptions};

use crate::config::EngineConfig;
use crate::decide::{self, Plan, Refusal, SnapshotFound, SnapshotState};
use crate::error::EngineError;

/// What [`Engine::open`](crate::Engine::open) found and did, or, from
/// [`Engine::plan_recovery`](crate::Engine::plan_recovery), would do.
#[derive(Debug)]
pub struct RecoveryReport {
    /// `true` for a dry run: nothing was changed, and the renames and repairs listed are what
    /// opening would do.
    pub dry_run: bool,
    /// The snapshot recovery started from, if any.
    pub snapshot: Option<SnapshotMeta>,
    /// Newer snapshots that failed a check and were set aside (renamed `*.broken`), newest
    /// first, each with why.
    pub snapshot_fallbacks: Vec<Fallback>,
    /// What the log held and what its recovery did: records, torn tail, damage (also where it
    /// lost nothing), the loss the policy accepted, repairs, quarantined files.
    pub wal: tokm_wal::RecoveryReport,
    /// Log records applied after the snapshot.
    pub replayed_count: u64,
    /// Log records the store already reflected (a replayed version it had).
    pub skipped_count: u64,
    /// Sessions that expired while the engine was down, removed after replay (0 in a dry run).
    pub expired_count: u64,
    /// Sessions in memory when the engine started serving.
    pub session_count: usize,
    /// The snapshot taken right after recovery: after a policy dropped or skipped records (so
    /// the next open does not need them), or after a long replay.
    pub snapshot_after_recovery: Option<SnapshotMeta>,
    /// Time spent loading snapshots.
    pub snapshot_load: Duration,
    /// Time spent reading and replaying the log.
    pub wal_replay: Duration,
    /// Time from the call to serving.
    pub total: Duration,
}

/// Everything examination learned, nothing changed yet.
pub(crate) struct Examined {
    snapshots: Vec<SnapshotFound>,
    /// The loaded snapshot's header, when one was usable.
    base_meta: Option<SnapshotMeta>,
    pub(crate) store: MemoryStore,
    walk: LogWalk,
    verified_key_ids: BTreeSet<KeyId>,
    replayed_count: u64,
    skipped_count: u64,
    snapshot_load: Duration,
    wal_replay: Duration,
}

/// Reads the directory: log headers and keys, snapshots newest first until one is usable (its
/// sessions go into a new store), then the log from its LSN, applying each record. Changes
/// nothing.
///
/// # Errors
/// Key problems, foreign files and I/O as the log and snapshot crates report them;
/// [`EngineError::UndecodableRecord`] and [`EngineError::Replay`] for records that pass their
/// checks but cannot be applied.
pub(crate) fn examine(config: &EngineConfig) -> Result<Examined, EngineError> {
    let started = Instant::now();
    let survey = LogSurvey::read(&config.wal_dir(), &wal_options(config))?;
    let verified_key_ids = survey.verified_key_ids().clone();
    let reader = SnapshotReader::new(
        &config.snapshot_dir(),
        Arc::clone(&config.storage),
        config.keyring.clone(),
    );
    let (snapshots, loaded) = examine_snapshots(&reader, config)?;
    let choice = decide::choose_base(&snapshots, &verified_key_ids)
        .map_err(|refusal| refusal_error(refusal, &snapshots))?;
    debug_assert_eq!(
        choice.snapshot.is_some(),
        loaded.is_some(),
        "the snapshot examination stops at is the one chosen"
    );
    let (base_meta, store) = match loaded {
        Some((meta, store)) => (Some(meta), store),
        None => (
            None,
            MemoryStore::new(Arc::clone(&config.clock), store_options(config, 0))
                .map_err(invalid_store_options)?,
        ),
    };
    let snapshot_load = started.elapsed();

    let replay_started = Instant::now();
    let mut applied = ReplayCounts::default();
    let mut failure = None;
    let walk = survey.walk(Some(choice.lsn), &mut |lsn, payload| {
        match apply_logged(&store, lsn, payload) {
            Ok(Replayed::Applied) => applied.applied += 1,
            Ok(Replayed::Skipped) => applied.skipped += 1,
            Err(error) => {
                failure = Some(error);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    if let Some(error) = failure {
        return Err(error);
    }
    Ok(Examined {
        snapshots,
        base_meta,
        store,
        walk,
        verified_key_ids,
        replayed_count: applied.applied,
        skipped_count: applied.skipped,
        snapshot_load,
        wal_replay: replay_started.elapsed(),
    })
}

#[derive(Default)]
struct ReplayCounts {
    applied: u64,
    skipped: u64,
}

/// The usable snapshot's header and the store built from its records.
type Base = (SnapshotMeta, MemoryStore);

/// Loads snapshots newest first until one passes every check, building the store from the
/// first that does. A key the keyring lacks stops at once (a key problem whatever else is
/// found); a first block that fails authentication does not, since an older file opening under
/// the same key proves that failure is damage.
fn examine_snapshots(
    reader: &SnapshotReader,
    config: &EngineConfig,
) -> Result<(Vec<SnapshotFound>, Option<Base>), EngineError> {
    let mut found = Vec::new();
    let mut loaded = None;
    for info in reader.list()? {
        let key_id = match &info.meta {
            Ok(SnapshotMeta {
                encryption: Encryption::Sealed { key_id, .. },
                ..
            }) => Some(*key_id),
            _ => None,
        };
        let mut snapshot = SnapshotFound {
            file: info.file_name.clone(),
            covered_lsn: info.covered_lsn,
            key_id,
            state: SnapshotState::NotExamined,
        };
        if loaded.is_none() {
            snapshot.state = match reader.load(&info.file_name) {
                Ok(snapshot) => match build_store(config, snapshot.records, &info.file_name)? {
                    Ok(store) => {
                        loaded = Some((snapshot.meta, store));
                        SnapshotState::Usable
                    }
                    Err(damage) => SnapshotState::Damaged(damage),
                },
                Err(error) if error.is_damage() => SnapshotState::Damaged(error),
                Err(LoadError::WrongKey { key_id, file })
                    if config
                        .keyring
                        .as_ref()
                        .is_some_and(|keyring| keyring.contains(KeyId::new(key_id))) =>
                {
                    SnapshotState::KeyFailed {
                        key_id: KeyId::new(key_id),
                        error: LoadError::WrongKey { key_id, file },
                    }
                }
                // A key id the keyring lacks, a foreign or newer file, an I/O error: not
                // damage, and nothing to fall back past.
                Err(error) => return Err(error.into()),
            };
        }
        found.push(snapshot);
    }
    Ok((found, loaded))
}

impl Examined {
    /// Decides from what was found (see `decide.rs`).
    ///
    /// # Errors
    /// The refusal, as an [`EngineError`]; nothing was changed.
    pub(crate) fn decide(&self, config: &EngineConfig) -> Result<Plan, EngineError> {
        let plan = decide::decide(
            &self.snapshots,
            &self.verified_key_ids,
            self.walk.findings(),
            config.recovery_mode,
        )
        .map_err(|refusal| self.refusal(refusal))?;
        assert_eq!(
            plan.log.replayed(),
            self.walk.replayed(),
            "the walk applied exactly the records the plan replays"
        );
        Ok(plan)
    }

    fn refusal(&self, refusal: Refusal) -> EngineError {
        match refusal {
            Refusal::Log(OpenError::WouldDropRecords { loss }) => EngineError::WouldDropRecords {
                loss,
                base: self.base_meta.as_ref().map(|meta| meta.file_name.clone()),
                set_aside: self
                    .snapshots
                    .iter()
                    .filter(|snapshot| {
                        matches!(
                            snapshot.state,
                            SnapshotState::Damaged(_) | SnapshotState::KeyFailed { .. }
                        )
                    })
                    .map(|snapshot| snapshot.file.clone())
                    .collect(),
            },
            other => refusal_error(other, &self.snapshots),
        }
    }

    /// The report of this examination under `plan`, before (or instead of) acting on it.
    pub(crate) fn report(&self, plan: &Plan) -> RecoveryReport {
        RecoveryReport {
            dry_run: true,
            snapshot: self.base_meta.clone(),
            snapshot_fallbacks: Vec::new(),
            wal: self.walk.report(&plan.log),
            replayed_count: self.replayed_count,
            skipped_count: self.skipped_count,
            expired_count: 0,
            session_count: self.store.len(),
            snapshot_after_recovery: None,
            snapshot_load: self.snapshot_load,
            wal_replay: self.wal_replay,
            total: Duration::ZERO,
        }
    }

    /// A dry run's fallbacks: the snapshots that would be set aside, with their errors.
    pub(crate) fn planned_fallbacks(self, plan: &Plan) -> Vec<Fallback> {
        failed_snapshots(self.snapshots, &plan.base.set_aside)
            .map(|(file_name, error)| Fallback {
                renamed_to: tokm_snapshot::set_aside_name(&file_name),
                file_name,
                error,
            })
            .collect()
    }
}

/// The error of a refusal: a wrong key names the snapshot and the key id it needs.
fn refusal_error(refusal: Refusal, snapshots: &[SnapshotFound]) -> EngineError {
    match refusal {
        Refusal::WrongKey { snapshot } => {
            let found = &snapshots[snapshot];
            EngineError::from(LoadError::WrongKey {
                file: found.file.clone(),
                key_id: found.key_id.map_or(0, KeyId::get),
            })
        }
        Refusal::Log(source) => EngineError::from(source),
    }
}

/// What acting on a plan produced.
pub(crate) struct Acted {
    pub(crate) wal: Wal,
    pub(crate) snapshots: SnapshotStore,
    pub(crate) report: RecoveryReport,
}

/// Carries out `plan`: sets the failed snapshots aside, opens the snapshot store (which
/// removes unfinished temp files), repairs the log and starts its writer. The first step that
/// changes the directory. Returns the store too.
///
/// # Errors
/// I/O failures; a failure part-way leaves a directory the next open decides the same way.
pub(crate) fn act(
    config: &EngineConfig,
    examined: Examined,
    plan: &Plan,
) -> Result<(Acted, MemoryStore), EngineError> {
    let mut report = examined.report(plan);
    report.dry_run = false;
    let Examined {
        snapshots: found,
        store,
        walk,
        ..
    } = examined;
    let snapshots = SnapshotStore::open(&config.snapshot_dir(), snapshot_options(config))?;
    for (file_name, error) in failed_snapshots(found, &plan.base.set_aside) {
        let renamed_to = snapshots.set_aside(&file_name)?;
        tracing::warn!(
            file = %file_name,
            renamed_to = %renamed_to,
            code = error.code(),
            error = %ErrorChain(&error),
            "snapshot failed a check; recovery fell back past it"
        );
        report.snapshot_fallbacks.push(Fallback {
            file_name,
            renamed_to,
            error,
        });
    }
    let (wal, wal_report) = walk.open(&plan.log)?;
    report.wal = wal_report;
    Ok((
        Acted {
            wal,
            snapshots,
            report,
        },
        store,
    ))
}

/// The snapshots at `set_aside` (those that failed a check), by name, with their errors.
fn failed_snapshots(
    found: Vec<SnapshotFound>,
    set_aside: &[usize],
) -> impl Iterator<Item = (String, LoadError)> {
    found
        .into_iter()
        .enumerate()
        .filter(|(index, _)| set_aside.contains(index))
        .filter_map(|(_, snapshot)| match snapshot.state {
            SnapshotState::Damaged(error) | SnapshotState::KeyFailed { error, .. } => {
                Some((snapshot.file, error))
            }
            SnapshotState::Usable | SnapshotState::NotExamined => None,
        })
}

pub(crate) fn wal_options(config: &EngineConfig) -> WalOptions {
    WalOptions {
        storage: Arc::clone(&config.storage),
        clock: Arc::clone(&config.clock),
        keyring: config.keyring.clone(),
        node_id: config.node_id,
        recovery_mode: config.recovery_mode,
        segment_bytes_max: config.log.segment_bytes_max,
        segment_records_max: config.log.segment_records_max,
        segment_age_max: config.log.segment_age_max,
        sync_interval: config.log.sync_interval,
        sync_bytes_max: config.log.sync_bytes_max,
        group_commit_records_max: config.log.group_commit_records_max,
        group_commit_bytes_max: config.log.group_commit_bytes_max,
        record_bytes_max: config.log.record_bytes_max,
    }
}

pub(crate) fn snapshot_options(config: &EngineConfig) -> SnapshotOptions {
    SnapshotOptions {
        storage: Arc::clone(&config.storage),
        keyring: config.keyring.clone(),
        retention_count: config.snapshots.retention_count,
        retention_age: config.snapshots.retention_age,
        clock: Arc::clone(&config.clock),
        node_id: config.node_id.to_string(),
    }
}

/// Decodes one logged record and applies it.
fn apply_logged(store: &MemoryStore, lsn: Lsn, payload: &[u8]) -> Result<Replayed, EngineError> {
    let logged = tokm_proto::decode_mutation(payload)
        .map_err(|source| EngineError::UndecodableRecord { lsn, source })?;
    apply(store, &logged.mutation, lsn)
}

/// The store holding a snapshot's records, built in bulk on every core; the inner error is
/// damage. Two records with one id or one token hash (which a store never holds) make the
/// snapshot damaged: its checksums passed, so it was written that way, and an older snapshot
/// may still serve.
///
/// # Errors
/// [`EngineError::InvalidStoreOptions`] when the store refuses its options.
fn build_store(
    config: &EngineConfig,
    records: Vec<SessionRecord>,
    file: &str,
) -> Result<Result<MemoryStore, LoadError>, EngineError> {
    // Room for an eighth more than the snapshot holds: the log replayed next and the first
    // writes after the open then fill the tables instead of doubling them shard by shard.
    let options = store_options(config, records.len() + records.len() / 8);
    let damaged = |what| {
        Ok(Err(LoadError::Malformed {
            file: file.to_owned(),
            offset: 0,
            what,
        }))
    };
    match MemoryStore::bulk_load(Arc::clone(&config.clock), options, records) {
        Ok(store) => Ok(Ok(store)),
        Err(MemoryStoreError::DuplicateSessionId { .. }) => damaged("two sessions share one id"),
        Err(MemoryStoreError::DuplicateTokenHash { .. }) => {
            damaged("two sessions share one token hash")
        }
        Err(other) => Err(invalid_store_options(other)),
    }
}

fn invalid_store_options(source: MemoryStoreError) -> EngineError {
    EngineError::InvalidStoreOptions { source }
}

fn store_options(config: &EngineConfig, capacity: usize) -> StoreOptions {
    StoreOptions {
        quota: config.quota,
        capacity: capacity.max(config.expected_sessions),
    }
}

fn apply(store: &MemoryStore, mutation: &Mutation, lsn: Lsn) -> Result<Replayed, EngineError> {
    store
        .apply_replayed(mutation)
        .map_err(|source| EngineError::Replay { lsn, source })
}

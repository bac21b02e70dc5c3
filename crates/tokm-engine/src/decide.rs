//! The recovery decision across snapshots and the log: a pure function from what recovery
//! found to a plan or a refusal. No I/O happens here; `recovery.rs` examines the directory
//! before and carries the plan out after, and only then does anything change on disk.
//!
//! The rules, in the order they apply (the table in `docs/ARCHITECTURE.md`, "Recovery
//! decisions"):
//! 1. **A key problem is not damage.** A snapshot whose first block does not authenticate
//!    although its checksum matched (or whose key id the keyring lacks) is a wrong key unless
//!    another file sealed under the same key id opened (a log segment's key check, or a
//!    snapshot examined here); then it is damage. A wrong key refuses the open.
//! 2. **The base is the newest usable snapshot.** Newer snapshots that failed a check are set
//!    aside (renamed `*.broken` once the open succeeds); without any usable one the base is
//!    LSN 0 and the log must rebuild everything from LSN 1.
//! 3. **The log decides the rest** ([`LogPlan::decide`]): damage at or below the base loses
//!    nothing; a loss above it refuses under `RefuseLoss` (the default) and `Absolute`, and is
//!    the explicit choice of `PointInTime` or `SkipDamaged`. So a fallback past a damaged
//!    snapshot happens at the first open when the log (or an older snapshot and the log)
//!    still holds everything after the fallback's base, and is refused otherwise.

use std::collections::BTreeSet;

use tokm_crypto_adaptive::KeyId;
use tokm_snapshot::LoadError;
use tokm_storage::Lsn;
use tokm_wal::{LogFindings, LogPlan, OpenError, RecoveryMode};

/// One snapshot file as examination left it, newest first.
#[derive(Debug)]
pub(crate) struct SnapshotFound {
    pub(crate) file: String,
    pub(crate) covered_lsn: Lsn,
    /// The key its header names, when it is sealed and its header could be read.
    pub(crate) key_id: Option<KeyId>,
    pub(crate) state: SnapshotState,
}

/// What loading a snapshot showed.
#[derive(Debug)]
pub(crate) enum SnapshotState {
    /// Every check passed; its sessions were loaded.
    Usable,
    /// A check failed: a checksum, the structure, a block other than the first failing
    /// authentication, an undecodable session.
    Damaged(LoadError),
    /// The first block does not authenticate under the key the keyring holds for `key_id`.
    KeyFailed { key_id: KeyId, error: LoadError },
    /// Older than the one chosen: never read.
    NotExamined,
}

/// Which snapshot recovery starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BaseChoice {
    /// Index of the snapshot to load; `None` to start empty.
    pub(crate) snapshot: Option<usize>,
    /// Indexes of newer snapshots that failed a check, to set aside.
    pub(crate) set_aside: Vec<usize>,
    /// The LSN the base reflects.
    pub(crate) lsn: Lsn,
}

/// What recovery does: the base, and the log's plan from there.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) base: BaseChoice,
    pub(crate) log: LogPlan,
}

/// Why recovery refuses to open.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The snapshot at this index needs a key the keyring does not hold right.
    WrongKey { snapshot: usize },
    /// The log's decision refused ([`OpenError::WouldDropRecords`], or
    /// [`OpenError::Corrupt`] under `Absolute`).
    Log(OpenError),
}

/// Chooses the base: the newest usable snapshot, setting aside newer damaged ones.
///
/// `verified_key_ids` are the key ids some log segment proved right.
///
/// # Errors
/// [`Refusal::WrongKey`] for the first snapshot that fails authentication under a key nothing
/// else proved right.
pub(crate) fn choose_base(
    snapshots: &[SnapshotFound],
    verified_key_ids: &BTreeSet<KeyId>,
) -> Result<BaseChoice, Refusal> {
    let proven = |key_id: &KeyId| {
        verified_key_ids.contains(key_id)
            || snapshots.iter().any(|snapshot| {
                matches!(snapshot.state, SnapshotState::Usable)
                    && snapshot.key_id.as_ref() == Some(key_id)
            })
    };
    let mut set_aside = Vec::new();
    for (index, snapshot) in snapshots.iter().enumerate() {
        match &snapshot.state {
            SnapshotState::Usable => {
                return Ok(BaseChoice {
                    snapshot: Some(index),
                    set_aside,
                    lsn: snapshot.covered_lsn,
                });
            }
            SnapshotState::Damaged(_) => set_aside.push(index),
            SnapshotState::KeyFailed { key_id, .. } if proven(key_id) => set_aside.push(index),
            SnapshotState::KeyFailed { .. } => return Err(Refusal::WrongKey { snapshot: index }),
            SnapshotState::NotExamined => {}
        }
    }
    Ok(BaseChoice {
        snapshot: None,
        set_aside,
        lsn: Lsn::ZERO,
    })
}

/// Decides recovery from what was found: the base (see [`choose_base`]), then the log's
/// plan above it under `mode`.
///
/// # Errors
/// [`Refusal::WrongKey`]; [`Refusal::Log`] when the log's decision refuses.
pub(crate) fn decide(
    snapshots: &[SnapshotFound],
    verified_key_ids: &BTreeSet<KeyId>,
    log: &LogFindings,
    mode: RecoveryMode,
) -> Result<Plan, Refusal> {
    let base = choose_base(snapshots, verified_key_ids)?;
    let log = LogPlan::decide(log, mode, Some(base.lsn)).map_err(Refusal::Log)?;
    Ok(Plan { base, log })
}

#[cfg(test)]
mod tests {
    //! The decision table for snapshots and keys, stated as findings.

    use super::*;
    use tokm_wal::{
        Found, HeaderFacts, HeaderState, LossCause, RecordRun, SegmentFindings, SegmentId,
    };

    fn damaged() -> LoadError {
        LoadError::ChecksumMismatch {
            file: "s".to_owned(),
            offset: 0,
            what: "block",
        }
    }

    fn snapshot(covered: u64, key: Option<u32>, state: SnapshotState) -> SnapshotFound {
        SnapshotFound {
            file: format!("{covered:020}-0.snap"),
            covered_lsn: Lsn::new(covered),
            key_id: key.map(KeyId::new),
            state,
        }
    }

    fn key_failed(key: u32) -> SnapshotState {
        SnapshotState::KeyFailed {
            key_id: KeyId::new(key),
            error: damaged(),
        }
    }

    /// A log of one segment holding LSNs `first..=last`, created when the log stood at
    /// `first - 1`.
    fn log(first: u64, last: u64) -> LogFindings {
        LogFindings {
            segments: vec![SegmentFindings {
                file: format!("{first:020}.wal"),
                first_lsn: Lsn::new(first),
                header: HeaderState::Intact(HeaderFacts {
                    segment_id: SegmentId::new(1),
                    previous_lsn: Lsn::new(first - 1),
                    key_id: None,
                }),
                size_bytes: 1000,
                contents: vec![Found::Records(RecordRun {
                    first_lsn: Lsn::new(first),
                    last_lsn: Lsn::new(last),
                    offset: 120,
                    end_offset: 1000,
                })],
                torn_tail_offset: None,
                highest_lsn: Lsn::new(last),
            }],
            temp_files: Vec::new(),
        }
    }

    fn no_keys() -> BTreeSet<KeyId> {
        BTreeSet::new()
    }

    #[test]
    fn the_newest_usable_snapshot_is_the_base_and_newer_damaged_ones_are_set_aside() {
        let snapshots = [
            snapshot(300, None, SnapshotState::Damaged(damaged())),
            snapshot(200, None, SnapshotState::Usable),
            snapshot(100, None, SnapshotState::NotExamined),
        ];
        let plan = decide(
            &snapshots,
            &no_keys(),
            &log(101, 350),
            RecoveryMode::RefuseLoss,
        )
        .expect("the log continues the older snapshot");
        assert_eq!(plan.base.snapshot, Some(1));
        assert_eq!(plan.base.set_aside, vec![0]);
        assert_eq!(plan.log.replayed().records_count, 150, "201..=350");
    }

    #[test]
    fn a_fallback_the_log_cannot_rebuild_is_refused_by_default() {
        // The only snapshot is damaged and the log was compacted up to LSN 150.
        let snapshots = [snapshot(200, None, SnapshotState::Damaged(damaged()))];
        let refused = decide(
            &snapshots,
            &no_keys(),
            &log(151, 250),
            RecoveryMode::RefuseLoss,
        )
        .expect_err("records 1..=150 are gone");
        let Refusal::Log(OpenError::WouldDropRecords { loss }) = refused else {
            panic!("{refused:?}");
        };
        assert_eq!(loss.cause, LossCause::LogStartsAfterBase);
        assert_eq!(loss.first_lsn, Lsn::new(1));
        // With the log from LSN 1 it falls back at once, to an empty base.
        let plan = decide(
            &snapshots,
            &no_keys(),
            &log(1, 250),
            RecoveryMode::RefuseLoss,
        )
        .expect("the log rebuilds everything");
        assert_eq!(plan.base.snapshot, None);
        assert_eq!(plan.base.set_aside, vec![0]);
        assert_eq!(plan.log.replayed().records_count, 250);
    }

    #[test]
    fn a_key_that_opens_nothing_is_a_key_problem_not_damage() {
        let snapshots = [snapshot(200, Some(1), key_failed(1))];
        let refused = choose_base(&snapshots, &no_keys()).expect_err("wrong key");
        assert!(matches!(refused, Refusal::WrongKey { snapshot: 0 }));
        // Another key opened an older snapshot: key 1 is still unproven.
        let snapshots = [
            snapshot(200, Some(1), key_failed(1)),
            snapshot(100, Some(2), SnapshotState::Usable),
        ];
        assert!(matches!(
            choose_base(&snapshots, &no_keys()),
            Err(Refusal::WrongKey { snapshot: 0 })
        ));
    }

    #[test]
    fn a_block_failing_under_a_key_that_opened_another_file_is_damage() {
        let by_log = BTreeSet::from([KeyId::new(1)]);
        let snapshots = [
            snapshot(200, Some(1), key_failed(1)),
            snapshot(100, Some(1), SnapshotState::Usable),
        ];
        let choice = choose_base(&snapshots, &no_keys()).expect("proved by the older one");
        assert_eq!((choice.snapshot, choice.set_aside), (Some(1), vec![0]));
        let alone = [snapshot(200, Some(1), key_failed(1))];
        let choice = choose_base(&alone, &by_log).expect("proved by a log segment");
        assert_eq!(
            (choice.snapshot, choice.set_aside, choice.lsn),
            (None, vec![0], Lsn::ZERO)
        );
    }
}

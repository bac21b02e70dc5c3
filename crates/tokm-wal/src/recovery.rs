//! Recovery's public face: the modes, the report, and a read-only reader.
//!
//! Recovery runs in three steps, and only the last changes anything:
//! 1. [`LogSurvey::read`] lists the directory and judges every header and key;
//! 2. [`LogSurvey::walk`] reads every segment once and delivers the records to replay;
//! 3. [`LogPlan::decide`] (pure) turns what was found into a plan or a refusal, and
//!    [`LogWalk::open`](crate::LogWalk::open) carries the plan out and starts a writer.
//!
//! [`Wal::open`](crate::Wal::open) runs all three; [`WalReader`] runs the first two and
//! decides, as a dry run.

use std::ops::ControlFlow;
use std::path::Path;

use tokm_crypto_adaptive::KeyId;

use crate::error::{OpenError, ReplayError};
use crate::findings::{DamagedRange, LogFindings, LogLoss};
use crate::ids::SegmentId;
use crate::options::WalOptions;
use crate::plan::{LogPlan, Repair, effective_base};
use crate::survey::LogSurvey;
use tokm_storage::Lsn;

/// What recovery does when records the log should hold cannot all be read. The decision rules
/// are in [`LogPlan::decide`]; in every mode a torn tail of the newest segment (a crash
/// mid-write: never acknowledged) is truncated, and damage among records at or below the base
/// (already in a snapshot) loses nothing: it is reported and left in place.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// Open only if no acknowledged record above the base is lost; otherwise refuse with
    /// [`OpenError::WouldDropRecords`] (naming file, offset and how many records each other
    /// mode would drop) and change nothing. The default: for a session store a dropped record
    /// may be a revoked session that works again, so dropping one is an explicit choice.
    #[default]
    RefuseLoss,
    /// Replay up to the last record before the first loss and drop the rest: the damaged
    /// bytes and every later segment are moved to `*.quarantine` files (kept, never read
    /// again) and reported. The explicit choice to lose acknowledged records.
    PointInTime,
    /// Replay every record that can be read, skipping the lost ones; the damaged bytes stay in
    /// place (a caller with snapshots takes one, so later opens no longer need them). Records
    /// are lost silently except for the report: opt in only where availability beats
    /// completeness.
    SkipDamaged,
    /// Refuse any damage at all, even where it loses nothing, with [`OpenError::Corrupt`]
    /// naming file and offset, and refuse losses like `RefuseLoss`. Changes nothing.
    Absolute,
}

/// One segment file as recovery found it, and what the log keeps of it.
///
/// *Sealed* means a newer segment follows it in the directory, so no writer appends to it
/// again: an invalid frame in a sealed segment is damage. The newest segment is *open*: an
/// invalid frame at its end with nothing intact after it is a torn tail.
/// [`Wal::open`](crate::Wal::open) always starts a new segment, so once it returns every
/// segment listed here is sealed (or was removed or quarantined, see
/// [`RecoveryReport::quarantined`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// Segment file name, `<20-digit first LSN>.wal`.
    pub file: String,
    /// First LSN the segment may hold, as its file name says.
    pub first_lsn: Lsn,
    /// Segment id from the header; `None` when the header is unusable.
    pub segment_id: Option<SegmentId>,
    /// LSN of the last record the log keeps from this segment; `None` when it keeps none (an
    /// empty segment, or one dropped because of damage).
    pub last_lsn: Option<Lsn>,
    /// Records the log keeps from this segment.
    pub records_count: u64,
    /// File length when read, torn tail and damage included.
    pub size_bytes: u64,
    /// Whether a newer segment follows this one (see the type's documentation).
    pub sealed: bool,
    /// Id of the key that seals the payloads; `None` for a plaintext segment and when the
    /// header is unusable (then `segment_id` is `None` too).
    pub key_id: Option<KeyId>,
    /// Entries of [`RecoveryReport::damaged`] that lie in this segment.
    pub damaged_ranges_count: usize,
}

/// What recovery found and did (or, from a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The mode recovery ran under.
    pub mode: RecoveryMode,
    /// The base: records up to it were not replayed (the caller's state holds them).
    pub base: Lsn,
    /// Records the log keeps, at or below the base included.
    pub records_count: u64,
    /// LSN of the last record the log keeps; `Lsn::ZERO` when there is none.
    pub last_lsn: Lsn,
    /// Records above the base that replay delivers.
    pub replayed: ReplaySummary,
    /// Bytes of torn tail cut from the newest segment (a dry run: that would be cut).
    pub truncated_bytes: u64,
    /// Damage found, in log order, wherever it is (reported even where it loses nothing).
    pub damaged: Vec<DamagedRange>,
    /// Acknowledged records above the base the mode chose to lose (`PointInTime`,
    /// `SkipDamaged`); `None` when nothing above the base is lost.
    pub loss: Option<LogLoss>,
    /// What opening changed in the directory (a dry run: would change), in order.
    pub repairs: Vec<Repair>,
    /// Files moved out of the log, by their new names. Empty for a dry run.
    pub quarantined: Vec<String>,
    /// Every segment file found, in log order, as found before any repair.
    pub segments: Vec<SegmentInfo>,
}

impl RecoveryReport {
    pub(crate) fn new(
        findings: &LogFindings,
        plan: &LogPlan,
        quarantined: Vec<String>,
    ) -> RecoveryReport {
        let newest = findings.segments.len().checked_sub(1);
        let segments = findings
            .segments
            .iter()
            .enumerate()
            .map(|(index, segment)| {
                let (records_count, last_lsn) = plan.kept_in(index);
                let facts = segment.header_facts();
                SegmentInfo {
                    file: segment.file.clone(),
                    first_lsn: segment.first_lsn,
                    segment_id: facts.map(|facts| facts.segment_id),
                    last_lsn,
                    records_count,
                    size_bytes: segment.size_bytes,
                    sealed: Some(index) != newest,
                    key_id: facts.and_then(|facts| facts.key_id),
                    damaged_ranges_count: segment.damaged_ranges().count(),
                }
            })
            .collect::<Vec<_>>();
        RecoveryReport {
            mode: plan.mode(),
            base: plan.base(),
            records_count: segments.iter().map(|segment| segment.records_count).sum(),
            last_lsn: plan.kept_last_lsn(),
            replayed: plan.replayed(),
            truncated_bytes: findings
                .segments
                .iter()
                .filter_map(|segment| {
                    let offset = segment.torn_tail_offset?;
                    Some(segment.size_bytes.saturating_sub(offset))
                })
                .sum(),
            damaged: findings
                .segments
                .iter()
                .flat_map(|segment| segment.damaged_ranges().cloned())
                .collect(),
            loss: plan.loss().cloned(),
            repairs: plan.repairs().to_vec(),
            quarantined,
            segments,
        }
    }
}

/// What a replay delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Records passed to the callback.
    pub records_count: u64,
    /// LSN of the last record passed (the base when none was).
    pub last_lsn: Lsn,
}

/// Read-only access to a log directory: recovery as a dry run, then replay.
///
/// Unlike [`Wal::open`](crate::Wal::open) it changes nothing: a torn tail is reported in
/// `truncated_bytes` but left on disk, repairs are listed but not made. Open it while no
/// writer is active, or accept that records appended after `open` are not seen.
#[derive(Debug)]
pub struct WalReader {
    survey: LogSurvey,
}

impl WalReader {
    /// Surveys and walks `dir` under `options.recovery_mode`, taking the log's own start as
    /// the base, and returns a reader with the report of what opening would do.
    ///
    /// # Errors
    /// As [`LogSurvey::read`] and [`LogPlan::decide`]: a refusal under the mode is an error
    /// (use `SkipDamaged` to read whatever can be read).
    pub fn open(
        dir: &Path,
        options: &WalOptions,
    ) -> Result<(WalReader, RecoveryReport), OpenError> {
        let survey = LogSurvey::read(dir, options)?;
        let walk = survey
            .clone()
            .walk(None, &mut |_, _| ControlFlow::Continue(()))?;
        let plan = walk.plan()?;
        Ok((WalReader { survey }, walk.report(&plan)))
    }

    pub(crate) fn from_survey(survey: LogSurvey) -> WalReader {
        WalReader { survey }
    }

    /// Calls `on_record(lsn, payload)` for every record above `after` that recovery under the
    /// reader's mode would replay if the caller's state reflected the log up to `after`, in LSN
    /// order, until it returns `ControlFlow::Break`. Payloads are verified (and decrypted)
    /// again as they are read.
    ///
    /// # Errors
    /// [`ReplayError::Io`]; [`ReplayError::Corrupt`] if a segment shrank since it was surveyed.
    pub fn replay(
        &self,
        after: Lsn,
        mut on_record: impl FnMut(Lsn, &[u8]) -> ControlFlow<()>,
    ) -> Result<ReplaySummary, ReplayError> {
        let headers: Vec<_> = self
            .survey
            .segments
            .iter()
            .map(|segment| (segment.first_lsn, &segment.header))
            .collect();
        let start = effective_base(&headers, None);
        let walk = self
            .survey
            .clone()
            .walk(Some(after.max(start)), &mut on_record)?;
        Ok(walk.replayed())
    }
}

//! The recovery decision: a pure function from what the walk found, a [`RecoveryMode`] and a
//! base LSN to a [`LogPlan`] (what to replay, what to repair) or a refusal.
//!
//! The rules (also the "Recovery decisions" table in `docs/ARCHITECTURE.md`):
//! - Every LSN the log should hold is known from the headers: a sealed segment holds its first
//!   LSN up to the next segment's previous LSN, the newest one up to its last intact frame. A
//!   gap that a header declares (records an earlier recovery dropped) is not a loss.
//! - Records at or below the base are covered (by a snapshot, or for a standalone log by
//!   whatever precedes its oldest segment): damage among them loses nothing, is reported, and
//!   the files stay as they are.
//! - A torn tail of the newest segment was never acknowledged: every mode truncates it.
//! - An LSN above the base that the log should hold but cannot read is a *loss*. `RefuseLoss`
//!   (the default) and `Absolute` refuse to open; `PointInTime` replays up to the first loss
//!   and quarantines everything after it; `SkipDamaged` replays every readable record and
//!   leaves the damaged bytes in place. `Absolute` also refuses any damage at all.
//!
//! The same [`Gate`] runs twice: while the walk streams records (it decides which ones reach
//! the caller) and here over the findings, so what was replayed and what the plan says are the
//! same by construction (and asserted).

use std::fmt;

use crate::error::OpenError;
use crate::findings::{
    DamageKind, Found, HeaderState, LogFindings, LogLoss, LossCause, RecordRun, SegmentFindings,
};
use crate::format::HEADER_LEN;
use crate::ids::SegmentId;
use crate::recovery::{RecoveryMode, ReplaySummary};
use tokm_storage::Lsn;

/// A change recovery makes to the directory, only once it decided to open.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Repair {
    /// Remove a `.wal.tmp` left by a crash during segment creation (never held a record).
    RemoveTemp {
        /// File name.
        file: String,
    },
    /// Truncate a torn tail (never acknowledged).
    Truncate {
        /// Segment file name.
        file: String,
        /// New length.
        offset: u64,
    },
    /// Copy `[offset..)` of a segment to `<file>.<offset>.quarantine`, then truncate it.
    QuarantineTail {
        /// Segment file name.
        file: String,
        /// Where the dropped bytes start.
        offset: u64,
    },
    /// Rename a whole segment to `<file>.0.quarantine`, out of the log.
    QuarantineSegment {
        /// Segment file name.
        file: String,
    },
    /// Remove the newest segment because it holds no record (a header only), so the new
    /// segment may start at its LSN.
    RemoveEmpty {
        /// Segment file name.
        file: String,
    },
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repair::RemoveTemp { file } => write!(f, "remove {file} (unfinished segment)"),
            Repair::Truncate { file, offset } => {
                write!(f, "truncate {file} at offset {offset} (torn tail)")
            }
            Repair::QuarantineTail { file, offset } => {
                write!(f, "move {file} from offset {offset} to a quarantine file")
            }
            Repair::QuarantineSegment { file } => write!(f, "move {file} to a quarantine file"),
            Repair::RemoveEmpty { file } => write!(f, "remove {file} (holds no record)"),
        }
    }
}

/// A segment that stays in the log after the repairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeptSegment {
    /// Its position in the findings.
    pub(crate) index: usize,
    /// Its length once the repairs are made.
    pub(crate) end_offset: u64,
}

/// What recovery decided for a log: which records replay, what to repair, where new records
/// start. Made by [`LogPlan::decide`]; nothing has been changed when it exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPlan {
    mode: RecoveryMode,
    base: Lsn,
    replayed: ReplaySummary,
    loss: Option<LogLoss>,
    repairs: Vec<Repair>,
    kept: Vec<KeptSegment>,
    /// Per segment of the findings: records the log keeps and the last one.
    tallies: Vec<Tally>,
    kept_last_lsn: Lsn,
    next_lsn: Lsn,
    new_previous_lsn: Lsn,
    next_segment_id: SegmentId,
}

impl LogPlan {
    /// Decides, without any I/O, what recovery of a log that holds `findings` does under `mode`.
    ///
    /// `base` is the LSN up to which the caller already has the state (a snapshot's covered
    /// LSN; `Some(Lsn::ZERO)` without one): only records above it are replayed, and only
    /// losses above it matter. `None` takes the log's own start as the base: whatever precedes
    /// its oldest segment counts as covered, as for a standalone log that compacts itself.
    ///
    /// # Errors
    /// [`OpenError::WouldDropRecords`] when records above the base cannot all be read and the
    /// mode is `RefuseLoss` or `Absolute`; [`OpenError::Corrupt`] under `Absolute` for any
    /// damage at all (the first one).
    pub fn decide(
        findings: &LogFindings,
        mode: RecoveryMode,
        base: Option<Lsn>,
    ) -> Result<LogPlan, OpenError> {
        let headers: Vec<(Lsn, &HeaderState)> = findings
            .segments
            .iter()
            .map(|segment| (segment.first_lsn, &segment.header))
            .collect();
        let base = effective_base(&headers, base);
        let bounds = Bounds::list(&headers);
        let mut gate = Gate::new(mode, base, findings.segments.len());
        for (index, segment) in findings.segments.iter().enumerate() {
            gate.begin_segment(index, &bounds[index]);
            for found in &segment.contents {
                match found {
                    Found::Records(run) => gate.records(index, &bounds[index], run),
                    Found::Damage(range) => gate.damage(index, range.offset, range.kind),
                }
            }
            gate.end_segment(index, &bounds[index]);
        }
        let outcome = gate.finish(findings);
        if mode == RecoveryMode::Absolute
            && let Some(range) = findings
                .segments
                .iter()
                .flat_map(SegmentFindings::damaged_ranges)
                .next()
        {
            return Err(OpenError::Corrupt {
                file: range.file.clone(),
                offset: range.offset,
                what: "damaged log data (RecoveryMode::Absolute refuses any damage)",
            });
        }
        if let Some(loss) = &outcome.loss
            && matches!(mode, RecoveryMode::RefuseLoss | RecoveryMode::Absolute)
        {
            return Err(OpenError::WouldDropRecords {
                loss: Box::new(loss.clone()),
            });
        }
        Ok(LogPlan::build(findings, mode, base, outcome))
    }

    fn build(findings: &LogFindings, mode: RecoveryMode, base: Lsn, outcome: Outcome) -> LogPlan {
        let cut = match (&outcome.loss_at, mode) {
            (Some(at), RecoveryMode::PointInTime) => at.segment.map(|segment| (segment, at.offset)),
            _ => None,
        };
        let (mut kept, mut repairs) = keep_or_repair(findings, &outcome, cut);
        drop_empty_newest(findings, &outcome, &mut kept, &mut repairs);
        let kept_last_lsn = kept
            .iter()
            .filter_map(|kept| outcome.tallies[kept.index].last)
            .max()
            .unwrap_or(Lsn::ZERO);
        LogPlan {
            mode,
            base,
            replayed: outcome.replayed,
            loss: outcome.loss,
            repairs,
            kept,
            tallies: outcome.tallies,
            kept_last_lsn,
            next_lsn: highest_lsn_seen(findings, base).next(),
            new_previous_lsn: kept_last_lsn.max(base),
            next_segment_id: next_segment_id(findings),
        }
    }

    /// The mode this plan was decided under.
    pub fn mode(&self) -> RecoveryMode {
        self.mode
    }

    /// The base it was decided for (the log's own start resolved to an LSN).
    pub fn base(&self) -> Lsn {
        self.base
    }

    /// The records above the base that replay delivers: how many, and the last one's LSN (the
    /// base when none).
    pub fn replayed(&self) -> ReplaySummary {
        self.replayed
    }

    /// The loss the mode accepted (`PointInTime`, `SkipDamaged`); `None` when nothing above
    /// the base is lost.
    pub fn loss(&self) -> Option<&LogLoss> {
        self.loss.as_ref()
    }

    /// What opening changes in the directory, in order.
    pub fn repairs(&self) -> &[Repair] {
        &self.repairs
    }

    /// LSN of the first record a writer appends after this recovery: above every LSN the
    /// directory may still hold and above the base.
    pub fn next_lsn(&self) -> Lsn {
        self.next_lsn
    }

    /// LSN of the last record the log keeps (`Lsn::ZERO` when it keeps none).
    pub fn kept_last_lsn(&self) -> Lsn {
        self.kept_last_lsn
    }

    pub(crate) fn kept(&self) -> &[KeptSegment] {
        &self.kept
    }

    /// Records the log keeps from the segment at `index` of the findings, and the last one.
    pub(crate) fn kept_in(&self, index: usize) -> (u64, Option<Lsn>) {
        let tally = self.tallies[index];
        let quarantined = !self.kept.iter().any(|kept| kept.index == index);
        if quarantined {
            return (0, None);
        }
        (tally.count, tally.last)
    }

    /// The previous LSN written into the header of the segment the writer creates.
    pub(crate) fn new_previous_lsn(&self) -> Lsn {
        self.new_previous_lsn
    }

    pub(crate) fn next_segment_id(&self) -> SegmentId {
        self.next_segment_id
    }
}

/// The base the caller asked for, or the log's own start: what precedes the oldest segment
/// (given as first LSN and header, in log order).
pub(crate) fn effective_base(headers: &[(Lsn, &HeaderState)], base: Option<Lsn>) -> Lsn {
    base.unwrap_or_else(|| {
        headers.first().map_or(Lsn::ZERO, |(first_lsn, header)| {
            header.previous_lsn().unwrap_or(first_lsn.prev())
        })
    })
}

/// Where a segment sits in the log, as the headers say.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    first_lsn: Lsn,
    /// The log's end when the segment was created; `first_lsn - 1` when not trusted.
    previous_lsn: Lsn,
    readable: bool,
    /// The last LSN it should hold (the next segment's previous LSN); `None` for the newest,
    /// which ends with its last intact frame.
    last_expected: Option<Lsn>,
}

impl Bounds {
    /// The bounds of each segment, given as first LSN and header, in log order.
    pub(crate) fn list(headers: &[(Lsn, &HeaderState)]) -> Vec<Bounds> {
        let previous = |(first_lsn, header): &(Lsn, &HeaderState)| {
            header.previous_lsn().unwrap_or(first_lsn.prev())
        };
        headers
            .iter()
            .enumerate()
            .map(|(index, segment)| Bounds {
                first_lsn: segment.0,
                previous_lsn: previous(segment),
                readable: segment.1.facts().is_some(),
                last_expected: headers.get(index + 1).map(previous),
            })
            .collect()
    }
}

/// Records the log keeps from one segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    count: u64,
    last: Option<Lsn>,
}

/// A place in the log and why records are lost there.
#[derive(Clone, Copy, Debug)]
struct At {
    /// Index of the segment; `None` when the log holds no segment.
    segment: Option<usize>,
    offset: u64,
    cause: LossCause,
}

/// What the gate does with an intact record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Above the base and kept: delivered to the caller.
    Replay,
    /// At or below the base: kept in the log, not delivered.
    Covered,
    /// Above the base but after a loss the mode stops at: not delivered.
    AfterLoss,
    /// Beyond the last LSN its segment should hold (an earlier recovery dropped it).
    Superseded,
}

/// The state machine that walks the log's LSNs in order, noticing losses and deciding which
/// records replay. Fed by the walk while it streams, and by [`LogPlan::decide`] from the
/// findings; both feed it the same events in the same order.
#[derive(Debug)]
pub(crate) struct Gate {
    mode: RecoveryMode,
    base: Lsn,
    /// The next LSN the log should hold.
    expect: Lsn,
    /// The first damage since the last record: where a loss noticed next is located.
    pending: Option<At>,
    /// End offset of the last record of the current segment (header end if none yet).
    segment_cursor: u64,
    loss_at: Option<At>,
    loss_first_lsn: Lsn,
    unreadable_count: u64,
    unreadable_known: bool,
    intact_after_count: u64,
    replayed: ReplaySummary,
    tallies: Vec<Tally>,
    /// The highest LSN the log should hold so far.
    log_end: Lsn,
}

/// What the gate concluded.
#[derive(Debug)]
struct Outcome {
    replayed: ReplaySummary,
    loss: Option<LogLoss>,
    loss_at: Option<At>,
    tallies: Vec<Tally>,
}

impl Gate {
    pub(crate) fn new(mode: RecoveryMode, base: Lsn, segments_count: usize) -> Gate {
        Gate {
            mode,
            base,
            expect: Lsn::ZERO,
            pending: None,
            segment_cursor: HEADER_LEN as u64,
            loss_at: None,
            loss_first_lsn: Lsn::ZERO,
            unreadable_count: 0,
            unreadable_known: true,
            intact_after_count: 0,
            replayed: ReplaySummary {
                records_count: 0,
                last_lsn: base,
            },
            tallies: vec![Tally::default(); segments_count],
            log_end: Lsn::ZERO,
        }
    }

    pub(crate) fn begin_segment(&mut self, index: usize, bounds: &Bounds) {
        let previous = bounds.previous_lsn;
        // Between segments, `end_segment` already accounted for everything up to `previous`
        // (the previous segment's last expected LSN); before the first one, nothing did.
        if index == 0 && previous > self.base {
            let at = At {
                segment: Some(0),
                offset: 0,
                cause: LossCause::LogStartsAfterBase,
            };
            self.missing(self.base.next(), previous, at);
        }
        self.pending = None;
        self.segment_cursor = HEADER_LEN as u64;
        self.log_end = self.log_end.max(previous);
        self.expect = bounds.first_lsn;
        if bounds.readable {
            return;
        }
        let at = At {
            segment: Some(index),
            offset: 0,
            cause: LossCause::Damage(DamageKind::BadHeader),
        };
        match bounds.last_expected {
            Some(last) => {
                self.missing(bounds.first_lsn, last, at);
                self.expect = self.expect.max(last.next());
            }
            None => self.missing_open(bounds.first_lsn, at),
        }
    }

    /// What happens to the record `lsn`, the next intact one in segment `bounds`.
    pub(crate) fn admit(&self, bounds: &Bounds, lsn: Lsn) -> Admit {
        if bounds.last_expected.is_some_and(|last| lsn > last) {
            return Admit::Superseded;
        }
        if lsn <= self.base {
            return Admit::Covered;
        }
        // Records missing right before this one are a loss if any of them is above the base.
        let gap_above_base = lsn > self.expect && lsn.prev() > self.base;
        match self.mode {
            RecoveryMode::SkipDamaged => Admit::Replay,
            _ if self.loss_at.is_some() || gap_above_base => Admit::AfterLoss,
            _ => Admit::Replay,
        }
    }

    /// Intact records with consecutive LSNs, back to back in segment `index`.
    pub(crate) fn records(&mut self, index: usize, bounds: &Bounds, run: &RecordRun) {
        // The walk never reports records out of order or in an unreadable segment; findings
        // stated by hand might, and are then read as leniently as possible.
        let (first, last) = (run.first_lsn.max(self.expect), run.last_lsn);
        if !bounds.readable || first > last {
            return;
        }
        if first > self.expect {
            let at = self.pending.unwrap_or(At {
                segment: Some(index),
                offset: run.offset,
                cause: LossCause::Damage(DamageKind::BadFrame),
            });
            self.missing(self.expect, first.prev(), at);
        }
        self.pending = None;
        self.segment_cursor = run.end_offset;
        let last = match bounds.last_expected {
            Some(end) if first > end => return,
            Some(end) => last.min(end),
            None => last,
        };
        self.expect = last.next();
        let covered_last = last.min(self.base);
        if first <= covered_last {
            self.keep(index, first, covered_last);
        }
        let above_first = first.max(self.base.next());
        if above_first > last {
            return;
        }
        let count = last.get() - above_first.get() + 1;
        // Counted whatever the mode, so a loss says what stopping at it would cost.
        if self.loss_at.is_some() {
            self.intact_after_count += count;
        }
        if self.mode == RecoveryMode::SkipDamaged || self.loss_at.is_none() {
            self.keep(index, above_first, last);
            self.replayed.records_count += count;
            self.replayed.last_lsn = last;
        }
    }

    /// The records replayed so far.
    pub(crate) fn replayed(&self) -> ReplaySummary {
        self.replayed
    }

    /// Damage at `offset` of segment `index`.
    pub(crate) fn damage(&mut self, index: usize, offset: u64, kind: DamageKind) {
        self.pending.get_or_insert(At {
            segment: Some(index),
            offset,
            cause: LossCause::Damage(kind),
        });
    }

    pub(crate) fn end_segment(&mut self, index: usize, bounds: &Bounds) {
        match bounds.last_expected {
            Some(last) => {
                if self.expect <= last {
                    let at = self.pending.unwrap_or(At {
                        segment: Some(index),
                        offset: self.segment_cursor,
                        cause: LossCause::SegmentEndsEarly,
                    });
                    self.missing(self.expect, last, at);
                    self.expect = last.next();
                }
                self.log_end = self.log_end.max(last);
            }
            None => self.log_end = self.log_end.max(self.expect.prev()),
        }
        self.pending = None;
    }

    fn finish(mut self, findings: &LogFindings) -> Outcome {
        if self.log_end < self.base {
            let newest = findings.segments.len().checked_sub(1);
            let at = At {
                segment: newest,
                offset: newest.map_or(0, |index| findings.segments[index].size_bytes),
                cause: LossCause::LogEndsBeforeBase,
            };
            self.missing_open(self.base.next(), at);
        }
        let loss = self.loss_at.map(|at| LogLoss {
            file: at
                .segment
                .map_or_else(String::new, |index| findings.segments[index].file.clone()),
            offset: at.offset,
            cause: at.cause,
            first_lsn: self.loss_first_lsn,
            unreadable_count: self.unreadable_known.then_some(self.unreadable_count),
            intact_after_count: self.intact_after_count,
        });
        Outcome {
            replayed: self.replayed,
            loss,
            loss_at: self.loss_at,
            tallies: self.tallies,
        }
    }

    fn keep(&mut self, index: usize, first: Lsn, last: Lsn) {
        let tally = &mut self.tallies[index];
        tally.count += last.get() - first.get() + 1;
        tally.last = Some(last);
    }

    /// LSNs `first..=last` should exist but cannot be read.
    fn missing(&mut self, first: Lsn, last: Lsn, at: At) {
        let first = first.max(self.base.next());
        if first > last {
            return;
        }
        self.unreadable_count += last.get() - first.get() + 1;
        self.note_loss(first, at);
    }

    /// LSNs from `first` on should exist but cannot be read, up to an end nobody knows.
    fn missing_open(&mut self, first: Lsn, at: At) {
        self.unreadable_known = false;
        self.note_loss(first.max(self.base.next()), at);
    }

    fn note_loss(&mut self, first: Lsn, at: At) {
        if self.loss_at.is_none() {
            self.loss_at = Some(at);
            self.loss_first_lsn = first;
        }
    }
}

/// What becomes of each segment: kept up to an end offset, or repaired (a temp file removed, a
/// torn tail truncated, everything after a point-in-time `cut` quarantined).
fn keep_or_repair(
    findings: &LogFindings,
    outcome: &Outcome,
    cut: Option<(usize, u64)>,
) -> (Vec<KeptSegment>, Vec<Repair>) {
    let mut repairs: Vec<Repair> = findings
        .temp_files
        .iter()
        .map(|file| Repair::RemoveTemp { file: file.clone() })
        .collect();
    let mut kept = Vec::new();
    for (index, segment) in findings.segments.iter().enumerate() {
        let file = segment.file.clone();
        let keeps_records = outcome.tallies[index].count > 0;
        match cut {
            Some((cut_index, _)) if index > cut_index => {
                repairs.push(Repair::QuarantineSegment { file });
            }
            Some((cut_index, _)) if index == cut_index && !keeps_records => {
                repairs.push(Repair::QuarantineSegment { file });
            }
            Some((cut_index, offset)) if index == cut_index => {
                if offset < segment.size_bytes {
                    repairs.push(Repair::QuarantineTail { file, offset });
                }
                kept.push(KeptSegment {
                    index,
                    end_offset: offset.min(segment.size_bytes),
                });
            }
            Some(_) | None => {
                let end_offset = match segment.torn_tail_offset {
                    Some(offset) => {
                        repairs.push(Repair::Truncate { file, offset });
                        offset
                    }
                    None => segment.size_bytes,
                };
                kept.push(KeptSegment { index, end_offset });
            }
        }
    }
    (kept, repairs)
}

/// The newest segment left must hold a record: one with none (a header, perhaps a torn tail)
/// would be in the way of the new segment, which may start at its LSN. It is removed when it is
/// a bare intact header, quarantined otherwise.
fn drop_empty_newest(
    findings: &LogFindings,
    outcome: &Outcome,
    kept: &mut Vec<KeptSegment>,
    repairs: &mut Vec<Repair>,
) {
    let Some(newest) = kept.pop_if(|newest| outcome.tallies[newest.index].count == 0) else {
        return;
    };
    let segment = &findings.segments[newest.index];
    let file = segment.file.clone();
    let header_only =
        newest.end_offset == HEADER_LEN as u64 && matches!(segment.header, HeaderState::Intact(_));
    // A truncation of the same file is moot once it is removed or moved.
    repairs.retain(|repair| !matches!(repair, Repair::Truncate { file: f, .. } if *f == file));
    repairs.push(if header_only {
        Repair::RemoveEmpty { file }
    } else {
        Repair::QuarantineSegment { file }
    });
}

/// The highest LSN any segment names (a record, or the LSN before its first), at least `base`:
/// new records start after it, so no LSN is used twice even for quarantined records.
fn highest_lsn_seen(findings: &LogFindings, base: Lsn) -> Lsn {
    findings
        .segments
        .iter()
        .flat_map(|segment| {
            [
                segment.highest_lsn,
                segment.first_lsn.prev(),
                segment.previous_lsn().unwrap_or(Lsn::ZERO),
            ]
        })
        .max()
        .unwrap_or(Lsn::ZERO)
        .max(base)
}

/// One past the highest segment id any readable header names.
fn next_segment_id(findings: &LogFindings) -> SegmentId {
    findings
        .segments
        .iter()
        .filter_map(|segment| segment.header_facts().map(|facts| facts.segment_id))
        .max()
        .map_or(SegmentId::new(1), |id| {
            SegmentId::new(id.get().saturating_add(1))
        })
}

#[cfg(test)]
mod tests {
    //! The decision table, stated directly as findings: no file is involved.

    use super::*;
    use crate::findings::{DamagedRange, HeaderFacts};

    const FRAME: u64 = 30;

    /// A segment holding `runs` (inclusive LSN ranges) back to back, damage between runs
    /// where LSNs are skipped, created when the log stood at `previous`.
    fn segment(first: u64, previous: u64, runs: &[(u64, u64)]) -> SegmentFindings {
        let file = format!("{first:020}.wal");
        let mut contents = Vec::new();
        let mut offset = HEADER_LEN as u64;
        let mut highest = first - 1;
        for (index, &(run_first, run_last)) in runs.iter().enumerate() {
            if index > 0 || run_first > first {
                contents.push(Found::Damage(DamagedRange {
                    file: file.clone(),
                    offset,
                    len_bytes: FRAME,
                    kind: DamageKind::BadFrame,
                }));
                offset += FRAME;
            }
            let end_offset = offset + FRAME * (run_last - run_first + 1);
            contents.push(Found::Records(RecordRun {
                first_lsn: Lsn::new(run_first),
                last_lsn: Lsn::new(run_last),
                offset,
                end_offset,
            }));
            offset = end_offset;
            highest = run_last;
        }
        SegmentFindings {
            file,
            first_lsn: Lsn::new(first),
            header: HeaderState::Intact(HeaderFacts {
                segment_id: SegmentId::new(first),
                previous_lsn: Lsn::new(previous),
                key_id: None,
            }),
            size_bytes: offset,
            contents,
            torn_tail_offset: None,
            highest_lsn: Lsn::new(highest),
        }
    }

    fn log(segments: Vec<SegmentFindings>) -> LogFindings {
        LogFindings {
            segments,
            temp_files: Vec::new(),
        }
    }

    /// Segments 1..=10, 11..=20 (LSN 15 damaged), 21..=25 (open).
    fn damaged_at_15() -> LogFindings {
        log(vec![
            segment(1, 0, &[(1, 10)]),
            segment(11, 10, &[(11, 14), (16, 20)]),
            segment(21, 20, &[(21, 25)]),
        ])
    }

    fn decide(findings: &LogFindings, mode: RecoveryMode, base: u64) -> Result<LogPlan, OpenError> {
        LogPlan::decide(findings, mode, Some(Lsn::new(base)))
    }

    fn refusal(error: OpenError) -> LogLoss {
        match error {
            OpenError::WouldDropRecords { loss } => *loss,
            other => panic!("expected a refusal, got {other}"),
        }
    }

    #[test]
    fn damage_at_or_below_the_base_loses_nothing_in_every_mode_but_absolute() {
        let findings = damaged_at_15();
        for mode in [
            RecoveryMode::RefuseLoss,
            RecoveryMode::PointInTime,
            RecoveryMode::SkipDamaged,
        ] {
            let plan = decide(&findings, mode, 15).expect("opens");
            assert_eq!(plan.loss(), None, "{mode:?}");
            assert_eq!(plan.replayed().records_count, 10, "{mode:?}: 16..=25");
            assert_eq!(plan.replayed().last_lsn, Lsn::new(25));
            assert!(
                plan.repairs().is_empty(),
                "{mode:?}: the files stay as they are"
            );
            assert_eq!(plan.next_lsn(), Lsn::new(26));
        }
        let refused = decide(&findings, RecoveryMode::Absolute, 15).expect_err("any damage");
        assert_eq!(refused.code(), "TM-WAL-5201");
    }

    #[test]
    fn a_loss_above_the_base_refuses_by_default_with_what_each_mode_would_drop() {
        let findings = damaged_at_15();
        let loss = refusal(decide(&findings, RecoveryMode::RefuseLoss, 12).expect_err("refused"));
        assert_eq!(loss.file, "00000000000000000011.wal");
        assert_eq!(loss.offset, HEADER_LEN as u64 + 4 * FRAME);
        assert_eq!(loss.cause, LossCause::Damage(DamageKind::BadFrame));
        assert_eq!(loss.first_lsn, Lsn::new(15));
        assert_eq!(loss.unreadable_count, Some(1));
        assert_eq!(loss.intact_after_count, 10, "16..=25");
        let absolute = decide(&findings, RecoveryMode::Absolute, 12).expect_err("refused");
        assert_eq!(absolute.code(), "TM-WAL-5201");
    }

    #[test]
    fn point_in_time_replays_up_to_the_loss_and_quarantines_the_rest() {
        let findings = damaged_at_15();
        let plan = decide(&findings, RecoveryMode::PointInTime, 12).expect("opens");
        assert_eq!(
            plan.replayed(),
            ReplaySummary {
                records_count: 2,
                last_lsn: Lsn::new(14)
            }
        );
        assert_eq!(
            plan.repairs(),
            &[
                Repair::QuarantineTail {
                    file: "00000000000000000011.wal".to_owned(),
                    offset: HEADER_LEN as u64 + 4 * FRAME,
                },
                Repair::QuarantineSegment {
                    file: "00000000000000000021.wal".to_owned()
                },
            ]
        );
        assert_eq!(plan.kept_last_lsn(), Lsn::new(14));
        assert_eq!(plan.new_previous_lsn(), Lsn::new(14));
        assert_eq!(
            plan.next_lsn(),
            Lsn::new(26),
            "LSNs of dropped records are never reused"
        );
        assert_eq!(plan.loss().map(|loss| loss.first_lsn), Some(Lsn::new(15)));
    }

    #[test]
    fn skip_replays_every_readable_record_and_changes_no_file() {
        let findings = damaged_at_15();
        let plan = decide(&findings, RecoveryMode::SkipDamaged, 12).expect("opens");
        assert_eq!(plan.replayed().records_count, 12, "13, 14, 16..=25");
        assert!(plan.repairs().is_empty());
        let loss = plan.loss().expect("reported");
        assert_eq!(
            (loss.unreadable_count, loss.intact_after_count),
            (Some(1), 10)
        );
        assert_eq!(plan.new_previous_lsn(), Lsn::new(25));
    }

    #[test]
    fn a_torn_tail_is_truncated_in_every_mode() {
        let mut findings = damaged_at_15();
        let newest = &mut findings.segments[2];
        let torn_at = newest.size_bytes;
        newest.size_bytes += 7;
        newest.torn_tail_offset = Some(torn_at);
        for mode in [
            RecoveryMode::RefuseLoss,
            RecoveryMode::PointInTime,
            RecoveryMode::SkipDamaged,
        ] {
            let plan = decide(&findings, mode, 20).expect("opens");
            assert_eq!(
                plan.repairs(),
                &[Repair::Truncate {
                    file: "00000000000000000021.wal".to_owned(),
                    offset: torn_at
                }]
            );
            assert_eq!(plan.loss(), None);
        }
    }

    #[test]
    fn a_missing_segment_above_the_base_is_a_loss_and_a_declared_gap_is_not() {
        let missing = log(vec![
            segment(1, 0, &[(1, 10)]),
            segment(21, 20, &[(21, 25)]),
        ]);
        let loss = refusal(decide(&missing, RecoveryMode::RefuseLoss, 5).expect_err("refused"));
        assert_eq!(loss.cause, LossCause::SegmentEndsEarly);
        assert_eq!(loss.first_lsn, Lsn::new(11));
        assert_eq!(loss.unreadable_count, Some(10));
        assert_eq!(loss.file, "00000000000000000001.wal");
        assert_eq!(
            loss.offset,
            HEADER_LEN as u64 + 10 * FRAME,
            "after its last record"
        );

        // An earlier point-in-time recovery dropped 11..=20: the new segment says the log
        // stood at 10 when it was created.
        let declared = log(vec![
            segment(1, 0, &[(1, 10)]),
            segment(21, 10, &[(21, 25)]),
        ]);
        let plan = decide(&declared, RecoveryMode::RefuseLoss, 5).expect("opens");
        assert_eq!(plan.replayed().records_count, 10, "6..=10, 21..=25");
    }

    #[test]
    fn a_log_compacted_past_the_base_or_ending_before_it_is_a_loss() {
        let compacted = log(vec![segment(11, 10, &[(11, 20)])]);
        let loss = refusal(decide(&compacted, RecoveryMode::RefuseLoss, 4).expect_err("refused"));
        assert_eq!(loss.cause, LossCause::LogStartsAfterBase);
        assert_eq!(
            (loss.first_lsn, loss.unreadable_count),
            (Lsn::new(5), Some(6))
        );
        let plan = decide(&compacted, RecoveryMode::PointInTime, 4).expect("explicit");
        assert_eq!(plan.replayed().records_count, 0);
        assert_eq!(plan.repairs().len(), 1, "the whole log is quarantined");
        // Without a snapshot, a standalone log's own start is the base.
        let plan = LogPlan::decide(&compacted, RecoveryMode::RefuseLoss, None).expect("opens");
        assert_eq!(plan.replayed().records_count, 10);

        let short = log(vec![segment(1, 0, &[(1, 10)])]);
        let loss = refusal(decide(&short, RecoveryMode::RefuseLoss, 30).expect_err("refused"));
        assert_eq!(loss.cause, LossCause::LogEndsBeforeBase);
        assert_eq!(
            (loss.first_lsn, loss.unreadable_count),
            (Lsn::new(31), None)
        );
        let plan = decide(&short, RecoveryMode::PointInTime, 30).expect("explicit");
        assert_eq!(plan.next_lsn(), Lsn::new(31));
        assert_eq!(plan.new_previous_lsn(), Lsn::new(30));
        let empty = LogFindings::default();
        assert!(decide(&empty, RecoveryMode::RefuseLoss, 0).is_ok());
        assert!(decide(&empty, RecoveryMode::RefuseLoss, 1).is_err());
    }

    #[test]
    fn an_unreadable_header_loses_its_segment_and_the_newest_loses_an_unknown_count() {
        let unreadable = |segment: &mut SegmentFindings| {
            segment.header = HeaderState::Unreadable;
            segment.contents = vec![Found::Damage(DamagedRange {
                file: segment.file.clone(),
                offset: 0,
                len_bytes: segment.size_bytes,
                kind: DamageKind::BadHeader,
            })];
        };
        let mut findings = damaged_at_15();
        unreadable(&mut findings.segments[1]);
        let loss = refusal(decide(&findings, RecoveryMode::RefuseLoss, 3).expect_err("refused"));
        assert_eq!(loss.cause, LossCause::Damage(DamageKind::BadHeader));
        assert_eq!(
            (loss.first_lsn, loss.unreadable_count),
            (Lsn::new(11), Some(10))
        );
        assert!(
            decide(&findings, RecoveryMode::RefuseLoss, 20).is_ok(),
            "all covered"
        );

        let mut findings = damaged_at_15();
        unreadable(&mut findings.segments[2]);
        let loss = refusal(decide(&findings, RecoveryMode::RefuseLoss, 20).expect_err("refused"));
        assert_eq!(
            (loss.first_lsn, loss.unreadable_count),
            (Lsn::new(21), None)
        );
        let plan = decide(&findings, RecoveryMode::PointInTime, 20).expect("explicit");
        assert_eq!(
            plan.repairs(),
            &[Repair::QuarantineSegment {
                file: "00000000000000000021.wal".to_owned()
            }]
        );
        assert_eq!(
            plan.next_lsn(),
            Lsn::new(26),
            "above the unreadable segment's frames"
        );
    }

    #[test]
    fn records_beyond_what_the_next_segment_says_are_never_replayed() {
        // 11..=20 were dropped by an earlier recovery whose truncation did not last.
        let findings = log(vec![
            segment(1, 0, &[(1, 20)]),
            segment(21, 10, &[(21, 25)]),
        ]);
        let plan = decide(&findings, RecoveryMode::RefuseLoss, 0).expect("opens");
        assert_eq!(plan.replayed().records_count, 15, "1..=10, 21..=25");
    }

    #[test]
    fn a_newest_segment_without_records_makes_way_for_the_new_one() {
        let mut findings = log(vec![segment(1, 0, &[(1, 10)]), segment(11, 10, &[])]);
        findings
            .temp_files
            .push("00000000000000000012.wal.tmp".to_owned());
        let plan = decide(&findings, RecoveryMode::RefuseLoss, 10).expect("opens");
        assert_eq!(
            plan.repairs(),
            &[
                Repair::RemoveTemp {
                    file: "00000000000000000012.wal.tmp".to_owned()
                },
                Repair::RemoveEmpty {
                    file: "00000000000000000011.wal".to_owned()
                },
            ]
        );
        assert_eq!(plan.next_lsn(), Lsn::new(11));
        assert_eq!(plan.new_previous_lsn(), Lsn::new(10));
    }
}

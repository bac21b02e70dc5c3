//! The second step of recovery: one pass over every segment, through a bounded window,
//! describing what each holds and handing the records the mode replays to the caller.
//!
//! Each record is verified (checksum), and opened (tag) only when it is delivered, so a
//! record is decrypted at most once per open. Nothing is changed; the walk's
//! [`LogFindings`] are what [`LogPlan::decide`] decides from.

use std::ops::ControlFlow;

use crate::error::{OpenError, ReplayError};
use crate::findings::{
    DamageKind, DamagedRange, Found, HeaderState, LogFindings, RecordRun, SegmentFindings,
};
use crate::format::{FrameRead, HEADER_LEN, MAGIC, SegmentHeader};
use crate::plan::{Admit, Bounds, Gate, LogPlan, effective_base};
use crate::recovery::{RecoveryMode, RecoveryReport, ReplaySummary};
use crate::seal::PayloadSeal;
use crate::segment_reader::SegmentReader;
use crate::survey::LogSurvey;
use tokm_storage::Lsn;

/// A log read once from end to end: what it holds and which records were delivered.
///
/// Made by [`LogSurvey::walk`]; [`LogWalk::plan`] decides, and [`LogWalk::open`] (only then)
/// repairs the directory and starts a writer.
#[derive(Debug)]
pub struct LogWalk {
    pub(crate) survey: LogSurvey,
    pub(crate) base: Option<Lsn>,
    findings: LogFindings,
    replayed: ReplaySummary,
    stopped_early: bool,
}

impl LogSurvey {
    /// Reads every segment once, in log order, through a bounded buffer, and calls
    /// `on_record(lsn, payload)` for each record above `base` that the options' recovery mode
    /// replays, in LSN order, until it returns `ControlFlow::Break`. Changes nothing.
    ///
    /// `base` is the LSN the caller's state already reflects (a snapshot's), `Some(Lsn::ZERO)`
    /// for none; `None` takes the log's own start (see [`LogPlan::decide`]). Under a mode that
    /// refuses losses, records after the first loss are not delivered; [`LogWalk::plan`] then
    /// refuses.
    ///
    /// # Errors
    /// [`ReplayError::Io`]; [`ReplayError::Corrupt`] if a segment shrinks while it is read
    /// (at open they become the same [`OpenError`] variants).
    pub fn walk(
        self,
        base: Option<Lsn>,
        on_record: &mut dyn FnMut(Lsn, &[u8]) -> ControlFlow<()>,
    ) -> Result<LogWalk, ReplayError> {
        let headers: Vec<(Lsn, &HeaderState)> = self
            .segments
            .iter()
            .map(|segment| (segment.first_lsn, &segment.header))
            .collect();
        let bounds = Bounds::list(&headers);
        let mode = self.options.recovery_mode;
        let mut gate = Gate::new(mode, effective_base(&headers, base), self.segments.len());
        let newest = self.segments.len().checked_sub(1);
        let mut segments = Vec::with_capacity(self.segments.len());
        let mut scratch = Vec::new();
        let mut stopped_early = false;
        for (index, surveyed) in self.segments.iter().enumerate() {
            gate.begin_segment(index, &bounds[index]);
            let mut walker = SegmentWalk {
                index,
                bounds: &bounds[index],
                gate: &mut gate,
                found: SegmentFindings {
                    file: surveyed.name.clone(),
                    first_lsn: surveyed.first_lsn,
                    header: surveyed.header.clone(),
                    size_bytes: surveyed.size_bytes,
                    contents: Vec::new(),
                    torn_tail_offset: None,
                    highest_lsn: surveyed.first_lsn.prev(),
                },
            };
            walker.note_header_damage();
            let mut reader =
                SegmentReader::open(self.options.storage.as_ref(), &self.dir, &surveyed.name)?;
            let flow = match &surveyed.readable {
                Some((header, seal)) => walker.frames(
                    &mut reader,
                    header,
                    seal,
                    Some(index) == newest,
                    &mut scratch,
                    on_record,
                )?,
                None => {
                    walker.scan_highest(&mut reader)?;
                    ControlFlow::Continue(())
                }
            };
            let found = walker.found;
            gate.end_segment(index, &bounds[index]);
            segments.push(found);
            if flow.is_break() {
                stopped_early = true;
                break;
            }
        }
        let replayed = gate.replayed();
        let temp_files = self.temp_files.clone();
        Ok(LogWalk {
            survey: self,
            base,
            findings: LogFindings {
                segments,
                temp_files,
            },
            replayed,
            stopped_early,
        })
    }
}

impl LogWalk {
    /// What the walk found.
    pub fn findings(&self) -> &LogFindings {
        &self.findings
    }

    /// The records delivered to the caller: how many, and the last one's LSN.
    pub fn replayed(&self) -> ReplaySummary {
        self.replayed
    }

    /// Whether the caller stopped the walk before the end of the log.
    pub fn stopped_early(&self) -> bool {
        self.stopped_early
    }

    /// The recovery mode the walk delivered records under.
    pub fn mode(&self) -> RecoveryMode {
        self.survey.options.recovery_mode
    }

    /// Decides (see [`LogPlan::decide`]) under the walk's mode and base.
    ///
    /// # Errors
    /// The refusals of [`LogPlan::decide`]; [`OpenError::InvalidArgument`] when the walk was
    /// stopped early, since its findings do not cover the whole log.
    pub fn plan(&self) -> Result<LogPlan, OpenError> {
        if self.stopped_early {
            return Err(OpenError::InvalidArgument {
                reason: "the walk was stopped before the end of the log",
            });
        }
        let plan = LogPlan::decide(&self.findings, self.mode(), self.base)?;
        assert_eq!(
            plan.replayed(),
            self.replayed,
            "the walk delivered exactly the records the plan replays"
        );
        Ok(plan)
    }

    /// The report of a recovery under `plan` that has not been carried out (a dry run): the
    /// repairs are what opening would do, nothing is quarantined yet.
    pub fn report(&self, plan: &LogPlan) -> RecoveryReport {
        RecoveryReport::new(&self.findings, plan, Vec::new())
    }
}

/// One segment being walked.
struct SegmentWalk<'a> {
    index: usize,
    bounds: &'a Bounds,
    gate: &'a mut Gate,
    found: SegmentFindings,
}

impl SegmentWalk<'_> {
    /// A header that is not intact is damage at offset 0, reported like any other.
    fn note_header_damage(&mut self) {
        let len_bytes = match self.found.header {
            HeaderState::Intact(_) => return,
            HeaderState::IdentityDamaged(_) => MAGIC.len() as u64 + 1,
            HeaderState::Salvaged(_) => HEADER_LEN as u64,
            HeaderState::Unreadable => self.found.size_bytes,
        };
        self.damage(0, len_bytes, DamageKind::BadHeader);
    }

    /// Walks the frames of a readable segment.
    fn frames(
        &mut self,
        reader: &mut SegmentReader,
        header: &SegmentHeader,
        seal: &PayloadSeal,
        newest: bool,
        scratch: &mut Vec<u8>,
        on_record: &mut dyn FnMut(Lsn, &[u8]) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, ReplayError> {
        let end = reader.len_bytes();
        let mut offset = HEADER_LEN as u64;
        let mut last: Option<Lsn> = None;
        // Each iteration moves `offset` forward by at least one byte.
        while offset < end {
            let (lsn, frame_end) = match reader.frame(offset)? {
                FrameRead::Record {
                    lsn,
                    payload,
                    frame_len,
                } => {
                    let frame_end = offset + frame_len as u64;
                    let in_order = lsn >= header.first_lsn && last.is_none_or(|last| lsn > last);
                    if !in_order {
                        self.damage(offset, frame_len as u64, DamageKind::LsnOutOfOrder);
                        offset = frame_end;
                        continue;
                    }
                    last = Some(lsn);
                    self.found.highest_lsn = self.found.highest_lsn.max(lsn);
                    if self.gate.admit(self.bounds, lsn) == Admit::Replay {
                        let Some(plaintext) = seal.open(header.segment_id, lsn, payload, scratch)
                        else {
                            self.damage(offset, frame_len as u64, DamageKind::AuthenticationFailed);
                            offset = frame_end;
                            continue;
                        };
                        if on_record(lsn, plaintext).is_break() {
                            self.record(lsn, offset, frame_end);
                            return Ok(ControlFlow::Break(()));
                        }
                    }
                    (lsn, frame_end)
                }
                FrameRead::Truncated | FrameRead::Invalid => {
                    let floor = last.unwrap_or(header.first_lsn.prev());
                    match reader.resync(offset + 1, floor)? {
                        Some(next) => {
                            self.damage(offset, next - offset, DamageKind::BadFrame);
                            offset = next;
                        }
                        None if newest => {
                            self.found.torn_tail_offset = Some(offset);
                            break;
                        }
                        None => {
                            self.damage(offset, end - offset, DamageKind::BadFrame);
                            break;
                        }
                    }
                    continue;
                }
            };
            self.record(lsn, offset, frame_end);
            offset = frame_end;
        }
        let beyond = reader.file_len_bytes() - end;
        if beyond > 0 {
            // Longer than any writer makes: the excess is not the log's.
            match self.found.contents.last_mut() {
                Some(Found::Damage(range)) if range.offset + range.len_bytes == end => {
                    range.len_bytes += beyond;
                }
                _ => self.damage(end, beyond, DamageKind::BadFrame),
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// For a segment whose header is unusable: the highest LSN of any intact frame, so that no
    /// LSN it may hold is ever used again.
    fn scan_highest(&mut self, reader: &mut SegmentReader) -> Result<(), ReplayError> {
        let end = reader.len_bytes();
        let mut offset = HEADER_LEN as u64;
        while offset < end {
            if let FrameRead::Record { lsn, frame_len, .. } = reader.frame(offset)? {
                self.found.highest_lsn = self.found.highest_lsn.max(lsn);
                offset += frame_len as u64;
                continue;
            }
            match reader.resync(offset + 1, self.found.highest_lsn)? {
                Some(next) => offset = next,
                None => break,
            }
        }
        Ok(())
    }

    /// An intact record in LSN order: extends the current run, and tells the gate.
    fn record(&mut self, lsn: Lsn, offset: u64, end_offset: u64) {
        let single = RecordRun {
            first_lsn: lsn,
            last_lsn: lsn,
            offset,
            end_offset,
        };
        self.gate.records(self.index, self.bounds, &single);
        if let Some(Found::Records(run)) = self.found.contents.last_mut()
            && run.last_lsn.next() == lsn
            && run.end_offset == offset
        {
            run.last_lsn = lsn;
            run.end_offset = end_offset;
            return;
        }
        self.found.contents.push(Found::Records(single));
    }

    fn damage(&mut self, offset: u64, len_bytes: u64, kind: DamageKind) {
        self.gate.damage(self.index, offset, kind);
        self.found.contents.push(Found::Damage(DamagedRange {
            file: self.found.file.clone(),
            offset,
            len_bytes,
            kind,
        }));
    }
}

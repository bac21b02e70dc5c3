//! What recovery found in a log directory: the input of the recovery decision.
//!
//! The walk (`walk.rs`) reads every segment once and describes it here; [`LogPlan::decide`]
//! turns a description, a [`RecoveryMode`] and a base LSN into a plan without any I/O. The
//! types are plain data with public fields so that tests (and callers deciding on top of the
//! log, like the engine) can state a situation directly.
//!
//! [`LogPlan::decide`]: crate::LogPlan::decide
//! [`RecoveryMode`]: crate::RecoveryMode

use std::fmt;

use tokm_crypto_adaptive::KeyId;

use crate::ids::SegmentId;
use tokm_storage::Lsn;

/// What a log directory held, segment by segment in log order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogFindings {
    /// Every segment file, oldest first.
    pub segments: Vec<SegmentFindings>,
    /// Half-created segments (`*.wal.tmp`): never acknowledged, removed by an open.
    pub temp_files: Vec<String>,
}

/// One segment file as recovery found it, before any repair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFindings {
    /// File name, `<20-digit first LSN>.wal`.
    pub file: String,
    /// First LSN the segment may hold, as its name says.
    pub first_lsn: Lsn,
    /// How far the header could be trusted.
    pub header: HeaderState,
    /// File length in bytes when it was read.
    pub size_bytes: u64,
    /// What the frames after the header held, in file order.
    pub contents: Vec<Found>,
    /// Offset where a torn tail starts: bytes that are no frame, with no intact frame after
    /// them, in the newest segment only. Never acknowledged; every open truncates them.
    pub torn_tail_offset: Option<u64>,
    /// Highest LSN of any intact frame in the file, used or not (`first_lsn - 1` if none): new
    /// records must start above every LSN the directory may still hold.
    pub highest_lsn: Lsn,
}

impl SegmentFindings {
    /// The log's last LSN when this segment was created, when the header can be trusted for it.
    pub fn previous_lsn(&self) -> Option<Lsn> {
        self.header.previous_lsn()
    }

    /// Whether the segment's records can be read at all.
    pub fn readable(&self) -> bool {
        self.header.facts().is_some()
    }

    /// Facts from the header, when it could be used.
    pub fn header_facts(&self) -> Option<&HeaderFacts> {
        self.header.facts()
    }

    /// The damaged ranges in the segment, header included, in file order.
    pub fn damaged_ranges(&self) -> impl Iterator<Item = &DamagedRange> {
        self.contents.iter().filter_map(|found| match found {
            Found::Damage(range) => Some(range),
            Found::Records(_) => None,
        })
    }
}

/// How far a segment header could be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderState {
    /// Checksum and fields check out.
    Intact(HeaderFacts),
    /// Only the magic or version byte was damaged; every field is right (reported as damage,
    /// loses nothing).
    IdentityDamaged(HeaderFacts),
    /// The checksum fails, but the fields agree with the name and (sealed) the key check
    /// opens, so the frames can be read; the previous LSN is not trusted.
    Salvaged(HeaderFacts),
    /// Unusable: the segment's records are lost.
    Unreadable,
}

impl HeaderState {
    /// The log's last LSN when the segment was created, when the header can be trusted for it.
    pub fn previous_lsn(&self) -> Option<Lsn> {
        match self {
            HeaderState::Intact(facts) | HeaderState::IdentityDamaged(facts) => {
                Some(facts.previous_lsn)
            }
            HeaderState::Salvaged(_) | HeaderState::Unreadable => None,
        }
    }

    /// Facts from the header, when it could be used to read the records.
    pub fn facts(&self) -> Option<&HeaderFacts> {
        match self {
            HeaderState::Intact(facts)
            | HeaderState::IdentityDamaged(facts)
            | HeaderState::Salvaged(facts) => Some(facts),
            HeaderState::Unreadable => None,
        }
    }
}

/// The header fields recovery uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderFacts {
    /// The segment id (bound into every sealed record).
    pub segment_id: SegmentId,
    /// The log's last LSN when the segment was created.
    pub previous_lsn: Lsn,
    /// The key sealing its payloads; `None` for plaintext.
    pub key_id: Option<KeyId>,
}

/// One stretch of a segment's frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// Intact frames with consecutive LSNs, back to back.
    Records(RecordRun),
    /// Bytes that could not be used as records.
    Damage(DamagedRange),
}

/// Intact frames with consecutive LSNs, back to back in one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRun {
    /// LSN of the first frame.
    pub first_lsn: Lsn,
    /// LSN of the last frame.
    pub last_lsn: Lsn,
    /// Offset of the first frame.
    pub offset: u64,
    /// Offset just past the last frame.
    pub end_offset: u64,
}

/// What kind of damage a [`DamagedRange`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DamageKind {
    /// The segment header fails its checksum, is cut short or names the wrong LSN.
    BadHeader,
    /// Bytes that are not an intact frame, with an intact frame after them (or anywhere in a
    /// sealed segment).
    BadFrame,
    /// An intact frame whose LSN does not follow the one before it.
    LsnOutOfOrder,
    /// An intact frame whose sealed payload fails authentication under the right key.
    AuthenticationFailed,
}

impl fmt::Display for DamageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DamageKind::BadHeader => "damaged segment header",
            DamageKind::BadFrame => "damaged record frame",
            DamageKind::LsnOutOfOrder => "record out of LSN order",
            DamageKind::AuthenticationFailed => "record fails authentication",
        })
    }
}

/// A byte range that could not be read as records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedRange {
    /// Segment file name.
    pub file: String,
    /// Offset of the first damaged byte.
    pub offset: u64,
    /// Length of the range in bytes.
    pub len_bytes: u64,
    /// What was wrong.
    pub kind: DamageKind,
}

/// Why acknowledged records above the base cannot all be replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LossCause {
    /// Damaged bytes where records should be (the [`DamageKind`] says how).
    Damage(DamageKind),
    /// The segment's records end before the next segment says the log reached: it was cut,
    /// or a segment after it is missing.
    SegmentEndsEarly,
    /// The oldest segment starts after the base: the records in between were compacted away
    /// (falling back to an older snapshot needs them).
    LogStartsAfterBase,
    /// The log ends before the base: segments after it are missing, and with them perhaps
    /// records after the base.
    LogEndsBeforeBase,
}

impl fmt::Display for LossCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossCause::Damage(kind) => write!(f, "{kind}"),
            LossCause::SegmentEndsEarly => f.write_str(
                "records are missing after this segment's last one (it was cut, or a segment \
                 after it is missing)",
            ),
            LossCause::LogStartsAfterBase => {
                f.write_str("the log starts after the base (the records between were compacted)")
            }
            LossCause::LogEndsBeforeBase => {
                f.write_str("the log ends before the base (newer segments are missing)")
            }
        }
    }
}

/// Acknowledged records above the base that recovery cannot replay in full: where the first
/// loss is and what each way of going on would cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLoss {
    /// Where the first loss is: a segment file, or the WAL directory (`""`) when it holds
    /// no segment.
    pub file: String,
    /// Offset in `file` of the first damaged or missing byte.
    pub offset: u64,
    /// Why the records are lost.
    pub cause: LossCause,
    /// First LSN above the base that cannot be read.
    pub first_lsn: Lsn,
    /// Records above the base no policy can read; `None` when the log cannot tell (a missing
    /// end of the log, an unreadable newest segment). `RecoveryMode::SkipDamaged` drops these.
    pub unreadable_count: Option<u64>,
    /// Intact records after the first loss: `RecoveryMode::PointInTime` drops these as well.
    pub intact_after_count: u64,
}

impl fmt::Display for LogLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unreadable = match self.unreadable_count {
            Some(count) => count.to_string(),
            None => "an unknown number of".to_owned(),
        };
        write!(
            f,
            "{} in {} at offset {}: {unreadable} acknowledged record(s) from LSN {} cannot be \
             read, and stopping there would also drop {} intact record(s) after them",
            self.cause,
            if self.file.is_empty() {
                "the log directory"
            } else {
                &self.file
            },
            self.offset,
            self.first_lsn,
            self.intact_after_count
        )
    }
}

//! Reading segments back: recovery policies, the recovery report and replay.
//!
//! One scan (`scan_directory`) decides, without changing anything, what every segment holds and
//! what a repair would do; `Wal::open` then applies the repairs, while [`WalReader`] only reads.
//! Replay walks the same frames with the same rules, so it sees exactly the records the scan
//! counted.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokm_crypto_adaptive::{KeyId, Keyring};

use crate::error::WalError;
use crate::format::{
    FRAME_HEADER_LEN, FileName, FrameRead, HEADER_LEN, HeaderCipher, HeaderError, MAGIC,
    SEGMENT_READ_BYTES_MAX, SegmentHeader, classify_name, peek_frame_lsn, read_frame,
};
use crate::ids::{Lsn, SegmentId};
use crate::options::WalOptions;
use crate::seal::PayloadSeal;
use crate::storage::{Access, Storage};

/// What opening a log does with damage. A torn tail of the newest segment (a crash mid-write)
/// is not damage: every mode truncates it and reports the bytes in
/// [`RecoveryReport::truncated_bytes`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Replay up to the last good record before the first damage and drop the rest from the
    /// log: the damaged bytes and every later segment are moved to `*.quarantine` files
    /// (kept for inspection, never read again) and reported.
    #[default]
    PointInTime,
    /// Any damage is an error naming segment file and offset; nothing is changed.
    Absolute,
    /// Skip damaged records and go on: after a bad frame, scan forward for the next frame whose
    /// checksum and LSN are valid. Records are lost silently except for the report; opt in
    /// only where availability beats completeness.
    SkipDamaged,
}

/// What kind of damage a [`DamagedRange`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DamageKind {
    /// The segment header fails its checksum or is cut short.
    BadHeader,
    /// A frame fails its checksum or is cut short, with valid data after it or in a sealed segment.
    BadFrame,
    /// A frame is intact but its LSN is not the one expected there (or a segment is missing).
    LsnOutOfOrder,
    /// A frame is intact but its sealed payload fails authentication.
    AuthenticationFailed,
}

/// A byte range that could not be read as records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedRange {
    /// Segment file name.
    pub file: String,
    /// Offset of the first damaged byte.
    pub offset: u64,
    /// Length of the range in bytes (to the end of the file when nothing valid follows).
    pub len_bytes: u64,
    /// What was wrong.
    pub kind: DamageKind,
}

/// One segment file as recovery found it, before any repair.
///
/// *Sealed* means a newer segment follows it in the directory, so no writer appends to it
/// again: an invalid frame in a sealed segment is damage. The newest segment is *open*: a
/// running writer may still append to it, and an invalid frame at its end is a torn tail.
/// [`Wal::open`](crate::Wal::open) always starts a new segment, so once it returns every
/// segment listed here is sealed (or was removed or quarantined, see
/// [`RecoveryReport::quarantined`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// Segment file name, `<20-digit first LSN>.wal`.
    pub file: String,
    /// First LSN the segment may hold, as its file name (and, when readable, its header) says.
    pub first_lsn: Lsn,
    /// Segment id from the header; `None` when the header is damaged.
    pub segment_id: Option<SegmentId>,
    /// LSN of the last record recovery keeps from this segment; `None` when it keeps none
    /// (an empty segment, or one dropped because of damage).
    pub last_lsn: Option<Lsn>,
    /// Records recovery keeps from this segment, i.e. the records replay reads from it.
    pub records_count: u64,
    /// File length when scanned, torn tail and damage included.
    pub size_bytes: u64,
    /// Whether a newer segment follows this one (see the type's documentation).
    pub sealed: bool,
    /// Id of the key that seals the payloads; `None` for a plaintext segment and when the
    /// header is damaged (then `segment_id` is `None` too).
    pub key_id: Option<KeyId>,
    /// Entries of [`RecoveryReport::damaged`] that lie in this segment.
    pub damaged_ranges_count: usize,
}

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Records that will be replayed.
    pub records_count: u64,
    /// LSN of the last record that will be replayed; `Lsn::ZERO` when there is none.
    pub last_lsn: Lsn,
    /// Bytes of torn tail cut from the newest segment (for [`WalReader`]: that would be cut).
    pub truncated_bytes: u64,
    /// Damage found, in log order.
    pub damaged: Vec<DamagedRange>,
    /// Files moved out of the log by `RecoveryMode::PointInTime` (or bad-header segments under
    /// `SkipDamaged`), by their new names. Empty for [`WalReader`].
    pub quarantined: Vec<String>,
    /// Every segment file found, in log order, as found before any repair.
    pub segments: Vec<SegmentInfo>,
}

/// A segment replay will read, up to `end`.
#[derive(Clone, Debug)]
pub(crate) struct PlannedSegment {
    pub(crate) name: String,
    pub(crate) header: SegmentHeader,
    pub(crate) seal: PayloadSeal,
    pub(crate) end: u64,
    pub(crate) records_count: u64,
}

/// A change recovery makes before the writer starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Repair {
    /// Remove a `.wal.tmp` left by a crash during segment creation.
    RemoveTemp { name: String },
    /// Move a whole segment out of the log.
    QuarantineSegment { name: String },
    /// Copy `[offset..)` of a segment to a quarantine file, then truncate it to `offset`.
    QuarantineTail { name: String, offset: u64 },
    /// Truncate a torn tail.
    Truncate { name: String, offset: u64 },
    /// Remove the newest segment because it holds no record, so a new segment may take its name.
    RemoveEmpty { name: String },
}

/// The outcome of scanning a directory.
#[derive(Debug)]
pub(crate) struct Scan {
    pub(crate) report: RecoveryReport,
    pub(crate) plan: Vec<PlannedSegment>,
    pub(crate) repairs: Vec<Repair>,
    pub(crate) next_lsn: Lsn,
    pub(crate) next_segment_id: SegmentId,
}

/// How a walk over one segment's frames ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tail {
    /// Every byte up to the end was records.
    Clean,
    /// Bytes from `offset` are not a frame and nothing valid follows: a torn write if this is
    /// the newest segment.
    Torn { offset: u64 },
    /// Damage at `offset` (strict modes only).
    Damaged { offset: u64, kind: DamageKind },
}

#[derive(Debug)]
struct Walk {
    records_count: u64,
    last_lsn: Lsn,
    tail: Tail,
}

/// Frames past a bad one can only carry LSNs up to this far ahead: each frame takes at least
/// `FRAME_HEADER_LEN` bytes, and a segment's LSNs are consecutive.
fn plausible_lsn(candidate: Lsn, last_lsn: Lsn, remaining_bytes: usize) -> bool {
    let window = (remaining_bytes / FRAME_HEADER_LEN) as u64 + 1;
    candidate > last_lsn && candidate.get() - last_lsn.get() <= window
}

/// Offset of the next intact frame after a bad one at `from - 1`, if any.
fn resync(buf: &[u8], from: usize, last_lsn: Lsn) -> Option<usize> {
    let last_start = buf.len().checked_sub(FRAME_HEADER_LEN)?;
    (from..=last_start).find(|&position| {
        let bytes = &buf[position..];
        peek_frame_lsn(bytes).is_some_and(|lsn| plausible_lsn(lsn, last_lsn, bytes.len()))
            && matches!(read_frame(bytes), FrameRead::Record { .. })
    })
}

/// Walks the frames of one segment held in `buf` (header included), calling `on_record` for
/// each good record. `previous_lsn` is the last LSN before this segment.
fn walk_frames(
    buf: &[u8],
    header: &SegmentHeader,
    seal: &PayloadSeal,
    mode: RecoveryMode,
    previous_lsn: Lsn,
    damaged: &mut Vec<(u64, u64, DamageKind)>,
    on_record: &mut dyn FnMut(Lsn, &[u8]) -> ControlFlow<()>,
) -> Walk {
    let strict = mode != RecoveryMode::SkipDamaged;
    let mut scratch = Vec::new();
    let mut position = HEADER_LEN;
    let mut walk = Walk {
        records_count: 0,
        last_lsn: previous_lsn,
        tail: Tail::Clean,
    };
    let mut stopped_by_caller = false;
    // Each iteration consumes at least one byte, so the loop is bounded by the buffer length.
    while position < buf.len() && !stopped_by_caller {
        let bad_frame_end;
        let kind;
        match read_frame(&buf[position..]) {
            FrameRead::Record {
                lsn,
                payload,
                frame_len,
            } => {
                let expected_ok = if strict {
                    let expected = if walk.records_count == 0 {
                        header.first_lsn
                    } else {
                        walk.last_lsn.next()
                    };
                    lsn == expected
                } else {
                    lsn > walk.last_lsn && lsn >= header.first_lsn
                };
                let opened = if expected_ok {
                    seal.open(header.segment_id, lsn, payload, &mut scratch)
                } else {
                    None
                };
                if let Some(plaintext) = opened {
                    walk.records_count += 1;
                    walk.last_lsn = lsn;
                    position += frame_len;
                    stopped_by_caller = on_record(lsn, plaintext).is_break();
                    continue;
                }
                bad_frame_end = Some(position + frame_len);
                kind = if expected_ok {
                    DamageKind::AuthenticationFailed
                } else {
                    DamageKind::LsnOutOfOrder
                };
            }
            FrameRead::Truncated | FrameRead::Invalid => {
                bad_frame_end = None;
                kind = DamageKind::BadFrame;
            }
        }
        let offset = position as u64;
        let next_good = resync(buf, position + 1, walk.last_lsn);
        if strict {
            walk.tail = match (kind, next_good) {
                (DamageKind::BadFrame, None) => Tail::Torn { offset },
                _ => Tail::Damaged { offset, kind },
            };
            return walk;
        }
        let resume = match (bad_frame_end, next_good) {
            (Some(end), _) => Some(end),
            (None, next) => next,
        };
        let Some(resume) = resume else {
            walk.tail = Tail::Torn { offset };
            return walk;
        };
        damaged.push((offset, (resume - position) as u64, kind));
        position = resume;
    }
    walk
}

/// Reads a whole file.
fn read_file(storage: &dyn Storage, path: &Path, name: &str) -> Result<Vec<u8>, WalError> {
    let file = storage
        .open(path, Access::ReadOnly)
        .map_err(|source| WalError::io("open", name, source))?;
    let len = file
        .len_bytes()
        .map_err(|source| WalError::io("stat", name, source))?;
    // Look at the magic before trusting the length: a large foreign file is refused as
    // foreign, not read into memory.
    let mut magic = [0u8; MAGIC.len()];
    let magic_len = usize::try_from(len).map_or(MAGIC.len(), |len| len.min(MAGIC.len()));
    file.read_exact_at(0, &mut magic[..magic_len])
        .map_err(|source| WalError::io("read", name, source))?;
    if len > SEGMENT_READ_BYTES_MAX && magic != MAGIC {
        return Err(WalError::NotASegment {
            file: name.to_owned(),
            reason: "wrong magic",
        });
    }
    if len > SEGMENT_READ_BYTES_MAX {
        return Err(WalError::Corrupt {
            file: name.to_owned(),
            offset: SEGMENT_READ_BYTES_MAX,
            what: "segment longer than any writer produces",
        });
    }
    // Fits: SEGMENT_READ_BYTES_MAX is below usize::MAX on every supported (64-bit) target.
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(0, &mut buf)
        .map_err(|source| WalError::io("read", name, source))?;
    Ok(buf)
}

/// The log's files in a directory listing.
#[derive(Debug)]
struct Listing {
    /// Segments by first LSN, in LSN order.
    segments: Vec<(Lsn, String)>,
    /// Half-created segments.
    temps: Vec<String>,
}

/// Lists the segment and temp files in `dir`; refuses the directory when a `.wal` name is not
/// ours.
fn list_segments(storage: &dyn Storage, dir: &Path) -> Result<Listing, WalError> {
    let names = storage
        .list(dir)
        .map_err(|source| WalError::io("list", &dir.display().to_string(), source))?;
    let mut segments = Vec::new();
    let mut temps = Vec::new();
    for name in names {
        match classify_name(&name) {
            FileName::Segment(first_lsn) => segments.push((first_lsn, name)),
            FileName::SegmentTemp => temps.push(name),
            FileName::MalformedSegment => {
                return Err(WalError::NotASegment {
                    file: name,
                    reason: "name ends in .wal but is not <20-digit LSN>.wal",
                });
            }
            FileName::Unrelated => {}
        }
    }
    segments.sort();
    temps.sort();
    Ok(Listing { segments, temps })
}

/// Decides, without changing anything, what each segment holds and which repairs the mode asks for.
pub(crate) fn scan_directory(
    storage: &dyn Storage,
    dir: &Path,
    mode: RecoveryMode,
    keyring: Option<&Keyring>,
) -> Result<Scan, WalError> {
    let Listing { segments, temps } = list_segments(storage, dir)?;
    let mut repairs: Vec<Repair> = temps
        .into_iter()
        .map(|name| Repair::RemoveTemp { name })
        .collect();

    // Foreign files first, so a refused directory is refused before anything is decided.
    let mut contents = Vec::with_capacity(segments.len());
    for (name_lsn, name) in segments {
        let bytes = read_file(storage, &dir.join(&name), &name)?;
        let header = match SegmentHeader::decode(&bytes) {
            Err(HeaderError::BadMagic) => {
                return Err(WalError::NotASegment {
                    file: name,
                    reason: "wrong magic",
                });
            }
            Err(HeaderError::UnsupportedVersion(version)) => {
                return Err(WalError::UnsupportedVersion {
                    file: name,
                    version,
                });
            }
            Ok(header) if header.first_lsn == name_lsn => Some(header),
            Ok(_)
            | Err(HeaderError::TooShort | HeaderError::ChecksumMismatch | HeaderError::BadField) => {
                None
            }
        };
        contents.push((name, name_lsn, header, bytes));
    }

    let mut report = RecoveryReport::default();
    let mut plan = Vec::new();
    let mut last_lsn = Lsn::ZERO;
    // Highest LSN that may exist anywhere in the directory, kept or dropped: new records must
    // start above it, or a reader holding a snapshot past the drop point would skip them.
    let mut highest_seen_lsn = Lsn::ZERO;
    let mut highest_segment_id = SegmentId::new(0);
    let mut stopped = false;
    let newest_index = contents.len().checked_sub(1);
    for (index, (name, name_lsn, header, bytes)) in contents.into_iter().enumerate() {
        let len = bytes.len() as u64;
        let floor = name_lsn.prev();
        highest_seen_lsn = highest_seen_lsn.max(floor);
        if let Some(header) = &header {
            highest_segment_id = highest_segment_id.max(header.segment_id);
        }
        // Records and last LSN are filled in below once the walk has kept some.
        let info_index = report.segments.len();
        report.segments.push(SegmentInfo {
            file: name.clone(),
            first_lsn: name_lsn,
            segment_id: header.as_ref().map(|header| header.segment_id),
            last_lsn: None,
            records_count: 0,
            size_bytes: len,
            sealed: Some(index) != newest_index,
            key_id: header.as_ref().and_then(|header| match header.cipher {
                HeaderCipher::None => None,
                HeaderCipher::Sealed { key_id, .. } => Some(KeyId::new(key_id)),
            }),
            damaged_ranges_count: 0,
        });
        let mut drop_segment = |kind: DamageKind,
                                report: &mut RecoveryReport,
                                repairs: &mut Vec<Repair>| {
            highest_seen_lsn = highest_seen_lsn.max(highest_intact_lsn(&bytes, HEADER_LEN, floor));
            report.damaged.push(DamagedRange {
                file: name.clone(),
                offset: 0,
                len_bytes: len,
                kind,
            });
            repairs.push(Repair::QuarantineSegment { name: name.clone() });
        };
        if stopped {
            // PointInTime already stopped: everything later leaves the log.
            drop_segment(DamageKind::LsnOutOfOrder, &mut report, &mut repairs);
            continue;
        }
        let Some(header) = header else {
            if mode == RecoveryMode::Absolute {
                return Err(WalError::Corrupt {
                    file: name,
                    offset: 0,
                    what: "damaged segment header",
                });
            }
            drop_segment(DamageKind::BadHeader, &mut report, &mut repairs);
            stopped = mode == RecoveryMode::PointInTime;
            continue;
        };
        let seal =
            PayloadSeal::for_existing_segment(keyring, &header.cipher, header.segment_id, &name)?;
        // The oldest kept segment may start anywhere (compaction); each later one must say it
        // continues exactly where the log stood.
        let continuous = plan.is_empty() || header.previous_lsn == last_lsn;
        if !continuous && mode != RecoveryMode::SkipDamaged {
            if mode == RecoveryMode::Absolute {
                return Err(WalError::Corrupt {
                    file: name,
                    offset: 0,
                    what: "segment does not continue the log (a segment is missing)",
                });
            }
            drop_segment(DamageKind::LsnOutOfOrder, &mut report, &mut repairs);
            stopped = true;
            continue;
        }
        let mut damaged = Vec::new();
        let walk = walk_frames(
            &bytes,
            &header,
            &seal,
            mode,
            last_lsn,
            &mut damaged,
            &mut |_, _| ControlFlow::Continue(()),
        );
        report.damaged.extend(
            damaged
                .into_iter()
                .map(|(offset, len_bytes, kind)| DamagedRange {
                    file: name.clone(),
                    offset,
                    len_bytes,
                    kind,
                }),
        );
        let is_newest = Some(index) == newest_index;
        let end = match walk.tail {
            Tail::Clean => len,
            Tail::Torn { offset } if is_newest => {
                report.truncated_bytes += len - offset;
                repairs.push(Repair::Truncate {
                    name: name.clone(),
                    offset,
                });
                offset
            }
            Tail::Torn { offset } | Tail::Damaged { offset, .. } => {
                let kind = match walk.tail {
                    Tail::Damaged { kind, .. } => kind,
                    Tail::Clean | Tail::Torn { .. } => DamageKind::BadFrame,
                };
                match mode {
                    RecoveryMode::Absolute => {
                        return Err(WalError::Corrupt {
                            file: name,
                            offset,
                            what: "damaged record",
                        });
                    }
                    RecoveryMode::PointInTime => {
                        stopped = true;
                        repairs.push(Repair::QuarantineTail {
                            name: name.clone(),
                            offset,
                        });
                    }
                    // Sealed segment, damage to its end: leave it, skip it on every open.
                    RecoveryMode::SkipDamaged => {}
                }
                let cut = usize::try_from(offset).unwrap_or(usize::MAX);
                highest_seen_lsn =
                    highest_seen_lsn.max(highest_intact_lsn(&bytes, cut, walk.last_lsn));
                report.damaged.push(DamagedRange {
                    file: name.clone(),
                    offset,
                    len_bytes: len - offset,
                    kind,
                });
                offset
            }
        };
        report.records_count += walk.records_count;
        let info = &mut report.segments[info_index];
        info.records_count = walk.records_count;
        info.last_lsn = (walk.records_count > 0).then_some(walk.last_lsn);
        last_lsn = walk.last_lsn;
        highest_seen_lsn = highest_seen_lsn.max(last_lsn);
        plan.push(PlannedSegment {
            name,
            header,
            seal,
            end,
            records_count: walk.records_count,
        });
    }
    // A newest segment without records is dropped so the new segment (which starts at the same
    // LSN) can take its name: removed when only its header remains, else quarantined.
    if let Some(newest) = plan.pop_if(|newest| newest.records_count == 0) {
        if newest.end == HEADER_LEN as u64 {
            repairs.push(Repair::RemoveEmpty { name: newest.name });
        } else {
            repairs.push(Repair::QuarantineSegment { name: newest.name });
        }
    }
    // Damage is recorded segment by segment in log order, so one pass pairs ranges with
    // segments (a filter per segment would be quadratic on a badly damaged log).
    let mut ranges = report.damaged.iter().peekable();
    for info in &mut report.segments {
        while ranges.next_if(|range| range.file == info.file).is_some() {
            info.damaged_ranges_count += 1;
        }
    }
    assert!(
        ranges.peek().is_none(),
        "damage recorded out of segment order"
    );
    report.last_lsn = last_lsn;
    Ok(Scan {
        report,
        plan,
        repairs,
        next_lsn: highest_seen_lsn.next(),
        next_segment_id: SegmentId::new(highest_segment_id.get().saturating_add(1)),
    })
}

/// The highest LSN of any intact frame in `buf[from..]` above `floor`, or `floor`; an upper
/// bound on the LSNs of records recovery drops.
fn highest_intact_lsn(buf: &[u8], from: usize, floor: Lsn) -> Lsn {
    let mut highest = floor;
    let mut position = from;
    // Each step moves forward by at least one byte.
    while position < buf.len() {
        if let FrameRead::Record { lsn, frame_len, .. } = read_frame(&buf[position..]) {
            highest = highest.max(lsn);
            position += frame_len;
            continue;
        }
        match resync(buf, position + 1, highest) {
            Some(next) => position = next,
            None => break,
        }
    }
    highest
}

/// Replays records with an LSN above `after` from the planned segments.
pub(crate) fn replay_plan(
    storage: &dyn Storage,
    dir: &Path,
    plan: &[PlannedSegment],
    mode: RecoveryMode,
    after: Lsn,
    on_record: &mut dyn FnMut(Lsn, &[u8]) -> ControlFlow<()>,
) -> Result<ReplaySummary, WalError> {
    let mut summary = ReplaySummary {
        records_count: 0,
        last_lsn: after,
    };
    let mut last_lsn = Lsn::ZERO;
    for (index, segment) in plan.iter().enumerate() {
        // Skip segments entirely at or below `after`: the next one starts no later than after + 1.
        if plan
            .get(index + 1)
            .is_some_and(|next| next.header.first_lsn <= after.next())
        {
            last_lsn = plan[index + 1].header.first_lsn.prev();
            continue;
        }
        let mut bytes = read_file(storage, &dir.join(&segment.name), &segment.name)?;
        let end = usize::try_from(segment.end).unwrap_or(usize::MAX);
        if bytes.len() < end {
            return Err(WalError::Corrupt {
                file: segment.name.clone(),
                offset: bytes.len() as u64,
                what: "segment shrank since it was scanned",
            });
        }
        bytes.truncate(end);
        let mut stop = false;
        let mut damaged = Vec::new();
        let walk = walk_frames(
            &bytes,
            &segment.header,
            &segment.seal,
            mode,
            last_lsn,
            &mut damaged,
            &mut |lsn, payload| {
                if lsn <= after {
                    return ControlFlow::Continue(());
                }
                summary.records_count += 1;
                summary.last_lsn = lsn;
                let flow = on_record(lsn, payload);
                stop = flow.is_break();
                flow
            },
        );
        if stop {
            return Ok(summary);
        }
        if let Tail::Torn { offset } | Tail::Damaged { offset, .. } = walk.tail {
            return Err(WalError::Corrupt {
                file: segment.name.clone(),
                offset,
                what: "segment changed since it was scanned",
            });
        }
        last_lsn = walk.last_lsn;
    }
    Ok(summary)
}

/// What a replay delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Records passed to the callback.
    pub records_count: u64,
    /// LSN of the last record passed (the `after` argument when none was).
    pub last_lsn: Lsn,
}

/// Read-only access to a log directory: recovery as a dry run, then replay.
///
/// Unlike [`Wal::open`](crate::Wal::open) it changes nothing: a torn tail is reported in
/// `truncated_bytes` but left on disk, damage is reported but not quarantined. Open it while no
/// writer is active, or accept that records appended after `open` are not seen.
#[derive(Debug)]
pub struct WalReader {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    mode: RecoveryMode,
    plan: Vec<PlannedSegment>,
}

impl WalReader {
    /// Scans `dir` under `options.recovery_mode` and returns a reader with the report.
    ///
    /// Errors: `NotASegment`/`UnsupportedVersion` for foreign files, `WrongKey`, `Corrupt`
    /// under `RecoveryMode::Absolute`, `Io`.
    pub fn open(dir: &Path, options: &WalOptions) -> Result<(WalReader, RecoveryReport), WalError> {
        options.validate()?;
        let scan = scan_directory(
            options.storage.as_ref(),
            dir,
            options.recovery_mode,
            options.keyring.as_deref(),
        )?;
        let reader = WalReader::from_plan(
            Arc::clone(&options.storage),
            dir,
            options.recovery_mode,
            scan.plan,
        );
        Ok((reader, scan.report))
    }

    pub(crate) fn from_plan(
        storage: Arc<dyn Storage>,
        dir: &Path,
        mode: RecoveryMode,
        plan: Vec<PlannedSegment>,
    ) -> WalReader {
        WalReader {
            storage,
            dir: dir.to_path_buf(),
            mode,
            plan,
        }
    }

    /// Calls `on_record(lsn, payload)` for every recovered record with an LSN above `after`, in
    /// LSN order, until it returns `ControlFlow::Break`. Payloads are verified (and decrypted)
    /// again as they are read.
    pub fn replay(
        &self,
        after: Lsn,
        mut on_record: impl FnMut(Lsn, &[u8]) -> ControlFlow<()>,
    ) -> Result<ReplaySummary, WalError> {
        replay_plan(
            self.storage.as_ref(),
            &self.dir,
            &self.plan,
            self.mode,
            after,
            &mut on_record,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{FormatVersion, HeaderCipher, begin_frame, finish_frame};

    fn header() -> SegmentHeader {
        SegmentHeader {
            version: FormatVersion::V1,
            segment_id: SegmentId::new(1),
            first_lsn: Lsn::new(10),
            previous_lsn: Lsn::new(9),
            created_at_ms: 0,
            node_id: 0,
            cipher: HeaderCipher::None,
        }
    }

    /// A segment image with frames for LSNs 10.. carrying `payloads`; returns frame offsets.
    fn image(payloads: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = header().encode().to_vec();
        let mut offsets = Vec::new();
        for (index, payload) in payloads.iter().enumerate() {
            offsets.push(bytes.len());
            let start = begin_frame(&mut bytes);
            bytes.extend_from_slice(payload);
            finish_frame(&mut bytes, start, Lsn::new(10 + index as u64));
        }
        (bytes, offsets)
    }

    fn walk(bytes: &[u8], mode: RecoveryMode) -> (Walk, Vec<(u64, u64, DamageKind)>) {
        let mut damaged = Vec::new();
        let walk = walk_frames(
            bytes,
            &header(),
            &PayloadSeal::Plain,
            mode,
            Lsn::new(9),
            &mut damaged,
            &mut |_, _| ControlFlow::Continue(()),
        );
        (walk, damaged)
    }

    #[test]
    fn garbage_after_the_last_frame_is_a_torn_tail_in_every_mode() {
        let (mut bytes, _) = image(&[b"a", b"bb"]);
        let end = bytes.len() as u64;
        bytes.extend_from_slice(&[0xEE; 7]);
        for mode in [
            RecoveryMode::PointInTime,
            RecoveryMode::Absolute,
            RecoveryMode::SkipDamaged,
        ] {
            let (walk, damaged) = walk(&bytes, mode);
            assert_eq!((walk.records_count, walk.last_lsn), (2, Lsn::new(11)));
            assert_eq!(walk.tail, Tail::Torn { offset: end });
            assert!(damaged.is_empty());
        }
    }

    #[test]
    fn a_bad_frame_followed_by_a_good_one_is_damage_and_skip_mode_resyncs() {
        let (mut bytes, offsets) = image(&[b"one", b"two", b"three"]);
        bytes[offsets[1] + 21] ^= 0xFF;
        let (walk_strict, _) = walk(&bytes, RecoveryMode::PointInTime);
        assert_eq!(walk_strict.records_count, 1);
        assert_eq!(
            walk_strict.tail,
            Tail::Damaged {
                offset: offsets[1] as u64,
                kind: DamageKind::BadFrame
            }
        );
        let (walk_skip, damaged) = walk(&bytes, RecoveryMode::SkipDamaged);
        assert_eq!(
            (walk_skip.records_count, walk_skip.last_lsn),
            (2, Lsn::new(12))
        );
        assert_eq!(walk_skip.tail, Tail::Clean);
        assert_eq!(
            damaged,
            vec![(
                offsets[1] as u64,
                (offsets[2] - offsets[1]) as u64,
                DamageKind::BadFrame
            )]
        );
    }

    #[test]
    fn an_intact_frame_with_the_wrong_lsn_is_damage_not_a_tail() {
        let (mut bytes, offsets) = image(&[b"one"]);
        let start = begin_frame(&mut bytes);
        bytes.extend_from_slice(b"replayed");
        finish_frame(&mut bytes, start, Lsn::new(10));
        let (walk, _) = walk(&bytes, RecoveryMode::Absolute);
        assert_eq!(walk.records_count, 1);
        let second = offsets[0] + 20 + 3;
        assert_eq!(
            walk.tail,
            Tail::Damaged {
                offset: second as u64,
                kind: DamageKind::LsnOutOfOrder
            }
        );
    }

    #[test]
    fn highest_intact_lsn_looks_past_damage() {
        let (mut bytes, offsets) = image(&[b"one", b"two", b"three"]);
        bytes[offsets[0] + 20] ^= 1;
        assert_eq!(
            highest_intact_lsn(&bytes, HEADER_LEN, Lsn::new(9)),
            Lsn::new(12)
        );
        assert_eq!(
            highest_intact_lsn(&bytes[..offsets[1]], HEADER_LEN, Lsn::new(9)),
            Lsn::new(9)
        );
    }

    proptest::proptest! {
        #[test]
        fn walking_arbitrary_bytes_never_panics_and_reports_within_bounds(
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            keep_frames in 0usize..3,
        ) {
            let (mut bytes, offsets) = image(&[b"one", b"two", b"three"]);
            let cut = offsets.get(keep_frames).copied().unwrap_or(bytes.len());
            bytes.truncate(cut);
            bytes.extend_from_slice(&tail);
            for mode in [RecoveryMode::PointInTime, RecoveryMode::Absolute, RecoveryMode::SkipDamaged] {
                let (walk, damaged) = walk(&bytes, mode);
                proptest::prop_assert!(walk.records_count as usize >= keep_frames);
                for (offset, len, _) in damaged {
                    proptest::prop_assert!(offset + len <= bytes.len() as u64);
                }
            }
        }
    }
}

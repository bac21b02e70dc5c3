//! Log sequence numbers and segment ids.

use std::fmt;

/// Log sequence number: the position of a record in the log.
///
/// LSNs start at 1 and strictly increase across segments; 0 is never assigned to a record, so
/// `Lsn::ZERO` means "before the first record" (e.g. "replay everything after `Lsn::ZERO`").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(u64);

impl Lsn {
    /// The position before the first record; never carried by a record.
    pub const ZERO: Lsn = Lsn(0);

    /// Wraps a raw sequence number.
    pub const fn new(raw: u64) -> Lsn {
        Lsn(raw)
    }

    /// The raw sequence number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The following LSN, saturating at `u64::MAX` (the writer refuses to go past it).
    pub(crate) const fn next(self) -> Lsn {
        Lsn(self.0.saturating_add(1))
    }

    /// The preceding LSN, saturating at zero.
    pub(crate) const fn prev(self) -> Lsn {
        Lsn(self.0.saturating_sub(1))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Identity of one segment file, written into its header and bound into every record's
/// associated data when the log is encrypted.
///
/// Ids grow by one for each segment a directory ever holds; a new segment takes the highest id
/// present plus one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(u64);

impl SegmentId {
    /// Wraps a raw segment id.
    pub const fn new(raw: u64) -> SegmentId {
        SegmentId(raw)
    }

    /// The raw segment id.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An inclusive range of LSNs handed out by one `append_batch` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LsnRange {
    /// LSN of the first record of the batch.
    pub first: Lsn,
    /// LSN of the last record of the batch.
    pub last: Lsn,
}

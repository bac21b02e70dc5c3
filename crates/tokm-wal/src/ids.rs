//! Segment ids and LSN ranges (the [`Lsn`] itself lives in `tokm-storage`).

use std::fmt;

use tokm_storage::Lsn;

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

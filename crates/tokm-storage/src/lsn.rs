//! Log sequence numbers.

use std::fmt;

/// Log sequence number: the position of a record in the write-ahead log.
///
/// LSNs start at 1 and strictly increase across segments; 0 is never assigned to a record, so
/// [`Lsn::ZERO`] means "before the first record" (e.g. "replay everything after `Lsn::ZERO`").
/// A snapshot covers the log up to an LSN; the engine reports where its log stands as LSNs.
///
/// Only a typed wrapper: file formats store the raw `u64` ([`Lsn::get`]), so using it changes
/// no byte on disk.
///
/// ```
/// use tokm_storage::Lsn;
///
/// let first = Lsn::ZERO.next();
/// assert_eq!(first, Lsn::new(1));
/// assert!(first > Lsn::ZERO);
/// assert_eq!(first.to_string(), "1");
/// assert_eq!(u64::from(first.next()), 2);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Lsn(u64);

impl Lsn {
    /// The position before the first record; never carried by a record.
    pub const ZERO: Lsn = Lsn(0);

    /// The last LSN there is; the log refuses to go past it.
    pub const MAX: Lsn = Lsn(u64::MAX);

    /// Wraps a raw sequence number.
    #[must_use]
    pub const fn new(raw: u64) -> Lsn {
        Lsn(raw)
    }

    /// The raw sequence number, as file formats store it.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The following LSN, saturating at [`Lsn::MAX`] (the writer refuses to go past it).
    #[must_use]
    pub const fn next(self) -> Lsn {
        Lsn(self.0.saturating_add(1))
    }

    /// The preceding LSN, saturating at [`Lsn::ZERO`].
    #[must_use]
    pub const fn prev(self) -> Lsn {
        Lsn(self.0.saturating_sub(1))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for Lsn {
    fn from(raw: u64) -> Lsn {
        Lsn(raw)
    }
}

impl From<Lsn> for u64 {
    fn from(lsn: Lsn) -> u64 {
        lsn.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_and_prev_saturate() {
        assert_eq!(Lsn::MAX.next(), Lsn::MAX);
        assert_eq!(Lsn::ZERO.prev(), Lsn::ZERO);
        assert_eq!(Lsn::new(41).next().prev(), Lsn::new(41));
    }

    #[test]
    fn displays_and_orders_as_the_raw_number() {
        assert_eq!(Lsn::new(7).to_string(), "7");
        assert!(Lsn::new(9) < Lsn::new(10));
        assert_eq!(Lsn::from(5).get(), 5);
    }
}

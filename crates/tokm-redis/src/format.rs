//! The bytes the store's scripts compare with a stored record: a record is
//! [`SessionRecord`](tokm_domain::SessionRecord)'s bytes (format version 1), whose integers are
//! u64 little-endian, and the scripts in `scripts.rs` compare a caller's expected version and
//! touch time with those bytes as they are. The only byte-order conversion of this crate.

/// `value` as a record stores it (u64 little-endian): a script argument compared with the
/// record's version (bytes 0..8) or one of its timestamps.
pub(crate) fn record_u64(value: u64) -> [u8; 8] {
    value.to_le_bytes()
}

#[cfg(test)]
mod tests {
    use tokm_domain::testkit::SessionFactory;
    use tokm_domain::{SessionRecord, Timestamp};

    use super::record_u64;

    #[test]
    fn a_version_argument_equals_the_records_own_version_bytes() {
        let mut sessions = SessionFactory::new(1, Timestamp::from_millis(1_000));
        let body = sessions.next_for(&SessionFactory::user(1));
        let record = SessionRecord::new(&body, 0x0102_0304_0506_0708).unwrap();
        assert_eq!(record.as_bytes()[..8], record_u64(0x0102_0304_0506_0708));
    }
}

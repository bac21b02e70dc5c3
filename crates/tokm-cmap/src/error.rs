//! Errors of `tokm-cmap`, one enum per kind of operation.
//!
//! Neither enum carries a key or a value: keys may be token hashes and values may be sessions, and
//! errors end up in logs. They say only what went wrong and with which numbers.

use std::collections::TryReserveError;

/// Why a map could not be built from [`MapOptions`](crate::MapOptions).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmapError {
    /// `shard_count` was `Some(0)`.
    #[error("shard count must be at least 1")]
    ShardCountZero,
    /// `shard_count` was not a power of two, so `hash & mask` could not pick a shard.
    #[error("shard count {shard_count} is not a power of two")]
    ShardCountNotPowerOfTwo {
        /// The rejected shard count.
        shard_count: usize,
    },
    /// `shard_count` exceeded [`SHARD_COUNT_MAX`](crate::SHARD_COUNT_MAX).
    #[error("shard count {shard_count} exceeds the maximum of {shard_count_max}")]
    ShardCountTooLarge {
        /// The rejected shard count.
        shard_count: usize,
        /// The largest shard count accepted.
        shard_count_max: usize,
    },
    /// Reserving room for `capacity` entries failed (size overflow or allocator refusal).
    #[error("cannot reserve room for {capacity} entries")]
    CapacityUnavailable {
        /// The requested capacity of the whole map.
        capacity: usize,
        /// What the allocator reported.
        #[source]
        source: TryReserveError,
    },
}

impl CmapError {
    /// Stable code of this error, `TM-CMAP-<NNNN>`; never renumbered or reused.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            CmapError::ShardCountZero => "TM-CMAP-4001",
            CmapError::ShardCountNotPowerOfTwo { .. } => "TM-CMAP-4002",
            CmapError::ShardCountTooLarge { .. } => "TM-CMAP-4003",
            CmapError::CapacityUnavailable { .. } => "TM-CMAP-5071",
        }
    }
}

/// Why a versioned operation ([`ShardedMap::compare_and_swap`](crate::ShardedMap::compare_and_swap)
/// and friends) did not change the map. The map is unchanged whenever one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CasError {
    /// The key is not in the map.
    #[error("key not found")]
    NotFound,
    /// The stored version differs from the one the caller expected: someone else changed the
    /// value since the caller read it.
    #[error("version mismatch: expected {expected}, found {actual}")]
    VersionMismatch {
        /// The version the caller passed.
        expected: u64,
        /// The version stored in the map.
        actual: u64,
    },
    /// [`insert_new`](crate::ShardedMap::insert_new) found the key already present.
    #[error("key already exists at version {version}")]
    AlreadyExists {
        /// The version of the value already stored.
        version: u64,
    },
    /// The stored version is `u64::MAX`, so the next one cannot be represented. Versions never
    /// wrap: a wrapped version could match a stale reader's expectation.
    #[error("version {version} cannot be incremented")]
    VersionOverflow {
        /// The stored version.
        version: u64,
    },
}

impl CasError {
    /// Stable code of this error, `TM-CMAP-<NNNN>`; never renumbered or reused.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            CasError::NotFound => "TM-CMAP-4041",
            CasError::VersionMismatch { .. } => "TM-CMAP-4091",
            CasError::AlreadyExists { .. } => "TM-CMAP-4092",
            CasError::VersionOverflow { .. } => "TM-CMAP-4093",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn capacity_error() -> CmapError {
        let mut probe: Vec<u64> = Vec::new();
        let Err(source) = probe.try_reserve(usize::MAX) else {
            panic!("reserving usize::MAX elements of u64 must overflow");
        };
        CmapError::CapacityUnavailable {
            capacity: usize::MAX,
            source,
        }
    }

    fn every_code() -> Vec<&'static str> {
        let cmap_errors = [
            CmapError::ShardCountZero,
            CmapError::ShardCountNotPowerOfTwo { shard_count: 3 },
            CmapError::ShardCountTooLarge {
                shard_count: 1 << 20,
                shard_count_max: 1 << 16,
            },
            capacity_error(),
        ];
        let cas_errors = [
            CasError::NotFound,
            CasError::VersionMismatch {
                expected: 1,
                actual: 2,
            },
            CasError::AlreadyExists { version: 1 },
            CasError::VersionOverflow { version: u64::MAX },
        ];
        cmap_errors
            .iter()
            .map(CmapError::code)
            .chain(cas_errors.iter().map(CasError::code))
            .collect()
    }

    #[test]
    fn codes_are_unique() {
        let codes = every_code();
        let unique: HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), codes.len(), "duplicate code in {codes:?}");
    }

    #[test]
    fn codes_are_well_formed() {
        for code in every_code() {
            let digits = code
                .strip_prefix("TM-CMAP-")
                .unwrap_or_else(|| panic!("bad prefix: {code}"));
            assert_eq!(digits.len(), 4, "{code}");
            assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{code}");
            assert!(
                matches!(digits.as_bytes()[0], b'4' | b'5'),
                "{code} is not a 4xx/5xx class"
            );
        }
    }

    #[test]
    fn messages_name_numbers_only() {
        let message = CasError::VersionMismatch {
            expected: 7,
            actual: 9,
        }
        .to_string();
        assert_eq!(message, "version mismatch: expected 7, found 9");
    }
}

//! [`MemoryStoreError`]: why a store could not be built.
//!
//! Operations on a built store return the domain's [`tokm_domain::SessionError`], the error
//! every repository shares; this enum covers only what is specific to this crate.

use tokm_domain::SessionId;

/// Building a [`MemoryStore`](crate::MemoryStore) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryStoreError {
    /// [`StoreOptions`](crate::StoreOptions) break a rule; `reason` names the field and limit.
    #[error("invalid store options: {reason}")]
    InvalidOptions {
        /// Which rule was broken.
        reason: String,
    },
    /// A table could not reserve room for the requested capacity (the size overflows or the
    /// allocator refused).
    #[error("reserving room for {capacity} sessions in the {structure} failed")]
    CapacityUnavailable {
        /// The capacity asked for.
        capacity: usize,
        /// Which table: "primary map", "token index", ...
        structure: &'static str,
    },
    /// [`MemoryStore::bulk_load`](crate::MemoryStore::bulk_load) was given two records with one
    /// session id: the snapshot they came from is damaged or was not written by tokm.
    #[error("two records for session {id} in a bulk load")]
    DuplicateSessionId {
        /// The id both records carry.
        id: SessionId,
    },
    /// [`MemoryStore::bulk_load`](crate::MemoryStore::bulk_load) was given two records holding
    /// one token hash (which is never shown): the snapshot is damaged or forged.
    #[error("sessions {first} and {second} hold the same token hash in a bulk load")]
    DuplicateTokenHash {
        /// One of the two sessions (the lower id).
        first: SessionId,
        /// The other.
        second: SessionId,
    },
}

impl MemoryStoreError {
    /// Every code, in declaration order.
    pub const CODES: [&'static str; 4] = [
        "TM-MEMS-4001",
        "TM-MEMS-5071",
        "TM-MEMS-5201",
        "TM-MEMS-5202",
    ];

    /// The stable code of this error, `TM-MEMS-NNNN`; never renumbered or reused.
    pub fn code(&self) -> &'static str {
        match self {
            MemoryStoreError::InvalidOptions { .. } => "TM-MEMS-4001",
            MemoryStoreError::CapacityUnavailable { .. } => "TM-MEMS-5071",
            MemoryStoreError::DuplicateSessionId { .. } => "TM-MEMS-5201",
            MemoryStoreError::DuplicateTokenHash { .. } => "TM-MEMS-5202",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn id(random: u128) -> SessionId {
        SessionId::from_parts(tokm_domain::Timestamp::from_millis(1), random).unwrap()
    }

    fn one_of_each() -> Vec<MemoryStoreError> {
        vec![
            MemoryStoreError::InvalidOptions {
                reason: "quota".into(),
            },
            MemoryStoreError::CapacityUnavailable {
                capacity: 1,
                structure: "primary map",
            },
            MemoryStoreError::DuplicateSessionId { id: id(1) },
            MemoryStoreError::DuplicateTokenHash {
                first: id(1),
                second: id(2),
            },
        ]
    }

    #[test]
    fn codes_are_unique_well_formed_and_listed() {
        let codes: Vec<&str> = one_of_each().iter().map(MemoryStoreError::code).collect();
        assert_eq!(codes, MemoryStoreError::CODES);
        let unique: HashSet<&str> = codes.iter().copied().collect();
        assert_eq!(unique.len(), codes.len(), "codes are unique");
        for code in codes {
            let digits = code.strip_prefix("TM-MEMS-").expect("area prefix");
            assert!(
                digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()),
                "{code} is TM-MEMS-NNNN"
            );
        }
    }
}

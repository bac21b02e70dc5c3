//! [`MemoryStoreError`]: why a store could not be built.
//!
//! Operations on a built store return the domain's [`tokm_domain::SessionError`], the error
//! every repository shares; this enum covers only what is specific to this crate.

use tokm_cmap::CmapError;

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
    /// The primary map or token index could not reserve the requested capacity.
    #[error("reserving room for {capacity} sessions failed ({})", source.code())]
    CapacityUnavailable {
        /// The capacity asked for.
        capacity: usize,
        /// The map's own error.
        #[source]
        source: CmapError,
    },
}

impl MemoryStoreError {
    /// Every code, in declaration order.
    pub const CODES: [&'static str; 2] = ["TM-MEMS-4001", "TM-MEMS-5071"];

    /// The stable code of this error, `TM-MEMS-NNNN`; never renumbered or reused.
    pub fn code(&self) -> &'static str {
        match self {
            MemoryStoreError::InvalidOptions { .. } => "TM-MEMS-4001",
            MemoryStoreError::CapacityUnavailable { .. } => "TM-MEMS-5071",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn one_of_each() -> Vec<MemoryStoreError> {
        vec![
            MemoryStoreError::InvalidOptions {
                reason: "quota".into(),
            },
            MemoryStoreError::CapacityUnavailable {
                capacity: 1,
                source: CmapError::ShardCountZero,
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

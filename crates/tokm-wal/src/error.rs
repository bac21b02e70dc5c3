//! The crate's error type.

use std::io;

use crate::findings::LogLoss;
use tokm_storage::{AtomicWriteError, Lsn};

/// Every failure `tokm-wal` reports. Each variant has a stable code (see [`WalError::code`]).
///
/// Locations name the segment file (its name, not its contents) and a byte offset; payloads and
/// keys never appear.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// A caller argument was rejected: an empty batch, or options that contradict each other.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What was wrong.
        reason: &'static str,
    },
    /// A record's stored size exceeds the configured limit; nothing was appended.
    #[error("record of {size_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    RecordTooLarge {
        /// Stored size of the rejected record (after sealing, when encrypted).
        size_bytes: usize,
        /// The limit in force.
        limit_bytes: usize,
    },
    /// A `.wal` file in the directory is not a tokm segment (wrong magic or name); it was left
    /// untouched and the directory is refused.
    #[error("{file} is not a tokm WAL segment ({reason}); refusing the directory")]
    NotASegment {
        /// File name inside the WAL directory.
        file: String,
        /// What gave it away.
        reason: &'static str,
    },
    /// A segment was written by a newer format version; it was left untouched.
    #[error("{file} has WAL format version {version}, which this build cannot read")]
    UnsupportedVersion {
        /// File name inside the WAL directory.
        file: String,
        /// The version byte found.
        version: u8,
    },
    /// Damage found under `RecoveryMode::Absolute` (or in a place no policy can repair).
    #[error("damaged WAL data in {file} at offset {offset}: {what}")]
    Corrupt {
        /// File name inside the WAL directory.
        file: String,
        /// Byte offset of the first damaged byte.
        offset: u64,
        /// What kind of damage.
        what: &'static str,
    },
    /// Opening would drop acknowledged records (a loss above the base under
    /// `RecoveryMode::RefuseLoss` or `Absolute`). Nothing was changed; dropping them is an
    /// explicit choice of `RecoveryMode::PointInTime` or `SkipDamaged`.
    #[error(
        "recovery refused, nothing was changed: {loss}; to drop them, open with \
         RecoveryMode::PointInTime or SkipDamaged (tokm recover --policy point-in-time|skip)"
    )]
    WouldDropRecords {
        /// Where the first loss is and what each mode would drop.
        loss: Box<LogLoss>,
    },
    /// The segment is encrypted and no usable key was given, or the key does not match.
    #[error("segment {file} is encrypted with key id {key_id}, which is missing or wrong")]
    WrongKey {
        /// File name inside the WAL directory.
        file: String,
        /// The key id written in the segment header.
        key_id: u32,
    },
    /// Sealing or opening a record failed inside the crypto layer.
    #[error("encryption failure for {file} ({crypto_code})")]
    Crypto {
        /// File name inside the WAL directory.
        file: String,
        /// The crypto crate's own error code.
        crypto_code: &'static str,
    },
    /// An operating-system I/O call failed.
    #[error("i/o error during {operation} on {file}")]
    Io {
        /// The storage call that failed (`write`, `sync`, `create`, ...).
        operation: &'static str,
        /// File (or directory) name.
        file: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An earlier write or sync failed, so the writer failed closed and refuses appends; records
    /// after `durable_lsn` were never reported durable. Reopen the directory to recover.
    #[error(
        "the writer failed closed after an i/o error ({cause}); durable up to LSN {durable_lsn}"
    )]
    WriterFailed {
        /// Kind of the error that closed the writer.
        cause: io::ErrorKind,
        /// Every record up to here is durable.
        durable_lsn: Lsn,
    },
    /// The LSN space is exhausted (2^64 - 1 records).
    #[error("LSN space exhausted")]
    LsnExhausted,
}

impl WalError {
    /// The stable code of this error: `TM-WAL-<NNNN>`, never renumbered or reused.
    pub fn code(&self) -> &'static str {
        match self {
            WalError::InvalidArgument { .. } => "TM-WAL-4001",
            WalError::RecordTooLarge { .. } => "TM-WAL-4131",
            WalError::NotASegment { .. } => "TM-WAL-4151",
            WalError::UnsupportedVersion { .. } => "TM-WAL-4152",
            WalError::WrongKey { .. } => "TM-WAL-4031",
            WalError::Corrupt { .. } => "TM-WAL-5201",
            WalError::WouldDropRecords { .. } => "TM-WAL-5203",
            WalError::Crypto { .. } => "TM-WAL-5202",
            WalError::Io { .. } => "TM-WAL-5001",
            WalError::WriterFailed { .. } => "TM-WAL-5002",
            WalError::LsnExhausted => "TM-WAL-5071",
        }
    }

    /// A failed step of an atomic file creation, as the [`WalError::Io`] it always was.
    pub(crate) fn atomic(error: AtomicWriteError) -> WalError {
        WalError::Io {
            operation: error.step.as_str(),
            file: error.file,
            source: error.source,
        }
    }

    pub(crate) fn io(operation: &'static str, file: &str, source: io::Error) -> WalError {
        WalError::Io {
            operation,
            file: file.to_owned(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn every_variant() -> Vec<WalError> {
        vec![
            WalError::InvalidArgument { reason: "r" },
            WalError::RecordTooLarge {
                size_bytes: 2,
                limit_bytes: 1,
            },
            WalError::NotASegment {
                file: "f".into(),
                reason: "r",
            },
            WalError::UnsupportedVersion {
                file: "f".into(),
                version: 9,
            },
            WalError::WrongKey {
                file: "f".into(),
                key_id: 1,
            },
            WalError::Corrupt {
                file: "f".into(),
                offset: 0,
                what: "w",
            },
            WalError::Crypto {
                file: "f".into(),
                crypto_code: "TM-CRYPTO-0000",
            },
            WalError::WouldDropRecords {
                loss: Box::new(LogLoss {
                    file: "f".into(),
                    offset: 1,
                    cause: crate::findings::LossCause::SegmentEndsEarly,
                    first_lsn: Lsn::new(2),
                    unreadable_count: Some(3),
                    intact_after_count: 4,
                }),
            },
            WalError::io("write", "f", io::Error::other("x")),
            WalError::WriterFailed {
                cause: io::ErrorKind::Other,
                durable_lsn: Lsn::ZERO,
            },
            WalError::LsnExhausted,
        ]
    }

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for error in every_variant() {
            let code = error.code();
            let digits = code.strip_prefix("TM-WAL-").expect("prefix");
            assert_eq!(digits.len(), 4, "{code}");
            assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{code}");
            assert!(seen.insert(code), "duplicate {code}");
            assert!(!error.to_string().is_empty());
        }
    }
}

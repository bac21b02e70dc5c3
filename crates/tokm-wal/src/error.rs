//! The crate's error type.

use std::io;

use crate::findings::LogLoss;
use tokm_crypto_adaptive::CryptoError;
use tokm_storage::{AtomicWriteError, Lsn};

/// Why [`Wal::open`](crate::Wal::open), [`WalReader::open`](crate::WalReader::open) or a
/// recovery step ([`LogSurvey`](crate::LogSurvey), [`LogPlan::decide`](crate::LogPlan::decide),
/// [`LogWalk`](crate::LogWalk)) failed. Nothing was changed on disk unless the failure came
/// from [`LogWalk::open`](crate::LogWalk::open)'s repairs (then `Io`).
///
/// Locations name the segment file (its name, not its contents) and a byte offset; payloads and
/// keys never appear.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Options that contradict each other or a limit out of range.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What was wrong.
        reason: &'static str,
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
    /// Damage found under `RecoveryMode::Absolute` (or in a place no policy can repair), or a
    /// segment that shrank while it was read.
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
    /// Sealing the header of the new segment failed inside the crypto layer.
    #[error("encryption failure for {file} ({code})", code = .source.code())]
    Crypto {
        /// File name inside the WAL directory.
        file: String,
        /// The crypto layer's error; `source.code()` is its stable code.
        #[source]
        source: CryptoError,
    },
    /// An operating-system I/O call failed.
    #[error("i/o error during {operation} on {file}")]
    Io {
        /// The storage call that failed (`read`, `truncate`, `create`, ...).
        operation: &'static str,
        /// File (or directory) name.
        file: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Why [`Wal::append`](crate::Wal::append) or another call of the write path
/// ([`append_batch`](crate::Wal::append_batch), [`flush`](crate::Wal::flush),
/// [`sync`](crate::Wal::sync), [`wait_until_durable`](crate::Wal::wait_until_durable),
/// [`close`](crate::Wal::close), [`adopt_active_key`](crate::Wal::adopt_active_key)) failed.
///
/// An I/O error on the write path never reaches a caller as itself: the writer fails closed
/// and every waiter gets [`AppendError::WriterFailed`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// An empty batch; nothing was appended.
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
    /// Sealing a record or a new segment's header failed inside the crypto layer.
    #[error("encryption failure for {file} ({code})", code = .source.code())]
    Crypto {
        /// File name inside the WAL directory.
        file: String,
        /// The crypto layer's error; `source.code()` is its stable code.
        #[source]
        source: CryptoError,
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

/// Why [`Wal::replay`](crate::Wal::replay) or [`WalReader::replay`](crate::WalReader::replay)
/// failed: the segments changed or could not be read since they were surveyed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// A segment shrank or changed since it was surveyed.
    #[error("damaged WAL data in {file} at offset {offset}: {what}")]
    Corrupt {
        /// File name inside the WAL directory.
        file: String,
        /// Byte offset of the first damaged byte.
        offset: u64,
        /// What kind of damage.
        what: &'static str,
    },
    /// An operating-system I/O call failed.
    #[error("i/o error during {operation} on {file}")]
    Io {
        /// The storage call that failed (`open`, `read`, ...).
        operation: &'static str,
        /// File name.
        file: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Why [`Wal::compact`](crate::Wal::compact) failed. Segments already dropped from the
/// writer's list stay on disk, still a valid part of the log, until a later open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompactError {
    /// Removing a segment or syncing the directory failed.
    #[error("i/o error during {operation} on {file}")]
    Io {
        /// The storage call that failed (`remove`, `sync directory`).
        operation: &'static str,
        /// File (or directory) name.
        file: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Every failure `tokm-wal` reports, by operation: each operation returns its own error type,
/// and each converts into this one (`?` in a function returning `WalError`). Each variant
/// has a stable code (see [`WalError::code`]); the message and source are the inner error's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// Opening or recovering the log failed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// An append or another call of the write path failed.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// Replaying the recovered records failed.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// Compaction failed.
    #[error(transparent)]
    Compact(#[from] CompactError),
}

impl OpenError {
    /// The stable code of this error: `TM-WAL-<NNNN>`, never renumbered or reused.
    pub fn code(&self) -> &'static str {
        match self {
            OpenError::InvalidArgument { .. } => "TM-WAL-4001",
            OpenError::NotASegment { .. } => "TM-WAL-4151",
            OpenError::UnsupportedVersion { .. } => "TM-WAL-4152",
            OpenError::WrongKey { .. } => "TM-WAL-4031",
            OpenError::Corrupt { .. } => "TM-WAL-5201",
            OpenError::WouldDropRecords { .. } => "TM-WAL-5203",
            OpenError::Crypto { .. } => "TM-WAL-5202",
            OpenError::Io { .. } => "TM-WAL-5001",
        }
    }

    /// The code of the lower-layer error behind this one: `TM-CRYP-NNNN` for
    /// [`OpenError::Crypto`], else `None`.
    pub fn cause_code(&self) -> Option<&'static str> {
        match self {
            OpenError::Crypto { source, .. } => Some(source.code()),
            _ => None,
        }
    }

    pub(crate) fn io(operation: &'static str, file: &str, source: io::Error) -> OpenError {
        OpenError::Io {
            operation,
            file: file.to_owned(),
            source,
        }
    }
}

impl AppendError {
    /// The stable code of this error: `TM-WAL-<NNNN>`, never renumbered or reused.
    pub fn code(&self) -> &'static str {
        match self {
            AppendError::InvalidArgument { .. } => "TM-WAL-4001",
            AppendError::RecordTooLarge { .. } => "TM-WAL-4131",
            AppendError::Crypto { .. } => "TM-WAL-5202",
            AppendError::WriterFailed { .. } => "TM-WAL-5002",
            AppendError::LsnExhausted => "TM-WAL-5071",
        }
    }

    /// The code of the lower-layer error behind this one: `TM-CRYP-NNNN` for
    /// [`AppendError::Crypto`], else `None`.
    pub fn cause_code(&self) -> Option<&'static str> {
        match self {
            AppendError::Crypto { source, .. } => Some(source.code()),
            _ => None,
        }
    }
}

impl ReplayError {
    /// The stable code of this error: `TM-WAL-<NNNN>`, never renumbered or reused.
    pub fn code(&self) -> &'static str {
        match self {
            ReplayError::Corrupt { .. } => "TM-WAL-5201",
            ReplayError::Io { .. } => "TM-WAL-5001",
        }
    }

    pub(crate) fn io(operation: &'static str, file: &str, source: io::Error) -> ReplayError {
        ReplayError::Io {
            operation,
            file: file.to_owned(),
            source,
        }
    }
}

impl CompactError {
    /// The stable code of this error: `TM-WAL-<NNNN>`, never renumbered or reused.
    pub fn code(&self) -> &'static str {
        match self {
            CompactError::Io { .. } => "TM-WAL-5001",
        }
    }

    pub(crate) fn io(operation: &'static str, file: &str, source: io::Error) -> CompactError {
        CompactError::Io {
            operation,
            file: file.to_owned(),
            source,
        }
    }
}

impl WalError {
    /// The stable code of this error: `TM-WAL-<NNNN>`, never renumbered or reused; the inner
    /// error's.
    pub fn code(&self) -> &'static str {
        match self {
            WalError::Open(error) => error.code(),
            WalError::Append(error) => error.code(),
            WalError::Replay(error) => error.code(),
            WalError::Compact(error) => error.code(),
        }
    }

    /// The code of the lower-layer error behind this one (`TM-CRYP-NNNN`), if any.
    pub fn cause_code(&self) -> Option<&'static str> {
        match self {
            WalError::Open(error) => error.cause_code(),
            WalError::Append(error) => error.cause_code(),
            WalError::Replay(_) | WalError::Compact(_) => None,
        }
    }
}

/// A failed storage call on a path shared by open and the write path (creating a segment):
/// open reports it as [`OpenError::Io`]; the writer fails closed with its kind.
#[derive(Debug)]
pub(crate) struct IoFailure {
    pub(crate) operation: &'static str,
    pub(crate) file: String,
    pub(crate) source: io::Error,
}

impl IoFailure {
    pub(crate) fn new(operation: &'static str, file: &str, source: io::Error) -> IoFailure {
        IoFailure {
            operation,
            file: file.to_owned(),
            source,
        }
    }

    /// A failed step of an atomic file creation.
    pub(crate) fn atomic(error: AtomicWriteError) -> IoFailure {
        IoFailure {
            operation: error.step.as_str(),
            file: error.file,
            source: error.source,
        }
    }
}

impl From<IoFailure> for OpenError {
    fn from(failure: IoFailure) -> OpenError {
        OpenError::Io {
            operation: failure.operation,
            file: failure.file,
            source: failure.source,
        }
    }
}

/// A failure of the crypto layer while sealing, on a path shared by open and the write path.
#[derive(Debug)]
pub(crate) struct SealFailure {
    pub(crate) file: String,
    pub(crate) source: CryptoError,
}

impl From<SealFailure> for OpenError {
    fn from(failure: SealFailure) -> OpenError {
        OpenError::Crypto {
            file: failure.file,
            source: failure.source,
        }
    }
}

impl From<SealFailure> for AppendError {
    fn from(failure: SealFailure) -> AppendError {
        AppendError::Crypto {
            file: failure.file,
            source: failure.source,
        }
    }
}

/// Reading segments is shared by recovery and replay; at open its failures are open's.
impl From<ReplayError> for OpenError {
    fn from(error: ReplayError) -> OpenError {
        match error {
            ReplayError::Corrupt { file, offset, what } => {
                OpenError::Corrupt { file, offset, what }
            }
            ReplayError::Io {
                operation,
                file,
                source,
            } => OpenError::Io {
                operation,
                file,
                source,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn every_variant() -> Vec<WalError> {
        let loss = LogLoss {
            file: "f".into(),
            offset: 1,
            cause: crate::findings::LossCause::SegmentEndsEarly,
            first_lsn: Lsn::new(2),
            unreadable_count: Some(3),
            intact_after_count: 4,
        };
        vec![
            OpenError::InvalidArgument { reason: "r" }.into(),
            OpenError::NotASegment {
                file: "f".into(),
                reason: "r",
            }
            .into(),
            OpenError::UnsupportedVersion {
                file: "f".into(),
                version: 9,
            }
            .into(),
            OpenError::WrongKey {
                file: "f".into(),
                key_id: 1,
            }
            .into(),
            OpenError::Corrupt {
                file: "f".into(),
                offset: 0,
                what: "w",
            }
            .into(),
            OpenError::Crypto {
                file: "f".into(),
                source: CryptoError::AuthenticationFailed,
            }
            .into(),
            OpenError::WouldDropRecords {
                loss: Box::new(loss),
            }
            .into(),
            OpenError::io("write", "f", io::Error::other("x")).into(),
            AppendError::RecordTooLarge {
                size_bytes: 2,
                limit_bytes: 1,
            }
            .into(),
            AppendError::WriterFailed {
                cause: io::ErrorKind::Other,
                durable_lsn: Lsn::ZERO,
            }
            .into(),
            AppendError::LsnExhausted.into(),
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

    #[test]
    fn a_code_means_the_same_in_every_operation() {
        let io = || io::Error::other("x");
        let same = [
            (
                OpenError::InvalidArgument { reason: "r" }.code(),
                AppendError::InvalidArgument { reason: "r" }.code(),
            ),
            (
                OpenError::Crypto {
                    file: "f".into(),
                    source: CryptoError::AuthenticationFailed,
                }
                .code(),
                AppendError::Crypto {
                    file: "f".into(),
                    source: CryptoError::AuthenticationFailed,
                }
                .code(),
            ),
            (
                OpenError::io("read", "f", io()).code(),
                ReplayError::io("read", "f", io()).code(),
            ),
            (
                OpenError::io("remove", "f", io()).code(),
                CompactError::Io {
                    operation: "remove",
                    file: "f".into(),
                    source: io(),
                }
                .code(),
            ),
            (
                OpenError::Corrupt {
                    file: "f".into(),
                    offset: 0,
                    what: "w",
                }
                .code(),
                ReplayError::Corrupt {
                    file: "f".into(),
                    offset: 0,
                    what: "w",
                }
                .code(),
            ),
        ];
        for (open, other) in same {
            assert_eq!(open, other);
        }
    }

    #[test]
    fn the_umbrella_prints_the_inner_message_once_and_keeps_its_source() {
        use std::error::Error as _;
        let error = WalError::from(OpenError::io("read", "f", io::Error::other("disk")));
        assert_eq!(error.to_string(), "i/o error during read on f");
        let source = error.source().expect("the i/o error");
        assert_eq!(source.to_string(), "disk");
        assert!(source.source().is_none());
    }

    #[test]
    fn a_crypto_failure_names_its_code_once_and_keeps_the_typed_source() {
        use std::error::Error as _;
        let error = WalError::from(AppendError::Crypto {
            file: "f".into(),
            source: CryptoError::AuthenticationFailed,
        });
        assert_eq!(error.code(), "TM-WAL-5202");
        assert_eq!(error.cause_code(), Some("TM-CRYP-5201"));
        let source = error.source().expect("the crypto error").to_string();
        assert!(error.to_string().contains("TM-CRYP-5201"), "{error}");
        assert!(!error.to_string().contains(&source), "{error}");
    }
}

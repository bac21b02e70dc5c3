//! [`EngineError`]: why the engine could not open, snapshot or close.
//!
//! Repository calls return [`SessionError`](tokm_domain::SessionError) like every store; a
//! failure below the store reaches callers as `SessionError::Storage` carrying the lower layer's
//! code, and later writes as `SessionError::ReadOnly`.

use std::path::PathBuf;

use tokm_crypto_adaptive::CryptoError;
use tokm_domain::SessionError;
use tokm_memory_store::MemoryStoreError;
use tokm_proto::ProtoError;
use tokm_snapshot::{LoadError, RetainError, SnapshotError, WriteError};
use tokm_storage::Lsn;
use tokm_wal::{AppendError, CompactError, LogLoss, OpenError, ReplayError, WalError};

/// An engine-level failure: opening, recovering, snapshotting or closing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The configuration contradicts itself.
    #[error("invalid engine configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// The memory store refused the options the configuration gives it (quota, capacity), or
    /// could not reserve the room they ask for. Same code as
    /// [`InvalidConfig`](EngineError::InvalidConfig); the store's own code is the cause.
    #[error("invalid engine configuration: the memory store refuses its options")]
    InvalidStoreOptions {
        /// The memory store's error; `source.code()` is its stable `TM-MEMS-*` code.
        #[source]
        source: MemoryStoreError,
    },
    /// [`EngineConfig::log`](crate::EngineConfig::log) holds a limit the log refuses.
    #[error("invalid log policy")]
    InvalidLogPolicy {
        /// The log's error (`TM-WAL-4001`), naming the limit.
        #[source]
        source: OpenError,
    },
    /// Another process (or another engine in this one) has the data directory open.
    #[error("data directory {dir} is locked by another engine")]
    Locked {
        /// The data directory.
        dir: PathBuf,
    },
    /// Creating, locking or reading the data directory failed.
    #[error("i/o on {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The write-ahead log failed.
    #[error(transparent)]
    Wal {
        /// The log's error; `source.code()` is its stable code.
        #[from]
        source: WalError,
    },
    /// The snapshot store failed.
    #[error(transparent)]
    Snapshot {
        /// The snapshot store's error; `source.code()` is its stable code.
        #[from]
        source: SnapshotError,
    },
    /// A log record passed its checksum but does not decode as a tokm log entry.
    #[error("log record {lsn} does not decode")]
    UndecodableRecord {
        /// The record's LSN.
        lsn: Lsn,
        /// What was wrong with it.
        #[source]
        source: ProtoError,
    },
    /// Recovery refused to open: acknowledged records above the base (the snapshot it would
    /// start from) cannot all be read, so opening would drop them — for a session store,
    /// perhaps a revoked session working again. Nothing on disk was changed. Dropping them is
    /// an explicit choice: `RecoveryMode::PointInTime` or `SkipDamaged` in
    /// [`EngineConfig::recovery_mode`](crate::EngineConfig::recovery_mode), or
    /// `tokm recover --policy point-in-time|skip` (try `--dry-run` first).
    #[error(
        "recovery refused, nothing on disk was changed: starting from {}{}, {loss}; to drop \
         them, open with RecoveryMode::PointInTime or SkipDamaged (tokm recover --policy \
         point-in-time|skip, --dry-run first)",
        base.as_deref().unwrap_or("an empty store (no usable snapshot)"),
        fallback_note(set_aside)
    )]
    WouldDropRecords {
        /// Where the first loss is and what each policy would drop.
        loss: Box<LogLoss>,
        /// The snapshot recovery would start from; `None` for an empty store.
        base: Option<String>,
        /// Newer snapshots that failed their checks (the reason for an older base).
        set_aside: Vec<String>,
    },
    /// A replayed record could not be applied (a logic error in the log's writer).
    #[error("log record {lsn} cannot be applied")]
    Replay {
        /// The record's LSN.
        lsn: Lsn,
        /// The store's refusal; `source.code()` is its stable code.
        #[source]
        source: SessionError,
    },
    /// An expiry sweep could not delete what it found (its log append failed; the engine is
    /// then read-only). Batches logged before the failure stay applied.
    #[error("the expiry sweep could not log its deletes")]
    Sweep {
        /// The write's error; `source.code()` is its stable code.
        #[source]
        source: SessionError,
    },
    /// The engine refuses writes after an earlier failure; reopen it.
    #[error("the engine is read-only after an earlier failure")]
    ReadOnly,
    /// [`Engine::rotate_key`](crate::Engine::rotate_key) on an engine opened without a
    /// keyring: its files are plain, and rotation does not turn encryption on. Reopen with a
    /// keyring for that.
    #[error("the engine was opened without a keyring; there is no key to rotate")]
    NoKeyring,
    /// [`Engine::rotate_key`](crate::Engine::rotate_key) refused the new key (an id the
    /// keyring already holds); nothing changed.
    #[error(transparent)]
    KeyRejected {
        /// The keyring's error; `source.code()` is its stable code. Names the key id only.
        source: CryptoError,
    },
}

impl EngineError {
    /// Every code this crate can return, in declaration order.
    ///
    /// `TM-ENG-5202` is retired (it was "the log does not continue the snapshot", now part of
    /// `TM-ENG-5204`) and never reused.
    pub const CODES: [&'static str; 13] = [
        "TM-ENG-4001",
        "TM-ENG-4002",
        "TM-ENG-4091",
        "TM-ENG-4092",
        "TM-ENG-4231",
        "TM-ENG-5001",
        "TM-ENG-5002",
        "TM-ENG-5003",
        "TM-ENG-5201",
        "TM-ENG-5203",
        "TM-ENG-5204",
        "TM-ENG-5004",
        "TM-ENG-5031",
    ];

    /// The stable code of this error, `TM-ENG-NNNN`.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::InvalidConfig { .. } | EngineError::InvalidStoreOptions { .. } => {
                "TM-ENG-4001"
            }
            EngineError::InvalidLogPolicy { .. } => "TM-ENG-4002",
            EngineError::Locked { .. } => "TM-ENG-4231",
            EngineError::Io { .. } => "TM-ENG-5001",
            EngineError::Wal { .. } => "TM-ENG-5002",
            EngineError::Snapshot { .. } => "TM-ENG-5003",
            EngineError::UndecodableRecord { .. } => "TM-ENG-5201",
            EngineError::WouldDropRecords { .. } => "TM-ENG-5204",
            EngineError::Replay { .. } => "TM-ENG-5203",
            EngineError::Sweep { .. } => "TM-ENG-5004",
            EngineError::ReadOnly => "TM-ENG-5031",
            EngineError::NoKeyring => "TM-ENG-4091",
            EngineError::KeyRejected { .. } => "TM-ENG-4092",
        }
    }

    /// The code of the lower layer's error this wraps, if any (`TM-WAL-*`, `TM-SNAP-*`,
    /// `TM-PROTO-*`, `TM-CRYP-*`).
    pub fn cause_code(&self) -> Option<&'static str> {
        match self {
            EngineError::Wal { source } => Some(source.code()),
            EngineError::InvalidLogPolicy { source } => Some(source.code()),
            EngineError::Snapshot { source } => Some(source.code()),
            EngineError::UndecodableRecord { source, .. } => Some(source.code()),
            EngineError::InvalidStoreOptions { source } => Some(source.code()),
            EngineError::Replay { source, .. } => Some(source.code()),
            EngineError::Sweep { source } => Some(source.code()),
            EngineError::KeyRejected { source } => Some(source.code()),
            _ => None,
        }
    }
}

/// Each operation's log error is the log's error: `?` on any `Wal` call in the engine.
macro_rules! from_wal_operation {
    ($($error:ty),*) => {$(
        impl From<$error> for EngineError {
            fn from(error: $error) -> EngineError {
                EngineError::Wal {
                    source: WalError::from(error),
                }
            }
        }
    )*};
}

from_wal_operation!(OpenError, AppendError, ReplayError, CompactError);

/// Each snapshot operation's error is the snapshot store's error.
macro_rules! from_snapshot_operation {
    ($($error:ty),*) => {$(
        impl From<$error> for EngineError {
            fn from(error: $error) -> EngineError {
                EngineError::Snapshot {
                    source: SnapshotError::from(error),
                }
            }
        }
    )*};
}

from_snapshot_operation!(WriteError, LoadError, RetainError);

/// ", after setting aside a, b (they failed their checks)" when snapshots were set aside.
fn fallback_note(set_aside: &[String]) -> String {
    if set_aside.is_empty() {
        return String::new();
    }
    format!(
        " after setting aside {} (failed their checks)",
        set_aside.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for code in EngineError::CODES {
            assert!(seen.insert(code), "{code} listed twice");
            let digits = code.strip_prefix("TM-ENG-").expect("prefix");
            assert!(
                digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()),
                "{code}"
            );
        }
        let samples = [
            EngineError::InvalidConfig {
                reason: String::new(),
            },
            EngineError::Locked {
                dir: PathBuf::new(),
            },
            EngineError::WouldDropRecords {
                loss: Box::new(LogLoss {
                    file: "f".to_owned(),
                    offset: 0,
                    cause: tokm_wal::LossCause::LogEndsBeforeBase,
                    first_lsn: Lsn::new(2),
                    unreadable_count: None,
                    intact_after_count: 0,
                }),
                base: None,
                set_aside: vec!["s".to_owned()],
            },
            EngineError::Replay {
                lsn: Lsn::new(1),
                source: SessionError::ReadOnly,
            },
            EngineError::InvalidStoreOptions {
                source: MemoryStoreError::InvalidOptions {
                    reason: "r".to_owned(),
                },
            },
            EngineError::ReadOnly,
            EngineError::NoKeyring,
            EngineError::KeyRejected {
                source: CryptoError::DuplicateKeyId {
                    key_id: tokm_crypto_adaptive::KeyId::new(1),
                },
            },
        ];
        for error in &samples {
            assert!(EngineError::CODES.contains(&error.code()), "{error}");
        }
    }
}

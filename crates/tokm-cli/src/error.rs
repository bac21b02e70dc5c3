//! The one error type of the tool, with stable codes and the exit code each one maps to.

use std::path::PathBuf;

use tokm_crypto_adaptive::CryptoError;
use tokm_engine::EngineError;
use tokm_snapshot::{LoadError, RetainError, SnapshotError, WriteError};
use tokm_wal::{AppendError, CompactError, OpenError, ReplayError, WalError};

/// Exit code: everything checked out.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit code: damaged data was found (checksum, tag, structure, undecodable record).
pub(crate) const EXIT_DAMAGE: u8 = 1;
/// Exit code: the command line or an environment variable is wrong.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code: I/O failed or the operation was refused (locked, wrong key, foreign file).
pub(crate) const EXIT_REFUSED: u8 = 3;

/// Why a command failed. Messages name files and offsets, never key bytes or tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CliError {
    /// A value on the command line or in the environment is invalid.
    #[error("invalid usage: {reason}")]
    Usage { reason: String },
    /// The data directory does not exist or is not a directory.
    #[error("data directory {} not found or not a directory", path.display())]
    DirNotFound { path: PathBuf },
    /// The directory holds no `wal/`: the engine would make it a data directory, so the
    /// commands that open the engine refuse it.
    #[error("{} is not a tokm data directory (no wal/ inside)", path.display())]
    NotADataDir { path: PathBuf },
    /// `wal/` or `snapshots/` inside the data directory is not a directory.
    #[error("{} is not a directory; refusing the data directory", path.display())]
    PartNotADirectory { path: PathBuf },
    /// A file-system call made by the tool itself failed.
    #[error("i/o: {operation} {}", path.display())]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `verify` found damage; the details were printed with the report.
    #[error("damage found in {damaged_count} place(s)")]
    DamageFound { damaged_count: usize },
    /// The key could not be loaded.
    #[error(transparent)]
    Crypto { source: CryptoError },
    /// The log refused or failed.
    #[error(transparent)]
    Wal { source: WalError },
    /// The snapshot store refused or failed.
    #[error(transparent)]
    Snapshot { source: SnapshotError },
    /// The engine refused or failed (e.g. the directory is locked by a running service).
    #[error(transparent)]
    Engine { source: EngineError },
}

impl CliError {
    /// The stable code of this error.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            CliError::Usage { .. } => "TM-CLI-4001",
            CliError::DirNotFound { .. } => "TM-CLI-4041",
            CliError::NotADataDir { .. } => "TM-CLI-4042",
            CliError::PartNotADirectory { .. } => "TM-CLI-4043",
            CliError::Io { .. } => "TM-CLI-5001",
            CliError::DamageFound { .. } => "TM-CLI-5201",
            CliError::Crypto { .. } => "TM-CLI-5002",
            CliError::Wal { .. } => "TM-CLI-5003",
            CliError::Snapshot { .. } => "TM-CLI-5004",
            CliError::Engine { .. } => "TM-CLI-5005",
        }
    }

    /// The code of the library error this one wraps (and of what that one wraps), if any.
    pub(crate) fn cause_code(&self) -> Option<&'static str> {
        match self {
            CliError::Crypto { source } => Some(source.code()),
            CliError::Wal { source } => Some(source.code()),
            CliError::Snapshot { source } => Some(source.cause_code().unwrap_or(source.code())),
            CliError::Engine { source } => Some(source.cause_code().unwrap_or(source.code())),
            CliError::Usage { .. }
            | CliError::DirNotFound { .. }
            | CliError::NotADataDir { .. }
            | CliError::PartNotADirectory { .. }
            | CliError::Io { .. }
            | CliError::DamageFound { .. } => None,
        }
    }

    /// The process exit code: usage 2, damage (any `52x` code, ours or a wrapped one) 1,
    /// everything else (I/O, locked, wrong key, foreign file) 3.
    pub(crate) fn exit_code(&self) -> u8 {
        if matches!(self, CliError::Usage { .. }) {
            return EXIT_USAGE;
        }
        let is_damage = |code: &str| code.split('-').nth(2).is_some_and(|n| n.starts_with("52"));
        if is_damage(self.code()) || self.cause_code().is_some_and(is_damage) {
            return EXIT_DAMAGE;
        }
        EXIT_REFUSED
    }

    pub(crate) fn usage(reason: impl Into<String>) -> CliError {
        CliError::Usage {
            reason: reason.into(),
        }
    }

    pub(crate) fn io(
        operation: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> CliError {
        let path = path.to_path_buf();
        move |source| CliError::Io {
            operation,
            path,
            source,
        }
    }
}

impl From<CryptoError> for CliError {
    fn from(source: CryptoError) -> CliError {
        CliError::Crypto { source }
    }
}

impl From<WalError> for CliError {
    fn from(source: WalError) -> CliError {
        CliError::Wal { source }
    }
}

/// Each log operation's error, as the log's error.
macro_rules! from_wal_operation {
    ($($error:ty),*) => {$(
        impl From<$error> for CliError {
            fn from(error: $error) -> CliError {
                CliError::Wal {
                    source: WalError::from(error),
                }
            }
        }
    )*};
}

from_wal_operation!(OpenError, AppendError, ReplayError, CompactError);

/// Each snapshot operation's error, as the snapshot store's error.
macro_rules! from_snapshot_operation {
    ($($error:ty),*) => {$(
        impl From<$error> for CliError {
            fn from(error: $error) -> CliError {
                CliError::Snapshot {
                    source: SnapshotError::from(error),
                }
            }
        }
    )*};
}

from_snapshot_operation!(WriteError, LoadError, RetainError);

impl From<SnapshotError> for CliError {
    fn from(source: SnapshotError) -> CliError {
        CliError::Snapshot { source }
    }
}

impl From<EngineError> for CliError {
    fn from(source: EngineError) -> CliError {
        CliError::Engine { source }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn samples() -> Vec<CliError> {
        vec![
            CliError::usage("x"),
            CliError::DirNotFound {
                path: PathBuf::from("/nope"),
            },
            CliError::NotADataDir {
                path: PathBuf::from("/tmp"),
            },
            CliError::PartNotADirectory {
                path: PathBuf::from("/tmp/wal"),
            },
            CliError::Io {
                operation: "read",
                path: PathBuf::from("/nope"),
                source: std::io::Error::other("boom"),
            },
            CliError::DamageFound { damaged_count: 1 },
            CliError::Crypto {
                source: CryptoError::AuthenticationFailed,
            },
            CliError::Wal {
                source: AppendError::LsnExhausted.into(),
            },
            CliError::Snapshot {
                source: WriteError::InvalidArgument {
                    reason: "x".to_owned(),
                }
                .into(),
            },
            CliError::Engine {
                source: EngineError::ReadOnly,
            },
        ]
    }

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for error in samples() {
            let code = error.code();
            let parts: Vec<&str> = code.split('-').collect();
            assert_eq!(parts.len(), 3, "{code}");
            assert_eq!(parts[0], "TM");
            assert_eq!(parts[1], "CLI");
            assert_eq!(parts[2].len(), 4, "{code}");
            assert!(parts[2].bytes().all(|b| b.is_ascii_digit()), "{code}");
            assert!(seen.insert(code), "duplicate {code}");
        }
    }

    #[test]
    fn exit_codes_follow_the_documented_classes() {
        assert_eq!(CliError::usage("x").exit_code(), EXIT_USAGE);
        assert_eq!(
            CliError::DamageFound { damaged_count: 2 }.exit_code(),
            EXIT_DAMAGE
        );
        // A wrapped authentication failure is damage (TM-CRYP-5201).
        assert_eq!(
            CliError::from(CryptoError::AuthenticationFailed).exit_code(),
            EXIT_DAMAGE
        );
        assert_eq!(
            CliError::from(EngineError::ReadOnly).exit_code(),
            EXIT_REFUSED
        );
        assert_eq!(
            CliError::DirNotFound {
                path: PathBuf::from("/nope")
            }
            .exit_code(),
            EXIT_REFUSED
        );
    }
}

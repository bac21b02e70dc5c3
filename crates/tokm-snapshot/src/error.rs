//! The crate's errors, one type per operation (write, load, retain) and the umbrella.

use std::io;

use tokm_crypto_adaptive::CryptoError;
use tokm_proto::ProtoError;
use tokm_storage::AtomicWriteError;

use crate::meta::Fallback;

/// Why [`SnapshotStore::write`](crate::SnapshotStore::write),
/// [`write_records`](crate::SnapshotStore::write_records) or
/// [`SnapshotStore::open`](crate::SnapshotStore::open) (which prepares the directory for
/// writing) failed. A failed write leaves earlier snapshots as they were.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// A caller argument or option was rejected (a node id over 128 bytes, or a record source
    /// whose chunks disagree with the count it declared); nothing was written.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What was wrong.
        reason: String,
    },
    /// A snapshot with this name (same LSN, same millisecond) already exists; nothing was
    /// written.
    #[error("snapshot {file} already exists")]
    AlreadyExists {
        /// File name inside the snapshot directory.
        file: String,
    },
    /// An operating-system I/O call failed.
    #[error("i/o error during {operation} on {file}")]
    Io {
        /// The storage call that failed (`write`, `sync`, `rename`, ...).
        operation: &'static str,
        /// File (or directory) name.
        file: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The random source failed while drawing the snapshot's id or salt, or sealing a block
    /// failed inside the crypto layer; nothing was kept.
    #[error("cannot seal {file} at offset {offset} ({code})", code = .source.code())]
    Crypto {
        /// File name inside the snapshot directory.
        file: String,
        /// Byte offset of the block (0 for the id and salt).
        offset: u64,
        /// The crypto error; its code is [`WriteError::cause_code`].
        #[source]
        source: CryptoError,
    },
}

/// Why listing, verifying or loading a snapshot
/// ([`SnapshotReader`](crate::SnapshotReader), [`SnapshotStore::load_newest`](crate::SnapshotStore::load_newest),
/// [`SnapshotStore::set_aside`](crate::SnapshotStore::set_aside)) failed, or why one snapshot
/// was refused ([`Fallback::error`](crate::Fallback::error)). Errors from a lower layer also
/// carry that layer's code ([`LoadError::cause_code`]).
///
/// Locations name the snapshot file (its name, not its contents) and a byte offset; session
/// data, tokens and keys never appear.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A file named like a snapshot does not start (or end) with the snapshot magic; it was
    /// left untouched.
    #[error("{file} is not a tokm snapshot ({reason}); left untouched")]
    NotASnapshot {
        /// File name inside the snapshot directory.
        file: String,
        /// What gave it away.
        reason: &'static str,
    },
    /// A snapshot written in a format version this build cannot read; it was left untouched.
    #[error("{file} has snapshot format version {version}, which this build cannot read")]
    UnsupportedVersion {
        /// File name inside the snapshot directory.
        file: String,
        /// The version byte found.
        version: u8,
    },

    /// The name given is not a snapshot file name (callers name snapshots, never other files
    /// or paths); nothing was read or renamed.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What was wrong.
        reason: String,
    },
    /// The snapshot is encrypted but the store has no keyring.
    #[error("{file} is encrypted with key id {key_id}, but no keyring was configured")]
    KeyringMissing {
        /// File name inside the snapshot directory.
        file: String,
        /// The key id written in the header.
        key_id: u32,
    },
    /// The snapshot is encrypted with a key the keyring lacks, or holds with other bytes: the
    /// header names a key id the keyring does not have, or block 0 does not authenticate
    /// although its checksum matched (with the wrong key every block fails; damage would have
    /// broken the checksum first). A key problem, not damage: the file is left alone.
    #[error(
        "{file} is encrypted with key id {key_id}, which the keyring lacks or holds with other bytes"
    )]
    WrongKey {
        /// File name inside the snapshot directory.
        file: String,
        /// The key id written in the header: the key the file needs.
        key_id: u32,
    },
    /// An operating-system I/O call failed.
    #[error("i/o error during {operation} on {file}")]
    Io {
        /// The storage call that failed (`write`, `sync`, `rename`, ...).
        operation: &'static str,
        /// File (or directory) name.
        file: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Stored bytes do not match their checksum.
    #[error("checksum mismatch in {file} at offset {offset}: {what}")]
    ChecksumMismatch {
        /// File name inside the snapshot directory.
        file: String,
        /// Byte offset of the checksummed range.
        offset: u64,
        /// Which part of the file.
        what: &'static str,
    },
    /// The file's structure is inconsistent (a length or offset out of range, counts that do
    /// not add up, a header that disagrees with the file name).
    #[error("malformed snapshot {file} at offset {offset}: {what}")]
    Malformed {
        /// File name inside the snapshot directory.
        file: String,
        /// Byte offset of the inconsistent part.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// The file ends before its structure does (no trailer, or lengths past the end).
    #[error("truncated snapshot {file}: {len_bytes} bytes, {what}")]
    Truncated {
        /// File name inside the snapshot directory.
        file: String,
        /// The file's length.
        len_bytes: u64,
        /// What is missing.
        what: &'static str,
    },

    /// The crypto layer refused a block after block 0 authenticated under the same key: the
    /// block was forged or moved (its checksum matched, so it is not a random flip). Damage.
    #[error("cannot open {file} at offset {offset} ({code})", code = .source.code())]
    Crypto {
        /// File name inside the snapshot directory.
        file: String,
        /// Byte offset of the block.
        offset: u64,
        /// The crypto error; its code is [`LoadError::cause_code`].
        #[source]
        source: CryptoError,
    },

    /// A message passed its checksum but does not decode into valid values.
    #[error("undecodable data in {file} at offset {offset} ({code})", code = .source.code())]
    Decode {
        /// File name inside the snapshot directory.
        file: String,
        /// Byte offset of the message or block.
        offset: u64,
        /// The decoding error; its code is [`LoadError::cause_code`].
        #[source]
        source: ProtoError,
    },
    /// Snapshots exist but every one failed a check; each was renamed aside. The report says
    /// why for each file.
    #[error("none of the {} snapshots is valid; each was renamed to *.broken", .fallbacks.len())]
    NoValidSnapshot {
        /// One entry per snapshot tried, newest first.
        fallbacks: Vec<Fallback>,
    },
}

/// Why [`SnapshotStore::apply_retention`](crate::SnapshotStore::apply_retention) or
/// [`SnapshotStore::oldest_retained_lsn`](crate::SnapshotStore::oldest_retained_lsn) failed.
/// Files removed before the failure stay removed; at least one intact snapshot is always kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetainError {
    /// Listing the directory, reading a snapshot to check it is intact, removing one or syncing
    /// the directory failed.
    #[error("i/o error during {operation} on {file}")]
    Io {
        /// The storage call that failed (`list`, `read`, `remove`, ...).
        operation: &'static str,
        /// File (or directory) name.
        file: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Every failure `tokm-snapshot` reports, by operation: each operation returns its own error
/// type ([`WriteError`], [`LoadError`], [`RetainError`]), and each converts into this one.
/// Each has a stable code ([`SnapshotError::code`]), the same in every type; the message and
/// source are the inner error's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Opening the store or writing a snapshot failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// Listing, verifying, loading or setting aside a snapshot failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Retention failed.
    #[error(transparent)]
    Retain(#[from] RetainError),
}

impl SnapshotError {
    /// Every code this crate can return, ascending.
    pub const CODES: [&'static str; 13] = [
        "TM-SNAP-4001",
        "TM-SNAP-4002",
        "TM-SNAP-4003",
        "TM-SNAP-4031",
        "TM-SNAP-4032",
        "TM-SNAP-4091",
        "TM-SNAP-5001",
        "TM-SNAP-5201",
        "TM-SNAP-5202",
        "TM-SNAP-5203",
        "TM-SNAP-5204",
        "TM-SNAP-5205",
        "TM-SNAP-5206",
    ];

    /// The stable code of this error: `TM-SNAP-<NNNN>`, never renumbered or reused; the
    /// inner error's.
    pub fn code(&self) -> &'static str {
        match self {
            SnapshotError::Write(error) => error.code(),
            SnapshotError::Load(error) => error.code(),
            SnapshotError::Retain(error) => error.code(),
        }
    }

    /// The code of the lower-layer error behind this one (`TM-CRYP-NNNN`, `TM-PROTO-NNNN`), if
    /// any.
    pub fn cause_code(&self) -> Option<&'static str> {
        match self {
            SnapshotError::Write(error) => error.cause_code(),
            SnapshotError::Load(error) => error.cause_code(),
            SnapshotError::Retain(_) => None,
        }
    }

    /// Whether this error means a file's bytes are damaged; see [`LoadError::is_damage`].
    pub fn is_damage(&self) -> bool {
        matches!(self, SnapshotError::Load(error) if error.is_damage())
    }
}

impl WriteError {
    /// The stable code of this error: `TM-SNAP-<NNNN>`, never renumbered or reused.
    pub fn code(&self) -> &'static str {
        match self {
            WriteError::InvalidArgument { .. } => "TM-SNAP-4003",
            WriteError::AlreadyExists { .. } => "TM-SNAP-4091",
            WriteError::Io { .. } => "TM-SNAP-5001",
            WriteError::Crypto { .. } => "TM-SNAP-5204",
        }
    }

    /// The code of the lower-layer error behind this one: `TM-CRYP-NNNN` for
    /// [`WriteError::Crypto`], else `None`.
    pub fn cause_code(&self) -> Option<&'static str> {
        match self {
            WriteError::Crypto { source, .. } => Some(source.code()),
            _ => None,
        }
    }

    pub(crate) fn io(operation: &'static str, file: &str, source: io::Error) -> WriteError {
        WriteError::Io {
            operation,
            file: file.to_owned(),
            source,
        }
    }

    /// A failed step of the atomic file creation, as the [`WriteError::Io`] it always was.
    pub(crate) fn atomic(error: AtomicWriteError) -> WriteError {
        WriteError::Io {
            operation: error.step.as_str(),
            file: error.file,
            source: error.source,
        }
    }
}

impl LoadError {
    /// The stable code of this error: `TM-SNAP-<NNNN>`, never renumbered or reused.
    pub fn code(&self) -> &'static str {
        match self {
            LoadError::NotASnapshot { .. } => "TM-SNAP-4001",
            LoadError::UnsupportedVersion { .. } => "TM-SNAP-4002",
            LoadError::InvalidArgument { .. } => "TM-SNAP-4003",
            LoadError::KeyringMissing { .. } => "TM-SNAP-4031",
            LoadError::WrongKey { .. } => "TM-SNAP-4032",
            LoadError::Io { .. } => "TM-SNAP-5001",
            LoadError::ChecksumMismatch { .. } => "TM-SNAP-5201",
            LoadError::Malformed { .. } => "TM-SNAP-5202",
            LoadError::Truncated { .. } => "TM-SNAP-5203",
            LoadError::Crypto { .. } => "TM-SNAP-5204",
            LoadError::Decode { .. } => "TM-SNAP-5205",
            LoadError::NoValidSnapshot { .. } => "TM-SNAP-5206",
        }
    }

    /// The code of the lower-layer error behind this one: `TM-CRYP-NNNN` for
    /// [`LoadError::Crypto`], `TM-PROTO-NNNN` for [`LoadError::Decode`], else `None`.
    pub fn cause_code(&self) -> Option<&'static str> {
        match self {
            LoadError::Crypto { source, .. } => Some(source.code()),
            LoadError::Decode { source, .. } => Some(source.code()),
            _ => None,
        }
    }

    /// Whether this error means the file's bytes are damaged: it failed a checksum
    /// ([`ChecksumMismatch`](LoadError::ChecksumMismatch)), its structure is inconsistent
    /// ([`Malformed`](LoadError::Malformed), [`Truncated`](LoadError::Truncated)), a
    /// later block failed authentication ([`Crypto`](LoadError::Crypto)) or a message did
    /// not decode ([`Decode`](LoadError::Decode)).
    ///
    /// Only damage justifies renaming a file aside and falling back to an older snapshot.
    /// Everything else says nothing against the file and must leave it alone: a key problem
    /// ([`WrongKey`](LoadError::WrongKey), [`KeyringMissing`](LoadError::KeyringMissing))
    /// is fixed by supplying the key, a foreign file or a newer version is not ours to judge,
    /// and an I/O error may pass.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            LoadError::ChecksumMismatch { .. }
                | LoadError::Malformed { .. }
                | LoadError::Truncated { .. }
                | LoadError::Crypto { .. }
                | LoadError::Decode { .. }
        )
    }

    pub(crate) fn io(operation: &'static str, file: &str, source: io::Error) -> LoadError {
        LoadError::Io {
            operation,
            file: file.to_owned(),
            source,
        }
    }

    pub(crate) fn malformed(file: &str, offset: u64, what: &'static str) -> LoadError {
        LoadError::Malformed {
            file: file.to_owned(),
            offset,
            what,
        }
    }

    pub(crate) fn decode(file: &str, offset: u64, source: ProtoError) -> LoadError {
        LoadError::Decode {
            file: file.to_owned(),
            offset,
            source,
        }
    }
}

impl RetainError {
    /// The stable code of this error: `TM-SNAP-<NNNN>`, never renumbered or reused.
    pub fn code(&self) -> &'static str {
        match self {
            RetainError::Io { .. } => "TM-SNAP-5001",
        }
    }

    pub(crate) fn io(operation: &'static str, file: &str, source: io::Error) -> RetainError {
        RetainError::Io {
            operation,
            file: file.to_owned(),
            source,
        }
    }
}

/// A failed listing of the snapshot directory, shared by writing, loading and retention.
#[derive(Debug)]
pub(crate) struct ListFailure {
    pub(crate) dir: String,
    pub(crate) source: io::Error,
}

impl From<ListFailure> for LoadError {
    fn from(failure: ListFailure) -> LoadError {
        LoadError::io("list", &failure.dir, failure.source)
    }
}

impl From<ListFailure> for WriteError {
    fn from(failure: ListFailure) -> WriteError {
        WriteError::io("list", &failure.dir, failure.source)
    }
}

impl From<ListFailure> for RetainError {
    fn from(failure: ListFailure) -> RetainError {
        RetainError::io("list", &failure.dir, failure.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn every_variant() -> Vec<SnapshotError> {
        let load: Vec<LoadError> = vec![
            LoadError::NotASnapshot {
                file: "f".into(),
                reason: "r",
            },
            LoadError::UnsupportedVersion {
                file: "f".into(),
                version: 9,
            },
            LoadError::InvalidArgument { reason: "r".into() },
            LoadError::KeyringMissing {
                file: "f".into(),
                key_id: 1,
            },
            LoadError::WrongKey {
                file: "f".into(),
                key_id: 7,
            },
            LoadError::io("read", "f", io::Error::other("x")),
            LoadError::ChecksumMismatch {
                file: "f".into(),
                offset: 0,
                what: "w",
            },
            LoadError::Malformed {
                file: "f".into(),
                offset: 0,
                what: "w",
            },
            LoadError::Truncated {
                file: "f".into(),
                len_bytes: 0,
                what: "w",
            },
            LoadError::Crypto {
                file: "f".into(),
                offset: 0,
                source: CryptoError::AuthenticationFailed,
            },
            LoadError::Decode {
                file: "f".into(),
                offset: 0,
                source: ProtoError::MissingField {
                    message: "m",
                    field: "f",
                },
            },
            LoadError::NoValidSnapshot {
                fallbacks: Vec::new(),
            },
        ];
        let write = vec![
            WriteError::AlreadyExists { file: "f".into() },
            WriteError::Crypto {
                file: "f".into(),
                offset: 0,
                source: CryptoError::AuthenticationFailed,
            },
        ];
        let mut every: Vec<SnapshotError> = load.into_iter().map(SnapshotError::from).collect();
        every.extend(write.into_iter().map(SnapshotError::from));
        every.push(RetainError::io("remove", "f", io::Error::other("x")).into());
        every
    }

    #[test]
    fn codes_are_well_formed_listed_and_each_listed_code_is_used() {
        let mut seen = HashSet::new();
        for error in &every_variant() {
            let code = error.code();
            let digits = code.strip_prefix("TM-SNAP-").expect("prefix");
            assert_eq!(digits.len(), 4, "{code}");
            assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{code}");
            assert!(SnapshotError::CODES.contains(&code), "{code} not in CODES");
            assert!(!error.to_string().is_empty());
            seen.insert(code);
        }
        assert_eq!(seen.len(), SnapshotError::CODES.len());
    }

    #[test]
    fn the_umbrella_prints_the_inner_message_once_and_keeps_its_source() {
        use std::error::Error as _;
        let error = SnapshotError::from(LoadError::io("read", "f", io::Error::other("disk")));
        assert_eq!(error.to_string(), "i/o error during read on f");
        assert_eq!(
            error.source().map(ToString::to_string).as_deref(),
            Some("disk")
        );
        let crypto = LoadError::Crypto {
            file: "f".into(),
            offset: 8,
            source: CryptoError::AuthenticationFailed,
        };
        let source = crypto.source().expect("the crypto error").to_string();
        assert!(!crypto.to_string().contains(&source), "{crypto}");
    }

    #[test]
    fn only_bytes_that_fail_a_check_are_damage() {
        let damage: Vec<&str> = every_variant()
            .iter()
            .filter(|error| error.is_damage())
            .map(SnapshotError::code)
            .collect();
        assert_eq!(
            damage,
            [
                "TM-SNAP-5201",
                "TM-SNAP-5202",
                "TM-SNAP-5203",
                "TM-SNAP-5204",
                "TM-SNAP-5205"
            ]
        );
    }

    #[test]
    fn a_wrong_key_names_the_file_and_the_key_it_needs() {
        let error = LoadError::WrongKey {
            file: "00000000000000000042-00000001700000000000.snap".into(),
            key_id: 7,
        };
        assert_eq!(
            error.to_string(),
            "00000000000000000042-00000001700000000000.snap is encrypted with key id 7, \
             which the keyring lacks or holds with other bytes"
        );
        assert_eq!(error.cause_code(), None);
    }

    #[test]
    fn lower_layer_codes_are_carried() {
        let variants = every_variant();
        let crypto = variants
            .iter()
            .find(|e| matches!(e, SnapshotError::Load(LoadError::Crypto { .. })));
        assert_eq!(crypto.and_then(|e| e.cause_code()), Some("TM-CRYP-5201"));
        let decode = variants.iter().find(|e| e.code() == "TM-SNAP-5205");
        assert_eq!(decode.and_then(|e| e.cause_code()), Some("TM-PROTO-5202"));
        assert!(crypto.is_some_and(|e| e.to_string().contains("TM-CRYP-5201")));
    }
}

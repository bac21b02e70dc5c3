//! The crate's error type.

use std::io;

use tokm_crypto_adaptive::CryptoError;
use tokm_proto::ProtoError;
use tokm_storage::AtomicWriteError;

use crate::meta::Fallback;

/// Every failure `tokm-snapshot` reports. Each variant has a stable code (see
/// [`SnapshotError::code`]); errors from a lower layer also carry that layer's code
/// ([`SnapshotError::cause_code`]).
///
/// Locations name the snapshot file (its name, not its contents) and a byte offset; session
/// data, tokens and keys never appear.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
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
    /// A caller argument or option was rejected; nothing was written.
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
    #[error("cannot open {file} at offset {offset} ({code}): {source}", code = .source.code())]
    Crypto {
        /// File name inside the snapshot directory.
        file: String,
        /// Byte offset of the block.
        offset: u64,
        /// The crypto error; its code is [`SnapshotError::cause_code`].
        #[source]
        source: CryptoError,
    },
    /// A message passed its checksum but does not decode into valid values.
    #[error("undecodable data in {file} at offset {offset} ({code}): {source}", code = .source.code())]
    Decode {
        /// File name inside the snapshot directory.
        file: String,
        /// Byte offset of the message or block.
        offset: u64,
        /// The decoding error; its code is [`SnapshotError::cause_code`].
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

impl SnapshotError {
    /// Every code this crate can return, in declaration order.
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

    /// The stable code of this error: `TM-SNAP-<NNNN>`, never renumbered or reused.
    pub fn code(&self) -> &'static str {
        match self {
            SnapshotError::NotASnapshot { .. } => "TM-SNAP-4001",
            SnapshotError::UnsupportedVersion { .. } => "TM-SNAP-4002",
            SnapshotError::InvalidArgument { .. } => "TM-SNAP-4003",
            SnapshotError::KeyringMissing { .. } => "TM-SNAP-4031",
            SnapshotError::WrongKey { .. } => "TM-SNAP-4032",
            SnapshotError::AlreadyExists { .. } => "TM-SNAP-4091",
            SnapshotError::Io { .. } => "TM-SNAP-5001",
            SnapshotError::ChecksumMismatch { .. } => "TM-SNAP-5201",
            SnapshotError::Malformed { .. } => "TM-SNAP-5202",
            SnapshotError::Truncated { .. } => "TM-SNAP-5203",
            SnapshotError::Crypto { .. } => "TM-SNAP-5204",
            SnapshotError::Decode { .. } => "TM-SNAP-5205",
            SnapshotError::NoValidSnapshot { .. } => "TM-SNAP-5206",
        }
    }

    /// The code of the lower-layer error behind this one: `TM-CRYP-NNNN` for
    /// [`SnapshotError::Crypto`], `TM-PROTO-NNNN` for [`SnapshotError::Decode`], else `None`.
    pub fn cause_code(&self) -> Option<&'static str> {
        match self {
            SnapshotError::Crypto { source, .. } => Some(source.code()),
            SnapshotError::Decode { source, .. } => Some(source.code()),
            _ => None,
        }
    }

    /// Whether this error means the file's bytes are damaged: it failed a checksum
    /// ([`ChecksumMismatch`](SnapshotError::ChecksumMismatch)), its structure is inconsistent
    /// ([`Malformed`](SnapshotError::Malformed), [`Truncated`](SnapshotError::Truncated)), a
    /// later block failed authentication ([`Crypto`](SnapshotError::Crypto)) or a message did
    /// not decode ([`Decode`](SnapshotError::Decode)).
    ///
    /// Only damage justifies renaming a file aside and falling back to an older snapshot.
    /// Everything else says nothing against the file and must leave it alone: a key problem
    /// ([`WrongKey`](SnapshotError::WrongKey), [`KeyringMissing`](SnapshotError::KeyringMissing))
    /// is fixed by supplying the key, a foreign file or a newer version is not ours to judge,
    /// and an I/O error may pass.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            SnapshotError::ChecksumMismatch { .. }
                | SnapshotError::Malformed { .. }
                | SnapshotError::Truncated { .. }
                | SnapshotError::Crypto { .. }
                | SnapshotError::Decode { .. }
        )
    }

    /// A failed step of an atomic file creation, as the [`SnapshotError::Io`] it always was.
    pub(crate) fn atomic(error: AtomicWriteError) -> SnapshotError {
        SnapshotError::Io {
            operation: error.step.as_str(),
            file: error.file,
            source: error.source,
        }
    }

    pub(crate) fn io(operation: &'static str, file: &str, source: io::Error) -> SnapshotError {
        SnapshotError::Io {
            operation,
            file: file.to_owned(),
            source,
        }
    }

    pub(crate) fn malformed(file: &str, offset: u64, what: &'static str) -> SnapshotError {
        SnapshotError::Malformed {
            file: file.to_owned(),
            offset,
            what,
        }
    }

    pub(crate) fn decode(file: &str, offset: u64, source: ProtoError) -> SnapshotError {
        SnapshotError::Decode {
            file: file.to_owned(),
            offset,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn every_variant() -> Vec<SnapshotError> {
        vec![
            SnapshotError::NotASnapshot {
                file: "f".into(),
                reason: "r",
            },
            SnapshotError::UnsupportedVersion {
                file: "f".into(),
                version: 9,
            },
            SnapshotError::InvalidArgument { reason: "r".into() },
            SnapshotError::KeyringMissing {
                file: "f".into(),
                key_id: 1,
            },
            SnapshotError::WrongKey {
                file: "f".into(),
                key_id: 7,
            },
            SnapshotError::AlreadyExists { file: "f".into() },
            SnapshotError::io("write", "f", io::Error::other("x")),
            SnapshotError::ChecksumMismatch {
                file: "f".into(),
                offset: 0,
                what: "w",
            },
            SnapshotError::Malformed {
                file: "f".into(),
                offset: 0,
                what: "w",
            },
            SnapshotError::Truncated {
                file: "f".into(),
                len_bytes: 0,
                what: "w",
            },
            SnapshotError::Crypto {
                file: "f".into(),
                offset: 0,
                source: CryptoError::AuthenticationFailed,
            },
            SnapshotError::Decode {
                file: "f".into(),
                offset: 0,
                source: ProtoError::MissingField {
                    message: "m",
                    field: "f",
                },
            },
            SnapshotError::NoValidSnapshot {
                fallbacks: Vec::new(),
            },
        ]
    }

    #[test]
    fn codes_are_unique_well_formed_and_listed() {
        let mut seen = HashSet::new();
        let variants = every_variant();
        assert_eq!(variants.len(), SnapshotError::CODES.len());
        for error in &variants {
            let code = error.code();
            let digits = code.strip_prefix("TM-SNAP-").expect("prefix");
            assert_eq!(digits.len(), 4, "{code}");
            assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{code}");
            assert!(seen.insert(code), "duplicate {code}");
            assert!(SnapshotError::CODES.contains(&code), "{code} not in CODES");
            assert!(!error.to_string().is_empty());
        }
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
        let error = SnapshotError::WrongKey {
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
        let crypto = variants.iter().find(|e| e.code() == "TM-SNAP-5204");
        assert_eq!(crypto.and_then(|e| e.cause_code()), Some("TM-CRYP-5201"));
        let decode = variants.iter().find(|e| e.code() == "TM-SNAP-5205");
        assert_eq!(decode.and_then(|e| e.cause_code()), Some("TM-PROTO-5202"));
        assert!(crypto.is_some_and(|e| e.to_string().contains("TM-CRYP-5201")));
    }
}

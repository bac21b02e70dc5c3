//! The one error type of this crate.

use std::path::PathBuf;

use crate::algorithm::Algorithm;
use crate::key::KeyId;

/// Everything that can go wrong while loading keys, sealing or opening.
///
/// Messages name the key id, path, length or byte value involved, never key bytes, plaintext
/// or the contents of a key file. Each variant has a stable code, see [`CryptoError::code`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The key length was not 32 bytes.
    #[error("a key must be 32 bytes, got {len}")]
    BadKeyLength {
        /// The length that was offered.
        len: usize,
    },
    /// A key file held neither 32 raw bytes nor 64 hex digits (plus an optional newline).
    #[error(
        "key file {} must hold exactly 32 raw bytes, or 64 hex digits optionally followed by a newline",
        .path.display()
    )]
    KeyFileFormat {
        /// The key file.
        path: PathBuf,
    },
    /// A keyring file has a malformed line, lists a key id twice, holds no key or is too
    /// large. Names the line (0 for the whole file), never its contents.
    #[error("keyring file {} line {line}: {reason}", .path.display())]
    KeyringFileFormat {
        /// The keyring file.
        path: PathBuf,
        /// The 1-based line number; 0 when the problem is the whole file.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A sealed blob starts with a format version this build does not know.
    #[error("unsupported sealed blob version {version}")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// An algorithm id (from a blob, a file header or a caller) names no known algorithm.
    #[error("unsupported algorithm id {id}")]
    UnsupportedAlgorithm {
        /// The id found.
        id: u8,
    },
    /// A key file can be read by group or others.
    #[error(
        "key file {} has mode {mode:04o}; it must not be accessible to group or others (chmod 600)",
        .path.display()
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// No key with this id is in the keyring.
    #[error("no key with id {key_id} in the keyring")]
    UnknownKeyId {
        /// The id asked for.
        key_id: KeyId,
    },
    /// A key with this id is already in the keyring.
    #[error("a key with id {key_id} is already in the keyring")]
    DuplicateKeyId {
        /// The id offered twice.
        key_id: KeyId,
    },
    /// The plaintext is longer than the algorithm can seal under one nonce.
    #[error("a message of {len} bytes is too long for {algorithm}")]
    MessageTooLong {
        /// Length of the plaintext.
        len: usize,
        /// The algorithm that refused it.
        algorithm: Algorithm,
    },
    /// Reading a key file failed.
    #[error("cannot read key file {}", .path.display())]
    KeyFileIo {
        /// The key file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The operating system's random source failed.
    #[error("the operating system random source failed")]
    RandomSource {
        /// The underlying error.
        #[source]
        source: getrandom::Error,
    },
    /// The tag did not verify: wrong key, wrong associated data, or damaged data.
    #[error("authentication failed: wrong key, wrong associated data, or damaged data")]
    AuthenticationFailed,
    /// A sealed blob or record is shorter than its fixed parts.
    #[error("sealed input of {len} bytes is shorter than the {len_min}-byte minimum")]
    TooShort {
        /// Length of the input.
        len: usize,
        /// Smallest well-formed length.
        len_min: usize,
    },
}

impl CryptoError {
    /// The stable code of this error, `TM-CRYP-NNNN`; codes are never renumbered or reused.
    ///
    /// The first three digits echo an HTTP class: 400 bad input, 403 forbidden, 404 missing,
    /// 409 conflict, 413 too large, 500 I/O, 520 damaged data.
    pub fn code(&self) -> &'static str {
        match self {
            CryptoError::BadKeyLength { .. } => "TM-CRYP-4001",
            CryptoError::KeyFileFormat { .. } => "TM-CRYP-4002",
            CryptoError::KeyringFileFormat { .. } => "TM-CRYP-4005",
            CryptoError::UnsupportedVersion { .. } => "TM-CRYP-4003",
            CryptoError::UnsupportedAlgorithm { .. } => "TM-CRYP-4004",
            CryptoError::KeyFilePermissions { .. } => "TM-CRYP-4031",
            CryptoError::UnknownKeyId { .. } => "TM-CRYP-4041",
            CryptoError::DuplicateKeyId { .. } => "TM-CRYP-4091",
            CryptoError::MessageTooLong { .. } => "TM-CRYP-4131",
            CryptoError::KeyFileIo { .. } => "TM-CRYP-5001",
            CryptoError::RandomSource { .. } => "TM-CRYP-5002",
            CryptoError::AuthenticationFailed => "TM-CRYP-5201",
            CryptoError::TooShort { .. } => "TM-CRYP-5202",
        }
    }
}

/// Shorthand used by every fallible function of this crate.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;

    use super::*;

    /// One value of every variant; the match below stops compiling when a variant is added
    /// without being listed here.
    fn every_variant() -> Vec<CryptoError> {
        let path = Path::new("/etc/tokm/key").to_path_buf();
        let all = vec![
            CryptoError::BadKeyLength { len: 3 },
            CryptoError::KeyFileFormat { path: path.clone() },
            CryptoError::KeyringFileFormat {
                path: path.clone(),
                line: 3,
                reason: "no key",
            },
            CryptoError::UnsupportedVersion { version: 9 },
            CryptoError::UnsupportedAlgorithm { id: 7 },
            CryptoError::KeyFilePermissions {
                path: path.clone(),
                mode: 0o644,
            },
            CryptoError::UnknownKeyId {
                key_id: KeyId::new(4),
            },
            CryptoError::DuplicateKeyId {
                key_id: KeyId::new(4),
            },
            CryptoError::MessageTooLong {
                len: 1,
                algorithm: Algorithm::Aes256Gcm,
            },
            CryptoError::KeyFileIo {
                path,
                source: std::io::Error::other("disk"),
            },
            CryptoError::RandomSource {
                source: getrandom::Error::UNSUPPORTED,
            },
            CryptoError::AuthenticationFailed,
            CryptoError::TooShort { len: 1, len_min: 2 },
        ];
        for error in &all {
            match error {
                CryptoError::BadKeyLength { .. }
                | CryptoError::KeyFileFormat { .. }
                | CryptoError::KeyringFileFormat { .. }
                | CryptoError::UnsupportedVersion { .. }
                | CryptoError::UnsupportedAlgorithm { .. }
                | CryptoError::KeyFilePermissions { .. }
                | CryptoError::UnknownKeyId { .. }
                | CryptoError::DuplicateKeyId { .. }
                | CryptoError::MessageTooLong { .. }
                | CryptoError::KeyFileIo { .. }
                | CryptoError::RandomSource { .. }
                | CryptoError::AuthenticationFailed
                | CryptoError::TooShort { .. } => {}
            }
        }
        all
    }

    #[test]
    fn codes_are_unique_and_well_formed() {
        let all = every_variant();
        let mut seen = HashSet::new();
        for error in &all {
            let code = error.code();
            let digits = code
                .strip_prefix("TM-CRYP-")
                .unwrap_or_else(|| panic!("{code} lacks the TM-CRYP- prefix"));
            assert_eq!(digits.len(), 4, "{code} must end in four digits");
            assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{code}");
            assert!(seen.insert(code), "{code} is used twice");
        }
        assert_eq!(seen.len(), all.len());
    }

    #[test]
    fn messages_name_the_path_and_mode() {
        let error = CryptoError::KeyFilePermissions {
            path: Path::new("/etc/tokm/key").to_path_buf(),
            mode: 0o644,
        };
        let message = error.to_string();
        assert!(message.contains("/etc/tokm/key"), "{message}");
        assert!(message.contains("0644"), "{message}");
    }
}

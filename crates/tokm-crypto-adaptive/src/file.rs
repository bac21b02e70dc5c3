//! Per-file salts and subkeys: the nonce-safety primitive for the WAL and snapshots.

use std::fmt;

use zeroize::Zeroizing;

use crate::algorithm::Algorithm;
use crate::cipher::AeadCipher;
use crate::error::Result;
use crate::format::record_nonce;
use crate::key::{KEY_LEN, Key, KeyId};
use crate::random::fill_random;

/// BLAKE3 `derive_key` context for per-file subkeys. Changing it changes every subkey, so it
/// is part of the on-disk format: a new derivation gets a new context, never an edited one.
const FILE_SUBKEY_CONTEXT: &str = "tokm 2026-11 file subkey v1";

/// Length of a file salt, in bytes.
const FILE_SALT_LEN: usize = 32;

/// 32 random bytes drawn once per file and stored in its header; not secret.
///
/// The file's subkey is derived from the key and this salt, so two files never share a
/// subkey even when their record counters coincide.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileSalt([u8; FILE_SALT_LEN]);

impl FileSalt {
    /// A fresh salt from the operating system's random source.
    ///
    /// # Errors
    /// [`CryptoError::RandomSource`](crate::CryptoError::RandomSource) if it fails.
    pub fn random() -> Result<FileSalt> {
        let mut bytes = [0_u8; FILE_SALT_LEN];
        fill_random(&mut bytes)?;
        Ok(FileSalt(bytes))
    }

    /// The salt read back from a file header.
    pub const fn from_bytes(bytes: [u8; FILE_SALT_LEN]) -> FileSalt {
        FileSalt(bytes)
    }

    /// The bytes to store in a file header.
    pub const fn as_bytes(&self) -> &[u8; FILE_SALT_LEN] {
        &self.0
    }
}

impl fmt::Debug for FileSalt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileSalt(")?;
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        f.write_str(")")
    }
}

/// Seals and opens the records of one file under a subkey of its own.
///
/// The subkey is `BLAKE3-derive_key("tokm 2026-11 file subkey v1", key ‖ salt)` and the nonce of
/// record `counter` is `counter (u64 LE) ‖ 0x00000000`. The caller owns the counter: it must
/// never seal two records with the same counter in one file (record index or sequence
/// number within the file both work). `Send + Sync`: threads may seal concurrently.
/// `Debug` shows the key id, algorithm and salt, never the subkey.
pub struct FileCipher {
    key_id: KeyId,
    algorithm: Algorithm,
    salt: FileSalt,
    cipher: AeadCipher,
}

impl FileCipher {
    pub(crate) fn new(key_id: KeyId, algorithm: Algorithm, key: &Key, salt: &FileSalt) -> Self {
        let subkey = Zeroizing::new(derive_file_subkey(key, salt));
        FileCipher {
            key_id,
            algorithm,
            salt: *salt,
            cipher: AeadCipher::new(algorithm, &subkey),
        }
    }

    /// The id of the key the subkey derives from; store it in the file header.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The algorithm of this file; store it in the file header.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The salt of this file; store it in the file header.
    pub fn salt(&self) -> &FileSalt {
        &self.salt
    }

    /// Appends `ciphertext ‖ tag` (`plaintext.len() + TAG_LEN` bytes) of record `counter` to
    /// `out`, authenticating `aad` as well.
    ///
    /// Bind the record to its place through `aad` (e.g. segment id and sequence number), so
    /// records cannot be moved or replayed between positions or files undetected. Reuses
    /// `out`'s capacity: no allocation once it is large enough.
    ///
    /// # Errors
    /// [`CryptoError::MessageTooLong`](crate::CryptoError::MessageTooLong) beyond the
    /// algorithm's length limit; `out` then keeps its length.
    pub fn seal_into(
        &self,
        counter: u64,
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.cipher
            .seal_append(&record_nonce(counter), aad, plaintext, out)
    }

    /// Verifies `sealed` (`ciphertext ‖ tag`) as record `counter` with `aad`, and appends the
    /// plaintext to `out`. On error `out` is unchanged.
    ///
    /// # Errors
    /// [`CryptoError::TooShort`](crate::CryptoError::TooShort) if `sealed` is shorter than a
    /// tag, [`CryptoError::AuthenticationFailed`](crate::CryptoError::AuthenticationFailed) if
    /// the record, counter, `aad`, key or salt differ from what was sealed.
    pub fn open_into(
        &self,
        counter: u64,
        aad: &[u8],
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.cipher
            .open_append(&record_nonce(counter), aad, sealed, out)
    }
}

impl fmt::Debug for FileCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileCipher")
            .field("key_id", &self.key_id)
            .field("algorithm", &self.algorithm)
            .field("salt", &self.salt)
            .field("subkey", &"<redacted>")
            .finish()
    }
}

/// The per-file subkey; the caller wraps it in `Zeroizing`.
fn derive_file_subkey(key: &Key, salt: &FileSalt) -> [u8; KEY_LEN] {
    // Hashing the two parts in sequence equals `blake3::derive_key(context, key ‖ salt)`
    // without building the concatenation in a buffer that would also need wiping.
    let mut hasher = blake3::Hasher::new_derive_key(FILE_SUBKEY_CONTEXT);
    hasher.update(key.as_bytes());
    hasher.update(salt.as_bytes());
    *hasher.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CryptoError;

    fn key(byte: u8) -> Key {
        Key::from_bytes(&[byte; KEY_LEN]).expect("32 bytes make a key")
    }

    #[test]
    fn subkey_is_blake3_derive_key_of_key_then_salt() {
        let salt = FileSalt::from_bytes([5; FILE_SALT_LEN]);
        let material = [[3_u8; KEY_LEN], [5_u8; FILE_SALT_LEN]].concat();
        let expected = blake3::derive_key(FILE_SUBKEY_CONTEXT, &material);
        assert_eq!(derive_file_subkey(&key(3), &salt), expected);
    }

    #[test]
    fn subkey_depends_on_key_and_salt() {
        let salt_a = FileSalt::from_bytes([1; FILE_SALT_LEN]);
        let salt_b = FileSalt::from_bytes([2; FILE_SALT_LEN]);
        let base = derive_file_subkey(&key(1), &salt_a);
        assert_ne!(base, derive_file_subkey(&key(1), &salt_b));
        assert_ne!(base, derive_file_subkey(&key(2), &salt_a));
    }

    #[test]
    fn record_nonce_is_counter_le_then_four_zero_bytes() {
        assert_eq!(
            record_nonce(0x0807_0605_0403_0201),
            [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0]
        );
    }

    #[test]
    fn the_same_record_under_two_salts_seals_differently() {
        // The crash scenario: a file is lost and a new one reuses counter 0 with the same
        // plaintext; a fresh salt means a fresh subkey, so nothing repeats.
        let first = FileCipher::new(
            KeyId::new(1),
            Algorithm::Aes256Gcm,
            &key(1),
            &FileSalt::random().expect("random source"),
        );
        let second = FileCipher::new(
            KeyId::new(1),
            Algorithm::Aes256Gcm,
            &key(1),
            &FileSalt::random().expect("random source"),
        );
        let (mut a, mut b) = (Vec::new(), Vec::new());
        assert!(first.seal_into(0, b"seg", b"record", &mut a).is_ok());
        assert!(second.seal_into(0, b"seg", b"record", &mut b).is_ok());
        assert_ne!(a, b);
    }

    #[test]
    fn another_counter_does_not_open_a_record() {
        let cipher = FileCipher::new(
            KeyId::new(1),
            Algorithm::ChaCha20Poly1305,
            &key(1),
            &FileSalt::from_bytes([0; FILE_SALT_LEN]),
        );
        let mut sealed = Vec::new();
        assert!(cipher.seal_into(41, b"", b"record", &mut sealed).is_ok());
        let mut out = Vec::new();
        let error = cipher.open_into(42, b"", &sealed, &mut out).err();
        assert!(matches!(error, Some(CryptoError::AuthenticationFailed)));
        assert!(out.is_empty());
    }

    #[test]
    fn file_cipher_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<FileCipher>();
    }
}

//! Keys by id, the active key, and sealing of standalone values.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::algorithm::Algorithm;
use crate::cipher::{AeadCipher, NONCE_LEN, TAG_LEN};
use crate::error::{CryptoError, Result};
use crate::file::{FileCipher, FileSalt};
use crate::format::{BLOB_HEADER_LEN, BlobHeader, blob_aad};
use crate::key::{Key, KeyId};
use crate::random::fill_random;

/// Every known key by id; one of them, the active key, seals new data.
///
/// Any known key opens data, so rotation is: add the new key, make it active, and keep the
/// old one until nothing sealed under it remains. Before the keyring is shared that is
/// [`insert`](Keyring::insert) and [`set_active`](Keyring::set_active); once it is shared
/// (an `Arc<Keyring>` handed to a log, a snapshot store and an engine), [`rotate`](Keyring::rotate)
/// does both in one step through `&self`, and every holder seals its next file under the new
/// key. A shared keyring only ever gains keys, so whatever opened before still opens.
/// `Debug` lists ids and the algorithm, never key bytes.
pub struct Keyring {
    algorithm: Algorithm,
    /// Read by every seal, open and new cipher; written only by [`Keyring::rotate`] (and the
    /// `&mut self` methods, which need no lock). Never held while calling out.
    keys: RwLock<Keys>,
}

/// The mutable part of a [`Keyring`].
struct Keys {
    /// Invariant: always a key of `entries`; `new`, `set_active` and `rotate` check it.
    active_key_id: KeyId,
    /// `Arc` so a rotation can share the entries it keeps rather than copy key material.
    entries: BTreeMap<KeyId, Arc<Entry>>,
}

/// A key and, ready to use, its cipher for the keyring's algorithm.
struct Entry {
    key: Key,
    cipher: AeadCipher,
}

impl Entry {
    fn new(key: Key, algorithm: Algorithm) -> Entry {
        let cipher = AeadCipher::new(algorithm, key.as_bytes());
        Entry { key, cipher }
    }

    /// This key's cipher for `algorithm`: the prepared one, or a fresh one for data sealed
    /// under another algorithm (a keyring switched from AES-GCM to ChaCha20 still opens it).
    fn with_cipher<T>(&self, algorithm: Algorithm, use_cipher: impl FnOnce(&AeadCipher) -> T) -> T {
        if self.cipher.algorithm() == algorithm {
            use_cipher(&self.cipher)
        } else {
            use_cipher(&AeadCipher::new(algorithm, self.key.as_bytes()))
        }
    }
}

impl Keyring {
    /// A keyring holding one key, which is active; new data is sealed with `algorithm`.
    ///
    /// Pass [`Algorithm::detect()`] to let the CPU choose, or a fixed algorithm to override.
    pub fn new(active_key_id: KeyId, key: Key, algorithm: Algorithm) -> Keyring {
        let entries = BTreeMap::from([(active_key_id, Arc::new(Entry::new(key, algorithm)))]);
        Keyring {
            algorithm,
            keys: RwLock::new(Keys {
                active_key_id,
                entries,
            }),
        }
    }

    /// Adds a key that can open data; it seals only once made active.
    ///
    /// # Errors
    /// [`CryptoError::DuplicateKeyId`] if the id is taken: replacing a key would make
    /// everything sealed under the old one unreadable.
    pub fn insert(&mut self, key_id: KeyId, key: Key) -> Result<()> {
        let algorithm = self.algorithm;
        let keys = self.keys.get_mut();
        if keys.entries.contains_key(&key_id) {
            return Err(CryptoError::DuplicateKeyId { key_id });
        }
        keys.entries
            .insert(key_id, Arc::new(Entry::new(key, algorithm)));
        Ok(())
    }

    /// Makes a known key the one that seals new blobs and files.
    ///
    /// # Errors
    /// [`CryptoError::UnknownKeyId`] if no key has this id.
    pub fn set_active(&mut self, key_id: KeyId) -> Result<()> {
        let keys = self.keys.get_mut();
        if !keys.entries.contains_key(&key_id) {
            return Err(CryptoError::UnknownKeyId { key_id });
        }
        keys.active_key_id = key_id;
        Ok(())
    }

    /// Adds `key` under `key_id` and makes it the active key, in one step, through a shared
    /// reference: the rotation of a keyring already handed out. Every holder seals its next
    /// file or blob under `key`; ciphers made before keep their key, and every key the keyring
    /// held still opens what it sealed.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};
    ///
    /// # fn main() -> Result<(), tokm_crypto_adaptive::CryptoError> {
    /// let keyring = Arc::new(Keyring::new(KeyId::new(1), Key::generate()?, Algorithm::detect()));
    /// let shared = Arc::clone(&keyring);
    /// let old = keyring.seal(b"", b"before")?;
    /// keyring.rotate(KeyId::new(2), Key::generate()?)?;
    /// assert_eq!(shared.active_key_id(), KeyId::new(2));
    /// assert_eq!(shared.open(b"", &old)?, b"before");
    /// assert_eq!(shared.key_ids(), [KeyId::new(1), KeyId::new(2)]);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`CryptoError::DuplicateKeyId`] if the id is taken (the keyring is then unchanged):
    /// an id names one key for good, since files record only the id.
    pub fn rotate(&self, key_id: KeyId, key: Key) -> Result<()> {
        // Expand the key schedule before taking the lock: readers never wait for it.
        let entry = Arc::new(Entry::new(key, self.algorithm));
        let mut keys = self.keys.write();
        if keys.entries.contains_key(&key_id) {
            return Err(CryptoError::DuplicateKeyId { key_id });
        }
        keys.entries.insert(key_id, entry);
        keys.active_key_id = key_id;
        Ok(())
    }

    /// The id of the key that seals new data.
    pub fn active_key_id(&self) -> KeyId {
        self.keys.read().active_key_id
    }

    /// The ids of every key held, ascending.
    pub fn key_ids(&self) -> Vec<KeyId> {
        self.keys.read().entries.keys().copied().collect()
    }

    /// The algorithm new data is sealed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Whether a key with this id is known.
    pub fn contains(&self, key_id: KeyId) -> bool {
        self.keys.read().entries.contains_key(&key_id)
    }

    /// Seals a standalone value into a self-describing blob (see the crate docs for the
    /// layout) under the active key, with a random 96-bit nonce.
    ///
    /// `aad` is authenticated but not stored: pass the same bytes to [`open`](Keyring::open).
    /// Random nonces are safe for up to 2^32 blobs per key (NIST SP 800-38D); bulk data
    /// belongs in files sealed with a [`FileCipher`].
    ///
    /// # Errors
    /// [`CryptoError::RandomSource`] if no nonce can be drawn, [`CryptoError::MessageTooLong`]
    /// beyond the algorithm's length limit.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let (key_id, entry) = self.active_entry();
        let mut nonce = [0_u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let header = BlobHeader {
            algorithm: self.algorithm,
            key_id,
            nonce,
        }
        .encode();
        let mut blob = Vec::with_capacity(BLOB_HEADER_LEN + plaintext.len() + TAG_LEN);
        blob.extend_from_slice(&header);
        let full_aad = blob_aad(&header, aad);
        entry.with_cipher(self.algorithm, |cipher| {
            cipher.seal_append(&nonce, &full_aad, plaintext, &mut blob)
        })?;
        Ok(blob)
    }

    /// Opens a blob from [`seal`](Keyring::seal) with whichever known key and algorithm it
    /// names.
    ///
    /// # Errors
    /// [`CryptoError::TooShort`], [`CryptoError::UnsupportedVersion`] or
    /// [`CryptoError::UnsupportedAlgorithm`] for a malformed header,
    /// [`CryptoError::UnknownKeyId`] if the key is not in this keyring,
    /// [`CryptoError::AuthenticationFailed`] if the blob or `aad` differ from what was sealed.
    pub fn open(&self, aad: &[u8], blob: &[u8]) -> Result<Vec<u8>> {
        let (header, header_bytes, sealed) = BlobHeader::split(blob)?;
        let entry = self.entry(header.key_id)?;
        let full_aad = blob_aad(header_bytes, aad);
        let mut plaintext = Vec::with_capacity(sealed.len().saturating_sub(TAG_LEN));
        entry.with_cipher(header.algorithm, |cipher| {
            cipher.open_append(&header.nonce, &full_aad, sealed, &mut plaintext)
        })?;
        Ok(plaintext)
    }

    /// A cipher for a new file: the active key, this keyring's algorithm and a fresh random
    /// salt. Record its key id, algorithm and salt in the file header.
    ///
    /// # Errors
    /// [`CryptoError::RandomSource`] if no salt can be drawn.
    pub fn new_file_cipher(&self) -> Result<FileCipher> {
        let salt = FileSalt::random()?;
        let (key_id, entry) = self.active_entry();
        Ok(FileCipher::new(key_id, self.algorithm, &entry.key, &salt))
    }

    /// The cipher of an existing file, from the key id, algorithm and salt in its header.
    ///
    /// Use it to read. Appending to an existing file with it is safe only if the file was
    /// cleanly closed and the counter continues past its last record (see the crate docs).
    ///
    /// # Errors
    /// [`CryptoError::UnknownKeyId`] if the key is not in this keyring.
    pub fn file_cipher(
        &self,
        key_id: KeyId,
        algorithm: Algorithm,
        salt: &FileSalt,
    ) -> Result<FileCipher> {
        let entry = self.entry(key_id)?;
        Ok(FileCipher::new(key_id, algorithm, &entry.key, salt))
    }

    /// The entry of `key_id`, shared so no lock is held while it is used.
    fn entry(&self, key_id: KeyId) -> Result<Arc<Entry>> {
        self.keys
            .read()
            .entries
            .get(&key_id)
            .cloned()
            .ok_or(CryptoError::UnknownKeyId { key_id })
    }

    /// The active key's id and entry, read together so a concurrent rotation cannot pair the
    /// id of one key with the other's bytes.
    fn active_entry(&self) -> (KeyId, Arc<Entry>) {
        let keys = self.keys.read();
        let key_id = keys.active_key_id;
        let Some(entry) = keys.entries.get(&key_id) else {
            unreachable!("the active key id {key_id} is always a key of the keyring");
        };
        (key_id, Arc::clone(entry))
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.keys.read();
        f.debug_struct("Keyring")
            .field("algorithm", &self.algorithm)
            .field("active_key_id", &keys.active_key_id)
            .field("key_ids", &keys.entries.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(algorithm: Algorithm) -> Keyring {
        let key = Key::from_bytes(&[7; 32]).expect("32 bytes make a key");
        Keyring::new(KeyId::new(1), key, algorithm)
    }

    #[test]
    fn blob_length_is_header_plus_plaintext_plus_tag() {
        let blob = keyring(Algorithm::Aes256Gcm).seal(b"aad", b"hello");
        assert!(matches!(blob, Ok(b) if b.len() == BLOB_HEADER_LEN + 5 + TAG_LEN));
    }

    #[test]
    fn blob_header_names_algorithm_and_key_id() {
        let blob = keyring(Algorithm::ChaCha20Poly1305)
            .seal(b"", b"x")
            .unwrap_or_default();
        assert_eq!(&blob[..6], &[1, 2, 1, 0, 0, 0]);
    }

    #[test]
    fn two_seals_of_the_same_value_differ() {
        let keyring = keyring(Algorithm::Aes256Gcm);
        let first = keyring.seal(b"", b"same").ok();
        let second = keyring.seal(b"", b"same").ok();
        assert!(first.is_some());
        assert_ne!(first, second);
    }

    #[test]
    fn set_active_refuses_unknown_ids_and_keeps_the_old_one() {
        let mut keyring = keyring(Algorithm::Aes256Gcm);
        let error = keyring.set_active(KeyId::new(9)).err();
        assert!(matches!(error, Some(CryptoError::UnknownKeyId { key_id }) if key_id.get() == 9));
        assert_eq!(keyring.active_key_id(), KeyId::new(1));
    }

    #[test]
    fn keyring_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Keyring>();
    }

    #[test]
    fn rotate_seals_under_the_new_key_and_still_opens_the_old_blobs() {
        let keyring = keyring(Algorithm::ChaCha20Poly1305);
        let old = keyring.seal(b"a", b"old").expect("seal");
        let key = Key::from_bytes(&[9; 32]).expect("32 bytes make a key");
        keyring.rotate(KeyId::new(2), key).expect("a new id");
        let new = keyring.seal(b"a", b"new").expect("seal");
        assert_eq!(&new[2..6], &2_u32.to_le_bytes());
        assert_eq!(keyring.open(b"a", &old).ok(), Some(b"old".to_vec()));
        assert_eq!(keyring.open(b"a", &new).ok(), Some(b"new".to_vec()));
        assert_eq!(
            keyring.new_file_cipher().map(|c| c.key_id()).ok(),
            Some(KeyId::new(2))
        );
    }

    #[test]
    fn rotate_refuses_a_taken_id_and_changes_nothing() {
        let keyring = keyring(Algorithm::Aes256Gcm);
        let key = Key::from_bytes(&[9; 32]).expect("32 bytes make a key");
        let error = keyring.rotate(KeyId::new(1), key).err();
        assert_eq!(error.map(|e| e.code()), Some("TM-CRYP-4091"));
        assert_eq!(keyring.active_key_id(), KeyId::new(1));
        assert_eq!(keyring.key_ids(), [KeyId::new(1)]);
        // The original bytes still seal: a blob opens with a keyring holding only them.
        let blob = keyring.seal(b"", b"x").expect("seal");
        assert!(self::keyring(Algorithm::Aes256Gcm).open(b"", &blob).is_ok());
    }

    #[test]
    fn insert_refuses_a_duplicate_id() {
        let mut keyring = keyring(Algorithm::Aes256Gcm);
        let key = Key::generate().expect("random source");
        let error = keyring.insert(KeyId::new(1), key).err();
        assert_eq!(error.map(|e| e.code()), Some("TM-CRYP-4091"));
    }
}

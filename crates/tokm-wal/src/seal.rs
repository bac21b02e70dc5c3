//! Per-segment payload protection: plain bytes, or sealed with the segment's `FileCipher`.
//!
//! Nonce safety rests on three facts enforced elsewhere and relied on here: every segment gets a
//! fresh random salt (so its own subkey), the counter is the record's LSN (unique within a
//! segment, and 0 is used once, for the header's key check), and the writer never appends to a
//! segment that existed before it opened the directory.

use std::sync::Arc;

use tokm_crypto_adaptive::{Algorithm, FileCipher, FileSalt, KeyId, Keyring, TAG_LEN};

use crate::error::SealFailure;
use crate::format::{HeaderCipher, KEY_CHECK_LEN, key_check_aad, record_aad};
use crate::ids::SegmentId;
use tokm_storage::Lsn;

/// How one segment's payloads are stored.
#[derive(Clone, Debug)]
pub(crate) enum PayloadSeal {
    /// Stored as given.
    Plain,
    /// Sealed with this segment's cipher.
    Sealed(Arc<FileCipher>),
}

/// What checking an existing segment's cipher fields against the keyring found.
#[derive(Debug)]
pub(crate) enum SealCheck {
    /// Plain, or sealed under a key the keyring holds and the key check confirmed.
    Ready(PayloadSeal),
    /// Sealed under a key id the keyring lacks (or there is no keyring).
    KeyMissing { key_id: KeyId },
    /// The keyring holds the key id, but the key-check tag does not open: the wrong key bytes,
    /// or cipher fields damaged in a way the header checksum did not catch.
    KeyCheckFailed { key_id: KeyId },
    /// The header names an algorithm this build does not know.
    UnknownAlgorithm,
}

/// The counter reserved for the header's key check; records use their LSN, which is never 0.
const KEY_CHECK_COUNTER: u64 = 0;

// The header's key-check field holds one tag.
const _: () = assert!(TAG_LEN == KEY_CHECK_LEN);

impl PayloadSeal {
    /// The seal for a segment about to be created: a fresh salt under the active key.
    pub(crate) fn for_new_segment(
        keyring: Option<&Keyring>,
        file: &str,
    ) -> Result<PayloadSeal, SealFailure> {
        let Some(keyring) = keyring else {
            return Ok(PayloadSeal::Plain);
        };
        let cipher = keyring.new_file_cipher().map_err(|error| SealFailure {
            file: file.to_owned(),
            source: error,
        })?;
        Ok(PayloadSeal::Sealed(Arc::new(cipher)))
    }

    /// The seal of an existing segment, checked against the header's key-check tag so a wrong
    /// key is told apart from damaged records before any record is read.
    pub(crate) fn for_existing_segment(
        keyring: Option<&Keyring>,
        cipher: &HeaderCipher,
        segment_id: SegmentId,
    ) -> SealCheck {
        let HeaderCipher::Sealed {
            algorithm_id,
            key_id,
            salt,
            key_check,
        } = cipher
        else {
            return SealCheck::Ready(PayloadSeal::Plain);
        };
        let key_id = KeyId::new(*key_id);
        let Ok(algorithm) = Algorithm::try_from(*algorithm_id) else {
            return SealCheck::UnknownAlgorithm;
        };
        let Some(keyring) = keyring.filter(|keyring| keyring.contains(key_id)) else {
            return SealCheck::KeyMissing { key_id };
        };
        let Ok(cipher) = keyring.file_cipher(key_id, algorithm, &FileSalt::from_bytes(*salt))
        else {
            return SealCheck::KeyMissing { key_id };
        };
        let mut plaintext = Vec::new();
        if cipher
            .open_into(
                KEY_CHECK_COUNTER,
                &key_check_aad(segment_id),
                key_check,
                &mut plaintext,
            )
            .is_err()
        {
            return SealCheck::KeyCheckFailed { key_id };
        }
        SealCheck::Ready(PayloadSeal::Sealed(Arc::new(cipher)))
    }

    /// The header field describing this seal, with a fresh key-check tag.
    pub(crate) fn header_cipher(
        &self,
        segment_id: SegmentId,
        file: &str,
    ) -> Result<HeaderCipher, SealFailure> {
        let PayloadSeal::Sealed(cipher) = self else {
            return Ok(HeaderCipher::None);
        };
        let mut tag = Vec::with_capacity(KEY_CHECK_LEN);
        cipher
            .seal_into(KEY_CHECK_COUNTER, &key_check_aad(segment_id), &[], &mut tag)
            .map_err(|error| SealFailure {
                file: file.to_owned(),
                source: error,
            })?;
        // Sealing an empty plaintext yields exactly the tag.
        let Ok(key_check) = <[u8; KEY_CHECK_LEN]>::try_from(tag.as_slice()) else {
            unreachable!(
                "an empty plaintext seals to a {TAG_LEN}-byte tag, got {}",
                tag.len()
            );
        };
        Ok(HeaderCipher::Sealed {
            algorithm_id: cipher.algorithm().id(),
            key_id: cipher.key_id().get(),
            salt: *cipher.salt().as_bytes(),
            key_check,
        })
    }

    /// The key this seal uses; `None` when plain.
    pub(crate) fn key_id(&self) -> Option<KeyId> {
        match self {
            PayloadSeal::Plain => None,
            PayloadSeal::Sealed(cipher) => Some(cipher.key_id()),
        }
    }

    /// Stored size of a payload of `payload_len` bytes.
    pub(crate) fn stored_len(&self, payload_len: usize) -> usize {
        match self {
            PayloadSeal::Plain => payload_len,
            PayloadSeal::Sealed(_) => payload_len + TAG_LEN,
        }
    }

    /// Appends the stored form of `payload` to `out`.
    pub(crate) fn seal_into(
        &self,
        segment_id: SegmentId,
        lsn: Lsn,
        payload: &[u8],
        out: &mut Vec<u8>,
        file: &str,
    ) -> Result<(), SealFailure> {
        match self {
            PayloadSeal::Plain => {
                out.extend_from_slice(payload);
                Ok(())
            }
            PayloadSeal::Sealed(cipher) => cipher
                .seal_into(lsn.get(), &record_aad(segment_id, lsn), payload, out)
                .map_err(|error| SealFailure {
                    file: file.to_owned(),
                    source: error,
                }),
        }
    }

    /// The payload of a stored record: borrowed when plain, opened into `scratch` when sealed.
    /// `None` when authentication fails (damage or tampering: the frame checksum matched).
    pub(crate) fn open<'a>(
        &self,
        segment_id: SegmentId,
        lsn: Lsn,
        stored: &'a [u8],
        scratch: &'a mut Vec<u8>,
    ) -> Option<&'a [u8]> {
        match self {
            PayloadSeal::Plain => Some(stored),
            PayloadSeal::Sealed(cipher) => {
                scratch.clear();
                cipher
                    .open_into(lsn.get(), &record_aad(segment_id, lsn), stored, scratch)
                    .ok()?;
                Some(scratch.as_slice())
            }
        }
    }
}

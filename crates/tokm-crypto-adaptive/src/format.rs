//! Byte layouts of the crate: a sealed blob, and the nonce of a file record. The only code
//! that touches their offsets.
//!
//! # Sealed blob
//!
//! | offset | size | field          | encoding                                  |
//! |--------|------|----------------|-------------------------------------------|
//! | 0      | 1    | format version | `1`                                       |
//! | 1      | 1    | algorithm      | 1 AES-256-GCM, 2 ChaCha20-Poly1305        |
//! | 2      | 4    | key id         | u32 LE                                    |
//! | 6      | 12   | nonce          | random                                    |
//! | 18     | n    | ciphertext     | same length as the plaintext              |
//! | 18 + n | 16   | tag            | over AAD = bytes 0..18 ‖ caller's AAD     |
//!
//! Version history: 1 (first release).
//!
//! # Nonce of a file record
//!
//! A [`FileCipher`](crate::FileCipher) seals record `n` of a file under the 12-byte nonce
//! `n` (u64 LE) ‖ four zero bytes; the file's subkey is unique per file, so the pair repeats
//! only if a counter does.

use crate::algorithm::Algorithm;
use crate::cipher::{NONCE_LEN, TAG_LEN};
use crate::error::{CryptoError, Result};
use crate::key::KeyId;

/// Length of the header in front of the ciphertext.
pub(crate) const BLOB_HEADER_LEN: usize = 2 + 4 + NONCE_LEN;

/// Shortest well-formed blob: a header and the tag of an empty plaintext.
pub(crate) const BLOB_LEN_MIN: usize = BLOB_HEADER_LEN + TAG_LEN;

/// Blob format versions this build reads; it writes only the newest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum BlobVersion {
    V1 = 1,
}

impl TryFrom<u8> for BlobVersion {
    type Error = CryptoError;

    fn try_from(version: u8) -> Result<Self> {
        match version {
            1 => Ok(BlobVersion::V1),
            _ => Err(CryptoError::UnsupportedVersion { version }),
        }
    }
}

/// The self-describing fields in front of a blob's ciphertext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlobHeader {
    pub(crate) algorithm: Algorithm,
    pub(crate) key_id: KeyId,
    pub(crate) nonce: [u8; NONCE_LEN],
}

impl BlobHeader {
    pub(crate) fn encode(&self) -> [u8; BLOB_HEADER_LEN] {
        let mut bytes = [0_u8; BLOB_HEADER_LEN];
        bytes[0] = BlobVersion::V1 as u8;
        bytes[1] = self.algorithm.id();
        bytes[2..6].copy_from_slice(&self.key_id.get().to_le_bytes());
        bytes[6..].copy_from_slice(&self.nonce);
        debug_assert!(
            matches!(BlobHeader::decode(&bytes), Ok(decoded) if decoded == *self),
            "blob header must survive its own round trip"
        );
        bytes
    }

    /// Splits a whole blob into its decoded header, the header's bytes (part of the AAD) and
    /// `ciphertext || tag`.
    pub(crate) fn split(blob: &[u8]) -> Result<(BlobHeader, &[u8; BLOB_HEADER_LEN], &[u8])> {
        let too_short = || CryptoError::TooShort {
            len: blob.len(),
            len_min: BLOB_LEN_MIN,
        };
        let (header_bytes, sealed) = blob.split_first_chunk().ok_or_else(too_short)?;
        if sealed.len() < TAG_LEN {
            return Err(too_short());
        }
        Ok((BlobHeader::decode(header_bytes)?, header_bytes, sealed))
    }

    fn decode(header: &[u8; BLOB_HEADER_LEN]) -> Result<BlobHeader> {
        let [version, algorithm, k0, k1, k2, k3, nonce @ ..] = *header;
        match BlobVersion::try_from(version)? {
            BlobVersion::V1 => Ok(BlobHeader {
                algorithm: Algorithm::try_from(algorithm)?,
                key_id: KeyId::new(u32::from_le_bytes([k0, k1, k2, k3])),
                nonce,
            }),
        }
    }
}

/// The associated data a blob's tag covers: its header, then the caller's bytes.
///
/// Covering the header binds version, algorithm and key id to the ciphertext, so a future
/// format cannot be downgraded into this one by rewriting its first byte.
pub(crate) fn blob_aad(header: &[u8; BLOB_HEADER_LEN], aad: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(BLOB_HEADER_LEN + aad.len());
    full.extend_from_slice(header);
    full.extend_from_slice(aad);
    full
}

/// Nonce of file record `counter`: the counter (u64 LE), then four zero bytes.
pub(crate) fn record_nonce(counter: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0_u8; NONCE_LEN];
    nonce[..8].copy_from_slice(&counter.to_le_bytes());
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> BlobHeader {
        BlobHeader {
            algorithm: Algorithm::ChaCha20Poly1305,
            key_id: KeyId::new(0x0403_0201),
            nonce: [9; NONCE_LEN],
        }
    }

    #[test]
    fn header_layout_matches_the_table() {
        let bytes = header().encode();
        assert_eq!(&bytes[..6], &[1, 2, 0x01, 0x02, 0x03, 0x04]);
        assert_eq!(&bytes[6..], &[9; NONCE_LEN]);
        assert_eq!(BLOB_HEADER_LEN, 18);
    }

    #[test]
    fn split_reads_back_what_encode_wrote() {
        let blob = [&header().encode()[..], &[0xaa; TAG_LEN + 3]].concat();
        let split = BlobHeader::split(&blob);
        assert!(
            matches!(split, Ok((h, bytes, sealed)) if h == header() && bytes[..] == blob[..BLOB_HEADER_LEN] && sealed.len() == TAG_LEN + 3)
        );
    }

    #[test]
    fn split_refuses_unknown_versions() {
        let mut blob = [&header().encode()[..], &[0; TAG_LEN]].concat();
        blob[0] = 2;
        let error = BlobHeader::split(&blob).err();
        assert!(matches!(
            error,
            Some(CryptoError::UnsupportedVersion { version: 2 })
        ));
    }

    #[test]
    fn split_refuses_unknown_algorithms() {
        let mut blob = [&header().encode()[..], &[0; TAG_LEN]].concat();
        blob[1] = 0;
        let error = BlobHeader::split(&blob).err();
        assert!(matches!(
            error,
            Some(CryptoError::UnsupportedAlgorithm { id: 0 })
        ));
    }
}

//! The one dispatch point between this crate and the RustCrypto AEAD implementations.
//!
//! Blobs and file records both seal and open through [`AeadCipher`], so the known-answer
//! tests below exercise exactly the code the public API runs.

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::array::Array;
use aes_gcm::aead::{AeadInOut, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;

use crate::algorithm::Algorithm;
use crate::error::{CryptoError, Result};
use crate::key::KEY_LEN;

/// Length of the authentication tag appended to every ciphertext, in bytes.
pub const TAG_LEN: usize = 16;

/// Length of the nonce of both algorithms, in bytes (96 bits).
pub(crate) const NONCE_LEN: usize = 12;

/// A keyed AEAD of either algorithm.
///
/// Both upstream types wipe their key state on drop (the `zeroize` feature is enabled in
/// Cargo.toml). AES-GCM is boxed because its expanded key schedules are far larger than the
/// 32-byte ChaCha20 key.
pub(crate) enum AeadCipher {
    Aes256Gcm(Box<Aes256Gcm>),
    ChaCha20Poly1305(ChaCha20Poly1305),
}

impl AeadCipher {
    pub(crate) fn new(algorithm: Algorithm, key: &[u8; KEY_LEN]) -> AeadCipher {
        // Borrow the key as the upstream array type instead of copying it onto the stack.
        let key = <&Array<u8, _>>::from(key);
        match algorithm {
            Algorithm::Aes256Gcm => AeadCipher::Aes256Gcm(Box::new(Aes256Gcm::new(key))),
            Algorithm::ChaCha20Poly1305 => AeadCipher::ChaCha20Poly1305(ChaCha20Poly1305::new(key)),
        }
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        match self {
            AeadCipher::Aes256Gcm(_) => Algorithm::Aes256Gcm,
            AeadCipher::ChaCha20Poly1305(_) => Algorithm::ChaCha20Poly1305,
        }
    }

    /// Appends `ciphertext || tag` of `plaintext` to `out`. On error `out` keeps its length.
    ///
    /// Encrypts in place inside `out`: one copy of the plaintext, no temporary allocation.
    pub(crate) fn seal_append(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let start = out.len();
        out.reserve(plaintext.len() + TAG_LEN);
        out.extend_from_slice(plaintext);
        let nonce = Array::from(*nonce);
        let buffer = (&mut out[start..]).into();
        let sealed = match self {
            AeadCipher::Aes256Gcm(cipher) => cipher.encrypt_inout_detached(&nonce, aad, buffer),
            AeadCipher::ChaCha20Poly1305(cipher) => {
                cipher.encrypt_inout_detached(&nonce, aad, buffer)
            }
        };
        match sealed {
            Ok(tag) => {
                out.extend_from_slice(&tag);
                Ok(())
            }
            // Upstream refuses only lengths beyond the algorithm's limit (64 GiB for GCM).
            Err(_) => {
                out.truncate(start);
                Err(CryptoError::MessageTooLong {
                    len: plaintext.len(),
                    algorithm: self.algorithm(),
                })
            }
        }
    }

    /// Verifies `sealed = ciphertext || tag` and appends the plaintext to `out`.
    ///
    /// On any error `out` keeps its length. Upstream verifies the tag before decrypting, so
    /// unauthenticated plaintext is never written, not even past `out`'s length.
    pub(crate) fn open_append(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let Some((ciphertext, tag)) = sealed.split_last_chunk::<TAG_LEN>() else {
            return Err(CryptoError::TooShort {
                len: sealed.len(),
                len_min: TAG_LEN,
            });
        };
        let tag = Array::from(*tag);
        let nonce = Array::from(*nonce);
        let start = out.len();
        out.extend_from_slice(ciphertext);
        let buffer = (&mut out[start..]).into();
        let opened = match self {
            AeadCipher::Aes256Gcm(cipher) => {
                cipher.decrypt_inout_detached(&nonce, aad, buffer, &tag)
            }
            AeadCipher::ChaCha20Poly1305(cipher) => {
                cipher.decrypt_inout_detached(&nonce, aad, buffer, &tag)
            }
        };
        if opened.is_err() {
            out.truncate(start);
            return Err(CryptoError::AuthenticationFailed);
        }
        Ok(())
    }
}

impl fmt::Debug for AeadCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AeadCipher")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    //! Published known-answer vectors, run through `AeadCipher`.

    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks_exact(2)
            .map(|pair| {
                let pair = std::str::from_utf8(pair).unwrap_or("zz");
                u8::from_str_radix(pair, 16).unwrap_or_else(|_| panic!("bad hex {pair:?}"))
            })
            .collect()
    }

    struct Vector {
        name: &'static str,
        algorithm: Algorithm,
        key: &'static str,
        nonce: &'static str,
        aad: &'static str,
        plaintext: &'static str,
        ciphertext: &'static str,
        tag: &'static str,
    }

    const GCM_KEY_15: &str = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
    const GCM_PLAINTEXT_15: &str =
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
        1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
    const GCM_CIPHERTEXT_15: &str =
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
        8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad";

    /// McGrew and Viega, "The Galois/Counter Mode of Operation (GCM)", test cases 13-16
    /// (AES-256), and RFC 8439 section 2.8.2 (ChaCha20-Poly1305).
    const VECTORS: &[Vector] = &[
        Vector {
            name: "GCM test case 13",
            algorithm: Algorithm::Aes256Gcm,
            key: "0000000000000000000000000000000000000000000000000000000000000000",
            nonce: "000000000000000000000000",
            aad: "",
            plaintext: "",
            ciphertext: "",
            tag: "530f8afbc74536b9a963b4f1c4cb738b",
        },
        Vector {
            name: "GCM test case 14",
            algorithm: Algorithm::Aes256Gcm,
            key: "0000000000000000000000000000000000000000000000000000000000000000",
            nonce: "000000000000000000000000",
            aad: "",
            plaintext: "00000000000000000000000000000000",
            ciphertext: "cea7403d4d606b6e074ec5d3baf39d18",
            tag: "d0d1c8a799996bf0265b98b5d48ab919",
        },
        Vector {
            name: "GCM test case 15",
            algorithm: Algorithm::Aes256Gcm,
            key: GCM_KEY_15,
            nonce: "cafebabefacedbaddecaf888",
            aad: "",
            plaintext: GCM_PLAINTEXT_15,
            ciphertext: GCM_CIPHERTEXT_15,
            tag: "b094dac5d93471bdec1a502270e3cc6c",
        },
        Vector {
            name: "GCM test case 16",
            algorithm: Algorithm::Aes256Gcm,
            key: GCM_KEY_15,
            nonce: "cafebabefacedbaddecaf888",
            aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
                1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa
                8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            tag: "76fc6ece0f4e1768cddf8853bb2d551b",
        },
        Vector {
            name: "RFC 8439 section 2.8.2",
            algorithm: Algorithm::ChaCha20Poly1305,
            key: "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
            nonce: "070000004041424344454647",
            aad: "50515253c0c1c2c3c4c5c6c7",
            // "Ladies and Gentlemen of the class of '99: If I could offer you only one tip
            // for the future, sunscreen would be it."
            plaintext: "4c616469657320616e642047656e746c656d656e206f662074686520636c6173
                73206f66202739393a204966204920636f756c64206f6666657220796f75206f
                6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73
                637265656e20776f756c642062652069742e",
            ciphertext: "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
                3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
                92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
                3ff4def08e4b7a9de576d26586cec64b6116",
            tag: "1ae10b594f09e26a7e902ecbd0600691",
        },
    ];

    fn cipher_for(vector: &Vector) -> AeadCipher {
        let key: [u8; KEY_LEN] = hex(vector.key).try_into().unwrap_or([0; KEY_LEN]);
        AeadCipher::new(vector.algorithm, &key)
    }

    fn nonce_for(vector: &Vector) -> [u8; NONCE_LEN] {
        hex(vector.nonce).try_into().unwrap_or([0xff; NONCE_LEN])
    }

    #[test]
    fn seal_matches_published_vectors() {
        assert_eq!(
            hex(VECTORS[4].plaintext),
            b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip \
              for the future, sunscreen would be it."
        );
        for vector in VECTORS {
            let mut out = b"prefix".to_vec();
            let sealed = cipher_for(vector).seal_append(
                &nonce_for(vector),
                &hex(vector.aad),
                &hex(vector.plaintext),
                &mut out,
            );
            assert!(sealed.is_ok(), "{}", vector.name);
            let expected = [&b"prefix"[..], &hex(vector.ciphertext), &hex(vector.tag)].concat();
            assert_eq!(out, expected, "{}", vector.name);
        }
    }

    #[test]
    fn open_recovers_published_plaintexts() {
        for vector in VECTORS {
            let sealed = [hex(vector.ciphertext), hex(vector.tag)].concat();
            let mut out = b"prefix".to_vec();
            let opened = cipher_for(vector).open_append(
                &nonce_for(vector),
                &hex(vector.aad),
                &sealed,
                &mut out,
            );
            assert!(opened.is_ok(), "{}", vector.name);
            let expected = [&b"prefix"[..], &hex(vector.plaintext)].concat();
            assert_eq!(out, expected, "{}", vector.name);
        }
    }

    #[test]
    fn open_refuses_a_published_vector_with_a_flipped_tag_bit() {
        for vector in VECTORS {
            let mut sealed = [hex(vector.ciphertext), hex(vector.tag)].concat();
            let last = sealed.len() - 1;
            sealed[last] ^= 0x01;
            let mut out = b"prefix".to_vec();
            let error = cipher_for(vector)
                .open_append(&nonce_for(vector), &hex(vector.aad), &sealed, &mut out)
                .err();
            assert!(
                matches!(error, Some(CryptoError::AuthenticationFailed)),
                "{}",
                vector.name
            );
            assert_eq!(out, b"prefix", "{}", vector.name);
        }
    }

    #[test]
    fn open_refuses_input_shorter_than_a_tag() {
        let cipher = AeadCipher::new(Algorithm::ChaCha20Poly1305, &[1; KEY_LEN]);
        let mut out = Vec::new();
        let error = cipher
            .open_append(&[0; NONCE_LEN], b"", &[0; TAG_LEN - 1], &mut out)
            .err();
        assert!(matches!(
            error,
            Some(CryptoError::TooShort {
                len: 15,
                len_min: TAG_LEN
            })
        ));
    }
}

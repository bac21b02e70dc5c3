//! Every truncation of a blob or record is refused with a typed error, never a panic.

mod common;

use common::{ALGORITHMS, keyring};
use tokm_crypto_adaptive::{CryptoError, TAG_LEN};

/// Version, algorithm, key id, nonce.
const BLOB_HEADER_LEN: usize = 18;

#[test]
fn every_prefix_of_a_blob_is_refused() {
    for algorithm in ALGORITHMS {
        let keyring = keyring(algorithm, &[1]);
        let blob = keyring
            .seal(b"aad", b"a plaintext of some length")
            .expect("seal");
        for len in 0..blob.len() {
            let error = keyring.open(b"aad", &blob[..len]).err();
            let expected = if len < BLOB_HEADER_LEN + TAG_LEN {
                "TM-CRYP-5202"
            } else {
                "TM-CRYP-5201"
            };
            assert_eq!(
                error.map(|e| e.code()),
                Some(expected),
                "{algorithm}: {len}"
            );
        }
    }
}

#[test]
fn too_short_names_the_length_and_the_minimum() {
    let keyring = keyring(ALGORITHMS[0], &[1]);
    let error = keyring.open(b"", &[1, 1, 1, 0]).err();
    assert!(matches!(
        error,
        Some(CryptoError::TooShort { len: 4, len_min }) if len_min == BLOB_HEADER_LEN + TAG_LEN
    ));
}

#[test]
fn every_prefix_of_a_file_record_is_refused() {
    for algorithm in ALGORITHMS {
        let cipher = keyring(algorithm, &[1]).new_file_cipher().expect("cipher");
        let mut sealed = Vec::new();
        cipher
            .seal_into(5, b"aad", b"a plaintext of some length", &mut sealed)
            .expect("seal");
        for len in 0..sealed.len() {
            let mut out = b"kept".to_vec();
            let error = cipher.open_into(5, b"aad", &sealed[..len], &mut out).err();
            let expected = if len < TAG_LEN {
                "TM-CRYP-5202"
            } else {
                "TM-CRYP-5201"
            };
            assert_eq!(
                error.map(|e| e.code()),
                Some(expected),
                "{algorithm}: {len}"
            );
            assert_eq!(out, b"kept");
        }
    }
}

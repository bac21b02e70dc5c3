//! Changing any one byte of a file record, or of its associated data, fails authentication
//! and leaves the output buffer as it was.

mod common;

use common::{ALGORITHMS, keyring};
use tokm_crypto_adaptive::CryptoError;

const AAD: &[u8] = b"segment 7 seq 19";
const PLAINTEXT: &[u8] = b"CREATE session 01J9Z... with 40 bytes..";
const COUNTER: u64 = 19;

#[test]
fn every_single_byte_change_of_a_record_fails_authentication() {
    for algorithm in ALGORITHMS {
        let cipher = keyring(algorithm, &[1]).new_file_cipher().expect("cipher");
        let mut sealed = Vec::new();
        cipher
            .seal_into(COUNTER, AAD, PLAINTEXT, &mut sealed)
            .expect("seal");
        for index in 0..sealed.len() {
            for mask in [0x01_u8, 0x80, 0xff] {
                let mut damaged = sealed.clone();
                damaged[index] ^= mask;
                let mut out = b"earlier records".to_vec();
                let error = cipher.open_into(COUNTER, AAD, &damaged, &mut out).err();
                assert!(
                    matches!(error, Some(CryptoError::AuthenticationFailed)),
                    "{algorithm}: byte {index} ^ {mask:#04x} gave {error:?}"
                );
                assert_eq!(out, b"earlier records", "{algorithm}: out changed");
            }
        }
    }
}

#[test]
fn every_single_byte_change_of_the_associated_data_fails_authentication() {
    for algorithm in ALGORITHMS {
        let cipher = keyring(algorithm, &[1]).new_file_cipher().expect("cipher");
        let mut sealed = Vec::new();
        cipher
            .seal_into(COUNTER, AAD, PLAINTEXT, &mut sealed)
            .expect("seal");
        for index in 0..AAD.len() {
            let mut aad = AAD.to_vec();
            aad[index] ^= 0x01;
            let mut out = Vec::new();
            let error = cipher.open_into(COUNTER, &aad, &sealed, &mut out).err();
            assert!(
                matches!(error, Some(CryptoError::AuthenticationFailed)),
                "{algorithm}: aad byte {index}"
            );
            assert!(out.is_empty());
        }
    }
}

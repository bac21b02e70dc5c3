//! Changing any one byte of a sealed blob, or of its associated data, is detected.

mod common;

use common::{ALGORITHMS, keyring};
use tokm_crypto_adaptive::CryptoError;

const AAD: &[u8] = b"session:0123456789";
const PLAINTEXT: &[u8] = b"a value worth protecting, 41 bytes long.";

#[test]
fn every_single_byte_change_of_a_blob_is_rejected() {
    for algorithm in ALGORITHMS {
        // Key 3 is one bit away from key 1, so a key-id flip can also land on a known key.
        let keyring = keyring(algorithm, &[1, 3]);
        let blob = keyring.seal(AAD, PLAINTEXT).expect("seal");
        for index in 0..blob.len() {
            for mask in [0x01_u8, 0x02, 0x80, 0xff] {
                let mut damaged = blob.clone();
                damaged[index] ^= mask;
                let error = keyring.open(AAD, &damaged).err();
                let accepted = match (index, &error) {
                    (0, Some(CryptoError::UnsupportedVersion { .. })) => true,
                    (1, Some(CryptoError::UnsupportedAlgorithm { .. })) => true,
                    (2..=5, Some(CryptoError::UnknownKeyId { .. })) => true,
                    // The header is part of the AAD, so a flip that still names a valid
                    // algorithm or known key fails authentication; so does any later flip.
                    (_, Some(CryptoError::AuthenticationFailed)) => true,
                    _ => false,
                };
                assert!(
                    accepted,
                    "{algorithm}: byte {index} ^ {mask:#04x} gave {error:?}"
                );
            }
        }
    }
}

#[test]
fn a_header_flip_onto_another_valid_value_fails_authentication() {
    for algorithm in ALGORITHMS {
        let keyring = keyring(algorithm, &[1, 3]);
        let blob = keyring.seal(AAD, PLAINTEXT).expect("seal");
        // Algorithm 1 <-> 2, and key id 1 -> 3.
        for (index, mask) in [(1, 0x03), (2, 0x02)] {
            let mut damaged = blob.clone();
            damaged[index] ^= mask;
            let error = keyring.open(AAD, &damaged).err();
            assert!(
                matches!(error, Some(CryptoError::AuthenticationFailed)),
                "{algorithm}: byte {index} ^ {mask:#04x} gave {error:?}"
            );
        }
    }
}

#[test]
fn every_single_byte_change_of_the_associated_data_fails_authentication() {
    for algorithm in ALGORITHMS {
        let keyring = keyring(algorithm, &[1]);
        let blob = keyring.seal(AAD, PLAINTEXT).expect("seal");
        for index in 0..AAD.len() {
            let mut aad = AAD.to_vec();
            aad[index] ^= 0x01;
            let error = keyring.open(&aad, &blob).err();
            assert!(
                matches!(error, Some(CryptoError::AuthenticationFailed)),
                "{algorithm}: aad byte {index}"
            );
        }
        for aad in [&AAD[..AAD.len() - 1], &[AAD, b"!"].concat()[..], b""] {
            let error = keyring.open(aad, &blob).err();
            assert!(matches!(error, Some(CryptoError::AuthenticationFailed)));
        }
    }
}

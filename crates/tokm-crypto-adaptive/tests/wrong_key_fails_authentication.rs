//! Data opened with a different key under the same id fails authentication.

mod common;

use common::{ALGORITHMS, key};
use tokm_crypto_adaptive::{CryptoError, KeyId, Keyring};

#[test]
fn a_blob_does_not_open_under_another_key_with_the_same_id() {
    for algorithm in ALGORITHMS {
        let sealer = Keyring::new(KeyId::new(1), key(10), algorithm);
        let opener = Keyring::new(KeyId::new(1), key(11), algorithm);
        let blob = sealer.seal(b"aad", b"plaintext").expect("seal");
        let error = opener.open(b"aad", &blob).err();
        assert!(
            matches!(error, Some(CryptoError::AuthenticationFailed)),
            "{algorithm}: {error:?}"
        );
    }
}

#[test]
fn a_file_record_does_not_open_under_another_key_with_the_same_id() {
    for algorithm in ALGORITHMS {
        let sealer = Keyring::new(KeyId::new(1), key(10), algorithm);
        let opener = Keyring::new(KeyId::new(1), key(11), algorithm);
        let writer = sealer.new_file_cipher().expect("cipher");
        let mut sealed = Vec::new();
        writer
            .seal_into(0, b"aad", b"plaintext", &mut sealed)
            .expect("seal");
        let reader = opener
            .file_cipher(writer.key_id(), writer.algorithm(), writer.salt())
            .expect("key 1 is known");
        let mut out = Vec::new();
        let error = reader.open_into(0, b"aad", &sealed, &mut out).err();
        assert!(
            matches!(error, Some(CryptoError::AuthenticationFailed)),
            "{algorithm}: {error:?}"
        );
        assert!(out.is_empty());
    }
}

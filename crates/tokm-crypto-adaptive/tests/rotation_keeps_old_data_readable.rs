//! After a new key becomes active, data sealed under the old key still opens, and new data
//! is sealed under the new key.

mod common;

use common::{ALGORITHMS, key};
use tokm_crypto_adaptive::{KeyId, Keyring};

/// Key id, little-endian, at bytes 2..6 of a blob.
fn blob_key_id(blob: &[u8]) -> u32 {
    u32::from_le_bytes([blob[2], blob[3], blob[4], blob[5]])
}

#[test]
fn blobs_sealed_under_key_1_open_after_key_2_becomes_active() {
    for algorithm in ALGORITHMS {
        let mut keyring = Keyring::new(KeyId::new(1), key(1), algorithm);
        let old_blob = keyring.seal(b"aad", b"old value").expect("seal");

        keyring.insert(KeyId::new(2), key(2)).expect("insert");
        assert_eq!(
            keyring.active_key_id(),
            KeyId::new(1),
            "insert must not activate"
        );
        keyring.set_active(KeyId::new(2)).expect("key 2 is known");

        let new_blob = keyring.seal(b"aad", b"new value").expect("seal");
        assert_eq!(blob_key_id(&old_blob), 1);
        assert_eq!(blob_key_id(&new_blob), 2);
        assert_eq!(keyring.open(b"aad", &old_blob).expect("old"), b"old value");
        assert_eq!(keyring.open(b"aad", &new_blob).expect("new"), b"new value");
    }
}

#[test]
fn files_started_under_key_1_open_after_key_2_becomes_active() {
    for algorithm in ALGORITHMS {
        let mut keyring = Keyring::new(KeyId::new(1), key(1), algorithm);
        let old_writer = keyring.new_file_cipher().expect("cipher");
        let mut sealed = Vec::new();
        old_writer
            .seal_into(0, b"aad", b"old record", &mut sealed)
            .expect("seal");

        keyring.insert(KeyId::new(2), key(2)).expect("insert");
        keyring.set_active(KeyId::new(2)).expect("key 2 is known");
        assert_eq!(
            keyring.new_file_cipher().expect("cipher").key_id(),
            KeyId::new(2)
        );

        let reader = keyring
            .file_cipher(KeyId::new(1), algorithm, old_writer.salt())
            .expect("key 1 is still known");
        let mut out = Vec::new();
        reader
            .open_into(0, b"aad", &sealed, &mut out)
            .expect("old record opens");
        assert_eq!(out, b"old record");
    }
}

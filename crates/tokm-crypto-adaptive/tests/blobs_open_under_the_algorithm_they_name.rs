//! A keyring opens blobs and files sealed under the other algorithm, because the reader uses
//! the algorithm recorded with the data, not its own.

mod common;

use common::key;
use tokm_crypto_adaptive::{Algorithm, KeyId, Keyring};

#[test]
fn a_chacha_keyring_opens_an_aes_blob_and_vice_versa() {
    let aes = Keyring::new(KeyId::new(1), key(1), Algorithm::Aes256Gcm);
    let chacha = Keyring::new(KeyId::new(1), key(1), Algorithm::ChaCha20Poly1305);
    let from_aes = aes.seal(b"aad", b"sealed by aes").expect("seal");
    let from_chacha = chacha.seal(b"aad", b"sealed by chacha").expect("seal");
    assert_eq!(from_aes[1], Algorithm::Aes256Gcm.id());
    assert_eq!(from_chacha[1], Algorithm::ChaCha20Poly1305.id());
    assert_eq!(
        chacha.open(b"aad", &from_aes).expect("open"),
        b"sealed by aes"
    );
    assert_eq!(
        aes.open(b"aad", &from_chacha).expect("open"),
        b"sealed by chacha"
    );
}

#[test]
fn a_file_reader_uses_the_algorithm_from_the_file_header() {
    let aes = Keyring::new(KeyId::new(1), key(1), Algorithm::Aes256Gcm);
    let chacha = Keyring::new(KeyId::new(1), key(1), Algorithm::ChaCha20Poly1305);
    let writer = aes.new_file_cipher().expect("cipher");
    let mut sealed = Vec::new();
    writer
        .seal_into(3, b"", b"record", &mut sealed)
        .expect("seal");
    let reader = chacha
        .file_cipher(writer.key_id(), writer.algorithm(), writer.salt())
        .expect("cipher");
    assert_eq!(reader.algorithm(), Algorithm::Aes256Gcm);
    let mut out = Vec::new();
    reader.open_into(3, b"", &sealed, &mut out).expect("open");
    assert_eq!(out, b"record");
}

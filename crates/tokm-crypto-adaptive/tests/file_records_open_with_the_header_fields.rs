//! A file written with `new_file_cipher` reads back through `file_cipher` given the key id,
//! algorithm and salt its header records, and through nothing else.

mod common;

use common::{ALGORITHMS, keyring};
use tokm_crypto_adaptive::{CryptoError, FileSalt, KeyId, TAG_LEN};

#[test]
fn records_round_trip_through_the_header_fields() {
    for algorithm in ALGORITHMS {
        let keyring = keyring(algorithm, &[1]);
        let writer = keyring.new_file_cipher().expect("cipher");
        assert_eq!(writer.key_id(), KeyId::new(1));
        assert_eq!(writer.algorithm(), algorithm);

        // Several records appended to one buffer, as a segment would hold them.
        let records: [&[u8]; 3] = [b"first", b"", b"third record"];
        let mut segment = Vec::new();
        for (counter, record) in (0_u64..).zip(records) {
            writer
                .seal_into(counter, &counter.to_le_bytes(), record, &mut segment)
                .expect("seal");
        }

        let salt = FileSalt::from_bytes(*writer.salt().as_bytes());
        let reader = keyring
            .file_cipher(KeyId::new(1), algorithm, &salt)
            .expect("cipher");
        let mut offset = 0;
        let mut out = Vec::new();
        for (counter, record) in (0_u64..).zip(records) {
            let end = offset + record.len() + TAG_LEN;
            out.clear();
            reader
                .open_into(
                    counter,
                    &counter.to_le_bytes(),
                    &segment[offset..end],
                    &mut out,
                )
                .expect("open");
            assert_eq!(out, record);
            offset = end;
        }
        assert_eq!(offset, segment.len());
    }
}

#[test]
fn another_salt_does_not_open_the_records() {
    for algorithm in ALGORITHMS {
        let keyring = keyring(algorithm, &[1]);
        let writer = keyring.new_file_cipher().expect("cipher");
        let mut sealed = Vec::new();
        writer
            .seal_into(0, b"", b"record", &mut sealed)
            .expect("seal");
        let mut salt = *writer.salt().as_bytes();
        salt[31] ^= 1;
        let reader = keyring
            .file_cipher(KeyId::new(1), algorithm, &FileSalt::from_bytes(salt))
            .expect("cipher");
        let error = reader.open_into(0, b"", &sealed, &mut Vec::new()).err();
        assert!(matches!(error, Some(CryptoError::AuthenticationFailed)));
    }
}

#[test]
fn an_unknown_key_id_is_named_in_the_error() {
    let keyring = keyring(ALGORITHMS[0], &[1]);
    let salt = FileSalt::random().expect("random source");
    let error = keyring
        .file_cipher(KeyId::new(77), ALGORITHMS[0], &salt)
        .err();
    assert_eq!(error.as_ref().map(|e| e.code()), Some("TM-CRYP-4041"));
    assert!(error.is_some_and(|e| e.to_string().contains("77")));
}

#[test]
fn every_new_file_gets_a_fresh_salt() {
    let keyring = keyring(ALGORITHMS[0], &[1]);
    let first = keyring.new_file_cipher().expect("cipher");
    let second = keyring.new_file_cipher().expect("cipher");
    assert_ne!(first.salt(), second.salt());
}

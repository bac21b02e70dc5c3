//! `Keyring::from_file`: several keys with comments, the last one active; a file others can
//! read, a malformed line, a repeated id or no key at all is a typed error that names the
//! path and line but never echoes key material.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokm_crypto_adaptive::{Algorithm, CryptoError, Key, KeyId, Keyring};

fn write(dir: &Path, contents: &str, mode: u32) -> PathBuf {
    let path = dir.join("keyring");
    fs::write(&path, contents).expect("write keyring file");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

fn hex(byte: &str) -> String {
    byte.repeat(32)
}

#[test]
fn keys_load_with_comments_and_the_last_listed_is_active() {
    let dir = tempfile::tempdir().expect("temp dir");
    let contents = format!(
        "# tokm keyring\n\n3 {}\r\n  # retired soon\n1\t{}\n",
        hex("33"),
        hex("11")
    );
    let keyring = Keyring::from_file(&write(dir.path(), &contents, 0o600), Algorithm::detect())
        .expect("well formed");
    assert_eq!(keyring.key_ids(), [KeyId::new(1), KeyId::new(3)]);
    assert_eq!(keyring.active_key_id(), KeyId::new(1));
    // Key 3 really holds the bytes of its line: a blob sealed by a one-key keyring opens.
    let only_3 = Keyring::new(
        KeyId::new(3),
        Key::from_bytes(&[0x33; 32]).expect("key"),
        Algorithm::detect(),
    );
    let blob = only_3.seal(b"", b"hello").expect("seal");
    assert_eq!(keyring.open(b"", &blob).expect("open"), b"hello");
}

#[test]
fn a_keyring_file_others_can_read_is_refused_without_echoing_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key_hex = hex("4f");
    for mode in [0o644, 0o640, 0o604] {
        let path = write(dir.path(), &format!("1 {key_hex}\n"), mode);
        let error = Keyring::from_file(&path, Algorithm::detect()).expect_err("refused");
        assert!(
            matches!(&error, CryptoError::KeyFilePermissions { mode: found, .. } if *found == mode),
            "{error:?}"
        );
        assert_eq!(error.code(), "TM-CRYP-4031");
        let text = format!("{error} {error:?}");
        assert!(!text.contains(&key_hex[..16]), "{text}");
    }
}

#[test]
fn malformed_repeated_or_empty_files_name_the_line_but_not_its_contents() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = hex("5a");
    let cases = [
        (format!("1 {secret}\n2 {}\n", &secret[..60]), 2),
        (format!("1 {secret}\n# x\n1 {secret}\n"), 3),
        (format!("key1 {secret}\n"), 1),
        (format!("1 {secret} 2\n"), 1),
        ("# only comments\n\n".to_owned(), 0),
        (String::new(), 0),
    ];
    for (contents, line) in cases {
        let path = write(dir.path(), &contents, 0o600);
        let error = Keyring::from_file(&path, Algorithm::detect()).expect_err("malformed");
        assert!(
            matches!(&error, CryptoError::KeyringFileFormat { line: found, .. } if *found == line),
            "{contents:?}: {error:?}"
        );
        assert_eq!(error.code(), "TM-CRYP-4005");
        let text = format!("{error} {error:?}");
        assert!(!text.contains(&secret[..16]), "{text}");
        assert!(text.contains("keyring"), "{text}");
    }
}

#[test]
fn a_file_over_64_kib_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let contents = format!("# {}\n1 {}\n", "x".repeat(64 * 1024), hex("11"));
    let error = Keyring::from_file(&write(dir.path(), &contents, 0o600), Algorithm::detect())
        .expect_err("too large");
    assert!(
        matches!(error, CryptoError::KeyringFileFormat { line: 0, .. }),
        "{error:?}"
    );
}

#[test]
fn a_missing_keyring_file_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent");
    let error = Keyring::from_file(&path, Algorithm::detect()).expect_err("missing");
    assert_eq!(error.code(), "TM-CRYP-5001");
    assert!(error.to_string().contains("absent"), "{error}");
}

//! A key file is loaded only when group and others have no access to it.
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{ALGORITHMS, key, key_bytes};
use tokm_crypto_adaptive::{CryptoError, Key, KeyId, Keyring};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_key_file(path: &Path, contents: &[u8], mode: u32) {
    fs::write(path, contents).expect("write key file");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Whether `loaded` is the same key as `expected`: what one seals, the other opens.
fn same_key(loaded: Key, expected: Key) -> bool {
    let sealer = Keyring::new(KeyId::new(1), loaded, ALGORITHMS[0]);
    let opener = Keyring::new(KeyId::new(1), expected, ALGORITHMS[0]);
    let blob = sealer.seal(b"", b"probe").expect("seal");
    opener.open(b"", &blob).is_ok()
}

#[test]
fn mode_0644_is_refused_naming_path_and_mode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tokm.key");
    write_key_file(&path, hex(&key_bytes(5)).as_bytes(), 0o644);

    let error = Key::from_file(&path).err();
    assert!(matches!(
        &error,
        Some(CryptoError::KeyFilePermissions { path: p, mode: 0o644 }) if p == &path
    ));
    let error = error.expect("refused");
    assert_eq!(error.code(), "TM-CRYP-4031");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("0644"), "{message}");
}

#[test]
fn any_group_or_other_bit_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tokm.key");
    for mode in [0o640, 0o604, 0o610, 0o601, 0o660] {
        write_key_file(&path, &key_bytes(5), mode);
        let code = Key::from_file(&path).err().map(|e| e.code());
        assert_eq!(code, Some("TM-CRYP-4031"), "mode {mode:o}");
    }
}

#[test]
fn mode_0600_is_accepted_as_hex_or_raw() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tokm.key");
    let hex_line = format!("{}\n", hex(&key_bytes(5)));
    for contents in [hex_line.as_bytes(), &key_bytes(5)[..]] {
        write_key_file(&path, contents, 0o600);
        let loaded = Key::from_file(&path).expect("0600 is accepted");
        assert!(same_key(loaded, key(5)));
    }
}

#[test]
fn mode_0400_is_accepted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tokm.key");
    write_key_file(&path, &key_bytes(6), 0o400);
    assert!(same_key(Key::from_file(&path).expect("0400"), key(6)));
}

#[test]
fn malformed_contents_are_refused_without_echoing_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tokm.key");
    let secretish = "ab".repeat(40);
    write_key_file(&path, secretish.as_bytes(), 0o600);
    let error = Key::from_file(&path).expect_err("80 hex digits are refused");
    assert_eq!(error.code(), "TM-CRYP-4002");
    assert!(!error.to_string().contains("abab"));
    assert!(!format!("{error:?}").contains("abab"));
}

#[test]
fn a_missing_file_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.key");
    let error = Key::from_file(&path).expect_err("missing file");
    assert_eq!(error.code(), "TM-CRYP-5001");
    assert!(error.to_string().contains("absent.key"));
}

//! An encrypted directory is read with the key from `TOKM_KEY_HEX` or a 0600 `--key-file`;
//! without a key or with a wrong one, the tool refuses (exit 3) instead of reporting damage.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};

const KEY_BYTE: u8 = 0x11;

#[test]
fn encrypted_directories_need_the_right_key() {
    let keyring = Keyring::new(
        KeyId::new(1),
        Key::from_bytes(&[KEY_BYTE; 32]).unwrap(),
        Algorithm::detect(),
    );
    let data = common::build_with(&[3, 1], &[0], Some(Arc::new(keyring)));
    let dir = data.path().to_str().unwrap();

    let right_hex = "11".repeat(32);
    let verified = common::tokm_with_key_hex(&["verify", dir, "--json"], &right_hex);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}",
        common::stderr(&verified)
    );
    assert_eq!(common::stdout_json(&verified)["wal"]["records_decoded"], 4);

    let dumped = common::tokm_with_key_hex(&["dump", "snapshot", dir], &right_hex);
    assert_eq!(dumped.status.code(), Some(0), "{}", common::stderr(&dumped));
    assert_eq!(common::stdout_json_lines(&dumped).len(), 3);

    let key_path = data.path().join("key");
    std::fs::write(&key_path, [KEY_BYTE; 32]).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let from_file = common::tokm(&["dump", "wal", dir, "--key-file", key_path.to_str().unwrap()]);
    assert_eq!(
        from_file.status.code(),
        Some(0),
        "{}",
        common::stderr(&from_file)
    );
    assert_eq!(common::stdout_json_lines(&from_file).len(), 4);

    let wrong_hex = "22".repeat(32);
    let wrong = common::tokm_with_key_hex(&["verify", dir], &wrong_hex);
    assert_eq!(wrong.status.code(), Some(3), "{}", common::stderr(&wrong));
    assert!(!common::stderr(&wrong).contains(&wrong_hex));

    let keyless = common::tokm(&["dump", "wal", dir]);
    assert_eq!(
        keyless.status.code(),
        Some(3),
        "{}",
        common::stderr(&keyless)
    );
}

//! A wrong or missing key is a key problem, not damage: `tokm snapshot`, `tokm recover` and
//! `tokm dump snapshot` exit 3 naming the key id the files need, and the directory stays
//! byte-identical (no snapshot renamed aside), so the right key still opens everything.
mod common;

use std::sync::Arc;

use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};

#[test]
fn wrong_or_missing_keys_exit_3_name_the_key_id_and_rename_nothing() {
    let keyring = Keyring::new(
        KeyId::new(1),
        Key::from_bytes(&[0x11; 32]).unwrap(),
        Algorithm::detect(),
    );
    let data = common::build_with(&[3, 2], &[0], Some(Arc::new(keyring)));
    let dir = data.path().to_str().unwrap();
    let before = common::tree(data.path());
    let wrong_bytes = "22".repeat(32);

    let attempts = [
        common::tokm_with_key_hex(&["snapshot", dir], &wrong_bytes),
        common::tokm_with_key_hex(&["snapshot", dir, "--key-id", "7"], &"11".repeat(32)),
        common::tokm(&["snapshot", dir]),
        common::tokm_with_key_hex(&["recover", dir, "--policy", "skip"], &wrong_bytes),
        common::tokm_with_key_hex(&["dump", "snapshot", dir], &wrong_bytes),
        common::tokm(&["dump", "snapshot", dir]),
    ];
    for output in &attempts {
        let stderr = common::stderr(output);
        assert_eq!(output.status.code(), Some(3), "{stderr}");
        assert!(
            stderr.contains("key id 1"),
            "names the key the files need: {stderr}"
        );
        assert!(!stderr.contains(&wrong_bytes), "never echoes key bytes");
        assert_eq!(common::tree(data.path()), before, "{stderr}");
    }

    let right = common::tokm_with_key_hex(&["snapshot", dir, "--json"], &"11".repeat(32));
    assert_eq!(right.status.code(), Some(0), "{}", common::stderr(&right));
    assert_eq!(common::stdout_json(&right)["session_count"], 5);
}

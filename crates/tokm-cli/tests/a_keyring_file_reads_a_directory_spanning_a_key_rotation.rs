//! A directory whose files span an online key rotation (a snapshot and segments under key 1,
//! segments under key 2): `--keyring FILE` holding both keys lets `verify`, `inspect` and
//! `dump` read all of it; a keyring lacking key 1 is a key problem naming key 1 (exit 3); a
//! keyring file others can read is refused (exit 3) without echoing a key, changing nothing.
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};
use tokm_domain::testkit::SessionFactory;
use tokm_domain::{Clock, ManualClock, SessionRepository, SystemClock};
use tokm_engine::{Engine, EngineConfig};

const KEY_1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const KEY_2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// Six sessions and a snapshot under key 1, then `rotate_key` to key 2 and four more.
fn rotated_dir() -> tempfile::TempDir {
    let temp = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(temp.path());
    let keyring = Keyring::new(
        KeyId::new(1),
        Key::from_bytes(&[0x11; 32]).unwrap(),
        Algorithm::detect(),
    );
    config.keyring = Some(Arc::new(keyring));
    config.clock = Arc::new(ManualClock::new(SystemClock.now()));
    config.snapshots.interval = None;
    config.snapshots.wal_bytes = None;
    let mut factory = SessionFactory::new(21, SystemClock.now());
    let (engine, _) = Engine::open(config).unwrap();
    for index in 0..6 {
        engine
            .create(factory.next_for(&SessionFactory::user(index % 3)))
            .unwrap();
    }
    engine.snapshot_now().unwrap();
    engine
        .rotate_key(KeyId::new(2), Key::from_bytes(&[0x22; 32]).unwrap())
        .unwrap();
    for index in 0..4 {
        engine
            .create(factory.next_for(&SessionFactory::user(index % 3)))
            .unwrap();
    }
    assert_eq!(engine.status().keys.in_use, [KeyId::new(1), KeyId::new(2)]);
    engine.close().unwrap();
    temp
}

fn keyring_file(dir: &Path, name: &str, contents: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, contents).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn verify_inspect_and_dump_read_both_keys_from_one_keyring_file() {
    let data = rotated_dir();
    let dir = data.path().to_str().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let both = keyring_file(
        keys.path(),
        "both",
        &format!("# rotated online\n1 {KEY_1}\n\n# active\n2 {KEY_2}\n"),
        0o600,
    );
    let both = both.to_str().unwrap();
    let before = common::tree(data.path());

    let verify = common::tokm(&["verify", dir, "--keyring", both, "--json"]);
    assert_eq!(verify.status.code(), Some(0), "{}", common::stderr(&verify));
    let report = common::stdout_json(&verify);
    assert_eq!(report["ok"], true);
    assert_eq!(report["wal"]["records_decoded"], 10);

    let inspect = common::tokm(&["inspect", dir, "--keyring", both, "--json"]);
    assert_eq!(
        inspect.status.code(),
        Some(0),
        "{}",
        common::stderr(&inspect)
    );

    let dump = common::tokm(&["dump", "wal", dir, "--keyring", both]);
    assert_eq!(dump.status.code(), Some(0), "{}", common::stderr(&dump));
    assert_eq!(String::from_utf8_lossy(&dump.stdout).lines().count(), 10);
    let snapshot = common::tokm(&["dump", "snapshot", dir, "--keyring", both]);
    assert_eq!(
        snapshot.status.code(),
        Some(0),
        "{}",
        common::stderr(&snapshot)
    );
    assert_eq!(String::from_utf8_lossy(&snapshot.stdout).lines().count(), 6);

    // One key alone cannot read the mixed directory: a key error naming the other key.
    for (key_hex, key_id, missing) in [(KEY_2, "2", "key id 1"), (KEY_1, "1", "key id 2")] {
        let output = common::tokm_with_key_hex(&["verify", dir, "--key-id", key_id], key_hex);
        let stderr = common::stderr(&output);
        assert_eq!(output.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains(missing), "{stderr}");
    }
    assert_eq!(common::tree(data.path()), before, "reading changed nothing");
}

#[test]
fn a_keyring_file_others_can_read_is_refused_without_echoing_a_key() {
    let data = rotated_dir();
    let dir = data.path().to_str().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let before = common::tree(data.path());
    let open = keyring_file(
        keys.path(),
        "open",
        &format!("1 {KEY_1}\n2 {KEY_2}\n"),
        0o644,
    );
    for command in [&["verify"][..], &["inspect"], &["dump", "wal"]] {
        let args: Vec<&str> = command
            .iter()
            .copied()
            .chain([dir, "--keyring", open.to_str().unwrap()])
            .collect();
        let output = common::tokm(&args);
        let stderr = common::stderr(&output);
        assert_eq!(output.status.code(), Some(3), "{command:?}: {stderr}");
        assert!(stderr.contains("0644"), "{stderr}");
        assert!(stderr.contains("TM-CRYP-4031"), "{stderr}");
        assert!(!stderr.contains(&KEY_1[..16]) && !stderr.contains(&KEY_2[..16]));
        assert!(output.stdout.is_empty());
    }
    assert_eq!(common::tree(data.path()), before);
}

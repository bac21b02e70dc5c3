//! Exit codes: a locked directory, a missing or non-data directory and a wrong key file mode exit 3;
//! a bad `TOKM_KEY_HEX` or an unknown flag exits 2. Each prints its `TM-` code on stderr.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use tokm_engine::{Engine, EngineConfig};

#[test]
fn refusals_exit_with_code_3_and_usage_errors_with_2() {
    let data = common::build(&[1], &[]);
    let dir = data.path().to_str().unwrap();

    let (engine, _report) = Engine::open(EngineConfig::new(data.path())).unwrap();
    let locked = common::tokm(&["snapshot", dir]);
    assert_eq!(locked.status.code(), Some(3));
    assert!(common::stderr(&locked).contains("TM-ENG-4231"));
    engine.close().unwrap();

    let missing = common::tokm(&["inspect", "/nonexistent/tokm/dir"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(common::stderr(&missing).contains("TM-CLI-4041"));

    let empty = tempfile::tempdir().unwrap();
    let not_data = common::tokm(&["compact", empty.path().to_str().unwrap()]);
    assert_eq!(not_data.status.code(), Some(3));
    assert!(common::stderr(&not_data).contains("TM-CLI-4042"));
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);

    let key_path = data.path().join("key");
    std::fs::write(&key_path, [9_u8; 32]).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = common::tokm(&["inspect", dir, "--key-file", key_path.to_str().unwrap()]);
    assert_eq!(loose.status.code(), Some(3));
    assert!(common::stderr(&loose).contains("TM-CRYP-4031"));

    let secret = "g".repeat(64);
    let bad_hex = Command::new(env!("CARGO_BIN_EXE_tokm"))
        .args(["inspect", dir])
        .env("TOKM_KEY_HEX", &secret)
        .output()
        .unwrap();
    assert_eq!(bad_hex.status.code(), Some(2));
    assert!(!common::stderr(&bad_hex).contains(&secret));

    let unknown = common::tokm(&["inspect", dir, "--no-such-flag"]);
    assert_eq!(unknown.status.code(), Some(2));
}

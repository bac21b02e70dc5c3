//! Under `--policy absolute` a damaged sealed segment is refused with exit 1 and a `TM-` code.
mod common;

#[test]
fn recover_absolute_refuses_a_damaged_log() {
    let data = common::build(&[3, 1], &[]);
    common::flip_byte(&data.wal_dir().join(&data.segments()[0]), 150);
    let dir = data.path().to_str().unwrap();

    let dry = common::tokm(&["recover", dir, "--policy", "absolute", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(1), "{}", common::stderr(&dry));
    assert!(common::stderr(&dry).contains("TM-WAL-5201"));

    let skip = common::tokm(&["recover", dir, "--policy", "skip", "--dry-run", "--json"]);
    assert_eq!(skip.status.code(), Some(0), "{}", common::stderr(&skip));
    let report = common::stdout_json(&skip);
    assert_eq!(report["wal"]["damaged"].as_array().unwrap().len(), 1);
}

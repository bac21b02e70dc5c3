//! A log record whose frame is intact but whose payload is not a mutation (written here by a
//! bare `tokm_wal::Wal`) is damage: `verify` names its LSN and the `TM-PROTO-` code, and
//! `dump wal` prints it as `undecodable` among the others and exits 1.
mod common;

use tokm_wal::{Durability, Wal, WalOptions};

#[test]
fn records_that_do_not_decode_are_damage() {
    let data = common::build(&[2], &[]);
    let (wal, _report) = Wal::open(&data.wal_dir(), WalOptions::default()).unwrap();
    let lsn = wal
        .append(b"not a protobuf mutation \xff\xff\xff", Durability::Sync)
        .unwrap();
    wal.close().unwrap();
    let dir = data.path().to_str().unwrap();

    let verify = common::tokm(&["verify", dir, "--json"]);
    assert_eq!(verify.status.code(), Some(1), "{}", common::stderr(&verify));
    let report = common::stdout_json(&verify);
    let damaged = report["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{report}");
    assert_eq!(damaged[0]["lsn"], lsn.get());
    assert!(
        damaged[0]["code"]
            .as_str()
            .unwrap()
            .starts_with("TM-PROTO-")
    );

    let dump = common::tokm(&["dump", "wal", dir]);
    assert_eq!(dump.status.code(), Some(1), "{}", common::stderr(&dump));
    let lines = common::stdout_json_lines(&dump);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["lsn"], lsn.get());
    assert!(
        lines[2]["undecodable"]
            .as_str()
            .unwrap()
            .starts_with("TM-PROTO-")
    );
}

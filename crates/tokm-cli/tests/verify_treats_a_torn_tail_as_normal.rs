//! A torn tail in the newest segment is what a crash leaves: `verify` reports its bytes but
//! exits 0, since recovery truncates it without losing an acknowledged record.
mod common;

use std::fs::OpenOptions;
use std::io::Write;

#[test]
fn verify_treats_a_torn_tail_as_normal() {
    let data = common::build(&[2, 2], &[]);
    let newest = data.wal_dir().join(data.segments().last().unwrap());
    OpenOptions::new()
        .append(true)
        .open(&newest)
        .unwrap()
        .write_all(&[0; 9])
        .unwrap();

    let output = common::tokm(&["verify", data.path().to_str().unwrap(), "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let report = common::stdout_json(&output);
    assert_eq!(report["ok"], true);
    assert_eq!(report["wal"]["truncated_bytes"], 9);
    assert_eq!(report["wal"]["records_decoded"], 4);
}

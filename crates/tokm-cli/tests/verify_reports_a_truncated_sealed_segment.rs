//! A sealed segment cut short in the middle of a record is damage (not a torn tail, which only
//! the newest segment can have): `verify` names it and exits 1.
mod common;

use std::fs::OpenOptions;

#[test]
fn verify_reports_a_truncated_sealed_segment() {
    let data = common::build(&[3, 2], &[]);
    let sealed = data.segments()[0].clone();
    let path = data.wal_dir().join(&sealed);
    let len_bytes = std::fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len_bytes - 5)
        .unwrap();

    let output = common::tokm(&["verify", data.path().to_str().unwrap(), "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));
    let report = common::stdout_json(&output);
    let damaged = report["damaged"].as_array().unwrap();
    assert!(
        damaged
            .iter()
            .any(|damage| damage["file"] == format!("wal/{sealed}")),
        "{report}"
    );
}

//! `tokm verify` on an intact directory: exit 0 and every record and snapshot checked.
mod common;

#[test]
fn verify_passes_on_an_intact_directory() {
    let data = common::build(&[3, 2], &[0, 1]);
    let output = common::tokm(&["verify", data.path().to_str().unwrap(), "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let report = common::stdout_json(&output);
    assert_eq!(report["ok"], true);
    assert_eq!(report["wal"]["records_decoded"], 5);
    let snapshots = report["snapshots"].as_array().unwrap();
    assert_eq!(snapshots.len(), 2);
    assert!(snapshots.iter().all(|snapshot| snapshot["ok"] == true));
    assert!(common::stderr(&output).contains("verify: snapshot 2/2"));
}

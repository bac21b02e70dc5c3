//! `tokm verify` reads every snapshot block: a flipped byte is damage (exit 1), and the file
//! keeps its name (the snapshot store's own loader would rename it to `*.broken`).
mod common;

#[test]
fn verify_reports_a_damaged_snapshot_without_renaming_it() {
    let data = common::build(&[4], &[0]);
    let name = data.snapshots()[0].clone();
    let path = data.snapshot_dir().join(&name);
    let middle = usize::try_from(std::fs::metadata(&path).unwrap().len() / 2).unwrap();
    common::flip_byte(&path, middle);

    let output = common::tokm(&["verify", data.path().to_str().unwrap(), "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));
    let report = common::stdout_json(&output);
    let damaged = report["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!(damaged[0]["file"], format!("snapshots/{name}"));
    assert!(
        damaged[0]["code"]
            .as_str()
            .unwrap()
            .starts_with("TM-SNAP-52")
    );
    assert_eq!(data.snapshots(), vec![name]);
}

//! `dump snapshot` skips a damaged newest snapshot like the engine would (older one dumped,
//! exit 1, the damage named on stderr) but does not rename it; `inspect` marks a snapshot with
//! a damaged header invalid.
mod common;

#[test]
fn dump_snapshot_falls_back_past_a_damaged_one_and_leaves_it_in_place() {
    let data = common::build(&[2, 3], &[0, 1]);
    let dir = data.path().to_str().unwrap();
    let names = data.snapshots();
    let newest = data.snapshot_dir().join(&names[1]);
    let middle = usize::try_from(std::fs::metadata(&newest).unwrap().len() / 2).unwrap();
    common::flip_byte(&newest, middle);

    let dump = common::tokm(&["dump", "snapshot", dir]);
    assert_eq!(dump.status.code(), Some(1), "{}", common::stderr(&dump));
    let lines = common::stdout_json_lines(&dump);
    assert_eq!(lines.len(), 2);
    assert!(
        lines
            .iter()
            .all(|line| line["snapshot"] == names[0].as_str())
    );
    assert!(common::stderr(&dump).contains(&names[1]));
    assert_eq!(data.snapshots(), names);

    // Byte 8 is inside the checksummed header.
    common::flip_byte(&newest, 8);
    let inspect = common::tokm(&["inspect", dir, "--json"]);
    assert_eq!(
        inspect.status.code(),
        Some(0),
        "{}",
        common::stderr(&inspect)
    );
    let report = common::stdout_json(&inspect);
    let newest_entry = &report["snapshots"][0];
    assert_eq!(newest_entry["file"], names[1].as_str());
    assert_eq!(newest_entry["valid"], false);
    assert!(
        newest_entry["error_code"]
            .as_str()
            .unwrap()
            .starts_with("TM-SNAP-")
    );
}

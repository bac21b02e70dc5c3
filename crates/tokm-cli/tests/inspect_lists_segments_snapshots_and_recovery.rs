//! `tokm inspect` reports segments (LSN range, records, size, sealed or open, key id),
//! snapshots and the dry-run recovery without changing anything.
mod common;

use std::sync::Arc;

use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};

#[test]
fn inspect_lists_segments_snapshots_and_recovery() {
    // Run 0 writes LSNs 1..=3 and snapshots; run 1 writes 4..=5 in a second segment.
    let data = common::build(&[3, 2], &[0]);
    let dir = data.path().to_str().unwrap();
    let before = common::tree(data.path());

    let output = common::tokm(&["inspect", dir, "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let report = common::stdout_json(&output);

    let segments = report["segments"].as_array().unwrap();
    let names = data.segments();
    assert_eq!(segments.len(), 2);
    let expected = [(1, 3, 3, true), (4, 5, 2, false)];
    for ((segment, name), (first, last, records, sealed)) in
        segments.iter().zip(&names).zip(expected)
    {
        assert_eq!(segment["name"], name.as_str());
        assert_eq!(
            (
                &segment["first_lsn"],
                &segment["last_lsn"],
                &segment["records_count"],
                &segment["sealed"],
            ),
            (&first.into(), &last.into(), &records.into(), &sealed.into()),
            "{segment}"
        );
        let size_bytes = std::fs::metadata(data.wal_dir().join(name)).unwrap().len();
        assert_eq!(segment["size_bytes"], size_bytes);
        assert_eq!(segment["key_id"], serde_json::Value::Null);
        assert_eq!(segment["damaged_ranges_count"], 0);
    }

    let snapshots = report["snapshots"].as_array().unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0]["valid"], true);
    assert_eq!(snapshots[0]["session_count"], 3);
    assert_eq!(snapshots[0]["covered_lsn"], 3);

    // What opening would do: start from the snapshot (LSN 3) and replay LSNs 4 and 5.
    let recovery = &report["recovery"];
    assert_eq!(recovery["dry_run"], true);
    assert_eq!(recovery["snapshot"], data.snapshots()[0].as_str());
    assert_eq!(recovery["replayed_count"], 2);
    assert_eq!(recovery["sessions"], 5);
    assert_eq!(recovery["wal"]["records_count"], 5);
    assert_eq!(recovery["wal"]["last_lsn"], 5);
    assert_eq!(recovery["wal"]["damaged"].as_array().unwrap().len(), 0);

    let text = common::tokm(&["inspect", dir]);
    assert_eq!(text.status.code(), Some(0), "{}", common::stderr(&text));
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("segments (2):"), "{text}");
    assert!(
        text.contains(&format!(
            "  {}  LSN 1..=3  3 records  {} bytes  sealed  plaintext\n",
            names[0], segments[0]["size_bytes"]
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  {}  LSN 4..=5  2 records  {} bytes  open  plaintext\n",
            names[1], segments[1]["size_bytes"]
        )),
        "{text}"
    );

    assert_eq!(
        common::tree(data.path()),
        before,
        "inspect changed the directory"
    );
}

#[test]
fn inspect_names_the_key_id_of_an_encrypted_directory() {
    let keyring = Keyring::new(
        KeyId::new(5),
        Key::from_bytes(&[0x33; 32]).unwrap(),
        Algorithm::detect(),
    );
    let data = common::build_with(&[2, 1], &[], Some(Arc::new(keyring)));
    let dir = data.path().to_str().unwrap();
    let key_hex = "33".repeat(32);

    let output = common::tokm_with_key_hex(&["inspect", dir, "--json", "--key-id", "5"], &key_hex);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let report = common::stdout_json(&output);
    let segments = report["segments"].as_array().unwrap();
    assert_eq!(segments.len(), 2);
    assert!(segments.iter().all(|segment| segment["key_id"] == 5));
    assert_eq!(segments[1]["last_lsn"], 3);

    let text = common::tokm_with_key_hex(&["inspect", dir, "--key-id", "5"], &key_hex);
    assert_eq!(text.status.code(), Some(0), "{}", common::stderr(&text));
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("  sealed  key 5\n"), "{text}");
    assert!(text.contains("  open  key 5\n"), "{text}");
}

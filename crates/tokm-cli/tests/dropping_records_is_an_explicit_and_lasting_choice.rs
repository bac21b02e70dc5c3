//! Records after the snapshot that the log cannot read stop every default open: `tokm snapshot`
//! refuses (exit 1, `TM-ENG-5204`) and changes nothing. `recover --dry-run` shows what each
//! policy would drop, changing nothing; `recover --policy skip` or `point-in-time` then drops
//! exactly that, and the next default open agrees with the choice instead of refusing again.
mod common;

use std::fs;
use std::path::Path;

/// Copies a flat data directory (`wal/`, `snapshots/`).
fn copy_dir(from: &Path, to: &Path) {
    for sub in ["wal", "snapshots"] {
        fs::create_dir_all(to.join(sub)).unwrap();
        for entry in fs::read_dir(from.join(sub)).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), to.join(sub).join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn skip_and_point_in_time_drop_only_by_choice_and_the_choice_lasts() {
    // Run 1: 3 sessions and a snapshot; run 2: 4 more (LSN 4..=7); run 3: 1 more.
    let data = common::build(&[3, 4, 1], &[0]);
    let second = data.wal_dir().join(&data.segments()[1]);
    // A byte inside the second record of run 2 (LSN 5): header 120 bytes, then frames.
    let frame_len = usize::from(u16::from_le_bytes(
        fs::read(&second).unwrap()[120..122].try_into().unwrap(),
    )) + 20;
    common::flip_byte(&second, 120 + frame_len + 30);
    let before = common::tree(data.path());
    let dir = data.path().to_str().unwrap();

    let refused = common::tokm(&["snapshot", dir]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "{}",
        common::stderr(&refused)
    );
    assert!(common::stderr(&refused).contains("TM-ENG-5204"));
    assert_eq!(
        common::tree(data.path()),
        before,
        "a refused open changed nothing"
    );

    for (policy, sessions, dropped) in [("skip", 7, 1), ("point-in-time", 4, 4)] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(data.path(), copy.path());
        let copy_dir = copy.path().to_str().unwrap();
        let copied = common::tree(copy.path());

        let dry = common::tokm(&[
            "recover",
            copy_dir,
            "--policy",
            policy,
            "--dry-run",
            "--json",
        ]);
        assert_eq!(dry.status.code(), Some(0), "{}", common::stderr(&dry));
        let report = common::stdout_json(&dry);
        assert_eq!(report["sessions"], sessions, "{policy}");
        let loss = &report["wal"]["loss"];
        assert_eq!(loss["first_lsn"], 5, "{policy}");
        assert_eq!(loss["unreadable_count"], 1, "{policy}");
        assert_eq!(loss["intact_after_count"], 3, "{policy}: LSNs 6, 7 and 8");
        assert_eq!(
            common::tree(copy.path()),
            copied,
            "{policy}: the dry run changed nothing"
        );

        let applied = common::tokm(&["recover", copy_dir, "--policy", policy, "--json"]);
        assert_eq!(
            applied.status.code(),
            Some(0),
            "{}",
            common::stderr(&applied)
        );
        let report = common::stdout_json(&applied);
        assert_eq!(report["sessions"], sessions, "{policy}");
        assert!(report["snapshot_after_recovery"].is_string(), "{policy}");
        assert_eq!(8 - sessions, dropped, "{policy}");

        let default_open = common::tokm(&["snapshot", copy_dir, "--json"]);
        assert_eq!(
            default_open.status.code(),
            Some(0),
            "{policy}: {}",
            common::stderr(&default_open)
        );
        assert_eq!(
            common::stdout_json(&default_open)["session_count"],
            sessions,
            "{policy}"
        );
    }
}

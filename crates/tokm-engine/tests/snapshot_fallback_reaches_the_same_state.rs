//! Damage to the newest snapshot, anywhere, costs nothing: recovery falls back to the older
//! snapshot, replays a longer stretch of the log (which compaction kept), and reaches the
//! identical state.

mod common;

use std::fs;
use std::path::Path;

use tokm_engine::Engine;

/// Copies a data directory (flat `wal/` and `snapshots/` subdirectories).
fn copy_dir(from: &Path, to: &Path) {
    for sub in ["wal", "snapshots"] {
        fs::create_dir_all(to.join(sub)).expect("mkdir");
        for entry in fs::read_dir(from.join(sub)).expect("list") {
            let entry = entry.expect("entry");
            fs::copy(entry.path(), to.join(sub).join(entry.file_name())).expect("copy");
        }
    }
}

fn newest_snapshot(dir: &Path) -> std::path::PathBuf {
    let mut names: Vec<_> = fs::read_dir(dir.join("snapshots"))
        .expect("list")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "snap"))
        .collect();
    names.sort();
    names.pop().expect("a snapshot")
}

#[test]
fn damage_at_every_4k_boundary_and_truncation_falls_back_with_no_loss() {
    let origin = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let (engine, _) = Engine::open(common::config(origin.path(), &clock)).expect("open");
    common::mixed_workload(&engine, &clock, 11, 150, 20);
    let older = engine.snapshot_now().expect("older snapshot");
    common::mixed_workload(&engine, &clock, 12, 150, 20);
    let newer = engine.snapshot_now().expect("newer snapshot");
    assert!(newer.covered_lsn > older.covered_lsn);
    common::mixed_workload(&engine, &clock, 13, 30, 20);
    let expected = common::state(&engine);
    engine.close().expect("close");

    let size = fs::metadata(newest_snapshot(origin.path()))
        .expect("meta")
        .len();
    let mut damages: Vec<(&str, u64)> = (0..size).step_by(4096).map(|at| ("flip", at)).collect();
    damages.extend([
        ("truncate", size / 2),
        ("truncate", size - 1),
        ("truncate", 0),
    ]);
    for (kind, at) in damages {
        let copy = tempfile::tempdir().expect("temp dir");
        copy_dir(origin.path(), copy.path());
        let target = newest_snapshot(copy.path());
        let mut bytes = fs::read(&target).expect("read");
        match kind {
            "flip" => bytes[usize::try_from(at).expect("small")] ^= 0x40,
            _ => bytes.truncate(usize::try_from(at).expect("small")),
        }
        fs::write(&target, &bytes).expect("damage");

        let (engine, report) = Engine::open(common::config(copy.path(), &clock))
            .unwrap_or_else(|err| panic!("{kind} at {at}: {err}"));
        assert_eq!(
            report.snapshot.as_ref().map(|meta| meta.covered_lsn),
            Some(older.covered_lsn),
            "{kind} at {at}: the older snapshot is used"
        );
        assert_eq!(report.snapshot_fallbacks.len(), 1, "{kind} at {at}");
        assert_eq!(common::state(&engine), expected, "{kind} at {at}");
    }
}

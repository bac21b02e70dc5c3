//! When the only snapshot fails its checks, the first open falls back to the log from LSN 1 if
//! the log still holds it (same state, the snapshot set aside), and refuses, changing nothing,
//! when compaction already removed the records before the snapshot.

mod common;

use std::fs;
use std::path::Path;

use tokm_domain::testkit::SessionFactory;
use tokm_domain::{Clock, SessionRepository};
use tokm_engine::Engine;

fn only_snapshot(dir: &Path) -> std::path::PathBuf {
    let snapshots: Vec<_> = fs::read_dir(dir.join("snapshots"))
        .expect("snapshots")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "snap"))
        .collect();
    assert_eq!(snapshots.len(), 1);
    snapshots[0].clone()
}

fn flip_middle(path: &Path) {
    let mut bytes = fs::read(path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    fs::write(path, bytes).expect("write");
}

#[test]
fn the_log_from_lsn_1_rebuilds_the_state_at_once_and_a_compacted_log_refuses() {
    for compacted in [false, true] {
        let temp = tempfile::tempdir().expect("temp dir");
        let clock = common::clock();
        let mut factory = SessionFactory::new(4, clock.now());
        let configure = || {
            let mut config = common::config(temp.path(), &clock);
            config.snapshots.retention_count = 1;
            config.snapshots.wal_segments_kept = 1;
            config
        };
        for run in 0..3 {
            let (engine, _) = Engine::open(configure()).expect("open");
            for index in 0..20 {
                engine
                    .create(factory.next_for(&SessionFactory::user(index % 4)))
                    .expect("create");
            }
            if compacted && run == 2 {
                // Retention keeps one snapshot and compaction one segment: the log now
                // starts after LSN 1.
                engine.snapshot_now().expect("snapshot");
            }
            if !compacted && run == 0 {
                engine.snapshot_now().expect("snapshot");
            }
            engine.close().expect("close");
        }
        let (engine, _) = Engine::open(configure()).expect("open");
        let expected = common::state(&engine);
        engine.close().expect("close");
        flip_middle(&only_snapshot(temp.path()));
        let before = common::tree(temp.path());

        match Engine::open(configure()) {
            Ok((engine, report)) => {
                assert!(!compacted, "a compacted log cannot rebuild the state");
                assert_eq!(report.snapshot, None, "the fallback starts empty");
                assert_eq!(report.snapshot_fallbacks.len(), 1);
                assert_eq!(common::state(&engine), expected);
            }
            Err(error) => {
                assert!(compacted, "{error}");
                assert_eq!(error.code(), "TM-ENG-5204", "{error}");
                assert!(error.to_string().contains("after setting aside"), "{error}");
                assert_eq!(
                    common::tree(temp.path()),
                    before,
                    "the refusal changed nothing"
                );
            }
        }
    }
}

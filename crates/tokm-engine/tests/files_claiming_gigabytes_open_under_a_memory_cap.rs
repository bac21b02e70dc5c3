//! No input file can make recovery allocate much more than it reads: a sealed segment that goes
//! on as 640 MiB of sparse zeros, and a newest snapshot file of a sparse gigabyte whose
//! trailer claims the largest footer, open under a 512 MiB address-space cap (the test re-runs
//! itself as a child under `ulimit -v`) with every acknowledged write, the damage reported and
//! the snapshot fallen back from. Before recovery streamed the log and bounded every length,
//! the segment alone was read into memory whole, which the cap does not allow.

mod common;

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::process::Command;

use tokm_domain::testkit::SessionFactory;
use tokm_domain::{Clock, SessionRepository};
use tokm_engine::Engine;

/// Set in the child: the data directory to open.
const CHILD_DIR: &str = "TOKM_TEST_CAPPED_OPEN_DIR";
/// Set in the child: how many sessions the open must find.
const CHILD_SESSIONS: &str = "TOKM_TEST_CAPPED_OPEN_SESSIONS";
/// The address-space cap of the child, in KiB (ulimit -v): 512 MiB.
const CAP_KIB: u64 = 1 << 19;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

#[test]
fn sparse_files_claiming_gigabytes_open_under_a_512_mib_cap() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        open_as_child(Path::new(&dir));
        return;
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let mut factory = SessionFactory::new(9, clock.now());
    for run in 0..2 {
        let (engine, _) = Engine::open(common::config(temp.path(), &clock)).expect("open");
        for index in 0..50 {
            engine
                .create(factory.next_for(&SessionFactory::user(index % 5)))
                .expect("create");
        }
        if run == 0 {
            engine.snapshot_now().expect("older snapshot");
        }
        engine.close().expect("close");
    }
    let mut segments: Vec<_> = fs::read_dir(temp.path().join("wal"))
        .expect("wal")
        .map(|entry| entry.expect("entry").path())
        .collect();
    segments.sort();
    let sealed = OpenOptions::new()
        .write(true)
        .open(&segments[0])
        .expect("sealed segment");
    sealed.set_len(640 * MIB).expect("sparse zeros");
    // A "newer" snapshot: our magic at both ends, a footer length no reader may trust.
    let snapshot = temp
        .path()
        .join("snapshots")
        .join("09999999999999999999-00000001700000000000.snap");
    let mut head = b"TOKMSNP\x01\x01\x00\x00\x00".to_vec();
    head.extend_from_slice(&u32::MAX.to_le_bytes());
    fs::write(&snapshot, &head).expect("snapshot head");
    let file = OpenOptions::new()
        .write(true)
        .open(&snapshot)
        .expect("open");
    file.set_len(GIB).expect("sparse");
    let mut trailer = u32::MAX.to_le_bytes().to_vec();
    trailer.extend_from_slice(&[0xAB; 16]);
    trailer.extend_from_slice(b"TOKMSNP\x01");
    std::os::unix::fs::FileExt::write_all_at(&file, &trailer, GIB - 28).expect("trailer");

    let exe = std::env::current_exe().expect("test binary");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {CAP_KIB} && exec \"$0\" \"$@\""))
        .arg(&exe)
        .args([
            "--exact",
            "sparse_files_claiming_gigabytes_open_under_a_512_mib_cap",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, temp.path())
        .env(CHILD_SESSIONS, "100")
        .env("MALLOC_ARENA_MAX", "2")
        .status()
        .expect("run the capped child");
    assert!(status.success(), "the capped open failed: {status}");
}

fn open_as_child(dir: &Path) {
    let expected: usize = std::env::var(CHILD_SESSIONS)
        .expect("count")
        .parse()
        .expect("a number");
    let clock = common::clock();
    let (engine, report) = Engine::open(common::config(dir, &clock)).expect("opens under the cap");
    assert_eq!(report.session_count, expected);
    assert_eq!(
        report.wal.loss, None,
        "zeros after the last record lose nothing"
    );
    assert_eq!(report.wal.damaged.len(), 1);
    assert_eq!(
        report.snapshot_fallbacks.len(),
        1,
        "the crafted snapshot is set aside"
    );
    assert_eq!(common::state(&engine).len(), expected);
    engine.close().expect("close");
}

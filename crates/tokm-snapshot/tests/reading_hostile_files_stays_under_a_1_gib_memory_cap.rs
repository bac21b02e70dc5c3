//! Reading a crafted file with valid checksums whose contents claim gigabytes stays within
//! 1 GiB of address space and ends in a typed error: a 64 MiB block index of empty handles
//! (with and without the footer's index checksum, as older files lack it) and a 64 MiB block of
//! empty sessions. Before the reader checked entries one by one, the first used 2.4 GB and the
//! second tried to allocate 8.8 GB and aborted.
//!
//! The test re-runs this test binary as a child under `ulimit -v` (one child per case, named in
//! an environment variable); the child writes the file to a real temp directory through
//! `FsStorage`, reads it with `SnapshotReader`, asserts the outcome and prints a marker. The
//! parent asserts the child exited normally with status 0 and printed the marker: a child
//! killed by a signal or aborted on a failed allocation fails the test.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use tokm_proto::pb;
use tokm_snapshot::{LoadError, SnapshotReader};
use tokm_storage::{FsStorage, Storage};

use common::craft;

/// Names the case a child runs; unset in the parent.
const CASE_VAR: &str = "TOKM_SNAPSHOT_MEMORY_CAP_CASE";
/// This test's name, so the child runs only it.
const TEST_NAME: &str = "reading_hostile_files_stays_under_a_1_gib_memory_cap";
/// The child's address-space limit, in KiB (`ulimit -v` units): 1 GiB.
const ADDRESS_SPACE_KIB: u64 = 1024 * 1024;
/// Printed by a child that finished its case, so a child that ran no test cannot pass.
const DONE_MARKER: &str = "memory-cap case done:";

const CASES: [&str; 3] = [
    "index_of_empty_handles",
    "index_of_empty_handles_without_index_checksum",
    "block_of_empty_sessions",
];

const MIB: usize = 1024 * 1024;

#[test]
fn reading_hostile_files_stays_under_a_1_gib_memory_cap() {
    if let Ok(case) = std::env::var(CASE_VAR) {
        run_case(&case);
        println!("{DONE_MARKER} {case}");
        return;
    }
    let exe = std::env::current_exe().expect("the test binary");
    for case in CASES {
        let output = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -v {ADDRESS_SPACE_KIB}; exec \"$0\" \"$@\""))
            .arg(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CASE_VAR, case)
            .output()
            .expect("run the child");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(0),
            "case {case}: the child ended with {} (no code: killed by a signal, e.g. an abort \
             on a failed allocation)\nstdout:\n{stdout}\nstderr:\n{stderr}",
            output.status
        );
        assert!(
            stdout.contains(&format!("{DONE_MARKER} {case}")),
            "case {case}: the child did not run it\nstdout:\n{stdout}"
        );
    }
}

/// In the child: writes the crafted file, reads it, asserts the outcome.
fn run_case(case: &str) {
    let temp = tempfile::tempdir().expect("temp dir");
    let header = match case {
        "block_of_empty_sessions" => craft::plain_header(1024),
        _ => craft::plain_header(1),
    };
    let name = craft::file_name(&header);
    let bytes = match case {
        "index_of_empty_handles" => index_of_empty_handles(&header, true),
        "index_of_empty_handles_without_index_checksum" => index_of_empty_handles(&header, false),
        "block_of_empty_sessions" => block_of_empty_sessions(&header),
        other => panic!("unknown case {other}"),
    };
    write_file(temp.path(), &name, &bytes);
    // Only the reader's own allocations count from here.
    drop(bytes);

    let reader = SnapshotReader::new(temp.path(), Arc::new(FsStorage), None);
    let loaded = reader.load(&name).map(|snapshot| snapshot.meta);
    let verified = reader.verify(&name);
    if case == "block_of_empty_sessions" {
        // Structure and checksums are valid; only decoding finds the sessions empty.
        assert!(verified.is_ok(), "{verified:?}");
        assert_eq!(code(loaded), "TM-SNAP-5205");
    } else {
        assert_eq!(code(verified), "TM-SNAP-5202");
        assert_eq!(code(loaded), "TM-SNAP-5202");
    }
}

fn code(result: Result<tokm_snapshot::SnapshotMeta, LoadError>) -> &'static str {
    match result {
        Ok(meta) => panic!("a hostile file loaded: {meta:?}"),
        Err(error) => error.code(),
    }
}

/// No blocks; a 64 MiB index of 2-byte empty `BlockHandle`s.
fn index_of_empty_handles(header: &pb::SnapshotHeader, with_index_checksum: bool) -> Vec<u8> {
    let head = craft::head(header);
    let index = [0x0A, 0x00].repeat(32 * MIB);
    craft::assemble(&head, &[], &index, header.session_count, |footer| {
        if !with_index_checksum {
            footer.index_checksum.clear();
        }
    })
}

/// One 64 MiB block of 2-byte empty `Session`s under a valid block checksum.
fn block_of_empty_sessions(header: &pb::SnapshotHeader) -> Vec<u8> {
    let head = craft::head(header);
    let blocks = vec![[0x0A, 0x00].repeat(32 * MIB)];
    let counts = [header.session_count as u32];
    let index = craft::index(craft::handles(head.len(), &blocks, &counts));
    craft::assemble(&head, &blocks, &index, header.session_count, |_| {})
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) {
    let file = FsStorage.create_new(&dir.join(name)).expect("create");
    file.write_all_at(0, bytes).expect("write");
}

//! `tokm verify` reads any file within a small constant of its size: a sealed segment that goes
//! on as 640 MiB of sparse zeros and a snapshot of a sparse gigabyte with a hostile trailer are
//! reported as damage (exit 1) by a `tokm` capped at 512 MiB of address space, where reading
//! the segment whole (as recovery once did) cannot even be allocated.
mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::process::Command;

const MIB: u64 = 1 << 20;

#[test]
fn verify_reports_gigabyte_claims_as_damage_under_a_512_mib_cap() {
    let data = common::build(&[3, 2], &[0]);
    let sealed = data.wal_dir().join(&data.segments()[0]);
    let records_end = std::fs::metadata(&sealed).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&sealed)
        .unwrap()
        .set_len(640 * MIB)
        .unwrap();
    let snapshot = data
        .snapshot_dir()
        .join("09999999999999999999-00000001700000000000.snap");
    let file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&snapshot)
        .unwrap();
    file.write_all_at(b"TOKMSNP\x01\x01\x00\x00\x00\xff\xff\xff\xff", 0)
        .unwrap();
    file.set_len(1024 * MIB).unwrap();
    let mut trailer = u32::MAX.to_le_bytes().to_vec();
    trailer.extend_from_slice(&[0xAB; 16]);
    trailer.extend_from_slice(b"TOKMSNP\x01");
    file.write_all_at(&trailer, 1024 * MIB - 28).unwrap();

    let output = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 524288 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_tokm"))
        .args(["verify", data.path().to_str().unwrap(), "--json"])
        .env_remove("TOKM_KEY_HEX")
        .env("MALLOC_ARENA_MAX", "2")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", common::stderr(&output));
    let report = common::stdout_json(&output);
    let damaged = report["damaged"].as_array().unwrap();
    assert!(
        damaged.iter().any(|damage| damage["offset"] == records_end
            && damage["file"].as_str().unwrap().starts_with("wal/")),
        "{damaged:?}"
    );
    assert!(
        damaged.iter().any(|damage| damage["file"]
            .as_str()
            .unwrap()
            .starts_with("snapshots/09999")),
        "{damaged:?}"
    );
}

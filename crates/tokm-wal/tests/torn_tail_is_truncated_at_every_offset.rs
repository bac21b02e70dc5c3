//! A crash that cuts the newest segment anywhere inside its last three records, or leaves
//! zeros after them, loses exactly the incomplete records, under every recovery mode.
mod common;

use common::{open_and_replay, payload, segment_names, sim_dir, sim_options, with_mode};
use tokm_storage::Lsn;
use tokm_storage::testkit::SimStorage;
use tokm_wal::{Durability, RecoveryMode, Wal};

const RECORDS: usize = 6;

/// The newest segment's bytes and the end offset of each record in it.
fn written_segment() -> (String, Vec<u8>, Vec<usize>) {
    let sim = SimStorage::new();
    let dir = sim_dir();
    let (wal, _) = Wal::open(&dir, sim_options(&sim)).expect("open");
    for index in 0..RECORDS {
        wal.append(&payload(index), Durability::Sync)
            .expect("append");
    }
    wal.close().expect("close");
    let name = segment_names(&sim, &dir).pop().expect("a segment");
    let bytes = sim.file_bytes(&dir.join(&name)).expect("bytes");
    // Frames are 20 bytes of header plus the payload; walk back from the end.
    let mut ends = Vec::new();
    let mut end = bytes.len();
    for index in (0..RECORDS).rev() {
        ends.push(end);
        end -= 20 + payload(index).len();
    }
    ends.reverse();
    (name, bytes, ends)
}

fn recover(name: &str, image: &[u8], mode: RecoveryMode) -> (usize, u64, Lsn) {
    let sim = SimStorage::new();
    let dir = sim_dir();
    sim.put_file(&dir.join(name), image);
    let (wal, report, records) =
        open_and_replay(&dir, with_mode(sim_options(&sim), mode)).expect("open after crash");
    assert!(
        report.damaged.is_empty(),
        "a torn tail is not damage: {report:?}"
    );
    for (index, (lsn, bytes)) in records.iter().enumerate() {
        assert_eq!(
            (*lsn, bytes.as_slice()),
            (Lsn::new(index as u64 + 1), payload(index).as_slice())
        );
    }
    let next = wal
        .append(b"after crash", Durability::Sync)
        .expect("append after recovery");
    (records.len(), report.truncated_bytes, next)
}

#[test]
fn torn_tail_is_truncated_at_every_offset() {
    let (name, bytes, ends) = written_segment();
    let first_cut = ends[RECORDS - 4];
    for mode in [
        RecoveryMode::PointInTime,
        RecoveryMode::Absolute,
        RecoveryMode::SkipDamaged,
    ] {
        for cut in first_cut..bytes.len() {
            let complete = ends.iter().filter(|&&end| end <= cut).count();
            let (recovered, truncated, next) = recover(&name, &bytes[..cut], mode);
            assert_eq!(recovered, complete, "{mode:?} cut at {cut}");
            assert_eq!(
                truncated,
                (cut - ends[complete - 1]) as u64,
                "{mode:?} cut at {cut}"
            );
            assert_eq!(next, Lsn::new(complete as u64 + 1), "{mode:?} cut at {cut}");
        }
    }
}

#[test]
fn zero_filled_tail_is_truncated() {
    let (name, bytes, _) = written_segment();
    let mut image = bytes.clone();
    image.extend_from_slice(&[0u8; 4096]);
    let (recovered, truncated, next) = recover(&name, &image, RecoveryMode::PointInTime);
    assert_eq!(
        (recovered, truncated, next),
        (RECORDS, 4096, Lsn::new(RECORDS as u64 + 1))
    );
}

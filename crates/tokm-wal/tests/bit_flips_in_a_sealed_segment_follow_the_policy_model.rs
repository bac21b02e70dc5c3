//! A single flipped bit anywhere in a sealed segment is found, and each recovery mode does what
//! the model below says: stop before it, refuse, or skip exactly the damaged record.
mod common;

use std::path::Path;

use common::{open_and_replay, payload, segment_names, sim_dir, sim_options, with_mode};
use tokm_wal::testkit::SimStorage;
use tokm_wal::{Durability, RecoveryMode, Wal};

const SEALED_RECORDS: usize = 4;
const TOTAL_RECORDS: usize = 6;
/// Segment header size (see FORMAT.md).
const HEADER_LEN: usize = 120;

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Refused {
        code: &'static str,
    },
    /// Recovered LSNs, then the LSN a new append gets.
    Recovered {
        lsns: Vec<u64>,
        next: u64,
    },
}

/// Where the flipped byte lies.
enum Region {
    Magic,
    Version,
    Header,
    Frame { index: usize, offset: usize },
}

fn model(region: &Region, mode: RecoveryMode) -> Outcome {
    let all: Vec<u64> = (1..=TOTAL_RECORDS as u64).collect();
    let next = TOTAL_RECORDS as u64 + 1;
    match (region, mode) {
        (Region::Magic, _) => Outcome::Refused {
            code: "TM-WAL-4151",
        },
        (Region::Version, _) => Outcome::Refused {
            code: "TM-WAL-4152",
        },
        (Region::Header | Region::Frame { .. }, RecoveryMode::Absolute) => Outcome::Refused {
            code: "TM-WAL-5201",
        },
        (Region::Header, RecoveryMode::PointInTime) => Outcome::Recovered { lsns: vec![], next },
        (Region::Header, _) => Outcome::Recovered {
            lsns: all[SEALED_RECORDS..].to_vec(),
            next,
        },
        (Region::Frame { index, .. }, RecoveryMode::PointInTime) => Outcome::Recovered {
            lsns: all[..*index].to_vec(),
            next,
        },
        (Region::Frame { index, .. }, _) => Outcome::Recovered {
            lsns: all
                .iter()
                .copied()
                .filter(|&lsn| lsn != *index as u64 + 1)
                .collect(),
            next,
        },
    }
}

fn region_of(byte: usize) -> Region {
    match byte {
        0..8 => Region::Magic,
        8 => Region::Version,
        9..HEADER_LEN => Region::Header,
        _ => {
            let mut start = HEADER_LEN;
            for index in 0..SEALED_RECORDS {
                let end = start + 20 + payload(index).len();
                if byte < end {
                    return Region::Frame {
                        index,
                        offset: start,
                    };
                }
                start = end;
            }
            unreachable!("byte {byte} beyond the sealed segment")
        }
    }
}

fn observe(files: &[(String, Vec<u8>)], mode: RecoveryMode) -> (Outcome, Vec<u64>) {
    let sim = SimStorage::new();
    let dir = sim_dir();
    for (name, bytes) in files {
        sim.put_file(&dir.join(name), bytes);
    }
    match open_and_replay(&dir, with_mode(sim_options(&sim), mode)) {
        Err(error) => {
            // Refusal must leave every file as it was.
            for (name, bytes) in files {
                assert_eq!(
                    sim.file_bytes(&dir.join(name)).as_ref(),
                    Some(bytes),
                    "{name} changed"
                );
            }
            (Outcome::Refused { code: error.code() }, Vec::new())
        }
        Ok((wal, report, records)) => {
            let next = wal.append(b"next", Durability::Sync).expect("append").get();
            let offsets = report.damaged.iter().map(|range| range.offset).collect();
            let lsns = records.iter().map(|(lsn, _)| lsn.get()).collect();
            for (lsn, bytes) in &records {
                assert_eq!(bytes, &payload(lsn.get() as usize - 1));
            }
            (Outcome::Recovered { lsns, next }, offsets)
        }
    }
}

fn written_log() -> Vec<(String, Vec<u8>)> {
    let sim = SimStorage::new();
    let dir = sim_dir();
    let options = sim_options(&sim).with_segment_records_max(SEALED_RECORDS as u64);
    let (wal, _) = Wal::open(&dir, options).expect("open");
    for index in 0..TOTAL_RECORDS {
        wal.append(&payload(index), Durability::Sync)
            .expect("append");
    }
    wal.close().expect("close");
    let names = segment_names(&sim, &dir);
    assert_eq!(names.len(), 2);
    names
        .into_iter()
        .map(|name| {
            let bytes = sim.file_bytes(&Path::new(&dir).join(&name)).expect("bytes");
            (name, bytes)
        })
        .collect()
}

#[test]
fn bit_flips_in_a_sealed_segment_follow_the_policy_model() {
    let files = written_log();
    let sealed_len = files[0].1.len();
    for byte in 0..sealed_len {
        let mut damaged = files.clone();
        damaged[0].1[byte] ^= 1 << (byte % 8);
        let region = region_of(byte);
        for mode in [
            RecoveryMode::PointInTime,
            RecoveryMode::Absolute,
            RecoveryMode::SkipDamaged,
        ] {
            let (outcome, damage_offsets) = observe(&damaged, mode);
            assert_eq!(outcome, model(&region, mode), "byte {byte}, {mode:?}");
            if let (Region::Frame { offset, .. }, Outcome::Recovered { .. }) = (&region, &outcome) {
                assert_eq!(
                    damage_offsets.first(),
                    Some(&(*offset as u64)),
                    "byte {byte}, {mode:?}"
                );
            }
        }
    }
    // The undamaged log recovers in full.
    let (outcome, _) = observe(&files, RecoveryMode::Absolute);
    let all = (1..=TOTAL_RECORDS as u64).collect();
    assert_eq!(
        outcome,
        Outcome::Recovered {
            lsns: all,
            next: TOTAL_RECORDS as u64 + 1
        }
    );
}

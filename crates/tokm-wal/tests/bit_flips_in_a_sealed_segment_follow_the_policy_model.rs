//! A single flipped bit anywhere in a sealed segment is found, and each recovery mode does what
//! the model below says: open with nothing lost (the damage is reported), refuse and change
//! nothing, stop before the first lost record, or skip exactly the lost records.
mod common;

use std::path::Path;

use common::{open_and_replay, payload, segment_names, sim_dir, sim_options, with_mode};
use tokm_storage::testkit::SimStorage;
use tokm_wal::{Durability, RecoveryMode, Wal, WalOptions};

const SEALED_RECORDS: usize = 4;
const TOTAL_RECORDS: usize = 6;
/// Segment header size (see FORMAT.md).
const HEADER_LEN: usize = 120;
const MODES: [RecoveryMode; 4] = [
    RecoveryMode::RefuseLoss,
    RecoveryMode::PointInTime,
    RecoveryMode::SkipDamaged,
    RecoveryMode::Absolute,
];

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

/// What a flipped byte costs.
#[derive(Debug)]
enum Region {
    /// A header byte whose loss the header survives: the magic or version (the checksum
    /// verifies once they are restored), or a field nothing depends on (salvaged).
    HeaderUsable,
    /// A header byte the records cannot be read without (the first LSN, a cipher field of a
    /// plaintext segment): the sealed segment's records are lost.
    HeaderUnreadable,
    /// A byte of the frame of record `index` (LSN `index + 1`): that record is lost.
    Frame { index: usize, offset: usize },
}

fn model(region: &Region, mode: RecoveryMode) -> Outcome {
    let all: Vec<u64> = (1..=TOTAL_RECORDS as u64).collect();
    let next = TOTAL_RECORDS as u64 + 1;
    let refused = |code| Outcome::Refused { code };
    let recovered = |lsns: Vec<u64>| Outcome::Recovered { lsns, next };
    let lost: Vec<u64> = match region {
        Region::HeaderUsable => Vec::new(),
        Region::HeaderUnreadable => all[..SEALED_RECORDS].to_vec(),
        Region::Frame { index, .. } => vec![*index as u64 + 1],
    };
    match mode {
        RecoveryMode::Absolute => refused("TM-WAL-5201"),
        _ if lost.is_empty() => recovered(all),
        RecoveryMode::RefuseLoss => refused("TM-WAL-5203"),
        RecoveryMode::PointInTime => recovered(
            all.iter()
                .copied()
                .take_while(|lsn| *lsn < lost[0])
                .collect(),
        ),
        _ => recovered(
            all.iter()
                .copied()
                .filter(|lsn| !lost.contains(lsn))
                .collect(),
        ),
    }
}

fn region_of(byte: usize) -> Region {
    match byte {
        // Magic, version; segment id, created at, node id; the checksum itself.
        0..9 | 16..24 | 40..56 | 104..120 => Region::HeaderUsable,
        // Cipher, reserved, key id; first LSN; previous LSN (0 here: any flip makes it reach
        // the first LSN); salt and key check of a plaintext segment.
        9..16 | 24..40 | 56..104 => Region::HeaderUnreadable,
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
    let options = WalOptions {
        segment_records_max: SEALED_RECORDS as u64,
        ..sim_options(&sim)
    };
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
        for mode in MODES {
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

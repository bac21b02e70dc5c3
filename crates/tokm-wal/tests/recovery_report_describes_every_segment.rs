//! The recovery report lists every segment file in log order with the LSN range and records
//! recovery keeps from it, its size, whether it is sealed, its key id, and its damage.
mod common;

use std::sync::Arc;

use common::{payload, segment_names, sim_dir, sim_options, with_mode};
use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};
use tokm_storage::Lsn;
use tokm_storage::testkit::SimStorage;
use tokm_wal::{Durability, RecoveryMode, SegmentId, SegmentInfo, Wal, WalOptions, WalReader};

/// Segment header size (see FORMAT.md).
const HEADER_LEN: usize = 120;
/// Frame header size (see FORMAT.md).
const FRAME_HEADER_LEN: usize = 20;

/// Writes 7 records, 3 per segment, through `options`: segments hold LSNs 1..=3, 4..=6 and 7.
fn write_three_segments(options: WalOptions) {
    let (wal, _) = Wal::open(
        &sim_dir(),
        WalOptions {
            segment_records_max: 3,
            ..options
        },
    )
    .expect("open");
    for index in 0..7 {
        wal.append(&payload(index), Durability::Sync)
            .expect("append");
    }
    wal.close().expect("close");
}

fn file_len(sim: &SimStorage, name: &str) -> u64 {
    sim.file_bytes(&sim_dir().join(name)).expect("bytes").len() as u64
}

/// `(first LSN, last LSN, records, sealed, segment id)` of one segment, as raw numbers.
type Shape = (u64, Option<u64>, u64, bool, Option<u64>);

fn shape(segments: &[SegmentInfo]) -> Vec<Shape> {
    segments
        .iter()
        .map(|info| {
            (
                info.first_lsn.get(),
                info.last_lsn.map(Lsn::get),
                info.records_count,
                info.sealed,
                info.segment_id.map(SegmentId::get),
            )
        })
        .collect()
}

/// Checks the report of the intact log `write_three_segments` left, whose files were `names`.
fn assert_intact_three_segments(sim: &SimStorage, names: &[String], segments: &[SegmentInfo]) {
    assert_eq!(
        shape(segments),
        vec![
            (1, Some(3), 3, true, Some(1)),
            (4, Some(6), 3, true, Some(2)),
            (7, Some(7), 1, false, Some(3)),
        ]
    );
    let listed: Vec<&str> = segments.iter().map(|info| info.file.as_str()).collect();
    assert_eq!(listed, names);
    for info in segments {
        assert_eq!(info.size_bytes, file_len(sim, &info.file), "{}", info.file);
        assert_eq!(info.damaged_ranges_count, 0, "{}", info.file);
    }
}

#[test]
fn a_plaintext_log_lists_three_segments_without_a_key_id() {
    let sim = SimStorage::new();
    write_three_segments(sim_options(&sim));
    let (_reader, report) = WalReader::open(&sim_dir(), &sim_options(&sim)).expect("reader");
    let names = segment_names(&sim, &sim_dir());
    assert_intact_three_segments(&sim, &names, &report.segments);
    assert!(report.segments.iter().all(|info| info.key_id.is_none()));
}

#[test]
fn an_encrypted_log_lists_the_key_id_of_every_segment() {
    let sim = SimStorage::new();
    let key = Key::from_bytes(&[3; 32]).expect("32-byte key");
    let keys = Arc::new(Keyring::new(KeyId::new(42), key, Algorithm::detect()));
    write_three_segments(WalOptions {
        keyring: Some(Arc::clone(&keys)),
        ..sim_options(&sim)
    });
    let options = WalOptions {
        keyring: Some(keys),
        ..sim_options(&sim)
    };
    let (_reader, report) = WalReader::open(&sim_dir(), &options).expect("reader");
    let names = segment_names(&sim, &sim_dir());
    assert_intact_three_segments(&sim, &names, &report.segments);
    assert!(
        report
            .segments
            .iter()
            .all(|info| info.key_id == Some(KeyId::new(42)))
    );
}

#[test]
fn opening_the_log_reports_the_segments_as_found_before_the_new_one() {
    let sim = SimStorage::new();
    write_three_segments(sim_options(&sim));
    let names = segment_names(&sim, &sim_dir());
    let (wal, report) = Wal::open(&sim_dir(), sim_options(&sim)).expect("reopen");
    assert_intact_three_segments(&sim, &names, &report.segments);
    // The segment open() started is not in the report; it is what seals the last one found.
    let after_open = segment_names(&sim, &sim_dir());
    assert_eq!(after_open.len(), 4);
    assert_eq!(after_open[..3], names[..]);
    wal.close().expect("close");
}

/// Flips a byte inside the payload of the first record of the middle segment (LSN 4).
fn damage_middle_segment(sim: &SimStorage) -> String {
    let name = segment_names(sim, &sim_dir())[1].clone();
    let path = sim_dir().join(&name);
    let mut bytes = sim.file_bytes(&path).expect("bytes");
    bytes[HEADER_LEN + FRAME_HEADER_LEN] ^= 0x40;
    sim.put_file(&path, &bytes);
    name
}

#[test]
fn damage_is_counted_on_its_segment_and_the_kept_range_shrinks() {
    let sim = SimStorage::new();
    write_three_segments(sim_options(&sim));
    let damaged_name = damage_middle_segment(&sim);

    let skip = with_mode(sim_options(&sim), RecoveryMode::SkipDamaged);
    let (_reader, report) = WalReader::open(&sim_dir(), &skip).expect("skip reader");
    assert_eq!(
        shape(&report.segments),
        vec![
            (1, Some(3), 3, true, Some(1)),
            (4, Some(6), 2, true, Some(2)),
            (7, Some(7), 1, false, Some(3)),
        ]
    );
    let counts: Vec<usize> = report
        .segments
        .iter()
        .map(|info| info.damaged_ranges_count)
        .collect();
    assert_eq!(counts, vec![0, 1, 0]);
    assert_eq!(report.segments[1].file, damaged_name);

    // Point-in-time stops before the damage: nothing is kept from LSN 4 on.
    let point_in_time = with_mode(sim_options(&sim), RecoveryMode::PointInTime);
    let (_reader, report) = WalReader::open(&sim_dir(), &point_in_time).expect("reader");
    assert_eq!(
        shape(&report.segments),
        vec![
            (1, Some(3), 3, true, Some(1)),
            (4, None, 0, true, Some(2)),
            (7, None, 0, false, Some(3)),
        ]
    );
    assert_eq!(report.last_lsn, Lsn::new(3));
}

#[test]
fn a_segment_with_an_unreadable_header_has_no_segment_id_or_key_id() {
    let sim = SimStorage::new();
    write_three_segments(sim_options(&sim));
    let name = segment_names(&sim, &sim_dir())[2].clone();
    let path = sim_dir().join(&name);
    let mut bytes = sim.file_bytes(&path).expect("bytes");
    // A byte of the first LSN: the header no longer matches the file name (nor its checksum).
    bytes[24] ^= 0x01;
    sim.put_file(&path, &bytes);

    let skip = with_mode(sim_options(&sim), RecoveryMode::SkipDamaged);
    let (_reader, report) = WalReader::open(&sim_dir(), &skip).expect("reader");
    let newest = &report.segments[2];
    assert_eq!(
        (newest.segment_id, newest.key_id, newest.last_lsn),
        (None, None, None)
    );
    assert_eq!((newest.records_count, newest.damaged_ranges_count), (0, 1));
    assert_eq!(newest.first_lsn, Lsn::new(7));
    assert!(!newest.sealed);
}

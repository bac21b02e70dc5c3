//! The damage matrix: a directory the engine made (four log segments, an older and a newer
//! snapshot, revocations after the newer one), one flipped bit at positions across every kind
//! of file (segment headers, frame headers, payloads, checksums; snapshot prelude, blocks,
//! index, footer, trailer), opened under every policy. Each outcome must be the documented
//! rule, checked against a model of every acknowledged operation by LSN:
//! - damage that loses nothing (below the snapshot, a header that survives it, the older
//!   snapshot) opens with the identical state under every policy but `Absolute`;
//! - a loss above the snapshot refuses under `RefuseLoss` and `Absolute` and leaves the
//!   directory byte-identical; `PointInTime` keeps exactly the prefix before it, `SkipDamaged`
//!   everything but the lost records, and a later default open agrees with either;
//! - a damaged newer snapshot falls back to the older one with the identical state;
//! - damage to the newest segment's last record reads as a torn tail (the documented limit of
//!   telling the two apart) and only that record is dropped.
//!
//! Run with `--nocapture` to print how many cases fell in each outcome class.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::recorded::{
    Recorded, assert_revoked_stay_revoked, disk_from, disk_image, four_runs_two_snapshots,
    model_state, revoked_tokens,
};
use tokm_wal::RecoveryMode;

const MODES: [RecoveryMode; 4] = [
    RecoveryMode::RefuseLoss,
    RecoveryMode::PointInTime,
    RecoveryMode::SkipDamaged,
    RecoveryMode::Absolute,
];
const HEADER_LEN: usize = 120;
const FRAME_HEADER_LEN: usize = 20;

/// What a flipped bit costs, by the format's rules (not by asking the engine).
#[derive(Clone, Debug)]
enum Effect {
    /// Damage that loses no record: reported, nothing else.
    Harmless,
    /// These records cannot be read.
    Lost(Vec<u64>),
    /// The newest segment's last record: indistinguishable from a torn write.
    TornLast(u64),
    /// The newest snapshot fails its checks.
    NewestSnapshotDamaged,
    /// The older snapshot, never read while the newer one is usable.
    OlderSnapshotDamaged,
}

/// How an open turned out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    IdenticalState,
    RefusedDirectoryUnchanged,
    PointInTimePrefix,
    SkippedLostRecords,
    FallbackIdenticalState,
    TornTailDropsLastRecord,
}

/// One damaged file of the matrix: its kind, its path, and the flips to try in it.
struct Target<'a> {
    kind: &'static str,
    path: &'a PathBuf,
    cases: Vec<(usize, Effect)>,
}

/// A frame of a segment file: where it starts, how long it is, its LSN.
struct Frame {
    offset: usize,
    len: usize,
    lsn: u64,
}

fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut offset = HEADER_LEN;
    while offset + FRAME_HEADER_LEN <= bytes.len() {
        let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"));
        let lsn = u64::from_le_bytes(bytes[offset + 4..offset + 12].try_into().expect("8 bytes"));
        let total = FRAME_HEADER_LEN + len as usize;
        frames.push(Frame {
            offset,
            len: total,
            lsn,
        });
        offset += total;
    }
    assert_eq!(offset, bytes.len(), "a clean segment is frames to the end");
    frames
}

/// Whether a segment header with byte `position` flipped by `bit` still lets the records be
/// read: the magic and version are restored, fields nothing depends on are salvaged; the
/// cipher fields (zero in a plaintext segment), the reserved bytes and the first LSN are not.
fn header_survives(header: &[u8], position: usize, bit: u8) -> bool {
    match position {
        0..9 | 16..24 | 40..56 | 104..120 => true,
        32..40 => {
            // The previous LSN: salvaged while it stays below the first LSN.
            let mut previous = header[32..40].to_vec();
            previous[position - 32] ^= bit;
            let previous = u64::from_le_bytes(previous.try_into().expect("8 bytes"));
            let first = u64::from_le_bytes(header[24..32].try_into().expect("8 bytes"));
            previous < first
        }
        _ => false,
    }
}

/// Positions to flip in a segment, and what each costs.
fn segment_cases(bytes: &[u8], newest: bool) -> Vec<(usize, Effect)> {
    let frames = frames(bytes);
    let all: Vec<u64> = frames.iter().map(|frame| frame.lsn).collect();
    let mut cases: Vec<(usize, Effect)> =
        [0, 3, 7, 8, 9, 11, 13, 17, 26, 33, 44, 50, 60, 95, 105, 119]
            .into_iter()
            .map(|position| {
                let effect = if header_survives(bytes, position, bit(position)) {
                    Effect::Harmless
                } else {
                    Effect::Lost(all.clone())
                };
                (position, effect)
            })
            .collect();
    let last = frames.len() - 1;
    for index in [0, 1, last / 2, last - 1, last] {
        let frame = &frames[index];
        let effect = if newest && index == last {
            Effect::TornLast(frame.lsn)
        } else {
            Effect::Lost(vec![frame.lsn])
        };
        for within in [0, 5, 13, FRAME_HEADER_LEN, frame.len / 2, frame.len - 1] {
            cases.push((frame.offset + within, effect.clone()));
        }
    }
    cases
}

/// Positions to flip in a snapshot: its fixed ends and points spread through it.
fn snapshot_cases(len: usize, effect: &Effect) -> Vec<(usize, Effect)> {
    let mut positions: Vec<usize> = vec![0, 7, 8, 12, 16, 20, 40];
    positions.extend((1..16).map(|step| step * len / 16));
    positions.extend([len - 40, len - 28, len - 24, len - 9, len - 1]);
    positions.sort_unstable();
    positions.dedup();
    positions
        .into_iter()
        .map(|position| (position, effect.clone()))
        .collect()
}

fn bit(position: usize) -> u8 {
    1 << (position % 8)
}

/// The state an open under `mode` must reach, or `None` for a refusal.
fn expected(
    recorded: &Recorded,
    effect: &Effect,
    mode: RecoveryMode,
) -> Option<(Class, Vec<tokm_domain::Session>)> {
    let base = *recorded.snapshot_lsns.last().expect("two snapshots");
    let acked = &recorded.acked;
    let full = || recorded.full_state();
    match effect {
        Effect::NewestSnapshotDamaged => Some((Class::FallbackIdenticalState, full())),
        Effect::OlderSnapshotDamaged => Some((Class::IdenticalState, full())),
        Effect::TornLast(lsn) => Some((
            Class::TornTailDropsLastRecord,
            model_state(acked, |kept| kept != *lsn),
        )),
        _ if mode == RecoveryMode::Absolute => None,
        Effect::Harmless => Some((Class::IdenticalState, full())),
        Effect::Lost(lost) => {
            let above: Vec<u64> = lost.iter().copied().filter(|lsn| *lsn > base).collect();
            let Some(first) = above.first().copied() else {
                return Some((Class::IdenticalState, full()));
            };
            match mode {
                RecoveryMode::PointInTime => Some((
                    Class::PointInTimePrefix,
                    model_state(acked, |lsn| lsn < first),
                )),
                RecoveryMode::SkipDamaged => Some((
                    Class::SkippedLostRecords,
                    model_state(acked, |lsn| !above.contains(&lsn)),
                )),
                _ => None,
            }
        }
    }
}

#[test]
fn every_flipped_bit_has_the_documented_outcome_under_every_policy() {
    let recorded = four_runs_two_snapshots();
    let dirs = [recorded.wal_dir(), recorded.snapshot_dir()];
    let origin = disk_image(&recorded.sim, &dirs);
    let segments: Vec<&PathBuf> = origin
        .keys()
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .collect();
    let snapshots: Vec<&PathBuf> = origin
        .keys()
        .filter(|path| path.extension().is_some_and(|ext| ext == "snap"))
        .collect();
    assert_eq!(
        (segments.len(), snapshots.len()),
        (4, 2),
        "{:?}",
        origin.keys()
    );
    let kinds = [
        "segment wholly before both snapshots",
        "segment wholly before the newer snapshot",
        "segment straddling the newer snapshot",
        "newest segment, after the snapshot",
    ];
    let mut targets: Vec<Target<'_>> = Vec::new();
    for (index, path) in segments.iter().enumerate() {
        let cases = segment_cases(&origin[*path], index == 3);
        targets.push(Target {
            kind: kinds[index],
            path,
            cases,
        });
    }
    targets.push(Target {
        kind: "older snapshot",
        path: snapshots[0],
        cases: snapshot_cases(origin[snapshots[0]].len(), &Effect::OlderSnapshotDamaged),
    });
    targets.push(Target {
        kind: "newest snapshot",
        path: snapshots[1],
        cases: snapshot_cases(origin[snapshots[1]].len(), &Effect::NewestSnapshotDamaged),
    });

    let mut tally: BTreeMap<(&str, Class), usize> = BTreeMap::new();
    for Target { kind, path, cases } in &targets {
        for (position, effect) in cases {
            let mut damaged = origin.clone();
            let bytes = damaged.get_mut(*path).expect("file");
            bytes[*position] ^= bit(*position);
            for mode in MODES {
                let context = format!("{kind} {} byte {position}, {mode:?}", path.display());
                let class = check_one(&recorded, &damaged, &dirs, effect, mode, &context);
                *tally.entry((kind, class)).or_default() += 1;
            }
        }
    }
    for ((kind, class), count) in &tally {
        println!("{kind}: {class:?} x{count}");
    }
}

/// Opens the damaged image under `mode` and checks the outcome; returns its class.
fn check_one(
    recorded: &Recorded,
    damaged: &BTreeMap<PathBuf, Vec<u8>>,
    dirs: &[PathBuf],
    effect: &Effect,
    mode: RecoveryMode,
    context: &str,
) -> Class {
    let sim = disk_from(damaged, dirs);
    let opened = recorded.open(&sim, |config| config.recovery_mode = mode);
    let Some((class, state)) = expected(recorded, effect, mode) else {
        let error = opened
            .err()
            .unwrap_or_else(|| panic!("{context}: opened, must refuse"));
        assert!(
            ["TM-ENG-5204", "TM-ENG-5002"].contains(&error.code()),
            "{context}: {error}"
        );
        assert!(
            disk_image(&sim, dirs) == *damaged,
            "{context}: a refused open changed the directory"
        );
        return Class::RefusedDirectoryUnchanged;
    };
    let (engine, report) = opened.unwrap_or_else(|error| panic!("{context}: {error}"));
    assert_eq!(common::state(&engine), state, "{context}");
    let kept: Vec<_> = match class {
        Class::IdenticalState | Class::FallbackIdenticalState => recorded.acked.clone(),
        _ => Vec::new(),
    };
    assert_revoked_stay_revoked(&engine, &revoked_tokens(&kept, &recorded.tokens), context);
    assert_eq!(
        report.snapshot_fallbacks.len(),
        usize::from(class == Class::FallbackIdenticalState),
        "{context}"
    );
    engine.close().expect("close");
    if matches!(
        class,
        Class::PointInTimePrefix | Class::SkippedLostRecords | Class::TornTailDropsLastRecord
    ) {
        // The choice was made durable: the next default open agrees with it.
        let (engine, _) = recorded
            .open(&sim, |_| {})
            .unwrap_or_else(|error| panic!("{context}, default reopen: {error}"));
        assert_eq!(common::state(&engine), state, "{context}, default reopen");
    }
    class
}

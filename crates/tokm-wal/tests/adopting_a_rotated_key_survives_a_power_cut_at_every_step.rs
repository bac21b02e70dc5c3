//! `Wal::adopt_active_key` after `Keyring::rotate`: records appended afterwards go to a segment
//! sealed under the new key (an empty open segment is replaced, a non-empty one sealed), and a
//! power cut at any storage call of a run that rotates twice leaves a log that a keyring
//! holding every key opens under `RefuseLoss`, without damage, with a prefix of the appends
//! that includes every acknowledged record. Concurrent appenders lose nothing to a rotation.
mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::{PowerCut, PowerCutStorage, replay_all, sim_dir};
use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};
use tokm_storage::Lsn;
use tokm_storage::testkit::{CrashCut, SimStorage};
use tokm_wal::{Durability, RecoveryMode, Wal, WalOptions};

fn key(id: u32) -> Key {
    Key::from_bytes(&[u8::try_from(id).expect("small id"); 32]).expect("32 bytes")
}

/// A keyring holding keys `ids`, the last one active.
fn keyring(ids: &[u32]) -> Arc<Keyring> {
    let (active, rest) = ids.split_last().expect("a key");
    let mut keyring = Keyring::new(
        KeyId::new(*active),
        key(*active),
        Algorithm::ChaCha20Poly1305,
    );
    for id in rest {
        keyring.insert(KeyId::new(*id), key(*id)).expect("distinct");
    }
    Arc::new(keyring)
}

fn options(storage: Arc<dyn tokm_storage::Storage>, keys: Arc<Keyring>) -> WalOptions {
    WalOptions {
        storage,
        keyring: Some(keys),
        recovery_mode: RecoveryMode::RefuseLoss,
        segment_records_max: 4,
        sync_interval: Duration::from_secs(3600),
        sync_bytes_max: u64::MAX,
        ..WalOptions::default()
    }
}

fn payload(index: usize) -> Vec<u8> {
    format!("rekey-{index:03}").into_bytes()
}

/// One step of a run: an append, or a rotation to a key followed by `adopt_active_key`.
#[derive(Clone, Copy)]
enum Step {
    Append(Durability),
    Rotate(u32),
}

/// Rotates right after open (the empty segment is replaced), then with batch records still
/// pending (the switch seals them), with segments also filling up by record count.
const STEPS: [Step; 12] = {
    use Durability::{Batch as B, Sync as S};
    use Step::{Append as A, Rotate as R};
    [
        A(S),
        R(2),
        A(B),
        A(S),
        A(B),
        A(B),
        R(3),
        A(S),
        A(B),
        A(B),
        A(B),
        A(S),
    ]
};
/// A run that rotates right after open, before any record: the empty segment is replaced.
const ROTATED_FROM_THE_START: [Step; 1] = [Step::Rotate(2)];

struct Run {
    appended: usize,
    acknowledged: Lsn,
}

fn run_steps(storage: Arc<dyn tokm_storage::Storage>, steps: &[Step]) -> (Run, Option<Wal>) {
    let keys = keyring(&[1]);
    let mut run = Run {
        appended: 0,
        acknowledged: Lsn::ZERO,
    };
    let Ok((wal, _)) = Wal::open(&sim_dir(), options(storage, Arc::clone(&keys))) else {
        return (run, None);
    };
    for step in steps {
        match *step {
            Step::Append(durability) => {
                let Ok(lsn) = wal.append(&payload(run.appended), durability) else {
                    run.appended += 1; // On disk or not: either is fine.
                    return (run, Some(wal));
                };
                run.appended += 1;
                assert_eq!(lsn, Lsn::new(run.appended as u64));
                if durability == Durability::Sync {
                    run.acknowledged = lsn;
                }
            }
            Step::Rotate(id) => {
                keys.rotate(KeyId::new(id), key(id)).expect("a new id");
                if wal.adopt_active_key().is_err() {
                    return (run, Some(wal));
                }
                // The segment left behind was synced whole before the new one was created.
                run.acknowledged = wal.last_lsn();
            }
        }
    }
    if wal.sync().is_ok() {
        run.acknowledged = wal.last_lsn();
    }
    (run, Some(wal))
}

#[test]
fn records_after_each_rotation_are_sealed_under_the_new_key() {
    let sim = SimStorage::new();
    let (run, wal) = run_steps(Arc::new(sim.clone()), &STEPS);
    let wal = wal.expect("opened");
    assert_eq!(
        wal.segment_key_ids(),
        BTreeSet::from([KeyId::new(1), KeyId::new(2), KeyId::new(3)])
    );
    wal.close().expect("close");
    let (wal, report) = Wal::open(
        &sim_dir(),
        options(Arc::new(sim.clone()), keyring(&[1, 2, 3])),
    )
    .expect("every key");
    assert_eq!(replay_all(&wal).expect("replay").len(), run.appended);
    // LSN 1 was appended under key 1; 2..=5 under key 2; 6.. under key 3.
    for segment in &report.segments {
        let Some(last) = segment.last_lsn else {
            continue;
        };
        let expected = match last.get() {
            1 => 1,
            2..=5 => 2,
            _ => 3,
        };
        assert_eq!(segment.key_id, Some(KeyId::new(expected)), "{segment:?}");
    }
    drop(wal);

    // Rotating right after open replaces the empty segment: nothing needs key 1.
    let sim = SimStorage::new();
    let (_, wal) = run_steps(Arc::new(sim.clone()), &ROTATED_FROM_THE_START);
    let wal = wal.expect("opened");
    assert_eq!(wal.segment_key_ids(), BTreeSet::from([KeyId::new(2)]));
    wal.close().expect("close");
    let (wal, _) = Wal::open(&sim_dir(), options(Arc::new(sim), keyring(&[2]))).expect("key 2");
    drop(wal);
}

#[test]
fn a_power_cut_at_every_storage_call_of_two_rotations_keeps_acknowledged_records() {
    let mut cut_at = 1;
    loop {
        let sim = SimStorage::new();
        let power = PowerCut::new(sim.clone(), CrashCut::DropUnsynced, cut_at);
        let (run, wal) = run_steps(Arc::new(PowerCutStorage(Arc::clone(&power))), &STEPS);
        let reached = power.is_off();
        power.cut_now();
        drop(wal);
        let context = format!("cut at call {cut_at}");
        let (wal, report) = Wal::open(
            &sim_dir(),
            options(Arc::new(sim.clone()), keyring(&[1, 2, 3])),
        )
        .unwrap_or_else(|error| panic!("{context}: refused: {error}"));
        assert!(report.damaged.is_empty(), "{context}: {report:?}");
        let recovered = replay_all(&wal).expect("replay");
        assert!(
            recovered.len() as u64 >= run.acknowledged.get() && recovered.len() <= run.appended,
            "{context}: {} recovered, {} acknowledged, {} appended",
            recovered.len(),
            run.acknowledged.get(),
            run.appended
        );
        for (index, (lsn, bytes)) in recovered.iter().enumerate() {
            assert_eq!(
                (lsn.get(), bytes),
                (index as u64 + 1, &payload(index)),
                "{context}"
            );
        }
        if !reached {
            break;
        }
        cut_at += 1;
    }
    assert!(cut_at > 10, "the runs reached {cut_at} storage calls");
}

#[test]
fn concurrent_appenders_lose_nothing_while_the_key_rotates() {
    const APPENDERS: usize = 4;
    const PER_APPENDER: usize = 120;
    let sim = SimStorage::new();
    let keys = keyring(&[1]);
    let (wal, _) = Wal::open(
        &sim_dir(),
        options(Arc::new(sim.clone()), Arc::clone(&keys)),
    )
    .expect("open");
    let start = std::sync::Barrier::new(APPENDERS);
    std::thread::scope(|scope| {
        for appender in 0..APPENDERS {
            let (wal, keys, start) = (&wal, &keys, &start);
            scope.spawn(move || {
                start.wait();
                for index in 0..PER_APPENDER {
                    let durability = if index % 3 == 0 {
                        Durability::Sync
                    } else {
                        Durability::Batch
                    };
                    let bytes = format!("appender-{appender}-{index:03}").into_bytes();
                    wal.append(&bytes, durability).expect("append");
                    // Appender 0 rotates every 25 of its records, racing the others' appends
                    // and their own segment switches (four records a segment).
                    if appender == 0 && index % 25 == 24 {
                        let id = u32::try_from(2 + index / 25).expect("few");
                        keys.rotate(KeyId::new(id), key(id)).expect("new id");
                        wal.adopt_active_key().expect("adopt");
                    }
                }
            });
        }
    });
    wal.close().expect("close");
    let (wal, report) = Wal::open(
        &sim_dir(),
        options(Arc::new(sim), keyring(&[1, 2, 3, 4, 5, 6])),
    )
    .expect("every key");
    assert!(report.damaged.is_empty());
    let recovered: BTreeSet<Vec<u8>> = replay_all(&wal)
        .expect("replay")
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect();
    let expected: BTreeSet<Vec<u8>> = (0..APPENDERS)
        .flat_map(|appender| {
            (0..PER_APPENDER)
                .map(move |index| format!("appender-{appender}-{index:03}").into_bytes())
        })
        .collect();
    assert_eq!(recovered, expected);
}

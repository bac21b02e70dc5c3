//! A power cut at any storage call around segment rotations (the switch to the next segment in
//! memory, the seal round's write, sync, create, rename and directory sync, and the writes that
//! follow) leaves a log that the default recovery mode opens without refusing, with no damage,
//! holding a prefix of what was appended that includes every acknowledged record.
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{PowerCut, PowerCutStorage, replay_all, sim_dir};
use tokm_storage::Lsn;
use tokm_storage::testkit::{CrashCut, SimStorage};
use tokm_wal::{Durability, RecoveryMode, Wal, WalOptions};

/// The appends of one run: with three records a segment, they rotate with nothing unwritten,
/// with batch records still pending (the seal round writes them), and with the next segment
/// filling up before its file exists.
const DURABILITIES: [Durability; 20] = {
    use Durability::{Batch as B, Sync as S};
    [S, S, S, B, B, B, B, S, B, B, S, S, S, B, B, B, B, B, B, S]
};

fn options(storage: Arc<dyn tokm_storage::Storage>) -> WalOptions {
    WalOptions {
        storage,
        recovery_mode: RecoveryMode::RefuseLoss,
        segment_records_max: 3,
        group_commit_records_max: 2,
        sync_interval: Duration::from_secs(3600),
        sync_bytes_max: u64::MAX,
        ..WalOptions::default()
    }
}

fn payload(index: usize) -> Vec<u8> {
    format!("rotation-{index:03}").into_bytes()
}

/// What one run did before the power went: how many appends it tried (the last one may have
/// failed, its record on disk or not) and the last LSN acknowledged as durable. Append `index`
/// (from 0) gets LSN `index + 1`.
struct Run {
    attempted: usize,
    acknowledged: Lsn,
}

fn run_until_power_cut(power: &Arc<PowerCut>) -> Run {
    let storage: Arc<dyn tokm_storage::Storage> = Arc::new(PowerCutStorage(Arc::clone(power)));
    let mut run = Run {
        attempted: 0,
        acknowledged: Lsn::ZERO,
    };
    let Ok((wal, _)) = Wal::open(&sim_dir(), options(storage)) else {
        return run;
    };
    for (index, durability) in DURABILITIES.into_iter().enumerate() {
        run.attempted += 1;
        let Ok(lsn) = wal.append(&payload(index), durability) else {
            break;
        };
        assert_eq!(lsn, Lsn::new(index as u64 + 1));
        if durability == Durability::Sync {
            run.acknowledged = lsn;
        }
    }
    if wal.sync().is_ok() {
        run.acknowledged = wal.last_lsn();
    }
    // A run the cut did not reach loses power after it ends.
    power.cut_now();
    drop(wal);
    run
}

fn check_recovery(sim: &SimStorage, run: &Run, context: &str) {
    let (wal, report) = Wal::open(&sim_dir(), options(Arc::new(sim.clone())))
        .unwrap_or_else(|error| panic!("{context}: recovery refused: {error} ({})", error.code()));
    assert!(
        report.damaged.is_empty(),
        "{context}: a power cut is not damage: {report:?}"
    );
    let recovered = replay_all(&wal).expect("replay");
    assert!(
        recovered.len() <= run.attempted,
        "{context}: recovered more than was appended"
    );
    let expected: Vec<(Lsn, Vec<u8>)> = (0..recovered.len())
        .map(|index| (Lsn::new(index as u64 + 1), payload(index)))
        .collect();
    assert_eq!(
        recovered, expected,
        "{context}: not a prefix of what was appended"
    );
    let recovered_last = Lsn::new(recovered.len() as u64);
    assert!(
        recovered_last >= run.acknowledged,
        "{context}: lost acknowledged records: recovered up to {recovered_last:?}, acknowledged up to {:?}",
        run.acknowledged
    );
    // The recovered log takes new records.
    wal.append(b"after", Durability::Sync)
        .unwrap_or_else(|error| panic!("{context}: append after recovery: {error}"));
}

#[test]
fn power_cut_at_every_step_of_a_rotation_keeps_acknowledged_records() {
    // Count the calls of an uninterrupted run; the flusher's share varies a little between
    // runs, so go some calls past it (those runs are cut after they end).
    let probe = PowerCut::new(SimStorage::new(), CrashCut::KeepUnsynced, u64::MAX);
    run_until_power_cut(&probe);
    let calls = probe.calls();
    assert!(calls > 40, "the run rotates several times: {calls} calls");
    for cut_at in 1..=calls + 8 {
        for cut in [
            CrashCut::DropUnsynced,
            CrashCut::KeepUnsynced,
            CrashCut::Torn { seed: cut_at },
        ] {
            let sim = SimStorage::new();
            let power = PowerCut::new(sim.clone(), cut, cut_at);
            let run = run_until_power_cut(&power);
            check_recovery(&sim, &run, &format!("cut {cut:?} at call {cut_at}"));
        }
    }
}

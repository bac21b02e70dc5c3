//! In `Batch` mode the flusher syncs every `sync_interval` of the *injected* clock: after a
//! power cut, every record acknowledged at least `sync_interval` before it is there, and
//! nothing the timer did not sync is (no wall-clock timer fired behind the test's back).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{open_and_replay, sim_dir, sim_options};
use tokm_domain::{Clock, ManualClock, Timestamp};
use tokm_storage::Lsn;
use tokm_storage::testkit::{CrashCut, SimStorage};
use tokm_wal::{Durability, Wal, WalOptions};

const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Far beyond the couple of milliseconds a manual-clock flusher takes to notice; only a
/// flusher that never syncs reaches it.
const PATIENCE: Duration = Duration::from_secs(30);

/// A deterministic stream of small numbers (a linear congruential generator).
struct Steps(u64);

impl Steps {
    fn next_below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

#[test]
fn a_power_cut_loses_at_most_sync_interval_of_acknowledged_batch_writes() {
    let sim = SimStorage::new();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    let options = WalOptions {
        clock: clock.clone(),
        sync_interval: SYNC_INTERVAL,
        ..sim_options(&sim)
    };
    let (wal, _) = Wal::open(&sim_dir(), options).expect("open");
    let mut next_timer_sync = clock.now().checked_add(SYNC_INTERVAL).unwrap();
    let mut acknowledged: Vec<(Lsn, Timestamp)> = Vec::new();
    let mut synced_by_timer = Lsn::ZERO;
    let mut steps = Steps(7);
    for step in 0..300_u32 {
        for _ in 0..=steps.next_below(3) {
            let lsn = wal
                .append(&step.to_le_bytes(), Durability::Batch)
                .expect("append");
            acknowledged.push((lsn, clock.now()));
        }
        clock.advance(Duration::from_millis(steps.next_below(400)));
        if clock.now() >= next_timer_sync {
            // The flusher's timer is due by the injected clock: everything appended so far is
            // synced without anyone asking.
            let last = acknowledged.last().expect("appended").0;
            assert!(
                wal.wait_until_durable(last, PATIENCE).expect("no failure"),
                "step {step}: the timer did not sync within {PATIENCE:?} of real time"
            );
            synced_by_timer = last;
            next_timer_sync = clock.now().checked_add(SYNC_INTERVAL).unwrap();
        }
    }
    assert!(
        synced_by_timer > Lsn::ZERO,
        "the schedule crossed the interval"
    );

    let cut_at = clock.now();
    sim.crash(CrashCut::DropUnsynced);
    drop(wal);
    let (_wal, _, records) = open_and_replay(&sim_dir(), sim_options(&sim)).expect("reopen");
    let recovered = records.last().map_or(Lsn::ZERO, |(lsn, _)| *lsn);

    let old_enough = acknowledged
        .iter()
        .filter(|(_, at)| cut_at.saturating_duration_since(*at) >= SYNC_INTERVAL)
        .map(|(lsn, _)| *lsn)
        .max()
        .unwrap_or(Lsn::ZERO);
    assert!(
        recovered >= old_enough,
        "lost a record acknowledged {SYNC_INTERVAL:?} or more before the cut"
    );
    assert_eq!(
        recovered, synced_by_timer,
        "exactly what the injected clock's timer synced survives"
    );
    assert_eq!(records.len() as u64, recovered.get(), "no gaps");
}

#[test]
fn without_the_clock_moving_batch_writes_are_never_synced_by_the_timer() {
    let sim = SimStorage::new();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
    // A wall-clock timer this short would fire many times during the test.
    let options = WalOptions {
        clock: clock.clone(),
        sync_interval: Duration::from_millis(1),
        ..sim_options(&sim)
    };
    let (wal, _) = Wal::open(&sim_dir(), options).expect("open");
    let last = wal.append(b"record", Durability::Batch).expect("append");
    assert!(
        !wal.wait_until_durable(last, Duration::from_millis(50))
            .expect("no failure"),
        "synced although the injected clock stood still"
    );
    clock.advance(Duration::from_millis(1));
    assert!(wal.wait_until_durable(last, PATIENCE).expect("no failure"));
}

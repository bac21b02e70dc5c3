//! ENOSPC or EIO at any write or sync of a snapshot fails that write with a typed error,
//! leaves no temp or partial final file, and the earlier snapshot still loads.

mod common;

use std::sync::Arc;

use tokm_domain::ManualClock;
use tokm_snapshot::SnapshotStore;
use tokm_storage::testkit::{Fault, SimStorage};

use common::{START, file_names, sessions, sim_dir, sim_options, sim_with};
use tokm_storage::Lsn;

/// Bound on the fault position; a snapshot of this size needs far fewer calls.
const CALLS_MAX: u64 = 200;

#[derive(Clone, Copy, Debug)]
enum Target {
    Write,
    Sync,
}

fn fail_every_call_until_success(target: Target, fault: Fault) {
    let baseline_sim = SimStorage::new();
    let clock = Arc::new(ManualClock::new(START));
    let store =
        SnapshotStore::open(&sim_dir(), sim_options(&baseline_sim, &clock, None)).expect("open");
    let baseline = common::write_at(&store, &clock, 10, &sessions(20, 1));
    let baseline_bytes = baseline_sim
        .file_bytes(&sim_dir().join(&baseline))
        .expect("baseline");
    let next = sessions(2_200, 2);

    for nth in 1..=CALLS_MAX {
        let sim = sim_with(&[(&baseline, &baseline_bytes)]);
        let store = SnapshotStore::open(&sim_dir(), sim_options(&sim, &clock, None)).expect("open");
        match target {
            Target::Write => sim.fail_nth_write(nth, fault),
            Target::Sync => sim.fail_nth_sync(nth, fault),
        }
        match store.write(Lsn::new(20), next.iter().map(Arc::as_ref)) {
            Ok(meta) => {
                assert!(nth > 1, "{target:?}: the first call must be reached");
                assert_eq!(
                    file_names(&sim, &sim_dir()),
                    vec![baseline.clone(), meta.file_name]
                );
                return;
            }
            Err(error) => {
                assert_eq!(error.code(), "TM-SNAP-5001", "{target:?} #{nth}: {error}");
                assert_eq!(
                    file_names(&sim, &sim_dir()),
                    vec![baseline.clone()],
                    "{target:?} #{nth}: no temp file, no partial snapshot"
                );
                let loaded = store.load_newest().expect("baseline loads");
                assert_eq!(
                    loaded.snapshot.map(|s| s.meta.covered_lsn),
                    Some(Lsn::new(10))
                );
            }
        }
    }
    panic!("{target:?}: still failing after {CALLS_MAX} calls");
}

#[test]
fn enospc_at_any_write_leaves_earlier_snapshots_loadable() {
    fail_every_call_until_success(Target::Write, Fault::Enospc);
}

#[test]
fn enospc_at_the_sync_leaves_earlier_snapshots_loadable() {
    fail_every_call_until_success(Target::Sync, Fault::Enospc);
}

#[test]
fn eio_at_any_write_leaves_earlier_snapshots_loadable() {
    fail_every_call_until_success(Target::Write, Fault::Eio);
}

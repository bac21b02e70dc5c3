//! A power cut right after the first open of a fresh directory loses no acknowledged write:
//! every directory the engine creates (the data directory's parts, `wal/`, `snapshots/`) is
//! followed by an fsync of its parent, and the simulated disk drops any directory entry whose
//! parent was not synced, so a missing sync fails this test.

mod common;

use common::recorded::sim_config;
use tokm_domain::testkit::SessionFactory;
use tokm_domain::{Clock, SessionRepository, TokenRepository};
use tokm_engine::Engine;
use tokm_storage::testkit::{CrashCut, SimStorage};

#[test]
fn sync_writes_of_a_fresh_directory_survive_every_kind_of_power_cut() {
    for cut in [
        CrashCut::DropUnsynced,
        CrashCut::Torn { seed: 1 },
        CrashCut::Torn { seed: 2 },
    ] {
        let sim = SimStorage::new();
        let lock_dir = tempfile::tempdir().expect("temp dir");
        let data_dir = lock_dir.path().join("fresh").join("sessions");
        let clock = common::clock();
        let mut factory = SessionFactory::new(5, clock.now());
        let (engine, _) = Engine::open(sim_config(&data_dir, &sim, &clock)).expect("open");
        let mut created = Vec::new();
        for index in 0..20 {
            let body = factory.next_for(&SessionFactory::user(index % 3));
            created.push(engine.create(body).expect("create (Sync)").session);
        }
        sim.crash(cut);
        drop(engine);

        let (engine, report) =
            Engine::open(sim_config(&data_dir, &sim, &clock)).expect("reopen after the cut");
        assert_eq!(report.session_count, created.len(), "{cut:?}");
        for session in &created {
            let found = engine
                .get_by_token_hash(&session.fields().token_hash)
                .expect("acknowledged");
            assert_eq!(&found, session, "{cut:?}");
        }
    }
}

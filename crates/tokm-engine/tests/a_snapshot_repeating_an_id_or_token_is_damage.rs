//! A snapshot whose checksums pass but which holds two sessions with one id, or one token hash,
//! cannot be a store's state: the bulk load refuses it, recovery treats it as damage, sets it
//! aside and falls back to the older snapshot and the log, reaching the acknowledged state.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tokm_domain::testkit::SessionFactory;
use tokm_domain::{Clock, Session, SessionRepository};
use tokm_engine::Engine;
use tokm_snapshot::{SnapshotOptions, SnapshotStore};

/// Makes the second session collide with the first in one field.
type Forge = fn(&Session, &Session) -> Session;

/// The stored sessions with the second one changed by `forge` (given the first).
fn forged(state: &[Session], forge: Forge) -> Vec<Session> {
    let mut sessions = state.to_vec();
    sessions[1] = forge(&state[0], &state[1]);
    sessions
}

fn same_id(first: &Session, second: &Session) -> Session {
    let mut fields = second.fields().clone();
    fields.id = first.id();
    Session::from_fields(fields, second.version()).expect("valid")
}

fn same_token(first: &Session, second: &Session) -> Session {
    let mut fields = second.fields().clone();
    fields.token_hash = first.fields().token_hash;
    Session::from_fields(fields, second.version()).expect("valid")
}

#[test]
fn a_repeated_id_or_token_falls_back_to_the_older_snapshot_and_the_log() {
    let cases: [(&str, Forge); 2] = [("id", same_id), ("token", same_token)];
    for (case, forge) in cases {
        let temp = tempfile::tempdir().expect("temp dir");
        let clock = common::clock();
        let mut factory = SessionFactory::new(9, clock.now());
        let (engine, _) = Engine::open(common::config(temp.path(), &clock)).expect("open");
        for index in 0..30 {
            engine
                .create(factory.next_for(&SessionFactory::user(index % 5)))
                .expect("create");
        }
        let covered = engine.snapshot_now().expect("snapshot").covered_lsn;
        let expected = common::state(&engine);
        engine.close().expect("close");

        // A newer snapshot at the same LSN, written by the snapshot crate itself, so every
        // checksum passes.
        clock.advance(Duration::from_secs(1));
        let options = SnapshotOptions {
            clock: Arc::clone(&clock) as Arc<dyn Clock>,
            ..SnapshotOptions::default()
        };
        let store = SnapshotStore::open(&temp.path().join("snapshots"), options).expect("store");
        let forged_meta = store
            .write(covered, forged(&expected, forge).iter())
            .expect("forged snapshot");

        let (engine, report) =
            Engine::open(common::config(temp.path(), &clock)).expect("falls back");
        assert_eq!(report.snapshot_fallbacks.len(), 1, "{case}");
        let fallback = &report.snapshot_fallbacks[0];
        assert_eq!(fallback.file_name, forged_meta.file_name, "{case}");
        assert_eq!(
            fallback.error.code(),
            "TM-SNAP-5202",
            "{case}: {}",
            fallback.error
        );
        assert!(
            fallback
                .error
                .to_string()
                .contains(&format!("share one {case}")),
            "{case}: {}",
            fallback.error
        );
        assert_ne!(
            report.snapshot.map(|meta| meta.file_name),
            Some(forged_meta.file_name)
        );
        assert_eq!(common::state(&engine), expected, "{case}");
        engine.close().expect("close");
    }
}

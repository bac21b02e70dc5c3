//! The reported case: 200 creates with a restart after the first 100, a snapshot at LSN 200,
//! then 20 deletes (revocations) and 30 creates; one flipped bit in record 51 of the first
//! segment, which the snapshot covers. The open must change nothing that matters: all 210
//! sessions, no revoked session authenticating again, the later segments untouched (nothing
//! quarantined), the damage reported.

mod common;

use std::fs;

use tokm_domain::testkit::SessionFactory;
use tokm_domain::{Clock, SessionRepository, TokenRepository};
use tokm_engine::Engine;
use tokm_storage::Lsn;

#[test]
fn a_flipped_bit_below_the_snapshot_loses_and_resurrects_nothing() {
    let temp = tempfile::tempdir().expect("temp dir");
    let clock = common::clock();
    let mut factory = SessionFactory::new(1, clock.now());
    let mut created = Vec::new();
    for _run in 0..2 {
        let (engine, _) = Engine::open(common::config(temp.path(), &clock)).expect("open");
        for index in 0..100 {
            let body = factory.next_for(&SessionFactory::user(index % 10));
            created.push(engine.create(body).expect("create").session);
        }
        engine.close().expect("close");
    }
    let (engine, _) = Engine::open(common::config(temp.path(), &clock)).expect("open");
    assert_eq!(
        engine.snapshot_now().expect("snapshot").covered_lsn,
        Lsn::new(200)
    );
    let revoked: Vec<_> = created.drain(..20).collect();
    for session in &revoked {
        engine.delete(session.id()).expect("delete");
    }
    for index in 0..30 {
        let body = factory.next_for(&SessionFactory::user(index % 10));
        created.push(engine.create(body).expect("create").session);
    }
    let expected = common::state(&engine);
    assert_eq!(expected.len(), 210);
    engine.close().expect("close");

    let wal = temp.path().join("wal");
    let mut segments: Vec<_> = fs::read_dir(&wal)
        .expect("wal")
        .map(|entry| entry.expect("entry").path())
        .collect();
    segments.sort();
    let first = &segments[0];
    let mut bytes = fs::read(first).expect("segment");
    // Walk to record 51: a 120-byte header, then frames of a 20-byte header and a payload.
    let mut offset = 120;
    for _ in 0..50 {
        let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"));
        offset += 20 + len as usize;
    }
    bytes[offset + 30] ^= 0x04;
    fs::write(first, &bytes).expect("damage");

    let (engine, report) = Engine::open(common::config(temp.path(), &clock)).expect("opens");
    assert_eq!(common::state(&engine), expected);
    for session in &revoked {
        assert!(
            engine
                .get_by_token_hash(&session.fields().token_hash)
                .is_err(),
            "a revoked session authenticates again"
        );
    }
    assert_eq!(report.wal.damaged.len(), 1, "the damage is reported");
    assert_eq!(report.wal.damaged[0].offset, offset as u64);
    assert!(report.wal.quarantined.is_empty(), "nothing is quarantined");
    assert_eq!(report.wal.loss, None);
}

//! `list` shows every snapshot newest first with its header facts; a damaged header shows as
//! an error on that entry without failing the listing.

mod common;

use tokm_snapshot::Encryption;
use tokm_storage::testkit::SimStorage;

use common::{START, sessions, sim_dir, sim_store};
use tokm_storage::Lsn;

#[test]
fn list_reports_every_snapshot_newest_first() {
    let sim = SimStorage::new();
    let (store, clock) = sim_store(&sim);
    let first = common::write_at(&store, &clock, 5, &sessions(2, 1));
    let second = common::write_at(&store, &clock, 9, &sessions(3, 2));

    let path = sim_dir().join(&first);
    let mut bytes = sim.file_bytes(&path).expect("exists");
    bytes[20] ^= 0xFF;
    sim.put_file(&path, &bytes);

    let listed = store.list().expect("list");
    let names: Vec<&str> = listed.iter().map(|info| info.file_name.as_str()).collect();
    assert_eq!(names, vec![second.as_str(), first.as_str()]);

    let newest = &listed[0];
    assert_eq!(newest.covered_lsn, Lsn::new(9));
    let meta = newest.meta.as_ref().expect("intact header");
    assert_eq!(meta.session_count, 3);
    assert_eq!(meta.node_id, "node-a");
    assert_eq!(meta.encryption, Encryption::None);
    assert_eq!(meta.created_at, newest.created_at);
    assert_eq!(
        Some(meta.size_bytes),
        sim.file_bytes(&sim_dir().join(&second))
            .map(|b| b.len() as u64)
    );

    let oldest = &listed[1];
    assert_eq!(oldest.covered_lsn, Lsn::new(5));
    assert_eq!(oldest.created_at, START);
    let error = oldest.meta.as_ref().expect_err("damaged header");
    assert_eq!(error.code(), "TM-SNAP-5201");
    // Listing never renames or removes anything.
    assert!(sim.file_bytes(&path).is_some());
}

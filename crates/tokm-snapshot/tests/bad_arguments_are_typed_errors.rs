//! Bad options and arguments are typed errors that write nothing and read nothing they should
//! not.

mod common;

use std::sync::Arc;

use tokm_domain::{ManualClock, Session};
use tokm_snapshot::{SnapshotReader, SnapshotStore};
use tokm_storage::testkit::SimStorage;

use common::{START, file_names, sessions, sim_dir, sim_options, sim_store};
use tokm_storage::Lsn;

#[test]
fn a_node_id_over_128_bytes_is_refused() {
    let sim = SimStorage::new();
    let clock = Arc::new(ManualClock::new(START));
    let mut options = sim_options(&sim, &clock, None);
    options.node_id = "n".repeat(129);
    let error = SnapshotStore::open(&sim_dir(), options).expect_err("too long");
    assert_eq!(error.code(), "TM-SNAP-4003");
}

#[test]
fn the_same_lsn_in_the_same_millisecond_is_refused() {
    let sim = SimStorage::new();
    let (store, _clock) = sim_store(&sim);
    let body = sessions(2, 1);
    let first = store
        .write(Lsn::new(4), body.iter().map(Arc::as_ref))
        .expect("write");
    let error = store
        .write(Lsn::new(4), body.iter().map(Arc::as_ref))
        .expect_err("same name");
    assert_eq!(error.code(), "TM-SNAP-4091");
    assert_eq!(file_names(&sim, &sim_dir()), vec![first.file_name]);
}

/// An iterator whose `len()` is wrong, as a buggy caller might write.
struct LyingIter {
    items: std::vec::IntoIter<Arc<Session>>,
    claimed: usize,
}

impl Iterator for LyingIter {
    type Item = Arc<Session>;
    fn next(&mut self) -> Option<Arc<Session>> {
        self.items.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.claimed, Some(self.claimed))
    }
}

impl ExactSizeIterator for LyingIter {}

#[test]
fn an_iterator_with_a_wrong_length_writes_nothing() {
    for (actual, claimed) in [(5, 3), (3, 5)] {
        let sim = SimStorage::new();
        let (store, _clock) = sim_store(&sim);
        let iter = LyingIter {
            items: sessions(actual, 1).into_iter(),
            claimed,
        };
        let error = store.write(Lsn::new(1), iter).expect_err("length lies");
        assert_eq!(error.code(), "TM-SNAP-4003", "{actual} vs {claimed}");
        assert!(file_names(&sim, &sim_dir()).is_empty());
    }
}

#[test]
fn the_reader_refuses_names_that_are_not_snapshot_file_names() {
    let sim = SimStorage::new();
    let (store, clock) = sim_store(&sim);
    let name = common::write_at(&store, &clock, 1, &sessions(1, 1));
    let reader = SnapshotReader::new(&sim_dir(), Arc::new(sim.clone()), None);
    for other in [
        String::new(),
        "notes.txt".to_owned(),
        format!("{name}.broken"),
        format!("../snapshots/{name}"),
        sim_dir().join(&name).display().to_string(),
    ] {
        let verified = reader.verify(&other).expect_err("not a snapshot name");
        assert_eq!(verified.code(), "TM-SNAP-4003", "{other}: {verified}");
        let loaded = reader
            .load(&other)
            .map(|_| ())
            .expect_err("not a snapshot name");
        assert_eq!(loaded.code(), "TM-SNAP-4003", "{other}: {loaded}");
    }
    assert!(reader.load(&name).is_ok());
}

//! Which block fails authentication decides between damage and a wrong key. Two sealed blocks
//! swapped, with checksums, index and footer recomputed so every checksum matches, fail
//! authentication because each block's associated data binds its position. When block 0
//! authenticated first, the failing later block is damage (`TM-SNAP-5204`): loading falls back
//! and sets the file aside. When block 0 itself fails, that is exactly what the wrong key looks
//! like: the file is left alone with `TM-SNAP-4032`. Both with blocks decoded on the calling
//! thread (3 blocks) and on worker threads (5 blocks).

mod common;

use std::sync::Arc;

use tokm_crypto_adaptive::Algorithm;
use tokm_domain::ManualClock;
use tokm_snapshot::{LoadError, SnapshotReader, SnapshotStore};
use tokm_storage::testkit::SimStorage;

use common::craft;
use common::{START, dir_contents, file_names, keyring, reopen, sessions, sim_dir, sim_options};
use tokm_storage::Lsn;

/// Sessions that fill 3 blocks (decoded on the calling thread) and 5 (on worker threads).
const SIZES: [(usize, usize); 2] = [(2_500, 3), (5_000, 5)];

/// An older sealed snapshot (LSN 10) and a newer one (LSN 20) of `count` sessions in
/// `blocks_count` blocks, of which `first` and `second` are swapped; returns the disk, both
/// names and the offset of the block now at position `first`.
fn newer_with_swapped_blocks(
    (count, blocks_count): (usize, usize),
    first: usize,
    second: usize,
) -> (SimStorage, String, String, u64) {
    let sim = SimStorage::new();
    let clock = Arc::new(ManualClock::new(START));
    let ring = Some(keyring(1, 0x11, Algorithm::ChaCha20Poly1305));
    let store = SnapshotStore::open(&sim_dir(), sim_options(&sim, &clock, ring)).expect("open");
    let older = common::write_at(&store, &clock, 10, &sessions(5, 1));
    let newer = common::write_at(&store, &clock, 20, &sessions(count, 2));

    let path = sim_dir().join(&newer);
    let parts = craft::parse(&sim.file_bytes(&path).expect("written"));
    assert_eq!(parts.blocks.len(), blocks_count);
    let mut blocks = parts.blocks.clone();
    let mut counts: Vec<u32> = parts.handles.iter().map(|h| h.session_count).collect();
    blocks.swap(first, second);
    counts.swap(first, second);
    let handles = craft::handles(parts.head.len(), &blocks, &counts);
    let swapped_offset = handles[first].offset;
    let index = craft::index(handles);
    let forged = craft::assemble(
        &parts.head,
        &blocks,
        &index,
        parts.header.session_count,
        |_| {},
    );
    sim.put_file(&path, &forged);
    (sim, older, newer, swapped_offset)
}

fn reader(sim: &SimStorage) -> SnapshotReader {
    let ring = Some(keyring(1, 0x11, Algorithm::ChaCha20Poly1305));
    SnapshotReader::new(&sim_dir(), Arc::new(sim.clone()), ring)
}

#[test]
fn a_later_block_failing_authentication_is_damage_and_falls_back() {
    for size in SIZES {
        let (count, blocks_count) = size;
        let (sim, older, newer, offset) = newer_with_swapped_blocks(size, 1, 2);
        let reader = reader(&sim);
        let meta = reader.verify(&newer).expect("every checksum matches");
        assert_eq!(meta.session_count, count as u64);
        let error = reader.load(&newer).map(|_| ()).expect_err("a moved block");
        assert!(
            matches!(&error, LoadError::Crypto { offset: at, .. } if *at == offset),
            "{blocks_count} blocks: {error}"
        );
        assert_eq!(error.code(), "TM-SNAP-5204");
        assert_eq!(error.cause_code(), Some("TM-CRYP-5201"));
        assert!(error.is_damage());

        let ring = Some(keyring(1, 0x11, Algorithm::ChaCha20Poly1305));
        let outcome = reopen(&sim, ring).load_newest().expect("falls back");
        assert_eq!(
            outcome.snapshot.map(|s| s.meta.covered_lsn),
            Some(Lsn::new(10))
        );
        let [fallback] = outcome.report.fallbacks.as_slice() else {
            panic!("expected one fallback");
        };
        assert_eq!(fallback.error.code(), "TM-SNAP-5204");
        assert_eq!(
            file_names(&sim, &sim_dir()),
            vec![older, format!("{newer}.broken")]
        );
    }
}

#[test]
fn block_0_failing_authentication_reads_as_a_wrong_key_and_is_left_alone() {
    for size in SIZES {
        let (sim, _older, newer, _offset) = newer_with_swapped_blocks(size, 0, 1);
        let error = reader(&sim)
            .load(&newer)
            .map(|_| ())
            .expect_err("block 0 moved");
        assert!(
            matches!(&error, LoadError::WrongKey { key_id: 1, .. }),
            "{error}"
        );

        let before = dir_contents(&sim, &sim_dir());
        let ring = Some(keyring(1, 0x11, Algorithm::ChaCha20Poly1305));
        let error = reopen(&sim, ring).load_newest().expect_err("a key error");
        assert_eq!(error.code(), "TM-SNAP-4032");
        assert_eq!(dir_contents(&sim, &sim_dir()), before);
    }
}

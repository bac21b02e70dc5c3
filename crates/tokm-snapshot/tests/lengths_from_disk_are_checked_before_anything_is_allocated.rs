//! Lengths, offsets and counts read from a file are checked against the file's size and the
//! format's limits before they size anything, even when every checksum is valid (checksums are
//! unkeyed, so a crafted file carries valid ones): a 64 MiB index of empty handles, a 64 MiB
//! block of empty sessions, handles with huge offsets, lengths or counts, and a footer, trailer
//! or prelude claiming a huge part are typed errors naming what is wrong, never an allocation
//! of what they claim.

mod common;

use std::sync::Arc;

use tokm_proto::pb;
use tokm_snapshot::{LoadError, SnapshotReader};

use common::craft;
use common::{sessions, sim_dir, sim_with};

const MIB: usize = 1024 * 1024;

/// A change to an honest handle, making it hostile.
type HandleEdit = fn(&mut pb::BlockHandle);

/// A reader over a simulated directory holding only `bytes`, named after `header`.
fn reader_of(header: &pb::SnapshotHeader, bytes: &[u8]) -> (SnapshotReader, String) {
    let name = craft::file_name(header);
    let sim = sim_with(&[(&name, bytes)]);
    (SnapshotReader::new(&sim_dir(), Arc::new(sim), None), name)
}

/// What a `Malformed` error says is wrong; any other outcome fails the test.
fn malformed(result: Result<tokm_snapshot::SnapshotMeta, LoadError>) -> &'static str {
    match result {
        Err(LoadError::Malformed { what, .. }) => what,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

/// A file of one block of `count` valid sessions whose single handle is `edit`ed.
fn one_block_with_handle(count: usize, edit: impl FnOnce(&mut pb::BlockHandle)) -> Vec<u8> {
    let header = craft::plain_header(count as u64);
    let head = craft::head(&header);
    let blocks = vec![craft::session_block(&sessions(count, 1))];
    let mut handles = craft::handles(head.len(), &blocks, &[count as u32]);
    edit(&mut handles[0]);
    craft::assemble(&head, &blocks, &craft::index(handles), count as u64, |_| {})
}

#[test]
fn an_honest_crafted_file_loads() {
    // The baseline: the crafting itself is right, so each refusal below is the hostile part's.
    let bytes = one_block_with_handle(3, |_| {});
    let (reader, name) = reader_of(&craft::plain_header(3), &bytes);
    let loaded = reader.load(&name).expect("an honest file");
    assert_eq!(
        common::loaded_sessions(&loaded),
        common::by_id(&sessions(3, 1))
    );
}

#[test]
fn a_64_mib_index_of_empty_handles_is_refused_at_its_first_handle() {
    let header = craft::plain_header(1);
    let head = craft::head(&header);
    let index = [0x0A, 0x00].repeat(32 * MIB);
    let bytes = craft::assemble(&head, &[], &index, 1, |_| {});
    let (reader, name) = reader_of(&header, &bytes);
    let index_offset = head.len() as u64;
    for result in [reader.verify(&name), reader.load(&name).map(|s| s.meta)] {
        match result {
            Err(LoadError::Malformed { offset, what, .. }) => {
                assert_eq!(offset, index_offset);
                assert_eq!(what, "block checksum is not 16 bytes");
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
    }
}

#[test]
fn a_64_mib_block_of_empty_sessions_fails_at_its_first_session() {
    let header = craft::plain_header(1024);
    let head = craft::head(&header);
    let blocks = vec![[0x0A, 0x00].repeat(32 * MIB)];
    let index = craft::index(craft::handles(head.len(), &blocks, &[1024]));
    let bytes = craft::assemble(&head, &blocks, &index, 1024, |_| {});
    let (reader, name) = reader_of(&header, &bytes);
    // Structure and checksums are all valid: only decoding finds the sessions invalid.
    reader.verify(&name).expect("every checksum matches");
    let error = reader.load(&name).map(|_| ()).expect_err("empty sessions");
    assert_eq!(error.code(), "TM-SNAP-5205", "{error}");
    assert!(error.is_damage());
}

#[test]
fn handles_with_huge_offsets_lengths_or_counts_are_refused() {
    let cases: [(HandleEdit, &str); 6] = [
        (
            |h| h.length = u64::MAX,
            "block is longer than the block limit",
        ),
        (
            |h| h.length = 64 * MIB as u64,
            "block runs into the block index",
        ),
        (
            |h| h.offset = u64::MAX - 1,
            "block does not start where the previous one ends",
        ),
        (
            |h| h.session_count = u32::MAX,
            "block holds more sessions than a block may",
        ),
        (
            |h| h.checksum = vec![0; 1 << 20],
            "block checksum is not 16 bytes",
        ),
        (
            |h| h.session_count = 1024,
            "blocks hold more sessions than the header says",
        ),
    ];
    for (edit, expected) in cases {
        let bytes = one_block_with_handle(3, edit);
        let (reader, name) = reader_of(&craft::plain_header(3), &bytes);
        assert_eq!(malformed(reader.verify(&name)), expected);
        assert_eq!(malformed(reader.load(&name).map(|s| s.meta)), expected);
    }
}

#[test]
fn a_footer_claiming_a_huge_index_is_refused() {
    let edits: [fn(&mut pb::SnapshotFooter); 4] = [
        |f| f.index_length = 1 << 62,
        |f| f.index_length = u64::MAX,
        |f| f.index_offset = u64::MAX - 1,
        |f| {
            f.index_offset = 0;
            f.index_length += 1 << 40;
        },
    ];
    for edit in edits {
        let header = craft::plain_header(3);
        let head = craft::head(&header);
        let blocks = vec![craft::session_block(&sessions(3, 1))];
        let index = craft::index(craft::handles(head.len(), &blocks, &[3]));
        let bytes = craft::assemble(&head, &blocks, &index, 3, edit);
        let (reader, name) = reader_of(&header, &bytes);
        assert_eq!(
            malformed(reader.load(&name).map(|s| s.meta)),
            "footer points outside the file"
        );
    }
}

#[test]
fn a_header_claiming_a_huge_session_count_is_refused_before_any_block() {
    // The index is honest; only the header's (and footer's) count is huge. Nothing is sized by
    // it: the handles' counts must add up to it, and they cannot.
    let header = craft::plain_header(u64::MAX);
    let head = craft::head(&header);
    let blocks = vec![craft::session_block(&sessions(3, 1))];
    let index = craft::index(craft::handles(head.len(), &blocks, &[3]));
    let bytes = craft::assemble(&head, &blocks, &index, u64::MAX, |_| {});
    let (reader, name) = reader_of(&header, &bytes);
    assert_eq!(
        malformed(reader.load(&name).map(|s| s.meta)),
        "block session counts do not add up to the header's"
    );
}

#[test]
fn a_trailer_or_prelude_claiming_a_huge_part_is_refused() {
    let header = craft::plain_header(3);
    let honest = one_block_with_handle(3, |_| {});

    // The trailer's footer length, at the start of the last 28 bytes.
    let mut bytes = honest.clone();
    let trailer = bytes.len() - 28;
    bytes[trailer..trailer + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let (reader, name) = reader_of(&header, &bytes);
    assert_eq!(
        malformed(reader.verify(&name)),
        "footer length out of range"
    );

    // The prelude's header length, bytes 12..16.
    let mut bytes = honest;
    bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    let (reader, name) = reader_of(&header, &bytes);
    assert_eq!(
        malformed(reader.verify(&name)),
        "header length out of range"
    );
}

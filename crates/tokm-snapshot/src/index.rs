//! The block index, decoded one handle at a time and checked against the file as it goes.
//!
//! Each handle is checked as soon as it is decoded and kept as a fixed-size [`BlockHandle`]
//! (no allocation per handle); the first invalid one stops the walk. A valid handle points at
//! a block of the file that no other handle covers and holds at least one session (but for an
//! empty snapshot's single block), and takes at least 20 encoded bytes of the index, so what
//! the reader keeps is bounded by the bytes it read, whatever the index claims.

use prost::Message;
use tokm_proto::{ProtoError, pb};

use crate::error::LoadError;
use crate::format::{BLOCK_LEN_MAX, BLOCK_SESSIONS_MAX, CHECKSUM_LEN};
use crate::walk::{self, WalkError};

/// Where one block is stored, as its handle says, after every check passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockHandle {
    /// Offset of the stored block in the file.
    pub(crate) offset: u64,
    /// Length of the stored block; at most [`BLOCK_LEN_MAX`].
    pub(crate) length: u64,
    /// Sessions in the block; at most [`BLOCK_SESSIONS_MAX`].
    pub(crate) session_count: u32,
    /// First 16 bytes of BLAKE3 over the stored block.
    pub(crate) checksum: [u8; CHECKSUM_LEN],
}

/// What the handles must agree with, from the header and footer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexBounds {
    /// Where the first block starts: right after the header checksum.
    pub(crate) blocks_start: u64,
    /// Where the index starts: the last block ends exactly here.
    pub(crate) index_offset: u64,
    /// The header's session count: the handles' counts add up to it.
    pub(crate) session_count: u64,
}

/// Decodes and checks the encoded `BlockIndex` of `file`: blocks back to back from
/// `blocks_start` to `index_offset`, each within the limits, their session counts adding up to
/// the header's. Stops at the first handle that breaks a rule.
pub(crate) fn decode_index(
    file: &str,
    index: &[u8],
    bounds: IndexBounds,
) -> Result<Vec<BlockHandle>, LoadError> {
    let mut checked = CheckedHandles {
        bounds,
        handles: Vec::new(),
        next_offset: bounds.blocks_start,
        sessions_total: 0,
    };
    for entry in walk::entries(index) {
        let entry = entry.map_err(|error| walk_error(file, bounds.index_offset, error))?;
        let entry_offset = bounds.index_offset + entry.position as u64;
        let handle = decode_handle(file, entry_offset, entry.bytes)?;
        checked
            .push(handle)
            .map_err(|what| LoadError::malformed(file, entry_offset, what))?;
    }
    checked
        .finish()
        .map_err(|what| LoadError::malformed(file, bounds.index_offset, what))
}

fn decode_handle(file: &str, offset: u64, bytes: &[u8]) -> Result<BlockHandle, LoadError> {
    // One handle is a few dozen bytes unless crafted; a crafted one allocates at most its own
    // length here, and only until it is refused.
    let message = pb::BlockHandle::decode(bytes).map_err(|source| {
        LoadError::decode(
            file,
            offset,
            ProtoError::Decode {
                message: "BlockHandle",
                source,
            },
        )
    })?;
    let checksum = message
        .checksum
        .as_slice()
        .try_into()
        .map_err(|_| LoadError::malformed(file, offset, "block checksum is not 16 bytes"))?;
    Ok(BlockHandle {
        offset: message.offset,
        length: message.length,
        session_count: message.session_count,
        checksum,
    })
}

fn walk_error(file: &str, index_offset: u64, error: WalkError) -> LoadError {
    match error {
        WalkError::Decode { position, source } => LoadError::decode(
            file,
            index_offset + position as u64,
            ProtoError::Decode {
                message: "BlockIndex",
                source,
            },
        ),
        WalkError::PastEnd { position } => LoadError::malformed(
            file,
            index_offset + position as u64,
            "a block handle runs past the end of the index",
        ),
    }
}

/// The handles accepted so far and where the next block must start.
struct CheckedHandles {
    bounds: IndexBounds,
    handles: Vec<BlockHandle>,
    next_offset: u64,
    sessions_total: u64,
}

impl CheckedHandles {
    /// Keeps `handle` if it continues the blocks accepted so far; else says what is wrong.
    fn push(&mut self, handle: BlockHandle) -> Result<(), &'static str> {
        if handle.offset != self.next_offset {
            return Err("block does not start where the previous one ends");
        }
        if handle.length > BLOCK_LEN_MAX {
            return Err("block is longer than the block limit");
        }
        let end = handle
            .offset
            .checked_add(handle.length)
            .filter(|end| *end <= self.bounds.index_offset)
            .ok_or("block runs into the block index")?;
        if handle.session_count as usize > BLOCK_SESSIONS_MAX {
            return Err("block holds more sessions than a block may");
        }
        // The writer emits a block without sessions only as the single block of an empty
        // snapshot (so that even it proves the key); anywhere else it is damage, and refusing
        // it means every further handle costs at least one byte of the file and one session.
        if handle.session_count == 0 && (!self.handles.is_empty() || self.bounds.session_count != 0)
        {
            return Err("a block without sessions in a snapshot that has some");
        }
        if handle.length == 0 && handle.session_count != 0 {
            return Err("a block without bytes claims sessions");
        }
        let sessions_total = self.sessions_total + u64::from(handle.session_count);
        if sessions_total > self.bounds.session_count {
            return Err("blocks hold more sessions than the header says");
        }
        self.handles.push(handle);
        self.next_offset = end;
        self.sessions_total = sessions_total;
        Ok(())
    }

    /// The handles, if they cover every block and every session.
    fn finish(self) -> Result<Vec<BlockHandle>, &'static str> {
        if self.handles.is_empty() {
            return Err("block index is empty");
        }
        if self.next_offset != self.bounds.index_offset {
            return Err("blocks do not end where the index starts");
        }
        if self.sessions_total != self.bounds.session_count {
            return Err("block session counts do not add up to the header's");
        }
        Ok(self.handles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: IndexBounds = IndexBounds {
        blocks_start: 100,
        index_offset: 400,
        session_count: 30,
    };

    fn handle(offset: u64, length: u64, session_count: u32) -> pb::BlockHandle {
        pb::BlockHandle {
            offset,
            length,
            session_count,
            checksum: vec![7; 16],
        }
    }

    fn index(handles: Vec<pb::BlockHandle>) -> Vec<u8> {
        pb::BlockIndex { blocks: handles }.encode_to_vec()
    }

    fn what(result: Result<Vec<BlockHandle>, LoadError>) -> &'static str {
        match result {
            Err(LoadError::Malformed { what, .. }) => what,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn back_to_back_blocks_decode_into_compact_handles() {
        let bytes = index(vec![handle(100, 200, 20), handle(300, 100, 10)]);
        let handles = decode_index("f", &bytes, BOUNDS).expect("valid");
        assert_eq!(
            handles,
            vec![
                BlockHandle {
                    offset: 100,
                    length: 200,
                    session_count: 20,
                    checksum: [7; 16]
                },
                BlockHandle {
                    offset: 300,
                    length: 100,
                    session_count: 10,
                    checksum: [7; 16]
                },
            ]
        );
    }

    #[test]
    fn an_empty_snapshot_has_one_block_without_sessions() {
        let empty = IndexBounds {
            session_count: 0,
            index_offset: 116,
            ..BOUNDS
        };
        // Sealed: the block is a bare 16-byte tag. Plain: it has no bytes at all.
        assert!(decode_index("f", &index(vec![handle(100, 16, 0)]), empty).is_ok());
        let plain = IndexBounds {
            index_offset: 100,
            ..empty
        };
        assert!(decode_index("f", &index(vec![handle(100, 0, 0)]), plain).is_ok());
        assert_eq!(
            what(decode_index(
                "f",
                &index(vec![handle(100, 0, 0), handle(100, 0, 0)]),
                plain
            )),
            "a block without sessions in a snapshot that has some"
        );
    }

    #[test]
    fn each_rule_names_the_handle_that_breaks_it() {
        let cases = [
            (
                vec![handle(101, 299, 30)],
                "block does not start where the previous one ends",
            ),
            (
                vec![handle(100, 150, 20), handle(200, 200, 10)],
                "block does not start where the previous one ends",
            ),
            (
                vec![handle(100, BLOCK_LEN_MAX + 1, 30)],
                "block is longer than the block limit",
            ),
            (
                vec![handle(100, 301, 30)],
                "block runs into the block index",
            ),
            (
                vec![handle(100, 300, BLOCK_SESSIONS_MAX as u32 + 1)],
                "block holds more sessions than a block may",
            ),
            (
                vec![handle(100, 300, 0)],
                "a block without sessions in a snapshot that has some",
            ),
            (
                vec![handle(100, 200, 30), handle(300, 0, 0)],
                "a block without sessions in a snapshot that has some",
            ),
            (
                vec![handle(100, 0, 10), handle(100, 300, 20)],
                "a block without bytes claims sessions",
            ),
            (
                vec![handle(100, 200, 20), handle(300, 100, 11)],
                "blocks hold more sessions than the header says",
            ),
            (vec![], "block index is empty"),
            (
                vec![handle(100, 200, 30)],
                "blocks do not end where the index starts",
            ),
            (
                vec![handle(100, 300, 29)],
                "block session counts do not add up to the header's",
            ),
        ];
        for (handles, expected) in cases {
            let bytes = index(handles.clone());
            assert_eq!(
                what(decode_index("f", &bytes, BOUNDS)),
                expected,
                "{handles:?}"
            );
        }
    }

    #[test]
    fn errors_point_at_the_offending_handle_in_the_file() {
        let bytes = index(vec![handle(100, 200, 20), handle(999, 100, 10)]);
        let second = 2 + handle(100, 200, 20).encoded_len() as u64;
        match decode_index("f", &bytes, BOUNDS) {
            Err(LoadError::Malformed { offset, .. }) => {
                assert_eq!(offset, BOUNDS.index_offset + second);
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn a_checksum_of_another_length_is_refused() {
        let mut short = handle(100, 300, 30);
        short.checksum.pop();
        assert_eq!(
            what(decode_index("f", &index(vec![short]), BOUNDS)),
            "block checksum is not 16 bytes"
        );
    }

    #[test]
    fn an_index_of_empty_handles_stops_at_the_first() {
        // 2-byte empty handles: prost would build all of them before any check.
        let bytes = [0x0A, 0x00].repeat(1 << 20);
        match decode_index("f", &bytes, BOUNDS) {
            Err(LoadError::Malformed { offset, what, .. }) => {
                assert_eq!(offset, BOUNDS.index_offset);
                assert_eq!(what, "block checksum is not 16 bytes");
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn undecodable_bytes_are_decode_errors() {
        let cases: [&[u8]; 3] = [
            &[0x0A, 0x03, 0xFF, 0xFF, 0xFF], // a handle whose varint never ends
            &[0x08, 0x01],                   // field 1 with the wrong wire type
            &[0x0A, 0x09, 0x00],             // a handle longer than the index
        ];
        for bytes in cases {
            let error = decode_index("f", bytes, BOUNDS).expect_err("refused");
            assert!(
                ["TM-SNAP-5202", "TM-SNAP-5205"].contains(&error.code()),
                "{bytes:?}: {error}"
            );
        }
    }
}

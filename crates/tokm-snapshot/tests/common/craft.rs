//! Snapshot files assembled from parts with every checksum recomputed, so tests can hand the
//! reader structures no writer produces but no checksum rejects (checksums are unkeyed: anyone
//! can forge them). A second, minimal encoder of `FORMAT.md` that shares no code with the
//! crate, so it also cross-checks the crate's own.

use prost::Message;
use tokm_proto::pb;

const MAGIC: &[u8; 8] = b"TOKMSNP\x01";
const PRELUDE_LEN: usize = 16;
const TRAILER_LEN: usize = 28;

/// The first 16 bytes of BLAKE3: header, block, index and footer checksums.
pub fn hash16(bytes: &[u8]) -> Vec<u8> {
    blake3::hash(bytes).as_bytes()[..16].to_vec()
}

/// The file name that agrees with `header`'s LSN and creation time.
pub fn file_name(header: &pb::SnapshotHeader) -> String {
    format!(
        "{:020}-{:020}.snap",
        header.covered_lsn, header.created_at_ms
    )
}

/// A plain header of `session_count` sessions at LSN 7, taken at `common::START`.
pub fn plain_header(session_count: u64) -> pb::SnapshotHeader {
    pb::SnapshotHeader {
        snapshot_id: 0x5EED,
        created_at_ms: super::START.as_millis(),
        node_id: "crafted".to_owned(),
        covered_lsn: 7,
        session_count,
        ..pb::SnapshotHeader::default()
    }
}

/// Prelude ‖ header message ‖ header checksum.
pub fn head(header: &pb::SnapshotHeader) -> Vec<u8> {
    let message = header.encode_to_vec();
    let mut head = Vec::with_capacity(PRELUDE_LEN + message.len() + 16);
    head.extend_from_slice(MAGIC);
    head.push(1);
    head.extend_from_slice(&[0; 3]);
    head.extend_from_slice(&(message.len() as u32).to_le_bytes());
    head.extend_from_slice(&message);
    let checksum = hash16(&head);
    head.extend_from_slice(&checksum);
    head
}

/// A handle per block, the blocks stored back to back after a head of `head_len` bytes, with
/// their true offsets, lengths and checksums and the session counts `counts` declares.
pub fn handles(head_len: usize, blocks: &[Vec<u8>], counts: &[u32]) -> Vec<pb::BlockHandle> {
    let mut offset = head_len as u64;
    blocks
        .iter()
        .zip(counts)
        .map(|(block, count)| {
            let handle = pb::BlockHandle {
                offset,
                length: block.len() as u64,
                session_count: *count,
                checksum: hash16(block),
            };
            offset += block.len() as u64;
            handle
        })
        .collect()
}

/// The encoded `BlockIndex` of `handles`.
pub fn index(handles: Vec<pb::BlockHandle>) -> Vec<u8> {
    pb::BlockIndex { blocks: handles }.encode_to_vec()
}

/// The footer the other parts call for: index offset and length, `session_count`, whole-file
/// checksum over `before_footer`, index checksum.
pub fn footer(before_footer: &[u8], index: &[u8], session_count: u64) -> pb::SnapshotFooter {
    pb::SnapshotFooter {
        index_offset: (before_footer.len() - index.len()) as u64,
        index_length: index.len() as u64,
        session_count,
        file_checksum: blake3::hash(before_footer).as_bytes().to_vec(),
        index_checksum: hash16(index),
    }
}

/// `head ‖ blocks ‖ index`, then the footer the parts call for (changed by `edit` first) and
/// the trailer that matches it.
pub fn assemble(
    head: &[u8],
    blocks: &[Vec<u8>],
    index: &[u8],
    session_count: u64,
    edit: impl FnOnce(&mut pb::SnapshotFooter),
) -> Vec<u8> {
    let mut bytes = head.to_vec();
    for block in blocks {
        bytes.extend_from_slice(block);
    }
    bytes.extend_from_slice(index);
    let mut footer = footer(&bytes, index, session_count);
    edit(&mut footer);
    let footer = footer.encode_to_vec();
    bytes.extend_from_slice(&footer);
    bytes.extend_from_slice(&trailer(footer.len() as u32, &hash16(&footer)));
    bytes
}

/// The 28-byte trailer: footer length, footer checksum, magic.
pub fn trailer(footer_len: u32, footer_checksum: &[u8]) -> Vec<u8> {
    let mut trailer = Vec::with_capacity(TRAILER_LEN);
    trailer.extend_from_slice(&footer_len.to_le_bytes());
    trailer.extend_from_slice(footer_checksum);
    trailer.extend_from_slice(MAGIC);
    trailer
}

/// `sessions` encoded as the entries of a `SessionBlock`.
pub fn session_block(sessions: &[std::sync::Arc<tokm_domain::Session>]) -> Vec<u8> {
    let mut block = Vec::new();
    for session in sessions {
        prost::encoding::message::encode(1, &tokm_proto::session_to_message(session), &mut block);
    }
    block
}

/// A written snapshot taken apart.
#[derive(Debug)]
pub struct Parts {
    pub header: pb::SnapshotHeader,
    /// Prelude, header and header checksum, as stored.
    pub head: Vec<u8>,
    pub handles: Vec<pb::BlockHandle>,
    /// Each block's stored bytes, in index order.
    pub blocks: Vec<Vec<u8>>,
    pub footer: pb::SnapshotFooter,
}

/// Takes apart a well-formed snapshot file (one the crate wrote).
pub fn parse(bytes: &[u8]) -> Parts {
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let header = pb::SnapshotHeader::decode(&bytes[PRELUDE_LEN..PRELUDE_LEN + header_len])
        .expect("a well-formed header");
    let head = bytes[..PRELUDE_LEN + header_len + 16].to_vec();
    let trailer_offset = bytes.len() - TRAILER_LEN;
    let footer_len = u32::from_le_bytes(
        bytes[trailer_offset..trailer_offset + 4]
            .try_into()
            .expect("4 bytes"),
    ) as usize;
    let footer_offset = trailer_offset - footer_len;
    let footer = pb::SnapshotFooter::decode(&bytes[footer_offset..trailer_offset])
        .expect("a well-formed footer");
    let index = pb::BlockIndex::decode(&bytes[footer.index_offset as usize..footer_offset])
        .expect("a well-formed index");
    let blocks = index
        .blocks
        .iter()
        .map(|handle| {
            bytes[handle.offset as usize..(handle.offset + handle.length) as usize].to_vec()
        })
        .collect();
    Parts {
        header,
        head,
        handles: index.blocks,
        blocks,
        footer,
    }
}

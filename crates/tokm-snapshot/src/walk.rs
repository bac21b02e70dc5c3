//! Walking the repeated field of a `BlockIndex` or `SessionBlock` one entry at a time.
//!
//! Decoding such a message whole with prost builds every entry before the reader can look at
//! one: 64 MiB of 2-byte empty entries become tens of millions of values, gigabytes of them.
//! Walking the entries instead lets the reader decode, check and keep (or refuse) each one in
//! turn and stop at the first bad one, so what it holds grows with the entries that passed,
//! each of which took real bytes of the file.

use prost::encoding::{
    DecodeContext, WireType, check_wire_type, decode_key, decode_varint, skip_field,
};

/// Number of the repeated field in both messages: `BlockIndex.blocks`, `SessionBlock.sessions`.
const REPEATED_FIELD: u32 = 1;

/// One entry of the repeated field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    /// Where the entry's key starts in the message, for error reports.
    pub(crate) position: usize,
    /// The embedded message, without its key and length.
    pub(crate) bytes: &'a [u8],
}

/// Why a walk stopped before the end of the message.
#[derive(Debug)]
pub(crate) enum WalkError {
    /// A key, wire type or varint is invalid.
    Decode {
        /// Where the bad field starts in the message.
        position: usize,
        /// What prost found wrong.
        source: prost::DecodeError,
    },
    /// A length runs past the end of the message.
    PastEnd {
        /// Where the field starts in the message.
        position: usize,
    },
}

/// The entries of field 1 of `message`, in order. Other fields are skipped, as prost skips
/// fields it does not know (a later writer may add some: `proto/README.md`, rule 2). After an
/// error the iterator ends.
pub(crate) fn entries(message: &[u8]) -> Entries<'_> {
    Entries {
        message_len: message.len(),
        rest: message,
    }
}

/// Iterator returned by [`entries`]. Every step consumes at least one byte, so it ends after
/// at most as many steps as the message has bytes.
#[derive(Debug)]
pub(crate) struct Entries<'a> {
    message_len: usize,
    rest: &'a [u8],
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, WalkError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let position = self.message_len - self.rest.len();
            match self.step(position) {
                Ok(Some(entry)) => return Some(Ok(entry)),
                Ok(None) => {}
                Err(error) => {
                    self.rest = &[];
                    return Some(Err(error));
                }
            }
        }
        None
    }
}

impl<'a> Entries<'a> {
    /// Consumes one field: `Some` entry for field 1, `None` for a skipped field.
    fn step(&mut self, position: usize) -> Result<Option<Entry<'a>>, WalkError> {
        let decode = |source| WalkError::Decode { position, source };
        let (tag, wire_type) = decode_key(&mut self.rest).map_err(decode)?;
        if tag != REPEATED_FIELD {
            skip_field(wire_type, tag, &mut self.rest, DecodeContext::default()).map_err(decode)?;
            return Ok(None);
        }
        check_wire_type(WireType::LengthDelimited, wire_type).map_err(decode)?;
        let len = decode_varint(&mut self.rest).map_err(decode)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= self.rest.len())
            .ok_or(WalkError::PastEnd { position })?;
        let (bytes, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(Some(Entry { position, bytes }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use tokm_proto::pb;

    fn handle(offset: u64) -> pb::BlockHandle {
        pb::BlockHandle {
            offset,
            length: 7,
            session_count: 2,
            checksum: vec![9; 16],
        }
    }

    #[test]
    fn entries_are_the_repeated_field_as_prost_encodes_it() {
        let index = pb::BlockIndex {
            blocks: vec![handle(1), handle(300), pb::BlockHandle::default()],
        };
        let bytes = index.encode_to_vec();
        let walked: Vec<pb::BlockHandle> = entries(&bytes)
            .map(|entry| pb::BlockHandle::decode(entry.expect("valid").bytes).expect("handle"))
            .collect();
        assert_eq!(walked, index.blocks);
        let positions: Vec<usize> = entries(&bytes).map(|e| e.expect("ok").position).collect();
        let first_len = handle(1).encoded_len();
        assert_eq!(positions, vec![0, 2 + first_len, 4 + 2 * first_len + 1]);
    }

    #[test]
    fn other_fields_are_skipped_like_prost_skips_unknown_fields() {
        let mut bytes = Vec::new();
        prost::encoding::uint64::encode(7, &5, &mut bytes);
        prost::encoding::message::encode(1, &handle(1), &mut bytes);
        prost::encoding::bytes::encode(9, &vec![1, 2, 3], &mut bytes);
        let walked: Vec<Entry<'_>> = entries(&bytes).map(|e| e.expect("valid")).collect();
        assert_eq!(walked.len(), 1);
        assert_eq!(walked[0].position, 2);
        assert_eq!(
            pb::BlockIndex::decode(bytes.as_slice())
                .expect("prost agrees")
                .blocks,
            vec![handle(1)]
        );
    }

    #[test]
    fn an_empty_message_has_no_entries() {
        assert_eq!(entries(&[]).count(), 0);
    }

    #[test]
    fn a_length_past_the_end_stops_the_walk() {
        let mut bytes = pb::BlockIndex {
            blocks: vec![handle(1)],
        }
        .encode_to_vec();
        bytes.extend_from_slice(&[0x0A, 0x05, 1, 2]);
        let mut walk = entries(&bytes);
        assert!(matches!(walk.next(), Some(Ok(_))));
        assert!(matches!(
            walk.next(),
            Some(Err(WalkError::PastEnd { position })) if position == bytes.len() - 4
        ));
        assert!(walk.next().is_none());
    }

    #[test]
    fn a_huge_length_is_past_the_end_not_an_allocation() {
        let mut bytes = vec![0x0A];
        prost::encoding::encode_varint(u64::MAX, &mut bytes);
        assert!(matches!(
            entries(&bytes).next(),
            Some(Err(WalkError::PastEnd { position: 0 }))
        ));
    }

    #[test]
    fn bad_keys_and_wire_types_are_decode_errors() {
        // Field 1 as a varint, a field-0 key, and a key cut short.
        for bytes in [&[0x08, 0x01][..], &[0x00, 0x00], &[0x80]] {
            let mut walk = entries(bytes);
            assert!(
                matches!(
                    walk.next(),
                    Some(Err(WalkError::Decode { position: 0, .. }))
                ),
                "{bytes:?}"
            );
            assert!(walk.next().is_none());
        }
    }
}

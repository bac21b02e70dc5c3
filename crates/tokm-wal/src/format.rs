//! The on-disk format: the only module that knows byte offsets.
//!
//! Byte tables for every structure are in the crate docs (`FORMAT.md`); the constants below are
//! the single source for them. Everything is little-endian (`to_le_bytes`/`from_le_bytes`).

use crate::ids::SegmentId;
use tokm_storage::Lsn;

/// First eight bytes of every segment file.
pub(crate) const MAGIC: [u8; 8] = *b"TOKMWAL\x01";
/// Size of the segment header in bytes.
pub(crate) const HEADER_LEN: usize = 120;
/// Size of a record frame's header (length, LSN, checksum) in bytes.
pub(crate) const FRAME_HEADER_LEN: usize = 20;
/// Largest stored payload a frame may carry; a length field above this is damage, never an
/// allocation request.
pub(crate) const FRAME_PAYLOAD_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Longest segment file a reader accepts: `segment_bytes_max` is capped at 1 GiB and one
/// record may pass it by at most `FRAME_PAYLOAD_BYTES_MAX` plus a frame header.
pub(crate) const SEGMENT_READ_BYTES_MAX: u64 =
    SEGMENT_BYTES_CEILING + (FRAME_HEADER_LEN + FRAME_PAYLOAD_BYTES_MAX) as u64;
/// Largest `segment_bytes_max` the options accept.
pub(crate) const SEGMENT_BYTES_CEILING: u64 = 1 << 30;
/// Size of the salt field.
pub(crate) const SALT_LEN: usize = 32;
/// Size of the key-check tag field.
pub(crate) const KEY_CHECK_LEN: usize = 16;

const SEGMENT_SUFFIX: &str = ".wal";
const TEMP_SUFFIX: &str = ".wal.tmp";
const QUARANTINE_SUFFIX: &str = ".quarantine";
const NAME_DIGITS: usize = 20;

// Header field offsets (see the byte table in FORMAT.md).
const OFF_VERSION: usize = 8;
const OFF_CIPHER: usize = 9;
const OFF_RESERVED: usize = 10;
const OFF_KEY_ID: usize = 12;
const OFF_SEGMENT_ID: usize = 16;
const OFF_FIRST_LSN: usize = 24;
const OFF_PREVIOUS_LSN: usize = 32;
const OFF_CREATED_AT: usize = 40;
const OFF_NODE_ID: usize = 48;
const OFF_SALT: usize = 56;
const OFF_KEY_CHECK: usize = 88;
const OFF_HEADER_CHECKSUM: usize = 104;
const HEADER_CHECKSUM_LEN: usize = 16;

// Frame field offsets.
const FRAME_OFF_LSN: usize = 4;
const FRAME_OFF_CHECKSUM: usize = 12;
const FRAME_CHECKSUM_LEN: usize = 8;

/// Versions of the segment format this build reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FormatVersion {
    /// The first released format.
    V1 = 1,
}

impl TryFrom<u8> for FormatVersion {
    type Error = u8;

    fn try_from(raw: u8) -> Result<FormatVersion, u8> {
        match raw {
            1 => Ok(FormatVersion::V1),
            other => Err(other),
        }
    }
}

/// How a segment's payloads are protected, as written in its header.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum HeaderCipher {
    /// Payloads are stored as given.
    None,
    /// Payloads are sealed; `algorithm_id` is the crypto crate's algorithm id.
    Sealed {
        algorithm_id: u8,
        key_id: u32,
        salt: [u8; SALT_LEN],
        /// Tag of an empty plaintext sealed under counter 0, so a wrong key is told apart from
        /// damaged records before any record is read.
        key_check: [u8; KEY_CHECK_LEN],
    },
}

impl std::fmt::Debug for HeaderCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Salt and key check are not secret, but they are noise in logs; print only identities.
        match self {
            HeaderCipher::None => f.write_str("None"),
            HeaderCipher::Sealed {
                algorithm_id,
                key_id,
                ..
            } => f
                .debug_struct("Sealed")
                .field("algorithm_id", algorithm_id)
                .field("key_id", key_id)
                .finish_non_exhaustive(),
        }
    }
}

/// The decoded segment header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub(crate) version: FormatVersion,
    pub(crate) segment_id: SegmentId,
    pub(crate) first_lsn: Lsn,
    /// Last LSN the log held when this segment was created: the previous segment's last
    /// record, or less when recovery dropped records. Lets recovery tell a legitimate LSN gap
    /// from a missing segment.
    pub(crate) previous_lsn: Lsn,
    pub(crate) created_at_ms: u64,
    pub(crate) node_id: u64,
    pub(crate) cipher: HeaderCipher,
}

/// Why a header could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// Fewer than `HEADER_LEN` bytes.
    TooShort,
    /// The magic is not `TOKMWAL\x01`: not a tokm segment.
    BadMagic,
    /// A version this build does not know.
    UnsupportedVersion(u8),
    /// The header checksum does not match: the header is damaged.
    ChecksumMismatch,
    /// Checksum fine but a field holds a value no writer produces (cipher id, reserved bytes).
    BadField,
}

impl SegmentHeader {
    /// Encodes the header, checksum included.
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..OFF_VERSION].copy_from_slice(&MAGIC);
        out[OFF_VERSION] = self.version as u8;
        let (cipher_id, key_id, salt, key_check) = match &self.cipher {
            HeaderCipher::None => (0u8, 0u32, [0u8; SALT_LEN], [0u8; KEY_CHECK_LEN]),
            HeaderCipher::Sealed {
                algorithm_id,
                key_id,
                salt,
                key_check,
            } => {
                assert_ne!(*algorithm_id, 0, "algorithm id 0 means no cipher");
                (*algorithm_id, *key_id, *salt, *key_check)
            }
        };
        out[OFF_CIPHER] = cipher_id;
        out[OFF_KEY_ID..OFF_SEGMENT_ID].copy_from_slice(&key_id.to_le_bytes());
        out[OFF_SEGMENT_ID..OFF_FIRST_LSN].copy_from_slice(&self.segment_id.get().to_le_bytes());
        out[OFF_FIRST_LSN..OFF_PREVIOUS_LSN].copy_from_slice(&self.first_lsn.get().to_le_bytes());
        out[OFF_PREVIOUS_LSN..OFF_CREATED_AT]
            .copy_from_slice(&self.previous_lsn.get().to_le_bytes());
        out[OFF_CREATED_AT..OFF_NODE_ID].copy_from_slice(&self.created_at_ms.to_le_bytes());
        out[OFF_NODE_ID..OFF_SALT].copy_from_slice(&self.node_id.to_le_bytes());
        out[OFF_SALT..OFF_KEY_CHECK].copy_from_slice(&salt);
        out[OFF_KEY_CHECK..OFF_HEADER_CHECKSUM].copy_from_slice(&key_check);
        let checksum = header_checksum(&out[..OFF_HEADER_CHECKSUM]);
        out[OFF_HEADER_CHECKSUM..].copy_from_slice(&checksum);
        debug_assert_eq!(SegmentHeader::decode(&out).as_ref(), Ok(self));
        out
    }

    /// Decodes a header from the first `HEADER_LEN` bytes of `bytes`.
    ///
    /// Magic and version are checked before the checksum so a foreign file is reported as
    /// foreign, not as a damaged segment.
    pub(crate) fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        if bytes.len() < OFF_VERSION || bytes[..OFF_VERSION] != MAGIC {
            return Err(if bytes.len() < OFF_VERSION && MAGIC.starts_with(bytes) {
                HeaderError::TooShort
            } else {
                HeaderError::BadMagic
            });
        }
        let Some(&version) = bytes.get(OFF_VERSION) else {
            return Err(HeaderError::TooShort);
        };
        FormatVersion::try_from(version).map_err(HeaderError::UnsupportedVersion)?;
        let Some(bytes) = bytes.get(..HEADER_LEN) else {
            return Err(HeaderError::TooShort);
        };
        if header_checksum(&bytes[..OFF_HEADER_CHECKSUM]) != bytes[OFF_HEADER_CHECKSUM..] {
            return Err(HeaderError::ChecksumMismatch);
        }
        SegmentHeader::parse_fields(bytes)
    }

    /// The fields of a v1 header of exactly `HEADER_LEN` bytes, checked against each other but
    /// not against the checksum.
    fn parse_fields(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        if bytes[OFF_RESERVED..OFF_KEY_ID] != [0, 0] {
            return Err(HeaderError::BadField);
        }
        let first_lsn = u64::from_le_bytes(array(&bytes[OFF_FIRST_LSN..OFF_PREVIOUS_LSN]));
        let previous_lsn = u64::from_le_bytes(array(&bytes[OFF_PREVIOUS_LSN..OFF_CREATED_AT]));
        if first_lsn == 0 || previous_lsn >= first_lsn {
            return Err(HeaderError::BadField);
        }
        let key_id = u32::from_le_bytes(array(&bytes[OFF_KEY_ID..OFF_SEGMENT_ID]));
        let salt: [u8; SALT_LEN] = array(&bytes[OFF_SALT..OFF_KEY_CHECK]);
        let key_check: [u8; KEY_CHECK_LEN] = array(&bytes[OFF_KEY_CHECK..OFF_HEADER_CHECKSUM]);
        let cipher = match bytes[OFF_CIPHER] {
            0 if key_id == 0 && salt == [0; SALT_LEN] && key_check == [0; KEY_CHECK_LEN] => {
                HeaderCipher::None
            }
            0 => return Err(HeaderError::BadField),
            algorithm_id => HeaderCipher::Sealed {
                algorithm_id,
                key_id,
                salt,
                key_check,
            },
        };
        Ok(SegmentHeader {
            version: FormatVersion::V1,
            segment_id: SegmentId::new(u64::from_le_bytes(array(
                &bytes[OFF_SEGMENT_ID..OFF_FIRST_LSN],
            ))),
            first_lsn: Lsn::new(first_lsn),
            previous_lsn: Lsn::new(previous_lsn),
            created_at_ms: u64::from_le_bytes(array(&bytes[OFF_CREATED_AT..OFF_NODE_ID])),
            node_id: u64::from_le_bytes(array(&bytes[OFF_NODE_ID..OFF_SALT])),
            cipher,
        })
    }
}

/// Most bits of the magic that may differ from [`MAGIC`] for a file named like a segment to
/// still count as one of ours with a damaged header rather than as a foreign file.
const MAGIC_FLIPPED_BITS_MAX: u32 = 8;

/// How far the header of a file *named* like a segment can be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HeaderRead {
    /// Checksum and every field check out, and the first LSN matches the name.
    Intact(SegmentHeader),
    /// Only the magic or the version byte is damaged: with them restored the checksum verifies,
    /// so every field is right.
    IdentityDamaged(SegmentHeader),
    /// The checksum fails, but the fields agree with each other and with the file name. Usable
    /// for reading frames once the key check confirms the cipher fields (sealed segments);
    /// `previous_lsn` cannot be trusted.
    Salvaged(SegmentHeader),
    /// Too damaged to read anything by (or cut short): the segment's records are lost.
    Unreadable,
    /// The magic is far from ours: not a tokm segment, whatever its name.
    Foreign,
    /// An intact magic with a version this build does not know (a newer writer's file).
    UnsupportedVersion(u8),
}

/// Classifies the header of a file named like the segment starting at `name_lsn`, given the
/// file's first bytes (at least `HEADER_LEN` of them unless the file is shorter).
///
/// A file whose name is ours and whose magic is within a few flipped bits of ours is ours: bit
/// rot in the magic must not turn a segment into a "foreign" file that blocks every recovery
/// policy. A magic that is really different, or an intact magic with an unknown version, is
/// refused and never touched.
pub(crate) fn read_header(bytes: &[u8], name_lsn: Lsn) -> HeaderRead {
    let magic_len = bytes.len().min(MAGIC.len());
    let magic_flips = flipped_bits(&bytes[..magic_len], &MAGIC[..magic_len]);
    if magic_flips > MAGIC_FLIPPED_BITS_MAX {
        return HeaderRead::Foreign;
    }
    let version = bytes.get(OFF_VERSION).copied();
    let unknown_version = version.is_some_and(|version| FormatVersion::try_from(version).is_err());
    // Segments are created whole (header synced under a temp name, then renamed): a short
    // one that starts like ours was cut, unless it says it is from a newer format.
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return match version {
            Some(version) if magic_flips == 0 && unknown_version => {
                HeaderRead::UnsupportedVersion(version)
            }
            _ => HeaderRead::Unreadable,
        };
    };
    let version = header[OFF_VERSION];
    let mut restored: [u8; HEADER_LEN] = array(header);
    restored[..OFF_VERSION].copy_from_slice(&MAGIC);
    restored[OFF_VERSION] = FormatVersion::V1 as u8;
    let identity_intact = magic_flips == 0 && version == FormatVersion::V1 as u8;
    match SegmentHeader::decode(&restored) {
        Ok(header) if header.first_lsn != name_lsn => HeaderRead::Unreadable,
        Ok(header) if identity_intact => HeaderRead::Intact(header),
        Ok(header) => HeaderRead::IdentityDamaged(header),
        Err(_) if magic_flips == 0 && unknown_version => HeaderRead::UnsupportedVersion(version),
        Err(HeaderError::ChecksumMismatch) => match SegmentHeader::parse_fields(&restored) {
            Ok(header) if header.first_lsn == name_lsn => HeaderRead::Salvaged(header),
            Ok(_) | Err(_) => HeaderRead::Unreadable,
        },
        Err(_) => HeaderRead::Unreadable,
    }
}

/// Number of bits that differ between two slices of equal length.
fn flipped_bits(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

fn header_checksum(bytes: &[u8]) -> [u8; HEADER_CHECKSUM_LEN] {
    array(&blake3::hash(bytes).as_bytes()[..HEADER_CHECKSUM_LEN])
}

/// Copies a slice whose length the caller fixed by construction into an array.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

/// Start of a frame being encoded into a buffer; see [`begin_frame`].
#[derive(Debug)]
#[must_use]
pub(crate) struct FrameStart(usize);

/// Reserves a frame header at the end of `out`; the caller then appends the stored payload and
/// calls [`finish_frame`].
pub(crate) fn begin_frame(out: &mut Vec<u8>) -> FrameStart {
    let start = out.len();
    out.resize(start + FRAME_HEADER_LEN, 0);
    FrameStart(start)
}

/// Fills the frame header reserved by [`begin_frame`]: the payload is everything appended since.
pub(crate) fn finish_frame(out: &mut [u8], start: FrameStart, lsn: Lsn) {
    let FrameStart(start) = start;
    let payload_len = out.len() - start - FRAME_HEADER_LEN;
    assert!(
        payload_len <= FRAME_PAYLOAD_BYTES_MAX,
        "caller enforces the record size limit"
    );
    assert_ne!(lsn, Lsn::ZERO, "LSN 0 is never assigned");
    let frame = &mut out[start..];
    // The length fits in u32 because the limit above is below u32::MAX.
    frame[..FRAME_OFF_LSN].copy_from_slice(&(payload_len as u32).to_le_bytes());
    frame[FRAME_OFF_LSN..FRAME_OFF_CHECKSUM].copy_from_slice(&lsn.get().to_le_bytes());
    let checksum = frame_checksum(&frame[..FRAME_OFF_CHECKSUM], &frame[FRAME_HEADER_LEN..]);
    frame[FRAME_OFF_CHECKSUM..FRAME_HEADER_LEN].copy_from_slice(&checksum);
    debug_assert!(matches!(
        read_frame(frame),
        FrameRead::Record { lsn: decoded, .. } if decoded == lsn
    ));
}

/// Drops a frame begun with [`begin_frame`] (its payload could not be produced).
pub(crate) fn abort_frame(out: &mut Vec<u8>, start: FrameStart) {
    out.truncate(start.0);
}

/// Total bytes a frame with a stored payload of `payload_len` bytes occupies.
pub(crate) const fn frame_len(payload_len: usize) -> usize {
    FRAME_HEADER_LEN + payload_len
}

fn frame_checksum(length_and_lsn: &[u8], payload: &[u8]) -> [u8; FRAME_CHECKSUM_LEN] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(length_and_lsn);
    hasher.update(payload);
    array(&hasher.finalize().as_bytes()[..FRAME_CHECKSUM_LEN])
}

/// What the bytes at a frame position hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameRead<'a> {
    /// A frame whose checksum verifies.
    Record {
        lsn: Lsn,
        payload: &'a [u8],
        frame_len: usize,
    },
    /// The bytes end before the frame does: fewer than a frame header, or fewer than the length
    /// field promises.
    Truncated,
    /// A length above the limit, LSN 0 or a checksum mismatch.
    Invalid,
}

/// Reads the frame starting at `bytes[0]`. Never panics, whatever the bytes.
pub(crate) fn read_frame(bytes: &[u8]) -> FrameRead<'_> {
    let Some(header) = bytes.get(..FRAME_HEADER_LEN) else {
        return FrameRead::Truncated;
    };
    let payload_len = u32::from_le_bytes(array(&header[..FRAME_OFF_LSN])) as usize;
    if payload_len > FRAME_PAYLOAD_BYTES_MAX {
        return FrameRead::Invalid;
    }
    let lsn = Lsn::new(u64::from_le_bytes(array(
        &header[FRAME_OFF_LSN..FRAME_OFF_CHECKSUM],
    )));
    if lsn == Lsn::ZERO {
        return FrameRead::Invalid;
    }
    let Some(payload) = bytes.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + payload_len) else {
        return FrameRead::Truncated;
    };
    let checksum = frame_checksum(&header[..FRAME_OFF_CHECKSUM], payload);
    if checksum != header[FRAME_OFF_CHECKSUM..] {
        return FrameRead::Invalid;
    }
    FrameRead::Record {
        lsn,
        payload,
        frame_len: frame_len(payload_len),
    }
}

/// The whole length of the frame starting at `bytes[0]` as its length field claims, without
/// verifying anything; `None` when fewer than a frame header's bytes are given or the claim
/// is above the format's limit (then the frame is invalid, whatever follows).
pub(crate) fn claimed_frame_len(bytes: &[u8]) -> Option<usize> {
    let field = bytes.get(..FRAME_OFF_LSN)?;
    let payload_len = u32::from_le_bytes(array(field)) as usize;
    (payload_len <= FRAME_PAYLOAD_BYTES_MAX).then_some(frame_len(payload_len))
}

/// The LSN field of the frame starting at `bytes[0]`, without verifying anything; lets a
/// resynchronising scan reject implausible positions before hashing.
pub(crate) fn peek_frame_lsn(bytes: &[u8]) -> Option<Lsn> {
    let field = bytes.get(FRAME_OFF_LSN..FRAME_OFF_CHECKSUM)?;
    Some(Lsn::new(u64::from_le_bytes(array(field))))
}

/// The associated data that binds a sealed payload to its segment and position:
/// segment id (u64 LE) followed by LSN (u64 LE).
pub(crate) fn record_aad(segment_id: SegmentId, lsn: Lsn) -> [u8; 16] {
    let mut aad = [0u8; 16];
    aad[..8].copy_from_slice(&segment_id.get().to_le_bytes());
    aad[8..].copy_from_slice(&lsn.get().to_le_bytes());
    aad
}

/// Associated data for the header's key-check tag (sealed under counter 0, which no record
/// uses because LSNs start at 1).
pub(crate) fn key_check_aad(segment_id: SegmentId) -> [u8; 24] {
    let mut aad = [0u8; 24];
    aad[..8].copy_from_slice(b"KEYCHECK");
    aad[8..16].copy_from_slice(&segment_id.get().to_le_bytes());
    aad
}

/// What a directory entry's name says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileName {
    /// `<20-digit first LSN>.wal`.
    Segment(Lsn),
    /// `<20-digit first LSN>.wal.tmp`: a segment being created; never holds acknowledged data.
    SegmentTemp,
    /// Ends in `.wal` but is not a segment name this crate writes.
    MalformedSegment,
    /// Anything else (including quarantined files): not ours to read or touch.
    Unrelated,
}

/// Classifies a directory entry by name.
pub(crate) fn classify_name(name: &str) -> FileName {
    if let Some(stem) = name.strip_suffix(TEMP_SUFFIX) {
        return if parse_digits(stem).is_some() {
            FileName::SegmentTemp
        } else {
            FileName::Unrelated
        };
    }
    let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else {
        return FileName::Unrelated;
    };
    match parse_digits(stem) {
        Some(first_lsn) if first_lsn != 0 => FileName::Segment(Lsn::new(first_lsn)),
        _ => FileName::MalformedSegment,
    }
}

fn parse_digits(stem: &str) -> Option<u64> {
    if stem.len() != NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// File name of the segment whose first record has `first_lsn`; zero-padded so names sort.
pub(crate) fn segment_name(first_lsn: Lsn) -> String {
    format!(
        "{:0width$}{SEGMENT_SUFFIX}",
        first_lsn.get(),
        width = NAME_DIGITS
    )
}

/// File name used while a segment is being created, before the atomic rename.
pub(crate) fn temp_name(first_lsn: Lsn) -> String {
    format!(
        "{:0width$}{TEMP_SUFFIX}",
        first_lsn.get(),
        width = NAME_DIGITS
    )
}

/// File name that keeps damaged bytes cut from `segment_name` at `offset` (or a whole segment
/// dropped from the log) out of the log but on disk for inspection.
pub(crate) fn quarantine_name(segment_name: &str, offset: u64) -> String {
    format!("{segment_name}.{offset}{QUARANTINE_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(cipher: HeaderCipher) -> SegmentHeader {
        SegmentHeader {
            version: FormatVersion::V1,
            segment_id: SegmentId::new(7),
            first_lsn: Lsn::new(42),
            previous_lsn: Lsn::new(40),
            created_at_ms: 1_700_000_000_000,
            node_id: 3,
            cipher,
        }
    }

    #[test]
    fn header_round_trips_plain_and_sealed() {
        let sealed = HeaderCipher::Sealed {
            algorithm_id: 2,
            key_id: 9,
            salt: [5; SALT_LEN],
            key_check: [6; KEY_CHECK_LEN],
        };
        for h in [header(HeaderCipher::None), header(sealed)] {
            assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
        }
    }

    #[test]
    fn header_tells_foreign_from_damaged() {
        let bytes = header(HeaderCipher::None).encode();
        let mut foreign = bytes;
        foreign[0] = b'X';
        assert_eq!(SegmentHeader::decode(&foreign), Err(HeaderError::BadMagic));
        let mut future = bytes;
        future[OFF_VERSION] = 2;
        assert_eq!(
            SegmentHeader::decode(&future),
            Err(HeaderError::UnsupportedVersion(2))
        );
        let mut damaged = bytes;
        damaged[OFF_NODE_ID] ^= 1;
        assert_eq!(
            SegmentHeader::decode(&damaged),
            Err(HeaderError::ChecksumMismatch)
        );
        assert_eq!(
            SegmentHeader::decode(&bytes[..50]),
            Err(HeaderError::TooShort)
        );
        assert_eq!(SegmentHeader::decode(b"TOKM"), Err(HeaderError::TooShort));
        assert_eq!(
            SegmentHeader::decode(b"# README"),
            Err(HeaderError::BadMagic)
        );
    }

    #[test]
    fn a_header_named_like_a_segment_is_judged_by_how_much_of_it_can_be_trusted() {
        let good = header(HeaderCipher::None);
        let bytes = good.encode();
        let lsn = good.first_lsn;
        let flipped = |at: usize, bit: u8| {
            let mut copy = bytes;
            copy[at] ^= bit;
            copy
        };
        assert_eq!(read_header(&bytes, lsn), HeaderRead::Intact(good.clone()));
        for damaged in [flipped(0, 1), flipped(7, 0x80), flipped(OFF_VERSION, 2)] {
            assert_eq!(
                read_header(&damaged, lsn),
                HeaderRead::IdentityDamaged(good.clone())
            );
        }
        let mut salvaged = good.clone();
        salvaged.node_id ^= 1;
        assert_eq!(
            read_header(&flipped(OFF_NODE_ID, 1), lsn),
            HeaderRead::Salvaged(salvaged)
        );
        assert_eq!(
            read_header(&flipped(OFF_HEADER_CHECKSUM, 1), lsn),
            HeaderRead::Salvaged(good.clone())
        );
        for unusable in [flipped(OFF_FIRST_LSN, 1), flipped(OFF_RESERVED, 1)] {
            assert_eq!(read_header(&unusable, lsn), HeaderRead::Unreadable);
        }
        assert_eq!(
            read_header(&bytes, Lsn::new(lsn.get() + 1)),
            HeaderRead::Unreadable,
            "renamed to another LSN"
        );
        assert_eq!(read_header(&bytes[..60], lsn), HeaderRead::Unreadable);
        assert_eq!(read_header(b"", lsn), HeaderRead::Unreadable);
        // A newer format: intact magic, unknown version, its own checksum.
        let mut future = bytes;
        future[OFF_VERSION] = 9;
        let checksum = header_checksum(&future[..OFF_HEADER_CHECKSUM]);
        future[OFF_HEADER_CHECKSUM..].copy_from_slice(&checksum);
        assert_eq!(read_header(&future, lsn), HeaderRead::UnsupportedVersion(9));
        assert_eq!(
            read_header(b"TOKMWAL\x01\x09 short", lsn),
            HeaderRead::UnsupportedVersion(9)
        );
        assert_eq!(
            read_header(b"PK\x03\x04 a zip file", lsn),
            HeaderRead::Foreign
        );
        assert_eq!(read_header(&[0u8; 200], lsn), HeaderRead::Foreign);
    }

    #[test]
    fn header_byte_layout_is_pinned() {
        let bytes = header(HeaderCipher::None).encode();
        assert_eq!(&bytes[..8], b"TOKMWAL\x01");
        assert_eq!(bytes[8], 1);
        assert_eq!(&bytes[16..24], &7u64.to_le_bytes());
        assert_eq!(&bytes[24..32], &42u64.to_le_bytes());
        assert_eq!(&bytes[32..40], &40u64.to_le_bytes());
        assert_eq!(&bytes[48..56], &3u64.to_le_bytes());
    }

    #[test]
    fn frame_round_trips_and_detects_truncation_and_flips() {
        let mut buf = Vec::new();
        let start = begin_frame(&mut buf);
        buf.extend_from_slice(b"hello");
        finish_frame(&mut buf, start, Lsn::new(5));
        assert_eq!(buf.len(), frame_len(5));
        assert_eq!(
            read_frame(&buf),
            FrameRead::Record {
                lsn: Lsn::new(5),
                payload: b"hello",
                frame_len: 25
            }
        );
        for cut in 0..buf.len() {
            assert_eq!(
                read_frame(&buf[..cut]),
                FrameRead::Truncated,
                "cut at {cut}"
            );
        }
        for index in 0..buf.len() {
            let mut flipped = buf.clone();
            flipped[index] ^= 0x10;
            assert!(
                !matches!(read_frame(&flipped), FrameRead::Record { .. }),
                "flip at {index} went unnoticed"
            );
        }
        assert_eq!(read_frame(&[0u8; 64]), FrameRead::Invalid);
    }

    #[test]
    fn names_sort_and_classify() {
        assert_eq!(segment_name(Lsn::new(1)), "00000000000000000001.wal");
        assert!(segment_name(Lsn::new(9)) < segment_name(Lsn::new(10)));
        assert_eq!(
            classify_name(&segment_name(Lsn::new(77))),
            FileName::Segment(Lsn::new(77))
        );
        assert_eq!(
            classify_name(&temp_name(Lsn::new(77))),
            FileName::SegmentTemp
        );
        assert_eq!(classify_name("notes.wal"), FileName::MalformedSegment);
        assert_eq!(
            classify_name("00000000000000000000.wal"),
            FileName::MalformedSegment
        );
        assert_eq!(classify_name("README"), FileName::Unrelated);
        assert_eq!(classify_name("x.tmp"), FileName::Unrelated);
        let q = quarantine_name(&segment_name(Lsn::new(1)), 128);
        assert_eq!(classify_name(&q), FileName::Unrelated);
    }

    proptest! {
        #[test]
        fn decoding_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = SegmentHeader::decode(&bytes);
            let _ = read_header(&bytes, Lsn::new(1));
            let _ = read_frame(&bytes);
            let _ = claimed_frame_len(&bytes);
        }

        #[test]
        fn frames_with_random_payloads_round_trip(
            payload in proptest::collection::vec(any::<u8>(), 0..512),
            lsn in 1u64..u64::MAX,
        ) {
            let mut buf = vec![0xAA];
            let start = begin_frame(&mut buf);
            buf.extend_from_slice(&payload);
            finish_frame(&mut buf, start, Lsn::new(lsn));
            let decoded = read_frame(&buf[1..]);
            prop_assert_eq!(
                decoded,
                FrameRead::Record { lsn: Lsn::new(lsn), payload: &payload, frame_len: frame_len(payload.len()) }
            );
        }
    }
}

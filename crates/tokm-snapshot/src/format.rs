//! The on-disk format: the only module that knows byte offsets and file names.
//!
//! Byte tables are in `FORMAT.md` (included in the crate docs); the constants below are the
//! single source for them. Integers are little-endian (`to_le_bytes`/`from_le_bytes`).

use tokm_crypto_adaptive::Algorithm;
use tokm_domain::Timestamp;
use tokm_proto::pb;
use tokm_storage::Lsn;

/// First eight bytes of every snapshot file, and last eight bytes of its trailer.
pub(crate) const MAGIC: [u8; 8] = *b"TOKMSNP\x01";
/// Fixed bytes before the header message: magic, version, reserved, header length.
pub(crate) const PRELUDE_LEN: usize = OFF_HEADER_LEN + 4;
/// Size of every checksum the format stores except the whole-file one.
pub(crate) const CHECKSUM_LEN: usize = 16;
/// Size of the fixed trailer at the very end: footer length, footer checksum, magic.
pub(crate) const TRAILER_LEN: usize = TRAILER_OFF_MAGIC + MAGIC.len();
/// Longest header message a reader accepts; a node id is at most [`NODE_ID_LEN_MAX`] bytes,
/// so real headers are far below it, and a larger length field is damage, not a request.
pub(crate) const HEADER_LEN_MAX: usize = 4 * 1024;
/// Longest footer message a reader accepts.
pub(crate) const FOOTER_LEN_MAX: usize = 1024;
/// Longest block a reader accepts. Writers cut blocks near [`BLOCK_BYTES_TARGET`]; one block
/// only exceeds it by its last session, which the domain's field limits keep far below this.
pub(crate) const BLOCK_LEN_MAX: u64 = 64 * 1024 * 1024;
/// Longest block index a reader accepts (about 1.5 M blocks).
pub(crate) const INDEX_LEN_MAX: u64 = 64 * 1024 * 1024;
/// Longest encoded session a reader decodes. The domain's field limits keep a valid session
/// under 7 KiB (a unit test in `write.rs` checks it), so a longer one is damage, refused
/// before prost builds it: it could otherwise hold millions of metadata entries.
pub(crate) const SESSION_BYTES_MAX: usize = 64 * 1024;
/// A writer closes a block once it holds this many sessions...
pub(crate) const BLOCK_SESSIONS_MAX: usize = 1024;
/// ...or once its encoding reaches this many bytes, whichever comes first.
pub(crate) const BLOCK_BYTES_TARGET: usize = 256 * 1024;
/// Longest node id a writer accepts, in bytes.
pub(crate) const NODE_ID_LEN_MAX: usize = 128;
/// Length of a per-file salt when the blocks are sealed.
pub(crate) const SALT_LEN: usize = 32;

const SNAPSHOT_SUFFIX: &str = ".snap";
const TEMP_SUFFIX: &str = ".tmp";
const BROKEN_SUFFIX: &str = ".broken";
const NAME_DIGITS: usize = 20;

// Prelude offsets (see FORMAT.md), each derived from the sizes of the fields before it:
// magic (8), version (1), reserved (3), header length (u32).
const OFF_VERSION: usize = MAGIC.len();
const OFF_RESERVED: usize = OFF_VERSION + 1;
const OFF_HEADER_LEN: usize = OFF_RESERVED + 3;
const _: () = assert!(
    PRELUDE_LEN == 16 && TRAILER_LEN == 28,
    "the sizes FORMAT.md gives"
);

/// Offset of the prelude's version byte, for error reports.
pub(crate) const VERSION_OFFSET: u64 = OFF_VERSION as u64;
/// Offset of the prelude's reserved bytes, for error reports.
pub(crate) const RESERVED_OFFSET: u64 = OFF_RESERVED as u64;
/// Offset of the prelude's header length, for error reports.
pub(crate) const HEADER_LEN_OFFSET: u64 = OFF_HEADER_LEN as u64;
/// Offset of the header message: right after the prelude.
pub(crate) const HEADER_OFFSET: u64 = PRELUDE_LEN as u64;

// Trailer offsets, relative to the trailer's start: footer length (u32), footer checksum,
// magic.
const TRAILER_OFF_CHECKSUM: usize = 4;
const TRAILER_OFF_MAGIC: usize = TRAILER_OFF_CHECKSUM + CHECKSUM_LEN;

/// Domain-separation prefix of a sealed block's associated data.
const BLOCK_AAD_PREFIX: &[u8; 8] = b"TOKMSNPB";
/// Length of a sealed block's associated data.
pub(crate) const BLOCK_AAD_LEN: usize = 24;

/// The header's cipher id for a sealing algorithm.
pub(crate) fn cipher_id(algorithm: Algorithm) -> pb::Cipher {
    match algorithm {
        Algorithm::Aes256Gcm => pb::Cipher::Aes256Gcm,
        Algorithm::ChaCha20Poly1305 => pb::Cipher::Chacha20Poly1305,
    }
}

/// The sealing algorithm a header's cipher id names: `Ok(None)` for plain blocks, `Err(())`
/// for an id this build does not know.
pub(crate) fn cipher_algorithm(cipher_id: i32) -> Result<Option<Algorithm>, ()> {
    match pb::Cipher::try_from(cipher_id).map_err(|_| ())? {
        pb::Cipher::None => Ok(None),
        pb::Cipher::Aes256Gcm => Ok(Some(Algorithm::Aes256Gcm)),
        pb::Cipher::Chacha20Poly1305 => Ok(Some(Algorithm::ChaCha20Poly1305)),
    }
}

/// A snapshot id taken from the first eight bytes of `random` (u64 LE): unique per file with
/// overwhelming probability.
pub(crate) fn snapshot_id_from(random: &[u8; SALT_LEN]) -> u64 {
    let mut id = [0; 8];
    id.copy_from_slice(&random[..8]);
    u64::from_le_bytes(id)
}

/// Versions of the snapshot format this build reads; it writes [`FormatVersion::CURRENT`].
///
/// The versions share every byte of the framing (prelude, header, blocks, index, footer,
/// trailer) and differ only in what a block's entries hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FormatVersion {
    /// Each block entry is a protobuf `tokm.v1.Session` message.
    V1 = 1,
    /// Each block entry is a `tokm_domain::SessionRecord`'s bytes: the layout the memory store
    /// keeps, so writing is a copy and reading is one check and one copy per session.
    V2 = 2,
}

impl FormatVersion {
    /// The version this build writes.
    pub(crate) const CURRENT: FormatVersion = FormatVersion::V2;
    /// Every version this build reads.
    pub(crate) const KNOWN: [FormatVersion; 2] = [FormatVersion::V1, FormatVersion::V2];
}

impl TryFrom<u8> for FormatVersion {
    type Error = u8;

    fn try_from(raw: u8) -> Result<FormatVersion, u8> {
        FormatVersion::KNOWN
            .into_iter()
            .find(|version| *version as u8 == raw)
            .ok_or(raw)
    }
}

/// The first [`PRELUDE_LEN`] bytes of a file, then the header message of `header_len` bytes
/// and its checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Prelude {
    pub(crate) version: FormatVersion,
    /// Zero when written. Readers check it only after the header checksum passed, so a flipped
    /// bit here reads as damage, not as a foreign file.
    pub(crate) reserved: [u8; 3],
    pub(crate) header_len: u32,
}

/// Why the prelude could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PreludeError {
    /// The bytes do not start with [`MAGIC`].
    BadMagic,
    /// The version byte names a version this build does not know.
    UnsupportedVersion(u8),
}

impl Prelude {
    /// The prelude bytes: magic, version, zero reserved bytes, header length.
    pub(crate) fn encode(self) -> [u8; PRELUDE_LEN] {
        let mut out = [0_u8; PRELUDE_LEN];
        out[..OFF_VERSION].copy_from_slice(&MAGIC);
        out[OFF_VERSION] = self.version as u8;
        out[OFF_RESERVED..OFF_HEADER_LEN].copy_from_slice(&self.reserved);
        out[OFF_HEADER_LEN..].copy_from_slice(&self.header_len.to_le_bytes());
        debug_assert_eq!(Prelude::decode(&out), Ok(self));
        out
    }

    /// Decodes the prelude. Magic and version come first so a foreign file is reported as
    /// foreign, not as damage.
    pub(crate) fn decode(bytes: &[u8; PRELUDE_LEN]) -> Result<Prelude, PreludeError> {
        if bytes[..OFF_VERSION] != MAGIC {
            return Err(PreludeError::BadMagic);
        }
        let version = FormatVersion::try_from(bytes[OFF_VERSION])
            .map_err(PreludeError::UnsupportedVersion)?;
        Ok(Prelude {
            version,
            reserved: array(&bytes[OFF_RESERVED..OFF_HEADER_LEN]),
            header_len: u32::from_le_bytes(array(&bytes[OFF_HEADER_LEN..])),
        })
    }
}

/// `prelude` with its version byte set to `version`.
pub(crate) fn with_version(
    mut prelude: [u8; PRELUDE_LEN],
    version: FormatVersion,
) -> [u8; PRELUDE_LEN] {
    prelude[OFF_VERSION] = version as u8;
    prelude
}

impl Prelude {
    /// Length of the head this prelude starts (prelude, header message, header checksum):
    /// where the first block begins.
    pub(crate) fn head_len(&self) -> u64 {
        PRELUDE_LEN as u64 + u64::from(self.header_len) + CHECKSUM_LEN as u64
    }
}

/// The head of every file: prelude ‖ `header` message ‖ header checksum, where the checksum
/// is the first 16 bytes of BLAKE3 over prelude ‖ header message.
pub(crate) fn encode_head(header: &[u8]) -> Vec<u8> {
    let prelude = Prelude {
        version: FormatVersion::CURRENT,
        reserved: [0; 3],
        header_len: u32::try_from(header.len())
            .expect("the header is a few fixed fields and a node id of at most 128 bytes"),
    };
    let mut head = Vec::with_capacity(PRELUDE_LEN + header.len() + CHECKSUM_LEN);
    head.extend_from_slice(&prelude.encode());
    head.extend_from_slice(header);
    let checksum = truncated_hash(&head);
    head.extend_from_slice(&checksum);
    debug_assert_eq!(verify_head(&head), Ok(header));
    head
}

/// The header message of a whole head (`Prelude::head_len` bytes), or the offset of its
/// checksum when that does not match.
pub(crate) fn verify_head(head: &[u8]) -> Result<&[u8], u64> {
    let checksum_offset = head.len().saturating_sub(CHECKSUM_LEN);
    let (checked, stored) = head.split_at(checksum_offset);
    if checked.len() < PRELUDE_LEN || truncated_hash(checked) != stored {
        return Err(checksum_offset as u64);
    }
    Ok(&checked[PRELUDE_LEN..])
}

/// The end of every file: `footer` message ‖ trailer.
pub(crate) fn encode_tail(footer: &[u8]) -> Vec<u8> {
    let mut tail = Vec::with_capacity(footer.len() + TRAILER_LEN);
    tail.extend_from_slice(footer);
    tail.extend_from_slice(&Trailer::for_footer(footer).encode());
    tail
}

/// Offset of the trailer in a file of `file_len` bytes; `None` if the file is shorter.
pub(crate) fn trailer_offset(file_len: u64) -> Option<u64> {
    file_len.checked_sub(TRAILER_LEN as u64)
}

/// Checksum of one stored block, as kept in its `BlockHandle`.
pub(crate) fn block_checksum(stored: &[u8]) -> [u8; CHECKSUM_LEN] {
    truncated_hash(stored)
}

/// Checksum of the encoded block index, as kept in the footer's `index_checksum`.
pub(crate) fn index_checksum(index: &[u8]) -> [u8; CHECKSUM_LEN] {
    truncated_hash(index)
}

fn truncated_hash(bytes: &[u8]) -> [u8; CHECKSUM_LEN] {
    array(&blake3::hash(bytes).as_bytes()[..CHECKSUM_LEN])
}

/// The last [`TRAILER_LEN`] bytes of a file: where the footer is and whether it is intact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Trailer {
    pub(crate) footer_len: u32,
    pub(crate) footer_checksum: [u8; CHECKSUM_LEN],
}

impl Trailer {
    /// The trailer of a footer whose encoding is `footer`.
    pub(crate) fn for_footer(footer: &[u8]) -> Trailer {
        let footer_len =
            u32::try_from(footer.len()).expect("footer messages are a few dozen bytes");
        Trailer {
            footer_len,
            footer_checksum: truncated_hash(footer),
        }
    }

    pub(crate) fn encode(self) -> [u8; TRAILER_LEN] {
        let mut out = [0_u8; TRAILER_LEN];
        out[..TRAILER_OFF_CHECKSUM].copy_from_slice(&self.footer_len.to_le_bytes());
        out[TRAILER_OFF_CHECKSUM..TRAILER_OFF_MAGIC].copy_from_slice(&self.footer_checksum);
        out[TRAILER_OFF_MAGIC..].copy_from_slice(&MAGIC);
        debug_assert_eq!(Trailer::decode(&out), Some(self));
        out
    }

    /// The trailer, or `None` when the bytes do not end with [`MAGIC`] (a truncated file, or
    /// a file that is not a snapshot).
    pub(crate) fn decode(bytes: &[u8; TRAILER_LEN]) -> Option<Trailer> {
        if bytes[TRAILER_OFF_MAGIC..] != MAGIC {
            return None;
        }
        Some(Trailer {
            footer_len: u32::from_le_bytes(array(&bytes[..TRAILER_OFF_CHECKSUM])),
            footer_checksum: array(&bytes[TRAILER_OFF_CHECKSUM..TRAILER_OFF_MAGIC]),
        })
    }

    /// Offset of the footer in a file of `file_len` bytes, if it fits.
    pub(crate) fn footer_offset(&self, file_len: u64) -> Option<u64> {
        trailer_offset(file_len)?.checked_sub(u64::from(self.footer_len))
    }

    /// Whether `footer` is the footer this trailer describes.
    pub(crate) fn matches(&self, footer: &[u8]) -> bool {
        truncated_hash(footer) == self.footer_checksum
    }
}

/// Associated data of sealed block `block_index` in snapshot `snapshot_id`: binds each block
/// to its file and position, so blocks cannot be swapped or moved between files undetected.
pub(crate) fn block_aad(snapshot_id: u64, block_index: u64) -> [u8; BLOCK_AAD_LEN] {
    let mut aad = [0_u8; BLOCK_AAD_LEN];
    aad[..8].copy_from_slice(BLOCK_AAD_PREFIX);
    aad[8..16].copy_from_slice(&snapshot_id.to_le_bytes());
    aad[16..].copy_from_slice(&block_index.to_le_bytes());
    aad
}

/// What a snapshot's file name says: the LSN it covers and when it was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SnapshotName {
    /// Compared first, so sorting names sorts by LSN, then by time.
    pub(crate) covered_lsn: Lsn,
    pub(crate) created_at: Timestamp,
}

impl SnapshotName {
    /// `<covered LSN, 20 digits>-<created at ms, 20 digits>.snap`: byte order equals
    /// (LSN, time) order.
    pub(crate) fn file_name(self) -> String {
        format!(
            "{:0width$}-{:0width$}{SNAPSHOT_SUFFIX}",
            self.covered_lsn.get(),
            self.created_at.as_millis(),
            width = NAME_DIGITS
        )
    }

    /// The name of the temp file a snapshot is written under before its rename.
    pub(crate) fn temp_file_name(self) -> String {
        format!("{}{TEMP_SUFFIX}", self.file_name())
    }

    /// Parses a final snapshot file name; `None` for any other name.
    pub(crate) fn parse(name: &str) -> Option<SnapshotName> {
        let stem = name.strip_suffix(SNAPSHOT_SUFFIX)?;
        let (lsn, created) = stem.split_once('-')?;
        Some(SnapshotName {
            covered_lsn: Lsn::new(parse_digits(lsn)?),
            created_at: Timestamp::from_millis(parse_digits(created)?),
        })
    }
}

/// Whether `name` is a temp file a crashed writer left behind.
pub(crate) fn is_temp_file_name(name: &str) -> bool {
    name.strip_suffix(TEMP_SUFFIX)
        .is_some_and(|stem| SnapshotName::parse(stem).is_some())
}

/// The name a damaged snapshot is renamed to.
pub(crate) fn broken_file_name(name: &str) -> String {
    format!("{name}{BROKEN_SUFFIX}")
}

fn parse_digits(text: &str) -> Option<u64> {
    if text.len() != NAME_DIGITS || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Copies a slice the caller has already cut to length `N`.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes
        .try_into()
        .expect("callers slice exactly N bytes from fixed-size buffers")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prelude_round_trips_and_refuses_foreign_bytes() {
        let prelude = Prelude {
            version: FormatVersion::V1,
            reserved: [0; 3],
            header_len: 77,
        };
        let bytes = prelude.encode();
        assert_eq!(&bytes[..8], b"TOKMSNP\x01");
        assert_eq!(bytes[8], 1);
        assert_eq!(&bytes[12..], &77_u32.to_le_bytes());
        assert_eq!(Prelude::decode(&bytes), Ok(prelude));

        let mut foreign = bytes;
        foreign[0] = b'X';
        assert_eq!(Prelude::decode(&foreign), Err(PreludeError::BadMagic));
        let mut v2 = bytes;
        v2[8] = 2;
        assert_eq!(
            Prelude::decode(&v2).map(|p| p.version),
            Ok(FormatVersion::V2)
        );
        let mut newer = bytes;
        newer[8] = 3;
        assert_eq!(
            Prelude::decode(&newer),
            Err(PreludeError::UnsupportedVersion(3))
        );
        let mut reserved = bytes;
        reserved[10] = 1;
        assert_eq!(
            Prelude::decode(&reserved).map(|p| p.reserved),
            Ok([0, 1, 0])
        );
    }

    #[test]
    fn head_checksum_covers_prelude_and_header() {
        let head = encode_head(b"header message");
        assert_eq!(head.len(), 16 + 14 + 16);
        let prelude = Prelude::decode(&head[..16].try_into().expect("16 bytes")).expect("ours");
        assert_eq!(prelude.head_len(), head.len() as u64);
        assert_eq!(verify_head(&head), Ok(&b"header message"[..]));
        for position in 0..head.len() {
            let mut damaged = head.clone();
            damaged[position] ^= 1;
            assert_eq!(verify_head(&damaged), Err(30), "byte {position}");
        }
        assert_eq!(verify_head(&head[..10]), Err(0));
    }

    #[test]
    fn trailer_round_trips_and_checks_the_footer() {
        let trailer = Trailer::for_footer(b"footer bytes");
        let bytes = trailer.encode();
        assert_eq!(encode_tail(b"footer bytes")[12..], bytes);
        assert_eq!(trailer.footer_offset(100), Some(100 - 28 - 12));
        assert_eq!(trailer.footer_offset(39), None);
        assert_eq!(&bytes[..4], &12_u32.to_le_bytes());
        assert_eq!(&bytes[20..], b"TOKMSNP\x01");
        let decoded = Trailer::decode(&bytes).expect("magic present");
        assert!(decoded.matches(b"footer bytes"));
        assert!(!decoded.matches(b"footer bytez"));
        let mut cut = bytes;
        cut[27] = 0;
        assert_eq!(Trailer::decode(&cut), None);
    }

    #[test]
    fn names_sort_by_lsn_then_time_and_parse_back() {
        let older = SnapshotName {
            covered_lsn: Lsn::new(9),
            created_at: Timestamp::from_millis(500),
        };
        let newer = SnapshotName {
            covered_lsn: Lsn::new(10),
            created_at: Timestamp::from_millis(1),
        };
        assert_eq!(
            older.file_name(),
            "00000000000000000009-00000000000000000500.snap"
        );
        assert!(older.file_name() < newer.file_name());
        assert!(older < newer);
        assert_eq!(SnapshotName::parse(&newer.file_name()), Some(newer));
        assert!(is_temp_file_name(&newer.temp_file_name()));
        assert!(!is_temp_file_name(&newer.file_name()));
        for other in [
            "00000000000000000009-00000000000000000500.snap.broken",
            "9-500.snap",
            "0000000000000000000x-00000000000000000500.snap",
            "99999999999999999999-00000000000000000500.snap",
            "notes.txt",
        ] {
            assert_eq!(SnapshotName::parse(other), None, "{other}");
        }
    }

    #[test]
    fn block_aad_binds_snapshot_and_position() {
        let aad = block_aad(0x0102, 3);
        assert_eq!(&aad[..8], b"TOKMSNPB");
        assert_eq!(&aad[8..16], &0x0102_u64.to_le_bytes());
        assert_eq!(&aad[16..], &3_u64.to_le_bytes());
        assert_ne!(block_aad(1, 2), block_aad(2, 1));
    }
}

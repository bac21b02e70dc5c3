//! Reading a snapshot back: structure, checksums, then (optionally) keys and sessions.
//!
//! One sequential pass over the file: the fixed ends (prelude, header, trailer, footer, index)
//! are read and checked first; then the blocks in file order, each checked against its handle
//! and fed to the whole-file hash, which is compared last. Block contents are opened and
//! decoded only after their own checksum matched, so a failing tag means the wrong key, not
//! damage, and a decode error means damage no checksum saw.
//!
//! Memory stays bounded by what is read, whatever the file claims: every length from disk is
//! checked against the file's size and a limit before it sizes a buffer; each message is
//! checked against its checksum before it is decoded; and the two messages with a repeated
//! field (the index and each block) are decoded entry by entry, each entry checked before the
//! next is decoded (`index.rs`, `walk.rs`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use prost::Message;
use tokm_crypto_adaptive::{CryptoError, FileCipher, FileSalt, KeyId, Keyring};
use tokm_domain::SessionRecord;
use tokm_proto::{ProtoError, pb};
use tokm_storage::{Access, Lsn, Storage, StorageFile};

use crate::error::LoadError;
use crate::format::{
    self, CHECKSUM_LEN, FOOTER_LEN_MAX, FormatVersion, HEADER_LEN_MAX, INDEX_LEN_MAX, MAGIC,
    PRELUDE_LEN, Prelude, PreludeError, SALT_LEN, SESSION_BYTES_MAX, SnapshotName, TRAILER_LEN,
    Trailer,
};
use crate::index::{self, BlockHandle, IndexBounds};
use crate::meta::{Encryption, LoadedSnapshot, SnapshotMeta};
use crate::walk::{self, WalkError};

/// Most threads that decode blocks at once, besides the reading thread.
const DECODE_THREADS_MAX: usize = 4;
/// Blocks read ahead of the decoders; bounds memory to a few blocks.
const DECODE_QUEUE_BLOCKS: usize = 8;
/// Fewer blocks than this are decoded on the calling thread: threads would cost more.
const PARALLEL_BLOCKS_MIN: usize = 4;

/// An open snapshot file and what its name says.
struct Source<'a> {
    file: Arc<dyn StorageFile>,
    name: &'a str,
    len_bytes: u64,
}

impl Source<'_> {
    /// Reads `len` bytes at `offset`. Callers bound `len` by the file's length and a format
    /// limit first: this is where a length from disk becomes an allocation.
    fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, LoadError> {
        let len = usize::try_from(len).map_err(|_| self.malformed(offset, "length too large"))?;
        let mut buf = vec![0_u8; len];
        self.read_into(offset, &mut buf)?;
        Ok(buf)
    }

    /// Reads a fixed-size part of the file (prelude, trailer).
    fn read_array<const N: usize>(&self, offset: u64) -> Result<[u8; N], LoadError> {
        let mut buf = [0_u8; N];
        self.read_into(offset, &mut buf)?;
        Ok(buf)
    }

    fn read_into(&self, offset: u64, buf: &mut [u8]) -> Result<(), LoadError> {
        self.file.read_exact_at(offset, buf).map_err(|source| {
            if source.kind() == std::io::ErrorKind::UnexpectedEof {
                self.truncated("shorter than when it was opened")
            } else {
                LoadError::io("read", self.name, source)
            }
        })
    }

    fn malformed(&self, offset: u64, what: &'static str) -> LoadError {
        LoadError::malformed(self.name, offset, what)
    }

    fn truncated(&self, what: &'static str) -> LoadError {
        LoadError::Truncated {
            file: self.name.to_owned(),
            len_bytes: self.len_bytes,
            what,
        }
    }

    fn checksum(&self, offset: u64, what: &'static str) -> LoadError {
        LoadError::ChecksumMismatch {
            file: self.name.to_owned(),
            offset,
            what,
        }
    }

    fn not_a_snapshot(&self) -> LoadError {
        LoadError::NotASnapshot {
            file: self.name.to_owned(),
            reason: "wrong magic",
        }
    }

    /// Decodes a message whose checksum matched; `name` is its protobuf message name.
    fn decode<M: Message + Default>(
        &self,
        offset: u64,
        bytes: &[u8],
        name: &'static str,
    ) -> Result<M, LoadError> {
        M::decode(bytes).map_err(|source| {
            LoadError::decode(
                self.name,
                offset,
                ProtoError::Decode {
                    message: name,
                    source,
                },
            )
        })
    }
}

/// The footer's facts, checked against the trailer and the file's size.
struct Footer {
    /// Where the footer starts: right after the index.
    offset: u64,
    index_offset: u64,
    index_length: u64,
    session_count: u64,
    file_checksum: [u8; blake3::OUT_LEN],
    /// `None` in files written before the footer carried it.
    index_checksum: Option<[u8; CHECKSUM_LEN]>,
}

/// The fixed parts of a snapshot, checked against their own checksums and each other.
struct Layout {
    /// What the blocks' entries hold.
    version: FormatVersion,
    meta: SnapshotMeta,
    salt: Option<FileSalt>,
    /// Prelude, header and header checksum: the first bytes the file hash covers.
    head: Vec<u8>,
    /// Every block, checked against the file and the header's session count.
    index: Vec<BlockHandle>,
    /// The encoded index: the last bytes the file hash covers.
    index_bytes: Vec<u8>,
    file_checksum: [u8; blake3::OUT_LEN],
}

fn open_source<'a>(
    storage: &dyn Storage,
    dir: &Path,
    name: &'a str,
) -> Result<Source<'a>, LoadError> {
    let file = storage
        .open(&dir.join(name), Access::ReadOnly)
        .map_err(|source| LoadError::io("open", name, source))?;
    let len_bytes = file
        .len_bytes()
        .map_err(|source| LoadError::io("stat", name, source))?;
    Ok(Source {
        file,
        name,
        len_bytes,
    })
}

/// Reads and checks everything but the blocks: for listing.
pub(crate) fn read_meta(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
) -> Result<SnapshotMeta, LoadError> {
    let source = open_source(storage, dir, name)?;
    Ok(read_layout(&source)?.meta)
}

/// Checks every checksum and the whole structure without keys or decoding: for retention,
/// which must know a snapshot it keeps is intact.
pub(crate) fn verify(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
) -> Result<SnapshotMeta, LoadError> {
    let source = open_source(storage, dir, name)?;
    let layout = read_layout(&source)?;
    scan_blocks(&source, &layout, |_| Ok(()))?;
    Ok(layout.meta)
}

/// Reads, checks, opens and decodes the whole snapshot.
pub(crate) fn load(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    keyring: Option<&Keyring>,
) -> Result<LoadedSnapshot, LoadError> {
    let source = open_source(storage, dir, name)?;
    let layout = read_layout(&source)?;
    let cipher = file_cipher(&source, &layout, keyring)?;
    let decoder = BlockDecoder {
        file_name: name,
        version: layout.version,
        snapshot_id: layout.meta.snapshot_id,
        cipher: cipher.as_ref(),
    };
    let blocks_count = layout.index.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(DECODE_THREADS_MAX);
    let decoded = if threads < 2 || blocks_count < PARALLEL_BLOCKS_MIN {
        let mut blocks = Vec::with_capacity(blocks_count);
        scan_blocks(&source, &layout, |job| {
            blocks.push(decoder.decode(&job)?);
            Ok(())
        })?;
        blocks
    } else {
        decode_in_parallel(&source, &layout, &decoder, threads)?
    };
    // Sized by what was decoded, never by a count read from disk.
    let mut records = Vec::with_capacity(decoded.iter().map(Vec::len).sum());
    for block in decoded {
        records.extend(block);
    }
    // Asserted after decode as it was checked on write: the header's count is what we hold.
    assert_eq!(
        records.len() as u64,
        layout.meta.session_count,
        "decode_index checked the handles' counts against the header, each block its own count"
    );
    Ok(LoadedSnapshot {
        meta: layout.meta,
        records,
    })
}

fn file_cipher(
    source: &Source<'_>,
    layout: &Layout,
    keyring: Option<&Keyring>,
) -> Result<Option<FileCipher>, LoadError> {
    let Encryption::Sealed { algorithm, key_id } = layout.meta.encryption else {
        return Ok(None);
    };
    let salt = layout
        .salt
        .expect("read_layout gives every sealed snapshot a salt");
    let Some(keyring) = keyring else {
        return Err(LoadError::KeyringMissing {
            file: source.name.to_owned(),
            key_id: key_id.get(),
        });
    };
    keyring
        .file_cipher(key_id, algorithm, &salt)
        .map(Some)
        .map_err(|error| match error {
            CryptoError::UnknownKeyId { .. } => LoadError::WrongKey {
                file: source.name.to_owned(),
                key_id: key_id.get(),
            },
            // `file_cipher` fails only for an unknown key id; should that change, the error
            // keeps its own code.
            other => LoadError::Crypto {
                file: source.name.to_owned(),
                offset: 0,
                source: other,
            },
        })
}

fn read_layout(source: &Source<'_>) -> Result<Layout, LoadError> {
    let (prelude, trailer) = read_prelude_and_trailer(source)?;
    let head = read_head(source, prelude)?;
    let header_bytes = format::verify_head(&head)
        .map_err(|checksum_offset| source.checksum(checksum_offset, "header"))?;
    if prelude.reserved != [0; 3] {
        return Err(source.malformed(
            format::RESERVED_OFFSET,
            "reserved prelude bytes are not zero",
        ));
    }
    let header: pb::SnapshotHeader =
        source.decode(format::HEADER_OFFSET, header_bytes, "SnapshotHeader")?;
    let Some(trailer) = trailer else {
        return Err(source.truncated("no trailer at the end"));
    };
    let blocks_start = head.len() as u64;
    let footer = read_footer(source, trailer, blocks_start)?;

    let (encryption, salt) = header_encryption(source, &header)?;
    let created_at = tokm_domain::Timestamp::from_millis(header.created_at_ms);
    let named = SnapshotName {
        covered_lsn: Lsn::new(header.covered_lsn),
        created_at,
    };
    if SnapshotName::parse(source.name) != Some(named) {
        return Err(source.malformed(format::HEADER_OFFSET, "header disagrees with the file name"));
    }
    if header.session_count != footer.session_count {
        return Err(source.malformed(footer.offset, "header and footer session counts differ"));
    }

    let index_bytes = read_index(source, &footer)?;
    let bounds = IndexBounds {
        blocks_start,
        index_offset: footer.index_offset,
        session_count: header.session_count,
    };
    let index = index::decode_index(source.name, &index_bytes, bounds)?;
    let meta = SnapshotMeta {
        file_name: source.name.to_owned(),
        snapshot_id: header.snapshot_id,
        covered_lsn: Lsn::new(header.covered_lsn),
        created_at,
        node_id: header.node_id,
        session_count: header.session_count,
        encryption,
        size_bytes: source.len_bytes,
    };
    Ok(Layout {
        version: prelude.version,
        meta,
        salt,
        head,
        index,
        index_bytes,
        file_checksum: footer.file_checksum,
    })
}

/// The prelude, and the trailer if the file ends with one. Magic and version come first, so a
/// foreign or newer file is reported as such and never as damage.
fn read_prelude_and_trailer(source: &Source<'_>) -> Result<(Prelude, Option<Trailer>), LoadError> {
    let len = source.len_bytes;
    if len < PRELUDE_LEN as u64 {
        let start = source.read(0, len)?;
        let head_len = start.len().min(MAGIC.len());
        if MAGIC.starts_with(&start[..head_len]) {
            return Err(source.truncated("shorter than the fixed prelude"));
        }
        return Err(source.not_a_snapshot());
    }
    let prelude_bytes: [u8; PRELUDE_LEN] = source.read_array(0)?;
    let trailer = match format::trailer_offset(len) {
        Some(offset) => Trailer::decode(&source.read_array::<TRAILER_LEN>(offset)?),
        None => None,
    };
    match Prelude::decode(&prelude_bytes) {
        Ok(prelude) => Ok((prelude, trailer)),
        // A file with our trailer but a damaged head is a damaged snapshot; with neither it is
        // someone else's file and must stay untouched.
        Err(PreludeError::BadMagic) if trailer.is_some() => {
            Err(source.checksum(0, "magic at the start of the file is damaged"))
        }
        Err(PreludeError::BadMagic) => Err(source.not_a_snapshot()),
        // A newer writer's file is refused untouched; but a file of a known version whose
        // version byte alone flipped (its header checksum verifies once the byte is restored)
        // is damage.
        Err(PreludeError::UnsupportedVersion(_))
            if any_known_version_verifies(source, prelude_bytes)? =>
        {
            Err(source.checksum(format::VERSION_OFFSET, "version byte is damaged"))
        }
        Err(PreludeError::UnsupportedVersion(version)) => Err(LoadError::UnsupportedVersion {
            file: source.name.to_owned(),
            version,
        }),
    }
}

/// Whether the head verifies with its version byte set to some version this build knows.
fn any_known_version_verifies(
    source: &Source<'_>,
    prelude_bytes: [u8; PRELUDE_LEN],
) -> Result<bool, LoadError> {
    for version in FormatVersion::KNOWN {
        if head_verifies(source, format::with_version(prelude_bytes, version))? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether the head that `prelude_bytes` starts verifies against its checksum.
fn head_verifies(source: &Source<'_>, prelude_bytes: [u8; PRELUDE_LEN]) -> Result<bool, LoadError> {
    let Ok(prelude) = Prelude::decode(&prelude_bytes) else {
        return Ok(false);
    };
    let Ok(mut head) = read_head(source, prelude) else {
        return Ok(false);
    };
    head[..PRELUDE_LEN].copy_from_slice(&prelude_bytes);
    Ok(format::verify_head(&head).is_ok())
}

/// Prelude, header message and header checksum, not yet verified.
fn read_head(source: &Source<'_>, prelude: Prelude) -> Result<Vec<u8>, LoadError> {
    if prelude.header_len as usize > HEADER_LEN_MAX {
        return Err(source.malformed(format::HEADER_LEN_OFFSET, "header length out of range"));
    }
    let head_len = prelude.head_len();
    if head_len + TRAILER_LEN as u64 > source.len_bytes {
        return Err(source.truncated("ends inside the header"));
    }
    source.read(0, head_len)
}

/// The footer the trailer describes, checked against the trailer's checksum and then against
/// the file: the index it points at lies between the blocks' start and the footer.
fn read_footer(
    source: &Source<'_>,
    trailer: Trailer,
    blocks_start: u64,
) -> Result<Footer, LoadError> {
    let len = source.len_bytes;
    let footer_offset = trailer
        .footer_offset(len)
        .filter(|offset| *offset >= blocks_start && trailer.footer_len as usize <= FOOTER_LEN_MAX)
        .ok_or_else(|| source.malformed(len - TRAILER_LEN as u64, "footer length out of range"))?;
    let footer_bytes = source.read(footer_offset, u64::from(trailer.footer_len))?;
    if !trailer.matches(&footer_bytes) {
        return Err(source.checksum(footer_offset, "footer"));
    }
    let footer: pb::SnapshotFooter =
        source.decode(footer_offset, &footer_bytes, "SnapshotFooter")?;
    let index_end = footer.index_offset.checked_add(footer.index_length);
    if footer.index_offset < blocks_start
        || footer.index_length > INDEX_LEN_MAX
        || index_end != Some(footer_offset)
    {
        return Err(source.malformed(footer_offset, "footer points outside the file"));
    }
    let file_checksum = footer
        .file_checksum
        .as_slice()
        .try_into()
        .map_err(|_| source.malformed(footer_offset, "file checksum has the wrong length"))?;
    // Empty in files written before the footer carried it: the whole-file checksum still covers
    // their index, but only once every block has been read.
    let index_checksum =
        match footer.index_checksum.as_slice() {
            [] => None,
            stored => Some(stored.try_into().map_err(|_| {
                source.malformed(footer_offset, "index checksum has the wrong length")
            })?),
        };
    Ok(Footer {
        offset: footer_offset,
        index_offset: footer.index_offset,
        index_length: footer.index_length,
        session_count: footer.session_count,
        file_checksum,
        index_checksum,
    })
}

/// The encoded index, checked against its checksum (when the footer has one) before anyone
/// decodes it.
fn read_index(source: &Source<'_>, footer: &Footer) -> Result<Vec<u8>, LoadError> {
    let index_bytes = source.read(footer.index_offset, footer.index_length)?;
    if let Some(stored) = footer.index_checksum
        && format::index_checksum(&index_bytes) != stored
    {
        return Err(source.checksum(footer.index_offset, "block index"));
    }
    Ok(index_bytes)
}

fn header_encryption(
    source: &Source<'_>,
    header: &pb::SnapshotHeader,
) -> Result<(Encryption, Option<FileSalt>), LoadError> {
    let offset = format::HEADER_OFFSET;
    if header.compression != pb::Compression::None as i32 {
        return Err(LoadError::decode(
            source.name,
            offset,
            ProtoError::UnknownEnum {
                field: "SnapshotHeader.compression",
                value: header.compression,
            },
        ));
    }
    let unknown_cipher = || {
        LoadError::decode(
            source.name,
            offset,
            ProtoError::UnknownEnum {
                field: "SnapshotHeader.cipher",
                value: header.cipher,
            },
        )
    };
    let Some(algorithm) = format::cipher_algorithm(header.cipher).map_err(|()| unknown_cipher())?
    else {
        if header.key_id != 0 || !header.salt.is_empty() {
            return Err(source.malformed(offset, "key id or salt without a cipher"));
        }
        return Ok((Encryption::None, None));
    };
    let salt: [u8; SALT_LEN] = header
        .salt
        .as_slice()
        .try_into()
        .map_err(|_| source.malformed(offset, "salt is not 32 bytes"))?;
    Ok((
        Encryption::Sealed {
            algorithm,
            key_id: KeyId::new(header.key_id),
        },
        Some(FileSalt::from_bytes(salt)),
    ))
}

/// One stored block whose checksum matched, ready to open and decode.
struct BlockJob {
    block_index: u64,
    offset: u64,
    /// At most `BLOCK_SESSIONS_MAX`: checked with the index.
    session_count: u32,
    stored: Vec<u8>,
}

/// Reads every block in file order, checking each against its handle's checksum and hashing
/// the file; `visit` sees each block whose checksum matched. Fails on the first problem.
fn scan_blocks(
    source: &Source<'_>,
    layout: &Layout,
    mut visit: impl FnMut(BlockJob) -> Result<(), LoadError>,
) -> Result<(), LoadError> {
    let mut file_hasher = blake3::Hasher::new();
    file_hasher.update(&layout.head);
    for (block_index, handle) in layout.index.iter().enumerate() {
        // `decode_index` checked offset and length against the file and the block limit.
        let stored = source.read(handle.offset, handle.length)?;
        file_hasher.update(&stored);
        if format::block_checksum(&stored) != handle.checksum {
            return Err(source.checksum(handle.offset, "block"));
        }
        visit(BlockJob {
            block_index: block_index as u64,
            offset: handle.offset,
            session_count: handle.session_count,
            stored,
        })?;
    }
    file_hasher.update(&layout.index_bytes);
    if *file_hasher.finalize().as_bytes() != layout.file_checksum {
        return Err(source.checksum(0, "whole file"));
    }
    Ok(())
}

/// Opens and decodes blocks; shared by the decoding threads.
struct BlockDecoder<'a> {
    file_name: &'a str,
    version: FormatVersion,
    snapshot_id: u64,
    cipher: Option<&'a FileCipher>,
}

impl BlockDecoder<'_> {
    fn decode(&self, job: &BlockJob) -> Result<Vec<SessionRecord>, LoadError> {
        let mut opened = Vec::new();
        let plain = match self.cipher {
            None => job.stored.as_slice(),
            Some(cipher) => {
                self.open(cipher, job, &mut opened)?;
                opened.as_slice()
            }
        };
        decode_sessions(self.file_name, self.version, job, plain)
    }

    /// Opens a sealed block whose checksum matched. Block 0 is always opened before any other
    /// (`load` sees to it), so it decides between a wrong key and damage: with the wrong key
    /// every block fails, while a random flip breaks the checksum before it reaches the tag.
    /// A later block that fails under a key that opened block 0 was forged or moved: damage.
    fn open(
        &self,
        cipher: &FileCipher,
        job: &BlockJob,
        opened: &mut Vec<u8>,
    ) -> Result<(), LoadError> {
        let aad = format::block_aad(self.snapshot_id, job.block_index);
        cipher
            .open_into(job.block_index, &aad, &job.stored, opened)
            .map_err(|source| match source {
                CryptoError::AuthenticationFailed if job.block_index == 0 => LoadError::WrongKey {
                    file: self.file_name.to_owned(),
                    key_id: cipher.key_id().get(),
                },
                source => LoadError::Crypto {
                    file: self.file_name.to_owned(),
                    offset: job.offset,
                    source,
                },
            })
    }
}

/// The sessions of one opened block, decoded one entry at a time: more entries than the
/// handle declares (at most `BLOCK_SESSIONS_MAX`), or one longer than `SESSION_BYTES_MAX`,
/// stop decoding before they are built, so a crafted block costs no more than a real one.
/// A version 2 entry is checked in place and copied once; a version 1 entry is decoded as a
/// protobuf `Session` and laid out as a record.
fn decode_sessions(
    file: &str,
    version: FormatVersion,
    job: &BlockJob,
    plain: &[u8],
) -> Result<Vec<SessionRecord>, LoadError> {
    let declared = job.session_count as usize;
    let mut sessions = Vec::with_capacity(declared);
    for entry in walk::entries(plain) {
        let entry = entry.map_err(|error| match error {
            WalkError::Decode { source, .. } => LoadError::decode(
                file,
                job.offset,
                ProtoError::Decode {
                    message: "SessionBlock",
                    source,
                },
            ),
            WalkError::PastEnd { .. } => {
                LoadError::malformed(file, job.offset, "a session runs past the end of its block")
            }
        })?;
        if sessions.len() == declared {
            return Err(LoadError::malformed(
                file,
                job.offset,
                "block holds more sessions than its handle says",
            ));
        }
        if entry.bytes.len() > SESSION_BYTES_MAX {
            return Err(LoadError::malformed(
                file,
                job.offset,
                "a session is longer than any valid session",
            ));
        }
        let record = match version {
            FormatVersion::V1 => tokm_proto::decode_session(entry.bytes)
                .map(|session| SessionRecord::from_session(&session)),
            FormatVersion::V2 => SessionRecord::from_bytes(entry.bytes)
                .map_err(|source| ProtoError::Invalid { source }),
        }
        .map_err(|source| LoadError::decode(file, job.offset, source))?;
        sessions.push(record);
    }
    if sessions.len() != declared {
        return Err(LoadError::malformed(
            file,
            job.offset,
            "block holds fewer sessions than its handle says",
        ));
    }
    Ok(sessions)
}

type DecodedBlock = (usize, Result<Vec<SessionRecord>, LoadError>);

/// The calling thread reads and checks blocks (I/O and hashing are sequential by nature) and
/// hands them to `threads` decoders through a bounded queue; results are reassembled in order.
/// Block 0 is decoded on the calling thread before any other block is handed out, so a wrong
/// key is reported as such whichever decoder would have finished first.
fn decode_in_parallel(
    source: &Source<'_>,
    layout: &Layout,
    decoder: &BlockDecoder<'_>,
    threads: usize,
) -> Result<Vec<Vec<SessionRecord>>, LoadError> {
    let blocks_count = layout.index.len();
    let (job_sender, job_receiver) = mpsc::sync_channel::<(usize, BlockJob)>(DECODE_QUEUE_BLOCKS);
    let job_receiver = Mutex::new(job_receiver);
    let (result_sender, result_receiver) = mpsc::channel::<DecodedBlock>();
    // Set by the first decoder that fails: the others then drain the queue without decoding,
    // and the reader stops, so nobody waits on a queue nobody serves. Relaxed suffices: the
    // flag only saves work; errors themselves travel through the result channel.
    let failed = AtomicBool::new(false);
    let mut first_block = None;
    let scanned = std::thread::scope(|scope| {
        for _ in 0..threads {
            let result_sender = result_sender.clone();
            let (job_receiver, failed) = (&job_receiver, &failed);
            scope.spawn(move || {
                loop {
                    // The lock is held only to take the next job, never while decoding.
                    let next = job_receiver
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .recv();
                    let Ok((position, job)) = next else {
                        return;
                    };
                    if failed.load(Ordering::Relaxed) {
                        continue;
                    }
                    let result = decoder.decode(&job);
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    // The receiver outlives the scope, so sending cannot fail.
                    let _ = result_sender.send((position, result));
                }
            });
        }
        drop(result_sender);
        let scanned = scan_blocks(source, layout, |job| {
            if job.block_index == 0 {
                first_block = Some(decoder.decode(&job)?);
                return Ok(());
            }
            if failed.load(Ordering::Relaxed) {
                // The decoder's own error is returned below; this one is never seen.
                return Err(source.malformed(job.offset, "a block failed to decode"));
            }
            // Positions fit: `decode_index` kept one handle per block, in memory.
            let position = job.block_index as usize;
            job_sender
                .send((position, job))
                .map_err(|_| source.malformed(0, "decoders stopped early"))?;
            Ok(())
        });
        drop(job_sender);
        scanned
    });
    let mut decoded: Vec<Option<Vec<SessionRecord>>> = vec![None; blocks_count];
    if let Some(slot) = decoded.first_mut() {
        *slot = first_block;
    }
    let mut first_error: Option<(usize, LoadError)> = None;
    for (position, result) in result_receiver {
        match result {
            Ok(sessions) => decoded[position] = Some(sessions),
            Err(error) => {
                if first_error.as_ref().is_none_or(|(p, _)| position < *p) {
                    first_error = Some((position, error));
                }
            }
        }
    }
    // A decoding error names the block; it is more useful than the scan's "stopped early".
    if let Some((_, error)) = first_error {
        return Err(error);
    }
    scanned?;
    decoded
        .into_iter()
        .map(|block| block.ok_or_else(|| source.malformed(0, "a block was not decoded")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SnapshotOptions, SnapshotStore};
    use tokm_crypto_adaptive::{Algorithm, Key};
    use tokm_domain::testkit::SessionFactory;
    use tokm_domain::{ManualClock, Session, Timestamp};
    use tokm_storage::testkit::SimStorage;

    /// The first block of a sealed snapshot, its layout and a cipher that opens it.
    fn sealed_first_block() -> (BlockJob, u64, FileCipher) {
        let sim = SimStorage::new();
        let dir = Path::new("/s");
        let key = Key::from_bytes(&[3; 32]).expect("key");
        let keyring = Arc::new(Keyring::new(KeyId::new(1), key, Algorithm::Aes256Gcm));
        let start = Timestamp::from_millis(1_700_000_000_000);
        let options = SnapshotOptions {
            storage: Arc::new(sim.clone()),
            keyring: Some(keyring.clone()),
            clock: Arc::new(ManualClock::new(start)),
            ..SnapshotOptions::default()
        };
        let store = SnapshotStore::open(dir, options).expect("open");
        let mut factory = SessionFactory::new(2, start);
        let sessions: Vec<Session> = (0..5)
            .map(|_| Session::new(factory.next_for(&SessionFactory::user(1)), 1).expect("ok"))
            .collect();
        let meta = store.write(Lsn::new(1), sessions.iter()).expect("write");
        let source = open_source(&sim, dir, &meta.file_name).expect("open file");
        let layout = read_layout(&source).expect("layout");
        let cipher = file_cipher(&source, &layout, Some(&keyring))
            .expect("cipher")
            .expect("sealed");
        let mut jobs = Vec::new();
        scan_blocks(&source, &layout, |job| {
            jobs.push(job);
            Ok(())
        })
        .expect("scan");
        let job = jobs.into_iter().next().expect("one block");
        (job, layout.meta.snapshot_id, cipher)
    }

    /// A plain snapshot of `count` sessions on `sim` at `/s`: its name and bytes.
    fn plain_snapshot(sim: &SimStorage, count: usize) -> (String, Vec<u8>) {
        let start = Timestamp::from_millis(1_700_000_000_000);
        let options = SnapshotOptions {
            storage: Arc::new(sim.clone()),
            clock: Arc::new(ManualClock::new(start)),
            ..SnapshotOptions::default()
        };
        let store = SnapshotStore::open(Path::new("/s"), options).expect("open");
        let meta = store
            .write(Lsn::new(1), sessions(count).iter())
            .expect("write");
        let bytes = sim
            .file_bytes(&Path::new("/s").join(&meta.file_name))
            .expect("written");
        (meta.file_name, bytes)
    }

    fn sessions(count: usize) -> Vec<Session> {
        let mut factory = SessionFactory::new(4, Timestamp::from_millis(1_700_000_000_000));
        (0..count)
            .map(|_| Session::new(factory.next_for(&SessionFactory::user(1)), 1).expect("ok"))
            .collect()
    }

    /// `sessions` encoded as a plain `SessionBlock`, as block 0 of a file claiming `declared`.
    fn block_job(sessions: &[Session], declared: u32) -> BlockJob {
        let block = pb::SessionBlock {
            sessions: sessions
                .iter()
                .map(tokm_proto::session_to_message)
                .collect(),
        };
        BlockJob {
            block_index: 0,
            offset: 100,
            session_count: declared,
            stored: block.encode_to_vec(),
        }
    }

    fn malformed_what(result: Result<Vec<SessionRecord>, LoadError>) -> &'static str {
        match result {
            Err(LoadError::Malformed { what, offset, .. }) => {
                assert_eq!(offset, 100, "errors name the block's offset");
                what
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn a_block_holds_exactly_the_sessions_its_handle_declares() {
        let three = sessions(3);
        let job = block_job(&three, 3);
        let decoded = decode_sessions("f", FormatVersion::V1, &job, &job.stored).expect("valid");
        assert_eq!(decoded.len(), 3);
        assert!(
            decoded
                .iter()
                .zip(&three)
                .all(|(a, b)| &a.to_session() == b)
        );

        let job = block_job(&three, 2);
        assert_eq!(
            malformed_what(decode_sessions("f", FormatVersion::V1, &job, &job.stored)),
            "block holds more sessions than its handle says"
        );
        let job = block_job(&three, 4);
        assert_eq!(
            malformed_what(decode_sessions("f", FormatVersion::V1, &job, &job.stored)),
            "block holds fewer sessions than its handle says"
        );
    }

    #[test]
    fn a_version_2_block_holds_records_each_checked() {
        let three = sessions(3);
        let mut plain = Vec::new();
        for session in &three {
            let record = SessionRecord::from_session(session);
            prost::encoding::bytes::encode(1, &record.as_bytes().to_vec(), &mut plain);
        }
        let job = BlockJob {
            block_index: 0,
            offset: 100,
            session_count: 3,
            stored: plain.clone(),
        };
        let decoded = decode_sessions("f", FormatVersion::V2, &job, &job.stored).expect("valid");
        assert!(
            decoded
                .iter()
                .zip(&three)
                .all(|(a, b)| &a.to_session() == b)
        );

        // A record whose lengths do not add up is damage that names the block.
        let mut damaged = plain;
        // Key and two-byte length, then the record: its user id length is at offset 89.
        damaged[3 + 89] += 1;
        let job = BlockJob {
            stored: damaged,
            ..job
        };
        let error =
            decode_sessions("f", FormatVersion::V2, &job, &job.stored).expect_err("refused");
        assert_eq!(error.code(), "TM-SNAP-5205", "{error}");
        assert!(error.is_damage());
    }

    #[test]
    fn a_block_of_empty_sessions_fails_at_the_first_one() {
        // 2-byte empty sessions: decoded whole, they would be millions of messages.
        let stored = [0x0A, 0x00].repeat(1 << 20);
        let job = BlockJob {
            block_index: 0,
            offset: 100,
            session_count: 1024,
            stored,
        };
        let error =
            decode_sessions("f", FormatVersion::V1, &job, &job.stored).expect_err("refused");
        assert_eq!(error.code(), "TM-SNAP-5205", "{error}");
    }

    #[test]
    fn a_session_over_the_limit_is_refused_before_it_is_decoded() {
        // One session of 2-byte empty metadata entries: prost would build every one of them.
        let entries = [0x6A, 0x00].repeat(SESSION_BYTES_MAX / 2 + 1);
        let mut stored = Vec::new();
        prost::encoding::bytes::encode(1, &entries, &mut stored);
        let job = BlockJob {
            block_index: 0,
            offset: 100,
            session_count: 1,
            stored,
        };
        assert_eq!(
            malformed_what(decode_sessions("f", FormatVersion::V1, &job, &job.stored)),
            "a session is longer than any valid session"
        );
    }

    #[test]
    fn the_index_is_checked_against_its_checksum_before_it_is_decoded() {
        let sim = SimStorage::new();
        let (name, bytes) = plain_snapshot(&sim, 3);
        let path = Path::new("/s").join(&name);
        let source = open_source(&sim, Path::new("/s"), &name).expect("open file");
        let layout = read_layout(&source).expect("layout");
        let last = layout.index.last().expect("one block");
        let index_offset = (last.offset + last.length) as usize;

        // An index no handle-by-handle walk would accept: only its checksum may speak.
        let mut damaged = bytes.clone();
        damaged[index_offset] ^= 0xFF;
        sim.put_file(&path, &damaged);
        let error = verify(&sim, Path::new("/s"), &name).expect_err("damaged index");
        assert!(
            matches!(
                error,
                LoadError::ChecksumMismatch {
                    what: "block index",
                    offset,
                    ..
                } if offset == index_offset as u64
            ),
            "{error}"
        );
    }

    #[test]
    fn a_wrong_whole_file_checksum_is_caught_even_when_every_part_matches() {
        let sim = SimStorage::new();
        let dir = Path::new("/s");
        let options = SnapshotOptions {
            storage: Arc::new(sim.clone()),
            clock: Arc::new(ManualClock::new(Timestamp::from_millis(5))),
            ..SnapshotOptions::default()
        };
        let store = SnapshotStore::open(dir, options).expect("open");
        let meta = store
            .write(Lsn::new(1), std::iter::empty::<Session>())
            .expect("write");
        let path = dir.join(&meta.file_name);
        let bytes = sim.file_bytes(&path).expect("written");

        // Rewrite the footer with another file checksum and a matching trailer: only the
        // whole-file comparison can notice.
        let source = open_source(&sim, dir, &meta.file_name).expect("open file");
        let layout = read_layout(&source).expect("layout");
        let last = layout.index.last().expect("one block");
        let index_offset = last.offset + last.length;
        let footer_offset = index_offset + layout.index_bytes.len() as u64;
        let mut checksum = layout.file_checksum.to_vec();
        checksum[0] ^= 1;
        let footer = pb::SnapshotFooter {
            index_offset,
            index_length: layout.index_bytes.len() as u64,
            session_count: 0,
            file_checksum: checksum,
            index_checksum: format::index_checksum(&layout.index_bytes).to_vec(),
        };
        let mut forged = bytes[..footer_offset as usize].to_vec();
        forged.extend_from_slice(&format::encode_tail(&footer.encode_to_vec()));
        sim.put_file(&path, &forged);

        let error = verify(&sim, dir, &meta.file_name).expect_err("forged");
        assert!(
            matches!(
                error,
                LoadError::ChecksumMismatch {
                    what: "whole file",
                    ..
                }
            ),
            "{error}"
        );
        sim.put_file(&path, &bytes);
        assert!(verify(&sim, dir, &meta.file_name).is_ok());
    }

    #[test]
    fn a_block_opens_only_at_its_own_position_in_its_own_snapshot() {
        let (job, snapshot_id, cipher) = sealed_first_block();
        let decoder = |snapshot_id| BlockDecoder {
            version: FormatVersion::CURRENT,
            file_name: "f",
            snapshot_id,
            cipher: Some(&cipher),
        };
        assert_eq!(decoder(snapshot_id).decode(&job).expect("opens").len(), 5);

        // Block 0 that does not authenticate, although its checksum matched, means the key is
        // wrong: nothing else changes what it authenticates against.
        let other_snapshot = decoder(snapshot_id ^ 1).decode(&job);
        assert!(
            matches!(other_snapshot, Err(LoadError::WrongKey { key_id: 1, .. })),
            "{other_snapshot:?}"
        );
        // Any later block failing is damage: block 0 already proved the key.
        let moved = BlockJob {
            block_index: 1,
            ..job
        };
        let other_position = decoder(snapshot_id).decode(&moved);
        assert!(matches!(
            other_position,
            Err(LoadError::Crypto {
                source: CryptoError::AuthenticationFailed,
                ..
            })
        ));
    }
}

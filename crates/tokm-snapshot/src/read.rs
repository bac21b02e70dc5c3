//! Reading a snapshot back: structure, checksums, then (optionally) keys and sessions.
//!
//! One sequential pass over the file: the fixed ends (prelude, header, trailer, footer, index)
//! are read and checked first; then the blocks in file order, each checked against its handle
//! and fed to the whole-file hash, which is compared last. Block contents are opened and
//! decoded only after their own checksum matched, so a failing tag means the wrong key, not
//! damage, and a decode error means damage no checksum saw.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use prost::Message;
use tokm_crypto_adaptive::{Algorithm, FileCipher, FileSalt, KeyId, Keyring};
use tokm_domain::Session;
use tokm_proto::{ProtoError, pb};
use tokm_wal::{Access, Storage, StorageFile};

use crate::error::SnapshotError;
use crate::format::{
    self, BLOCK_LEN_LIMIT, CHECKSUM_LEN, FOOTER_LEN_LIMIT, HEADER_LEN_LIMIT, INDEX_LEN_LIMIT,
    MAGIC, PRELUDE_LEN, Prelude, PreludeError, SALT_LEN, SnapshotName, TRAILER_LEN, Trailer,
};
use crate::meta::{Encryption, LoadedSnapshot, SnapshotMeta};

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
    fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, SnapshotError> {
        // Callers bound `len` by the file's length and a format limit before reading.
        let len = usize::try_from(len).map_err(|_| self.malformed(offset, "length too large"))?;
        let mut buf = vec![0_u8; len];
        self.file
            .read_exact_at(offset, &mut buf)
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::UnexpectedEof {
                    self.truncated("shorter than when it was opened")
                } else {
                    SnapshotError::io("read", self.name, source)
                }
            })?;
        Ok(buf)
    }

    fn malformed(&self, offset: u64, what: &'static str) -> SnapshotError {
        SnapshotError::Malformed {
            file: self.name.to_owned(),
            offset,
            what,
        }
    }

    fn truncated(&self, what: &'static str) -> SnapshotError {
        SnapshotError::Truncated {
            file: self.name.to_owned(),
            len_bytes: self.len_bytes,
            what,
        }
    }

    fn checksum(&self, offset: u64, what: &'static str) -> SnapshotError {
        SnapshotError::ChecksumMismatch {
            file: self.name.to_owned(),
            offset,
            what,
        }
    }

    fn decode_error(&self, offset: u64, source: ProtoError) -> SnapshotError {
        SnapshotError::Decode {
            file: self.name.to_owned(),
            offset,
            source,
        }
    }
}

/// The fixed parts of a snapshot, checked against their own checksums and each other.
struct Layout {
    meta: SnapshotMeta,
    salt: Option<FileSalt>,
    /// Prelude, header and header checksum: the first bytes the file hash covers.
    head: Vec<u8>,
    index: pb::BlockIndex,
    index_bytes: Vec<u8>,
    index_offset: u64,
    file_checksum: Vec<u8>,
}

fn open_source<'a>(
    storage: &dyn Storage,
    dir: &Path,
    name: &'a str,
) -> Result<Source<'a>, SnapshotError> {
    let file = storage
        .open(&dir.join(name), Access::ReadOnly)
        .map_err(|source| SnapshotError::io("open", name, source))?;
    let len_bytes = file
        .len_bytes()
        .map_err(|source| SnapshotError::io("stat", name, source))?;
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
) -> Result<SnapshotMeta, SnapshotError> {
    let source = open_source(storage, dir, name)?;
    Ok(read_layout(&source)?.meta)
}

/// Checks every checksum and the whole structure without keys or decoding: for retention,
/// which must know a snapshot it keeps is intact.
pub(crate) fn verify(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
) -> Result<SnapshotMeta, SnapshotError> {
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
) -> Result<LoadedSnapshot, SnapshotError> {
    let source = open_source(storage, dir, name)?;
    let layout = read_layout(&source)?;
    let cipher = file_cipher(&source, &layout, keyring)?;
    let decoder = BlockDecoder {
        file_name: name,
        snapshot_id: layout.meta.snapshot_id,
        cipher: cipher.as_ref(),
    };
    let blocks_count = layout.index.blocks.len();
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
    let mut sessions = Vec::with_capacity(usize::try_from(layout.meta.session_count).unwrap_or(0));
    for block in decoded {
        sessions.extend(block);
    }
    // Asserted after decode as it was checked on write: the header's count is what we hold.
    assert_eq!(
        sessions.len() as u64,
        layout.meta.session_count,
        "scan_blocks checked the handles' counts against the header"
    );
    Ok(LoadedSnapshot {
        meta: layout.meta,
        sessions,
    })
}

fn file_cipher(
    source: &Source<'_>,
    layout: &Layout,
    keyring: Option<&Keyring>,
) -> Result<Option<FileCipher>, SnapshotError> {
    let Encryption::Sealed { algorithm, key_id } = layout.meta.encryption else {
        return Ok(None);
    };
    let salt = layout
        .salt
        .expect("read_layout gives every sealed snapshot a salt");
    let Some(keyring) = keyring else {
        return Err(SnapshotError::KeyringMissing {
            file: source.name.to_owned(),
            key_id: key_id.get(),
        });
    };
    keyring
        .file_cipher(key_id, algorithm, &salt)
        .map(Some)
        .map_err(|error| SnapshotError::Crypto {
            file: source.name.to_owned(),
            offset: 0,
            source: error,
        })
}

fn read_layout(source: &Source<'_>) -> Result<Layout, SnapshotError> {
    let len = source.len_bytes;
    if len < PRELUDE_LEN as u64 {
        let start = source.read(0, len)?;
        let head_len = start.len().min(MAGIC.len());
        if MAGIC.starts_with(&start[..head_len]) {
            return Err(source.truncated("shorter than the fixed prelude"));
        }
        return Err(SnapshotError::NotASnapshot {
            file: source.name.to_owned(),
            reason: "wrong magic",
        });
    }
    let prelude_bytes: [u8; PRELUDE_LEN] = source
        .read(0, PRELUDE_LEN as u64)?
        .try_into()
        .expect("read returns exactly the requested length");
    let trailer = match format::trailer_offset(len) {
        Some(offset) => {
            let bytes: [u8; TRAILER_LEN] = source
                .read(offset, TRAILER_LEN as u64)?
                .try_into()
                .expect("read returns exactly the requested length");
            Trailer::decode(&bytes)
        }
        None => None,
    };

    let prelude = match Prelude::decode(&prelude_bytes) {
        Ok(prelude) => prelude,
        // A file with our trailer but a damaged head is a damaged snapshot; with neither it is
        // someone else's file and must stay untouched.
        Err(PreludeError::BadMagic) if trailer.is_some() => {
            return Err(source.checksum(0, "magic at the start of the file is damaged"));
        }
        Err(PreludeError::BadMagic) => {
            return Err(SnapshotError::NotASnapshot {
                file: source.name.to_owned(),
                reason: "wrong magic",
            });
        }
        Err(PreludeError::UnsupportedVersion(version)) => {
            return Err(SnapshotError::UnsupportedVersion {
                file: source.name.to_owned(),
                version,
            });
        }
    };

    if prelude.header_len as usize > HEADER_LEN_LIMIT {
        return Err(source.malformed(format::HEADER_LEN_OFFSET, "header length out of range"));
    }
    let blocks_start = prelude.head_len();
    if blocks_start + TRAILER_LEN as u64 > len {
        return Err(source.truncated("ends inside the header"));
    }
    let head = source.read(0, blocks_start)?;
    let header_bytes = format::verify_head(&head)
        .map_err(|checksum_offset| source.checksum(checksum_offset, "header"))?;
    if prelude.reserved != [0; 3] {
        return Err(source.malformed(
            format::RESERVED_OFFSET,
            "reserved prelude bytes are not zero",
        ));
    }
    let header = pb::SnapshotHeader::decode(header_bytes).map_err(|error| {
        source.decode_error(
            format::HEADER_OFFSET,
            ProtoError::Decode {
                message: "SnapshotHeader",
                source: error,
            },
        )
    })?;

    let Some(trailer) = trailer else {
        return Err(source.truncated("no trailer at the end"));
    };
    let footer_offset = trailer
        .footer_offset(len)
        .filter(|offset| *offset >= blocks_start && trailer.footer_len as usize <= FOOTER_LEN_LIMIT)
        .ok_or_else(|| source.malformed(len - TRAILER_LEN as u64, "footer length out of range"))?;
    let footer_bytes = source.read(footer_offset, u64::from(trailer.footer_len))?;
    if !trailer.matches(&footer_bytes) {
        return Err(source.checksum(footer_offset, "footer"));
    }
    let footer = pb::SnapshotFooter::decode(footer_bytes.as_slice()).map_err(|error| {
        source.decode_error(
            footer_offset,
            ProtoError::Decode {
                message: "SnapshotFooter",
                source: error,
            },
        )
    })?;
    let index_end = footer.index_offset.checked_add(footer.index_length);
    if footer.index_offset < blocks_start
        || footer.index_length > INDEX_LEN_LIMIT
        || index_end != Some(footer_offset)
    {
        return Err(source.malformed(footer_offset, "footer points outside the file"));
    }
    if footer.file_checksum.len() != blake3::OUT_LEN {
        return Err(source.malformed(footer_offset, "file checksum has the wrong length"));
    }
    let index_bytes = source.read(footer.index_offset, footer.index_length)?;
    let index = pb::BlockIndex::decode(index_bytes.as_slice()).map_err(|error| {
        source.decode_error(
            footer.index_offset,
            ProtoError::Decode {
                message: "BlockIndex",
                source: error,
            },
        )
    })?;

    let (encryption, salt) = header_encryption(source, &header)?;
    let name = SnapshotName::parse(source.name);
    let named = Some(SnapshotName {
        covered_lsn: header.covered_lsn,
        created_at: tokm_domain::Timestamp::from_millis(header.created_at_ms),
    });
    if name != named {
        return Err(source.malformed(format::HEADER_OFFSET, "header disagrees with the file name"));
    }
    if header.session_count != footer.session_count {
        return Err(source.malformed(footer_offset, "header and footer session counts differ"));
    }
    let meta = SnapshotMeta {
        file_name: source.name.to_owned(),
        snapshot_id: header.snapshot_id,
        covered_lsn: header.covered_lsn,
        created_at: tokm_domain::Timestamp::from_millis(header.created_at_ms),
        node_id: header.node_id,
        session_count: header.session_count,
        encryption,
        size_bytes: len,
    };
    Ok(Layout {
        meta,
        salt,
        head,
        index,
        index_bytes,
        index_offset: footer.index_offset,
        file_checksum: footer.file_checksum,
    })
}

fn header_encryption(
    source: &Source<'_>,
    header: &pb::SnapshotHeader,
) -> Result<(Encryption, Option<FileSalt>), SnapshotError> {
    let offset = format::HEADER_OFFSET;
    if header.compression != pb::Compression::None as i32 {
        return Err(source.decode_error(
            offset,
            ProtoError::UnknownEnum {
                field: "SnapshotHeader.compression",
                value: header.compression,
            },
        ));
    }
    let unknown_cipher = || {
        source.decode_error(
            offset,
            ProtoError::UnknownEnum {
                field: "SnapshotHeader.cipher",
                value: header.cipher,
            },
        )
    };
    let cipher = pb::Cipher::try_from(header.cipher).map_err(|_| unknown_cipher())?;
    let algorithm = match cipher {
        pb::Cipher::None => {
            if header.key_id != 0 || !header.salt.is_empty() {
                return Err(source.malformed(offset, "key id or salt without a cipher"));
            }
            return Ok((Encryption::None, None));
        }
        pb::Cipher::Aes256Gcm => Algorithm::Aes256Gcm,
        pb::Cipher::Chacha20Poly1305 => Algorithm::ChaCha20Poly1305,
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
    session_count: u32,
    stored: Vec<u8>,
}

/// Reads every block in file order, checking each against its handle and hashing the file;
/// `visit` sees each block whose checksum matched. Fails on the first problem.
fn scan_blocks(
    source: &Source<'_>,
    layout: &Layout,
    mut visit: impl FnMut(BlockJob) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    let mut file_hasher = blake3::Hasher::new();
    file_hasher.update(&layout.head);
    let mut expected_offset = layout.head.len() as u64;
    let mut sessions_total: u64 = 0;
    if layout.index.blocks.is_empty() {
        return Err(source.malformed(layout.index_offset, "block index is empty"));
    }
    for (block_index, handle) in layout.index.blocks.iter().enumerate() {
        let end = handle.offset.checked_add(handle.length);
        if handle.offset != expected_offset
            || handle.length > BLOCK_LEN_LIMIT
            || end.is_none_or(|end| end > layout.index_offset)
        {
            return Err(source.malformed(layout.index_offset, "block handle out of place"));
        }
        if handle.checksum.len() != CHECKSUM_LEN {
            return Err(
                source.malformed(layout.index_offset, "block checksum has the wrong length")
            );
        }
        let stored = source.read(handle.offset, handle.length)?;
        file_hasher.update(&stored);
        if format::block_checksum(&stored) != handle.checksum.as_slice() {
            return Err(source.checksum(handle.offset, "block"));
        }
        sessions_total += u64::from(handle.session_count);
        expected_offset += handle.length;
        visit(BlockJob {
            block_index: block_index as u64,
            offset: handle.offset,
            session_count: handle.session_count,
            stored,
        })?;
    }
    if expected_offset != layout.index_offset {
        return Err(source.malformed(expected_offset, "blocks do not end where the index starts"));
    }
    if sessions_total != layout.meta.session_count {
        return Err(source.malformed(layout.index_offset, "block session counts do not add up"));
    }
    file_hasher.update(&layout.index_bytes);
    if file_hasher.finalize().as_bytes() != layout.file_checksum.as_slice() {
        return Err(source.checksum(0, "whole file"));
    }
    Ok(())
}

/// Opens and decodes blocks; shared by the decoding threads.
struct BlockDecoder<'a> {
    file_name: &'a str,
    snapshot_id: u64,
    cipher: Option<&'a FileCipher>,
}

impl BlockDecoder<'_> {
    fn decode(&self, job: &BlockJob) -> Result<Vec<Arc<Session>>, SnapshotError> {
        let mut opened = Vec::new();
        let plain = match self.cipher {
            None => job.stored.as_slice(),
            Some(cipher) => {
                let aad = format::block_aad(self.snapshot_id, job.block_index);
                cipher
                    .open_into(job.block_index, &aad, &job.stored, &mut opened)
                    .map_err(|source| SnapshotError::Crypto {
                        file: self.file_name.to_owned(),
                        offset: job.offset,
                        source,
                    })?;
                opened.as_slice()
            }
        };
        let decode_error = |source| SnapshotError::Decode {
            file: self.file_name.to_owned(),
            offset: job.offset,
            source,
        };
        let block = pb::SessionBlock::decode(plain).map_err(|source| {
            decode_error(ProtoError::Decode {
                message: "SessionBlock",
                source,
            })
        })?;
        if block.sessions.len() != job.session_count as usize {
            return Err(SnapshotError::Malformed {
                file: self.file_name.to_owned(),
                offset: job.offset,
                what: "block holds a different number of sessions than its handle says",
            });
        }
        block
            .sessions
            .into_iter()
            .map(|message| {
                tokm_proto::session_from_message(message)
                    .map(Arc::new)
                    .map_err(decode_error)
            })
            .collect()
    }
}

type DecodedBlock = (usize, Result<Vec<Arc<Session>>, SnapshotError>);

/// The calling thread reads and checks blocks (I/O and hashing are sequential by nature) and
/// hands them to `threads` decoders through a bounded queue; results are reassembled in order.
fn decode_in_parallel(
    source: &Source<'_>,
    layout: &Layout,
    decoder: &BlockDecoder<'_>,
    threads: usize,
) -> Result<Vec<Vec<Arc<Session>>>, SnapshotError> {
    let blocks_count = layout.index.blocks.len();
    let (job_sender, job_receiver) = mpsc::sync_channel::<(usize, BlockJob)>(DECODE_QUEUE_BLOCKS);
    let job_receiver = Mutex::new(job_receiver);
    let (result_sender, result_receiver) = mpsc::channel::<DecodedBlock>();
    // Set by the first decoder that fails: the others then drain the queue without decoding,
    // and the reader stops, so nobody waits on a queue nobody serves. Relaxed suffices: the
    // flag only saves work; errors themselves travel through the result channel.
    let failed = AtomicBool::new(false);
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
        let mut position = 0;
        let scanned = scan_blocks(source, layout, |job| {
            if failed.load(Ordering::Relaxed) {
                // The decoder's own error is returned below; this one is never seen.
                return Err(source.malformed(job.offset, "a block failed to decode"));
            }
            job_sender
                .send((position, job))
                .map_err(|_| source.malformed(0, "decoders stopped early"))?;
            position += 1;
            Ok(())
        });
        drop(job_sender);
        scanned
    });
    let mut decoded: Vec<Option<Vec<Arc<Session>>>> = vec![None; blocks_count];
    let mut first_error: Option<(usize, SnapshotError)> = None;
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
    use tokm_crypto_adaptive::{CryptoError, Key};
    use tokm_domain::testkit::SessionFactory;
    use tokm_domain::{ManualClock, Timestamp};
    use tokm_wal::testkit::SimStorage;

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
        let meta = store.write(1, sessions.iter()).expect("write");
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
            .write(1, std::iter::empty::<Session>())
            .expect("write");
        let path = dir.join(&meta.file_name);
        let bytes = sim.file_bytes(&path).expect("written");

        // Rewrite the footer with another file checksum and a matching trailer: only the
        // whole-file comparison can notice.
        let source = open_source(&sim, dir, &meta.file_name).expect("open file");
        let layout = read_layout(&source).expect("layout");
        let footer_offset = layout.index_offset + layout.index_bytes.len() as u64;
        let mut checksum = layout.file_checksum.clone();
        checksum[0] ^= 1;
        let footer = pb::SnapshotFooter {
            index_offset: layout.index_offset,
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
                SnapshotError::ChecksumMismatch {
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
            file_name: "f",
            snapshot_id,
            cipher: Some(&cipher),
        };
        assert_eq!(decoder(snapshot_id).decode(&job).expect("opens").len(), 5);

        let other_snapshot = decoder(snapshot_id ^ 1).decode(&job);
        assert!(matches!(
            other_snapshot,
            Err(SnapshotError::Crypto {
                source: CryptoError::AuthenticationFailed,
                ..
            })
        ));
        let moved = BlockJob {
            block_index: 1,
            ..job
        };
        let other_position = decoder(snapshot_id).decode(&moved);
        assert!(matches!(
            other_position,
            Err(SnapshotError::Crypto {
                source: CryptoError::AuthenticationFailed,
                ..
            })
        ));
    }
}

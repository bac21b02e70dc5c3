//! Writing a snapshot: records encoded and sealed into blocks on every core, written in order.
//!
//! Encoder threads pull chunks of records from a [`RecordSource`] (the memory store hands out
//! one shard per chunk), lay them into blocks and seal each block under the number it will have
//! in the file. The calling thread writes the sealed blocks in number order, hashing the file as
//! it goes. At most [`BLOCKS_IN_FLIGHT_PER_ENCODER`] blocks per encoder are numbered but not yet
//! written, so memory stays at a few blocks per core whatever the snapshot's size.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use prost::Message;
use tokm_crypto_adaptive::{FileCipher, TAG_LEN};
use tokm_domain::SessionRecord;
use tokm_proto::pb;
use tokm_storage::{AtomicFile, AtomicStep, Storage, StorageFile};

use crate::error::WriteError;
use crate::format::{self, BLOCK_BYTES_TARGET, BLOCK_SESSIONS_MAX, SESSION_BYTES_MAX};

/// Most encoder threads a snapshot uses.
const ENCODERS_MAX: usize = 8;
/// Blocks each encoder may have numbered ahead of the writer.
const BLOCKS_IN_FLIGHT_PER_ENCODER: u64 = 4;

/// Where a snapshot's records come from: chunks handed out to the encoder threads.
///
/// The memory store's capture implements it over its shards (in `tokm-engine`);
/// [`RecordSlice`] implements it over a slice.
pub trait RecordSource: Sync {
    /// How many records the chunks hold in total. The header records it before the first
    /// block, and the write fails with [`WriteError::InvalidArgument`] if the chunks
    /// disagree.
    fn session_count(&self) -> u64;

    /// The next chunk, or `None` once every record has been handed out. Called from several
    /// threads at once; each record must be handed out exactly once.
    fn next_chunk(&self) -> Option<Vec<SessionRecord>>;
}

/// A [`RecordSource`] over a slice, in chunks of a few blocks.
#[derive(Debug)]
pub struct RecordSlice<'a> {
    records: &'a [SessionRecord],
    next: Mutex<usize>,
}

impl<'a> RecordSlice<'a> {
    /// Records per chunk: enough to fill several blocks of typical sessions.
    const CHUNK_LEN: usize = 4 * BLOCK_SESSIONS_MAX;

    /// A source handing out `records`.
    pub fn new(records: &'a [SessionRecord]) -> RecordSlice<'a> {
        RecordSlice {
            records,
            next: Mutex::new(0),
        }
    }
}

impl RecordSource for RecordSlice<'_> {
    fn session_count(&self) -> u64 {
        self.records.len() as u64
    }

    fn next_chunk(&self) -> Option<Vec<SessionRecord>> {
        let mut next = self.next.lock();
        let start = *next;
        if start == self.records.len() {
            return None;
        }
        let end = (start + RecordSlice::CHUNK_LEN).min(self.records.len());
        *next = end;
        Some(self.records[start..end].to_vec())
    }
}

/// A snapshot being written under its temp name (an [`AtomicFile`]). Dropping it before
/// [`commit`] removes the temp file, so a failed write leaves nothing behind but what was there
/// before; if the removal fails too, the next `open` removes the stale temp file.
///
/// [`commit`]: PendingSnapshot::commit
pub(crate) struct PendingSnapshot<'a> {
    file: AtomicFile<'a>,
    blocks: BlockWriter,
    cipher: Option<FileCipher>,
    snapshot_id: u64,
}

/// The file and the blocks written to it so far.
struct BlockWriter {
    sink: Sink,
    sessions_declared: u64,
    sessions_written: u64,
    handles: Vec<pb::BlockHandle>,
}

impl std::fmt::Debug for PendingSnapshot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSnapshot")
            .field("temp_name", &self.blocks.sink.temp_name)
            .field("sessions_written", &self.blocks.sessions_written)
            .finish_non_exhaustive()
    }
}

/// Where a pending snapshot goes and what its header says.
pub(crate) struct Target<'a> {
    pub(crate) storage: &'a dyn Storage,
    pub(crate) dir: &'a Path,
    pub(crate) temp_name: String,
    pub(crate) final_name: String,
    pub(crate) header: pb::SnapshotHeader,
    pub(crate) cipher: Option<FileCipher>,
}

impl<'a> PendingSnapshot<'a> {
    /// Creates the temp file (0600) and writes prelude, header and header checksum.
    pub(crate) fn create(target: Target<'a>) -> Result<PendingSnapshot<'a>, WriteError> {
        let atomic = AtomicFile::create(
            target.storage,
            target.dir,
            &target.temp_name,
            &target.final_name,
        )
        .map_err(|error| {
            if error.step == AtomicStep::Create
                && error.source.kind() == std::io::ErrorKind::AlreadyExists
            {
                WriteError::AlreadyExists { file: error.file }
            } else {
                WriteError::atomic(error)
            }
        })?;
        let head = format::encode_head(&target.header.encode_to_vec());
        let mut pending = PendingSnapshot {
            blocks: BlockWriter {
                sink: Sink {
                    file: Arc::clone(atomic.file()),
                    temp_name: target.temp_name,
                    offset: 0,
                    file_hasher: blake3::Hasher::new(),
                },
                sessions_declared: target.header.session_count,
                sessions_written: 0,
                handles: Vec::new(),
            },
            file: atomic,
            cipher: target.cipher,
            snapshot_id: target.header.snapshot_id,
        };
        pending.blocks.sink.write_hashed(&head)?;
        Ok(pending)
    }

    /// Encodes and seals every record of `source` on up to `encoders` threads and writes the
    /// blocks in order on this one.
    pub(crate) fn write_records(
        &mut self,
        source: &dyn RecordSource,
        encoders: usize,
    ) -> Result<(), WriteError> {
        let encoders = encoders.clamp(1, ENCODERS_MAX);
        let line = Line::new(encoders, BLOCKS_IN_FLIGHT_PER_ENCODER * encoders as u64);
        let sealer = Sealer::new(self.cipher.as_ref(), self.snapshot_id, &self.blocks);
        let blocks = &mut self.blocks;
        let written = std::thread::scope(|scope| {
            for _ in 0..encoders {
                let (line, sealer) = (&line, &sealer);
                scope.spawn(move || {
                    let _finished = line.encoder_guard();
                    if let Err(error) = encode(source, sealer, line) {
                        line.fail(error);
                    }
                });
            }
            let mut written = Ok(());
            while let Some(block) = line.next_in_order() {
                if let Err(error) = blocks.write_block(&block) {
                    line.fail(error);
                    written = Err(());
                    break;
                }
            }
            written
        });
        if let Some(error) = line.take_error() {
            return Err(error);
        }
        debug_assert!(written.is_ok(), "a failed write recorded its error");
        Ok(())
    }

    /// Writes the last block (every file has at least one, so a wrong key is detected even in
    /// an empty snapshot), the index, footer and trailer; syncs; renames into place; syncs the
    /// directory. Returns the file's size.
    pub(crate) fn commit(mut self) -> Result<u64, WriteError> {
        let blocks = &mut self.blocks;
        if blocks.sessions_written != blocks.sessions_declared {
            return Err(WriteError::InvalidArgument {
                reason: format!(
                    "the record source yielded {} sessions but declared {}",
                    blocks.sessions_written, blocks.sessions_declared
                ),
            });
        }
        if blocks.handles.is_empty() {
            let sealer = Sealer::new(self.cipher.as_ref(), self.snapshot_id, blocks);
            let empty = sealer.seal(0, &mut PlainBlock::default())?;
            blocks.write_block(&empty)?;
        }
        let index = pb::BlockIndex {
            blocks: std::mem::take(&mut blocks.handles),
        };
        let sink = &mut blocks.sink;
        let index_offset = sink.offset;
        let index_bytes = index.encode_to_vec();
        sink.write_hashed(&index_bytes)?;
        let footer = pb::SnapshotFooter {
            index_offset,
            index_length: index_bytes.len() as u64,
            session_count: blocks.sessions_written,
            file_checksum: sink.file_hasher.finalize().as_bytes().to_vec(),
            index_checksum: format::index_checksum(&index_bytes).to_vec(),
        };
        sink.write_at_end(&format::encode_tail(&footer.encode_to_vec()))?;
        let size_bytes = sink.offset;
        self.file.commit().map_err(WriteError::atomic)?;
        Ok(size_bytes)
    }
}

impl BlockWriter {
    /// Appends one sealed block (the next number in order) and its handle.
    fn write_block(&mut self, block: &SealedBlock) -> Result<(), WriteError> {
        debug_assert_eq!(
            block.number,
            self.handles.len() as u64,
            "blocks arrive in order"
        );
        let sessions_after = self.sessions_written + u64::from(block.session_count);
        if sessions_after > self.sessions_declared {
            return Err(WriteError::InvalidArgument {
                reason: format!(
                    "the record source yielded more than the {} sessions it declared",
                    self.sessions_declared
                ),
            });
        }
        let handle = pb::BlockHandle {
            offset: self.sink.offset,
            length: block.stored.len() as u64,
            session_count: block.session_count,
            checksum: block.checksum.to_vec(),
        };
        assert!(
            handle.length <= format::BLOCK_LEN_MAX,
            "blocks are cut near 256 KiB; one session cannot push one past the read limit"
        );
        self.sink.write_hashed(&block.stored)?;
        self.handles.push(handle);
        self.sessions_written = sessions_after;
        Ok(())
    }
}

/// One encoder thread: fills blocks from the chunks it pulls and hands each over sealed.
fn encode(source: &dyn RecordSource, sealer: &Sealer<'_>, line: &Line) -> Result<(), WriteError> {
    let mut block = PlainBlock::default();
    while !line.has_failed() {
        let Some(chunk) = source.next_chunk() else {
            break;
        };
        for record in &chunk {
            block.push(record);
            if block.is_full() {
                hand_over(&mut block, sealer, line)?;
            }
        }
    }
    if block.sessions > 0 {
        hand_over(&mut block, sealer, line)?;
    }
    Ok(())
}

/// Numbers, seals and delivers `block`, leaving it empty.
fn hand_over(block: &mut PlainBlock, sealer: &Sealer<'_>, line: &Line) -> Result<(), WriteError> {
    let Some(number) = line.reserve_number() else {
        // Another thread failed; its error is the one reported.
        return Ok(());
    };
    let sealed = sealer.seal(number, block)?;
    line.deliver(sealed);
    Ok(())
}

/// A block's entries before sealing: each record as field 1 of a length-delimited message, so
/// the block walks like version 1's `SessionBlock` (`walk.rs`).
#[derive(Default)]
struct PlainBlock {
    bytes: Vec<u8>,
    sessions: u32,
}

impl PlainBlock {
    fn push(&mut self, record: &SessionRecord) {
        let bytes = record.as_bytes();
        assert!(
            bytes.len() <= SESSION_BYTES_MAX,
            "the domain's field limits keep a record far below the reader's limit"
        );
        prost::encoding::encode_key(
            1,
            prost::encoding::WireType::LengthDelimited,
            &mut self.bytes,
        );
        prost::encoding::encode_varint(bytes.len() as u64, &mut self.bytes);
        self.bytes.extend_from_slice(bytes);
        self.sessions += 1;
    }

    fn is_full(&self) -> bool {
        self.sessions as usize >= BLOCK_SESSIONS_MAX || self.bytes.len() >= BLOCK_BYTES_TARGET
    }

    /// The entries and their count, leaving the block empty with room for the next one.
    fn take(&mut self) -> (Vec<u8>, u32) {
        let room = self.bytes.capacity();
        let bytes = std::mem::replace(&mut self.bytes, Vec::with_capacity(room));
        (bytes, std::mem::take(&mut self.sessions))
    }
}

/// A block as it goes into the file.
struct SealedBlock {
    number: u64,
    stored: Vec<u8>,
    session_count: u32,
    checksum: [u8; format::CHECKSUM_LEN],
}

/// Seals blocks under their number: shared by the encoder threads.
struct Sealer<'a> {
    cipher: Option<&'a FileCipher>,
    snapshot_id: u64,
    /// The temp file's name, for error reports.
    file_name: String,
}

impl<'a> Sealer<'a> {
    fn new(cipher: Option<&'a FileCipher>, snapshot_id: u64, blocks: &BlockWriter) -> Sealer<'a> {
        Sealer {
            cipher,
            snapshot_id,
            file_name: blocks.sink.temp_name.clone(),
        }
    }

    /// Seals `block` as block `number`, taking its entries (a plain block is stored as it is,
    /// without a copy) and leaving it empty.
    fn seal(&self, number: u64, block: &mut PlainBlock) -> Result<SealedBlock, WriteError> {
        let (plain, session_count) = block.take();
        let stored = match self.cipher {
            None => plain,
            Some(cipher) => {
                let mut sealed = Vec::with_capacity(plain.len() + TAG_LEN);
                let aad = format::block_aad(self.snapshot_id, number);
                // Counter = block number: unique within the file, and the file's salt is
                // fresh, so (subkey, nonce) never repeats.
                cipher
                    .seal_into(number, &aad, &plain, &mut sealed)
                    .map_err(|source| WriteError::Crypto {
                        file: self.file_name.clone(),
                        offset: 0,
                        source,
                    })?;
                sealed
            }
        };
        Ok(SealedBlock {
            number,
            checksum: format::block_checksum(&stored),
            stored,
            session_count,
        })
    }
}

/// The hand-off between the encoder threads and the writing thread: block numbers handed out
/// in order, sealed blocks reordered for the writer, the first error, and a bound on how far
/// encoders run ahead of the writer.
struct Line {
    state: Mutex<LineState>,
    /// Signalled when a block is delivered, an encoder finishes, or something failed.
    for_writer: Condvar,
    /// Signalled when the writer takes a block or something failed.
    for_encoders: Condvar,
    in_flight_max: u64,
}

struct LineState {
    next_number: u64,
    next_to_write: u64,
    delivered: BTreeMap<u64, SealedBlock>,
    encoders_running: usize,
    error: Option<WriteError>,
}

/// Counts an encoder as finished when dropped, even if it panicked.
struct EncoderGuard<'a>(&'a Line);

impl Drop for EncoderGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        state.encoders_running -= 1;
        drop(state);
        self.0.for_writer.notify_all();
    }
}

impl Line {
    fn new(encoders: usize, in_flight_max: u64) -> Line {
        Line {
            state: Mutex::new(LineState {
                next_number: 0,
                next_to_write: 0,
                delivered: BTreeMap::new(),
                encoders_running: encoders,
                error: None,
            }),
            for_writer: Condvar::new(),
            for_encoders: Condvar::new(),
            in_flight_max,
        }
    }

    fn encoder_guard(&self) -> EncoderGuard<'_> {
        EncoderGuard(self)
    }

    /// The next block number, once fewer than `in_flight_max` are unwritten; `None` once
    /// something failed.
    fn reserve_number(&self) -> Option<u64> {
        let mut state = self.state.lock();
        while state.error.is_none() && state.next_number >= state.next_to_write + self.in_flight_max
        {
            self.for_encoders.wait(&mut state);
        }
        if state.error.is_some() {
            return None;
        }
        let number = state.next_number;
        state.next_number += 1;
        Some(number)
    }

    fn deliver(&self, block: SealedBlock) {
        self.state.lock().delivered.insert(block.number, block);
        self.for_writer.notify_one();
    }

    /// The next block in number order, waiting for it; `None` when every encoder finished and
    /// every numbered block was taken, or something failed.
    fn next_in_order(&self) -> Option<SealedBlock> {
        let mut state = self.state.lock();
        loop {
            if state.error.is_some() {
                return None;
            }
            let next = state.next_to_write;
            if let Some(block) = state.delivered.remove(&next) {
                state.next_to_write += 1;
                drop(state);
                self.for_encoders.notify_all();
                return Some(block);
            }
            if state.encoders_running == 0 {
                // Every encoder delivered each number it took before finishing.
                debug_assert_eq!(state.next_number, state.next_to_write);
                return None;
            }
            self.for_writer.wait(&mut state);
        }
    }

    /// Records the first error and wakes everyone, so every thread stops.
    fn fail(&self, error: WriteError) {
        let mut state = self.state.lock();
        state.error.get_or_insert(error);
        drop(state);
        self.for_writer.notify_all();
        self.for_encoders.notify_all();
    }

    fn has_failed(&self) -> bool {
        self.state.lock().error.is_some()
    }

    fn take_error(&self) -> Option<WriteError> {
        self.state.lock().error.take()
    }
}

/// The temp file and what has been written to it.
struct Sink {
    file: Arc<dyn StorageFile>,
    temp_name: String,
    /// Where the next write goes: everything before it has been written.
    offset: u64,
    /// BLAKE3 over every hashed byte so far; becomes the footer's file checksum.
    file_hasher: blake3::Hasher,
}

impl Sink {
    fn write_hashed(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        self.file_hasher.update(bytes);
        self.write_at_end(bytes)
    }

    fn write_at_end(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        self.file
            .write_all_at(self.offset, bytes)
            .map_err(|source| WriteError::io("write", &self.temp_name, source))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv6Addr};
    use tokm_domain::testkit::SessionFactory;
    use tokm_domain::{
        ApiKeyId, DeviceId, ID_LEN_MAX, IDLE_TIMEOUT_MAX, LIFETIME_MAX, METADATA_ENTRIES_MAX,
        METADATA_KEY_LEN_MAX, METADATA_VALUE_LEN_MAX, NewSession, Session, SessionFields,
        SessionId, Timestamp, TokenHash, USER_AGENT_LEN_MAX, UserAgent, UserId,
    };

    #[test]
    fn the_largest_valid_session_encodes_far_below_the_readers_limit() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let mut fields = SessionFields::new(
            SessionId::from_parts(now, u128::MAX >> 48).expect("valid id"),
            UserId::new(&"u".repeat(ID_LEN_MAX)).expect("at the limit"),
            TokenHash::of_token("token").expect("valid token"),
            now,
            now.checked_add(LIFETIME_MAX).expect("in range"),
        );
        fields.device_id = Some(DeviceId::new(&"d".repeat(ID_LEN_MAX)).expect("at the limit"));
        fields.created_by = Some(ApiKeyId::new(&"k".repeat(ID_LEN_MAX)).expect("at the limit"));
        fields.ip_address = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
        fields.last_access_ip = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
        fields.user_agent =
            Some(UserAgent::new(&"a".repeat(USER_AGENT_LEN_MAX)).expect("at the limit"));
        fields.idle_timeout = Some(IDLE_TIMEOUT_MAX);
        for entry in 0..METADATA_ENTRIES_MAX {
            let key = format!("{entry:0>width$}", width = METADATA_KEY_LEN_MAX);
            let value = "v".repeat(METADATA_VALUE_LEN_MAX);
            fields.metadata.insert(&key, &value).expect("at the limit");
        }
        let body = NewSession::new(fields).expect("valid");
        let session = Session::new(body, u64::MAX).expect("valid");
        let mut encoded = Vec::new();
        tokm_proto::encode_session(&session, &mut encoded);
        assert!(encoded.len() < 7 * 1024, "{} bytes", encoded.len());
        assert!(encoded.len() * 8 < SESSION_BYTES_MAX);
    }

    #[test]
    fn a_plain_block_walks_entry_by_entry_into_the_records() {
        let mut factory = SessionFactory::new(1, Timestamp::from_millis(1_700_000_000_000));
        let records: Vec<SessionRecord> = (0..3)
            .map(|_| {
                let body = factory.next_for(&SessionFactory::user(1));
                SessionRecord::new(&body, 1).expect("valid")
            })
            .collect();
        let mut block = PlainBlock::default();
        for record in &records {
            block.push(record);
        }
        let walked: Vec<&[u8]> = crate::walk::entries(&block.bytes)
            .map(|entry| entry.expect("well formed").bytes)
            .collect();
        let expected: Vec<&[u8]> = records.iter().map(SessionRecord::as_bytes).collect();
        assert_eq!(walked, expected);
    }

    #[test]
    fn sessions_appended_one_by_one_encode_as_one_session_block() {
        let mut factory = SessionFactory::new(1, Timestamp::from_millis(1_700_000_000_000));
        let sessions: Vec<Session> = (0..3)
            .map(|_| {
                let body = factory.next_for(&SessionFactory::user(1));
                Session::new(body, 1).expect("valid")
            })
            .collect();
        let mut appended = Vec::new();
        for session in &sessions {
            prost::encoding::message::encode(
                1,
                &tokm_proto::session_to_message(session),
                &mut appended,
            );
        }
        let block = pb::SessionBlock {
            sessions: sessions
                .iter()
                .map(tokm_proto::session_to_message)
                .collect(),
        };
        assert_eq!(appended, block.encode_to_vec());
    }
}

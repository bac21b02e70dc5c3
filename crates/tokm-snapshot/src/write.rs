//! Streaming a snapshot into its temp file, block by block.
//!
//! Memory stays at one block (plus its sealed copy) whatever the snapshot's size: each block is
//! written as soon as it is full, and the index keeps only a handle per block.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use tokm_crypto_adaptive::FileCipher;
use tokm_domain::Session;
use tokm_proto::pb;
use tokm_wal::{Storage, StorageFile};

use crate::error::SnapshotError;
use crate::format::{self, BLOCK_BYTES_TARGET, BLOCK_SESSIONS_MAX, SESSION_BYTES_LIMIT};

/// A snapshot being written under its temp name. Dropping it before [`commit`] removes the
/// temp file, so a failed write leaves nothing behind but what was there before.
///
/// [`commit`]: PendingSnapshot::commit
pub(crate) struct PendingSnapshot<'a> {
    storage: &'a dyn Storage,
    dir: &'a Path,
    temp_path: PathBuf,
    final_name: String,
    sink: Sink,
    cipher: Option<FileCipher>,
    snapshot_id: u64,
    sessions_declared: u64,
    sessions_written: u64,
    /// Encoded `SessionBlock` of the block being filled; reused across blocks.
    plain: Vec<u8>,
    /// Sealed copy of `plain` when encrypting; reused across blocks.
    sealed: Vec<u8>,
    block_sessions: u32,
    handles: Vec<pb::BlockHandle>,
    committed: bool,
}

impl std::fmt::Debug for PendingSnapshot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSnapshot")
            .field("temp_name", &self.sink.temp_name)
            .field("sessions_written", &self.sessions_written)
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
    pub(crate) fn create(target: Target<'a>) -> Result<PendingSnapshot<'a>, SnapshotError> {
        let temp_path = target.dir.join(&target.temp_name);
        let file = target.storage.create_new(&temp_path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                SnapshotError::AlreadyExists {
                    file: target.temp_name.clone(),
                }
            } else {
                SnapshotError::io("create", &target.temp_name, source)
            }
        })?;
        let head = format::encode_head(&target.header.encode_to_vec());
        let mut pending = PendingSnapshot {
            storage: target.storage,
            dir: target.dir,
            temp_path,
            final_name: target.final_name,
            sink: Sink {
                file,
                temp_name: target.temp_name,
                offset: 0,
                file_hasher: blake3::Hasher::new(),
            },
            cipher: target.cipher,
            snapshot_id: target.header.snapshot_id,
            sessions_declared: target.header.session_count,
            sessions_written: 0,
            plain: Vec::with_capacity(BLOCK_BYTES_TARGET + BLOCK_BYTES_TARGET / 4),
            sealed: Vec::new(),
            block_sessions: 0,
            handles: Vec::new(),
            committed: false,
        };
        pending.sink.write_hashed(&head)?;
        Ok(pending)
    }

    /// Adds one session, writing the current block out once it is full.
    pub(crate) fn push(&mut self, session: &Session) -> Result<(), SnapshotError> {
        if self.sessions_written == self.sessions_declared {
            return Err(SnapshotError::InvalidArgument {
                reason: format!(
                    "the session iterator yielded more than the {} sessions its len() declared",
                    self.sessions_declared
                ),
            });
        }
        // Field 1 of `SessionBlock`, length-delimited: appending sessions one by one builds
        // the same bytes as encoding a `SessionBlock` holding them all.
        let block_len_before = self.plain.len();
        prost::encoding::message::encode(
            1,
            &tokm_proto::session_to_message(session),
            &mut self.plain,
        );
        assert!(
            self.plain.len() - block_len_before <= SESSION_BYTES_LIMIT,
            "the domain's field limits keep a valid session far below the reader's limit"
        );
        self.block_sessions += 1;
        self.sessions_written += 1;
        if self.block_sessions as usize >= BLOCK_SESSIONS_MAX
            || self.plain.len() >= BLOCK_BYTES_TARGET
        {
            self.flush_block()?;
        }
        Ok(())
    }

    /// Writes the last block (every file has at least one, so a wrong key is detected even in
    /// an empty snapshot), the index, footer and trailer; syncs; renames into place; syncs the
    /// directory. Returns the file's size.
    pub(crate) fn commit(mut self) -> Result<u64, SnapshotError> {
        if self.sessions_written != self.sessions_declared {
            return Err(SnapshotError::InvalidArgument {
                reason: format!(
                    "the session iterator yielded {} sessions but its len() declared {}",
                    self.sessions_written, self.sessions_declared
                ),
            });
        }
        if self.block_sessions > 0 || self.handles.is_empty() {
            self.flush_block()?;
        }
        let index = pb::BlockIndex {
            blocks: std::mem::take(&mut self.handles),
        };
        let index_offset = self.sink.offset;
        let index_bytes = index.encode_to_vec();
        self.sink.write_hashed(&index_bytes)?;
        let footer = pb::SnapshotFooter {
            index_offset,
            index_length: index_bytes.len() as u64,
            session_count: self.sessions_written,
            file_checksum: self.sink.file_hasher.finalize().as_bytes().to_vec(),
            index_checksum: format::index_checksum(&index_bytes).to_vec(),
        };
        self.sink
            .write_at_end(&format::encode_tail(&footer.encode_to_vec()))?;

        self.sink
            .file
            .sync_data()
            .map_err(|source| SnapshotError::io("sync", &self.sink.temp_name, source))?;
        let final_path = self.dir.join(&self.final_name);
        self.storage
            .rename(&self.temp_path, &final_path)
            .map_err(|source| SnapshotError::io("rename", &self.sink.temp_name, source))?;
        // From here the temp file no longer exists; the final file is complete and synced.
        self.committed = true;
        self.storage
            .sync_dir(self.dir)
            .map_err(|source| SnapshotError::io("sync directory", &self.final_name, source))?;
        Ok(self.sink.offset)
    }

    fn flush_block(&mut self) -> Result<(), SnapshotError> {
        let block_index = self.handles.len() as u64;
        let offset = self.sink.offset;
        let stored = match &self.cipher {
            None => &self.plain,
            Some(cipher) => {
                self.sealed.clear();
                let aad = format::block_aad(self.snapshot_id, block_index);
                // Counter = block index: unique within the file, and the file's salt is fresh,
                // so (subkey, nonce) never repeats.
                cipher
                    .seal_into(block_index, &aad, &self.plain, &mut self.sealed)
                    .map_err(|source| SnapshotError::Crypto {
                        file: self.sink.temp_name.clone(),
                        offset,
                        source,
                    })?;
                &self.sealed
            }
        };
        let handle = pb::BlockHandle {
            offset,
            length: stored.len() as u64,
            session_count: self.block_sessions,
            checksum: format::block_checksum(stored).to_vec(),
        };
        assert!(
            handle.length <= format::BLOCK_LEN_LIMIT,
            "blocks are cut near 256 KiB; one session cannot push one past the read limit"
        );
        self.sink.write_hashed(stored)?;
        self.handles.push(handle);
        self.plain.clear();
        self.block_sessions = 0;
        Ok(())
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
    fn write_hashed(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.file_hasher.update(bytes);
        self.write_at_end(bytes)
    }

    fn write_at_end(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.file
            .write_all_at(self.offset, bytes)
            .map_err(|source| SnapshotError::io("write", &self.temp_name, source))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }
}

impl Drop for PendingSnapshot<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Best effort: if removal fails too (the disk is failing), the next `open` removes
        // the stale temp file; it is never mistaken for a snapshot.
        if let Err(error) = self.storage.remove(&self.temp_path) {
            tracing::warn!(file = %self.sink.temp_name, %error, "could not remove snapshot temp file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv6Addr};
    use tokm_domain::testkit::SessionFactory;
    use tokm_domain::{
        ApiKeyId, DeviceId, ID_LEN_MAX, IDLE_TIMEOUT_MAX, LIFETIME_MAX, METADATA_ENTRIES_MAX,
        METADATA_KEY_LEN_MAX, METADATA_VALUE_LEN_MAX, NewSession, SessionFields, SessionId,
        Timestamp, TokenHash, USER_AGENT_LEN_MAX, UserAgent, UserId,
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
        assert!(encoded.len() * 8 < SESSION_BYTES_LIMIT);
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

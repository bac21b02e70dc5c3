//! [`SnapshotStore`]: a directory of snapshot files.

use std::borrow::Borrow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokm_crypto_adaptive::{FileSalt, Keyring};
use tokm_domain::{Clock, ErrorChain, Session, SessionRecord, SystemClock};
use tokm_proto::pb;
use tokm_storage::{FsStorage, Lsn, Storage};

use crate::error::{LoadError, RetainError, WriteError};
use crate::format::{self, NODE_ID_LEN_MAX, SnapshotName};
use crate::meta::{
    Encryption, Fallback, LoadOutcome, LoadReport, RetentionReport, SnapshotInfo, SnapshotMeta,
};
use crate::reader::{self, SnapshotReader};
use crate::write::{PendingSnapshot, RecordSlice, RecordSource, Target};

/// How a [`SnapshotStore`] stores, encrypts, dates and retains snapshots.
#[derive(Clone, Debug)]
pub struct SnapshotOptions {
    /// Where the bytes go: [`FsStorage`] for real, `tokm_storage::testkit::SimStorage` in tests.
    pub storage: Arc<dyn Storage>,
    /// When set, new snapshots are sealed with its active key and existing ones opened with
    /// whichever of its keys they name. Plain snapshots load with or without it.
    pub keyring: Option<Arc<Keyring>>,
    /// Retention keeps at least this many newest snapshots (default 5).
    pub retention_count: usize,
    /// Retention also keeps every snapshot younger than this, by `clock` (default 7 days).
    pub retention_age: Duration,
    /// Source of `created_at` and of "now" for retention.
    pub clock: Arc<dyn Clock>,
    /// Written into each header to say which node took the snapshot; at most 128 bytes.
    pub node_id: String,
}

impl Default for SnapshotOptions {
    fn default() -> SnapshotOptions {
        SnapshotOptions {
            storage: Arc::new(FsStorage),
            keyring: None,
            retention_count: 5,
            retention_age: Duration::from_secs(7 * 24 * 60 * 60),
            clock: Arc::new(SystemClock),
            node_id: String::new(),
        }
    }
}

/// A directory of snapshots: write, load the newest valid one, list, retain.
///
/// Every read goes through a [`SnapshotReader`] over the same directory, storage and keyring;
/// the store adds what changes the directory.
///
/// `Send + Sync`. [`write`](SnapshotStore::write), [`load_newest`](SnapshotStore::load_newest)
/// and [`apply_retention`](SnapshotStore::apply_retention) change the directory, so they take
/// one internal lock and hold it across their I/O: they run one at a time. The read-only
/// [`list`](SnapshotStore::list) and [`oldest_retained_lsn`](SnapshotStore::oldest_retained_lsn)
/// take no lock.
#[derive(Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    options: SnapshotOptions,
    reader: SnapshotReader,
    /// Serialises the operations that create, rename or remove files. Held across I/O; no
    /// other lock is taken while it is held.
    directory_lock: Mutex<()>,
}

impl SnapshotStore {
    /// Opens (creating it, mode 0700, if missing) the snapshot directory `dir`.
    ///
    /// Removes `*.snap.tmp` files: snapshots a crashed or failed writer never finished. They
    /// were never renamed into place, so nothing depends on them. Other files are not touched.
    ///
    /// # Errors
    /// [`WriteError::InvalidArgument`] for a node id over 128 bytes,
    /// [`WriteError::Io`] if the directory cannot be created, listed or cleaned.
    pub fn open(dir: &Path, options: SnapshotOptions) -> Result<SnapshotStore, WriteError> {
        if options.node_id.len() > NODE_ID_LEN_MAX {
            return Err(WriteError::InvalidArgument {
                reason: format!(
                    "node id is {} bytes, at most {NODE_ID_LEN_MAX} allowed",
                    options.node_id.len()
                ),
            });
        }
        let dir_name = dir.display().to_string();
        let storage = &options.storage;
        tokm_storage::create_dir_all_durable(storage.as_ref(), dir)
            .map_err(|source| WriteError::io("create directory", &dir_name, source))?;
        let names = storage
            .list(dir)
            .map_err(|source| WriteError::io("list", &dir_name, source))?;
        let stale: Vec<&String> = names
            .iter()
            .filter(|name| format::is_temp_file_name(name))
            .collect();
        for name in &stale {
            storage
                .remove(&dir.join(name))
                .map_err(|source| WriteError::io("remove stale temp file", name, source))?;
            tracing::info!(file = %name, "removed a snapshot temp file left by an unfinished write");
        }
        if !stale.is_empty() {
            storage
                .sync_dir(dir)
                .map_err(|source| WriteError::io("sync directory", &dir_name, source))?;
        }
        let reader = SnapshotReader::new(dir, options.storage.clone(), options.keyring.clone());
        Ok(SnapshotStore {
            dir: dir.to_path_buf(),
            options,
            reader,
            directory_lock: Mutex::new(()),
        })
    }

    /// The snapshot directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The read-only view of this store's directory, with its storage and keyring: to list,
    /// verify and load snapshots and decide before changing anything.
    pub fn reader(&self) -> &SnapshotReader {
        &self.reader
    }

    /// Renames snapshot `file_name` to `<file_name>.broken` and syncs the directory; returns the
    /// new name. The file is never deleted or modified: rename it back to try it again.
    ///
    /// For a caller that loaded through [`reader`](SnapshotStore::reader), found damage
    /// ([`LoadError::is_damage`]) and decided to go on without that snapshot; this is what
    /// [`load_newest`](SnapshotStore::load_newest) does to each damaged snapshot it skips. An
    /// existing `<file_name>.broken` is replaced.
    ///
    /// # Errors
    /// [`LoadError::InvalidArgument`] if `file_name` is not a snapshot file name,
    /// [`LoadError::Io`] if the rename or the directory sync fails (a missing file
    /// included).
    pub fn set_aside(&self, file_name: &str) -> Result<String, LoadError> {
        reader::parse_file_name(file_name)?;
        let _directory = self.lock_directory();
        self.rename_aside(file_name)
    }

    /// Writes a snapshot of the records of `source`, which reflect every log entry up to
    /// `covered_lsn`.
    ///
    /// Records are encoded and sealed into blocks on every core (the source hands chunks to
    /// each encoder thread) and written in order to a `*.snap.tmp` file (mode 0600); only a
    /// few blocks per core are in memory at once. The file is synced, renamed to
    /// `<covered_lsn>-<created_at_ms>.snap` (20 digits each), and the directory synced. On any
    /// failure the temp file is removed and earlier snapshots are as they were.
    ///
    /// # Errors
    /// [`WriteError::AlreadyExists`] if a snapshot of the same LSN was taken in the same
    /// millisecond, [`WriteError::InvalidArgument`] if the chunks did not hold
    /// `source.session_count()` records, [`WriteError::Io`] on a failed write, sync or
    /// rename (ENOSPC included), [`WriteError::Crypto`] if the random source fails.
    pub fn write_records(
        &self,
        covered_lsn: Lsn,
        source: &dyn RecordSource,
    ) -> Result<SnapshotMeta, WriteError> {
        self.write_declared(covered_lsn, source.session_count(), source)
    }

    /// Writes a snapshot of `sessions`, which reflect every log entry up to `covered_lsn`:
    /// [`write_records`](SnapshotStore::write_records) for a caller holding [`Session`]s. The
    /// iterator's exact length is the count the header declares.
    ///
    /// # Errors
    /// As [`write_records`](SnapshotStore::write_records); `InvalidArgument` if the iterator's
    /// length was wrong.
    pub fn write<I>(&self, covered_lsn: Lsn, sessions: I) -> Result<SnapshotMeta, WriteError>
    where
        I: IntoIterator,
        I::IntoIter: ExactSizeIterator,
        I::Item: Borrow<Session>,
    {
        let sessions = sessions.into_iter();
        let declared = sessions.len() as u64;
        let records: Vec<SessionRecord> = sessions
            .map(|session| SessionRecord::from_session(session.borrow()))
            .collect();
        self.write_declared(covered_lsn, declared, &RecordSlice::new(&records))
    }

    fn write_declared(
        &self,
        covered_lsn: Lsn,
        declared: u64,
        source: &dyn RecordSource,
    ) -> Result<SnapshotMeta, WriteError> {
        let _directory = self.lock_directory();
        let (mut pending, mut meta) = self.begin_write(covered_lsn, declared)?;
        let encoders = std::thread::available_parallelism().map_or(1, usize::from);
        pending.write_records(source, encoders)?;
        meta.size_bytes = pending.commit()?;
        tracing::info!(
            file = %meta.file_name,
            covered_lsn = covered_lsn.get(),
            sessions = meta.session_count,
            size_bytes = meta.size_bytes,
            "snapshot written"
        );
        Ok(meta)
    }

    /// The non-generic part of `write`: names the file, draws ids and salt, writes the header.
    fn begin_write(
        &self,
        covered_lsn: Lsn,
        session_count: u64,
    ) -> Result<(PendingSnapshot<'_>, SnapshotMeta), WriteError> {
        let name = SnapshotName {
            covered_lsn,
            created_at: self.options.clock.now(),
        };
        let final_name = name.file_name();
        if self.reader.snapshot_names()?.contains(&name) {
            return Err(WriteError::AlreadyExists { file: final_name });
        }
        let crypto_error = |source| WriteError::Crypto {
            file: final_name.clone(),
            offset: 0,
            source,
        };
        // Unique per file with overwhelming probability; with encryption the fresh salt
        // already makes every block key unique, the id additionally binds blocks to the file.
        let id_source = FileSalt::random().map_err(crypto_error)?;
        let snapshot_id = format::snapshot_id_from(id_source.as_bytes());
        let cipher = match &self.options.keyring {
            None => None,
            Some(keyring) => Some(keyring.new_file_cipher().map_err(crypto_error)?),
        };
        let (encryption, header_cipher, key_id, salt) = match &cipher {
            None => (Encryption::None, pb::Cipher::None, 0, Vec::new()),
            Some(cipher) => (
                Encryption::Sealed {
                    algorithm: cipher.algorithm(),
                    key_id: cipher.key_id(),
                },
                format::cipher_id(cipher.algorithm()),
                cipher.key_id().get(),
                cipher.salt().as_bytes().to_vec(),
            ),
        };
        let header = pb::SnapshotHeader {
            snapshot_id,
            created_at_ms: name.created_at.as_millis(),
            node_id: self.options.node_id.clone(),
            covered_lsn: covered_lsn.get(),
            session_count,
            compression: pb::Compression::None as i32,
            cipher: header_cipher as i32,
            key_id,
            salt,
        };
        let meta = SnapshotMeta {
            file_name: final_name.clone(),
            snapshot_id,
            covered_lsn,
            created_at: name.created_at,
            node_id: self.options.node_id.clone(),
            session_count,
            encryption,
            size_bytes: 0,
        };
        let pending = PendingSnapshot::create(Target {
            storage: self.options.storage.as_ref(),
            dir: &self.dir,
            temp_name: name.temp_file_name(),
            final_name,
            header,
            cipher,
        })?;
        Ok((pending, meta))
    }

    /// Loads the newest snapshot that passes every check, falling back to older ones.
    ///
    /// A damaged snapshot ([`LoadError::is_damage`]: truncated, failing a checksum,
    /// inconsistent, a block other than the first failing authentication, undecodable or invalid
    /// sessions) is renamed to `<name>.broken` (never deleted) and reported in
    /// [`LoadReport::fallbacks`]; the next newest is tried. Any other error stops loading and
    /// renames nothing.
    ///
    /// # Errors
    /// - [`LoadError::NoValidSnapshot`] if snapshots exist but all failed (each renamed).
    /// - [`LoadError::NotASnapshot`] / [`LoadError::UnsupportedVersion`] for a
    ///   `*.snap` file that is not ours or is newer: it is left untouched and loading stops,
    ///   since skipping it could mean silently loading older data.
    /// - [`LoadError::WrongKey`] when the keyring lacks the snapshot's key id or holds
    ///   other bytes for it, [`LoadError::KeyringMissing`] when there is no keyring: the
    ///   file is fine and loads with the right key, so nothing is renamed.
    /// - [`LoadError::Io`] when reading fails: the file may be fine, so nothing is renamed.
    pub fn load_newest(&self) -> Result<LoadOutcome, LoadError> {
        let _directory = self.lock_directory();
        let mut names = self.reader.snapshot_names()?;
        names.reverse();
        let mut report = LoadReport::default();
        for name in &names {
            let file_name = name.file_name();
            let error = match self.reader.load(&file_name) {
                Ok(snapshot) => {
                    return Ok(LoadOutcome {
                        snapshot: Some(snapshot),
                        report,
                    });
                }
                Err(error) if error.is_damage() => error,
                Err(error) => return Err(error),
            };
            let renamed_to = self.rename_aside(&file_name)?;
            tracing::warn!(
                file = %file_name,
                renamed_to = %renamed_to,
                code = error.code(),
                cause_code = error.cause_code().unwrap_or("-"),
                error = %ErrorChain(&error),
                "snapshot failed a check; falling back to the next newest"
            );
            report.fallbacks.push(Fallback {
                file_name,
                renamed_to,
                error,
            });
        }
        if names.is_empty() {
            return Ok(LoadOutcome {
                snapshot: None,
                report,
            });
        }
        Err(LoadError::NoValidSnapshot {
            fallbacks: report.fallbacks,
        })
    }

    /// Every snapshot file, newest first, with its header, footer and index checked (blocks
    /// are not read): [`SnapshotReader::list`]. `*.broken` and temp files are not listed.
    ///
    /// # Errors
    /// [`LoadError::Io`] if the directory cannot be listed; problems with one file are in
    /// its [`SnapshotInfo::meta`].
    pub fn list(&self) -> Result<Vec<SnapshotInfo>, LoadError> {
        self.reader.list()
    }

    /// The smallest LSN covered by any snapshot in the directory, `None` if there is none.
    ///
    /// Loading may fall back to any retained snapshot, so the log must keep every entry after
    /// this LSN, not only after the newest snapshot's.
    ///
    /// # Errors
    /// [`RetainError::Io`] if the directory cannot be listed.
    pub fn oldest_retained_lsn(&self) -> Result<Option<Lsn>, RetainError> {
        Ok(self
            .reader
            .snapshot_names()?
            .first()
            .map(|name| name.covered_lsn))
    }

    /// Removes snapshots outside the retention policy; returns what it removed and kept.
    ///
    /// Kept: the newest `retention_count`, and every snapshot younger than `retention_age`
    /// by the clock. Never fewer than one *intact* snapshot (every checksum and the structure
    /// verified; keys are not needed): if no kept snapshot is intact, the newest intact one
    /// among the rest is kept too. If no snapshot at all is intact, nothing is removed.
    /// `*.broken` files are never removed.
    ///
    /// # Errors
    /// [`RetainError::Io`] if listing, reading or removing fails; files removed before the
    /// failure stay removed.
    pub fn apply_retention(&self) -> Result<RetentionReport, RetainError> {
        let _directory = self.lock_directory();
        let mut names = self.reader.snapshot_names()?;
        names.reverse();
        let now = self.options.clock.now();
        let age_limit_ms =
            u64::try_from(self.options.retention_age.as_millis()).unwrap_or(u64::MAX);
        let mut kept = Vec::new();
        let mut candidates = Vec::new();
        for (position, name) in names.iter().enumerate() {
            // A snapshot dated after `now` (clock moved back) counts as young: kept.
            let age_ms = now.as_millis().saturating_sub(name.created_at.as_millis());
            if position < self.options.retention_count || age_ms < age_limit_ms {
                kept.push(*name);
            } else {
                candidates.push(*name);
            }
        }
        if !self.any_intact(&kept)? {
            let Some(position) = self.first_intact(&candidates)? else {
                tracing::warn!("no snapshot is intact; retention removes nothing");
                return Ok(RetentionReport {
                    removed: Vec::new(),
                    kept: names.iter().map(|name| name.file_name()).collect(),
                });
            };
            kept.push(candidates.remove(position));
            kept.sort_by(|a, b| b.cmp(a));
        }
        let mut report = RetentionReport {
            removed: Vec::with_capacity(candidates.len()),
            kept: kept.iter().map(|name| name.file_name()).collect(),
        };
        for name in &candidates {
            let file_name = name.file_name();
            self.options
                .storage
                .remove(&self.dir.join(&file_name))
                .map_err(|source| RetainError::io("remove", &file_name, source))?;
            tracing::info!(file = %file_name, "snapshot removed by retention");
            report.removed.push(file_name);
        }
        if !report.removed.is_empty() {
            self.sync_dir()
                .map_err(|(dir, source)| RetainError::io("sync directory", &dir, source))?;
        }
        Ok(report)
    }

    fn any_intact(&self, names: &[SnapshotName]) -> Result<bool, RetainError> {
        Ok(self.first_intact(names)?.is_some())
    }

    /// Position of the first snapshot in `names` that verifies; I/O errors are returned, any
    /// other failure means "not intact".
    fn first_intact(&self, names: &[SnapshotName]) -> Result<Option<usize>, RetainError> {
        for (position, name) in names.iter().enumerate() {
            match self.reader.verify(&name.file_name()) {
                Ok(_) => return Ok(Some(position)),
                Err(LoadError::Io {
                    operation,
                    file,
                    source,
                }) => {
                    return Err(RetainError::Io {
                        operation,
                        file,
                        source,
                    });
                }
                Err(_) => {}
            }
        }
        Ok(None)
    }

    /// `set_aside` without the lock, for callers that hold it.
    fn rename_aside(&self, file_name: &str) -> Result<String, LoadError> {
        let renamed_to = format::broken_file_name(file_name);
        self.options
            .storage
            .rename(&self.dir.join(file_name), &self.dir.join(&renamed_to))
            .map_err(|source| LoadError::io("rename to *.broken", file_name, source))?;
        self.sync_dir()
            .map_err(|(dir, source)| LoadError::io("sync directory", &dir, source))?;
        Ok(renamed_to)
    }

    fn sync_dir(&self) -> Result<(), (String, std::io::Error)> {
        self.options
            .storage
            .sync_dir(&self.dir)
            .map_err(|source| (self.dir.display().to_string(), source))
    }

    fn lock_directory(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded value is `()`: a panic in another holder leaves nothing inconsistent.
        self.directory_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

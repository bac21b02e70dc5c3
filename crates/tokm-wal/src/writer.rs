//! The writer: appends with group commit, rotation, fail-closed error handling, compaction.
//!
//! Group commit is leader/follower with no dedicated thread: an appender encodes its record
//! into the shared pending buffer under the state lock, then, until its goal is met, runs
//! whichever I/O round is needed and free (or waits for the thread running it):
//! - a *write round* takes the whole pending buffer and writes it with the lock released;
//! - a *sync round* runs `fdatasync` and then marks durable everything written before it began;
//! - a *seal round* (exclusive) finishes a full segment: writes its rest, syncs it, and only
//!   then creates the next segment's file, with the frames already encoded for it.
//!
//! Writes may overlap a sync, so records arriving during an fsync are written meanwhile and the
//! next single fsync covers all of them; batch-mode appenders are never stalled by a sync. A
//! lone appender pays one write and one fdatasync, with no thread hand-off.
//!
//! Rotation does not stall appenders. When a record does not fit, the appender switches the
//! log to the next segment at once, in memory ([`SegmentDisk::AwaitingSeal`]): records keep
//! being encoded for it into the pending buffer while the background flusher (woken at the
//! switch) runs the seal round. Its file is created only after the full segment is synced, so
//! a newer segment never exists on disk next to an older one with an unsynced tail (recovery
//! would read that tail as a loss), and a record of the new segment is acknowledged only after
//! the seal round made it durable. An appender waits for a seal round only when it needs one:
//! a `Sync` append (every older record must be durable first), a full pending buffer, or a
//! segment that fills up before it exists.
//!
//! The background flusher syncs every `sync_interval`, and early once `sync_bytes_max` bytes
//! are written but unsynced, so a seal round finds little to sync.

use std::io;
use std::mem;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, Sender};
use parking_lot::{Condvar, Mutex, MutexGuard};
use tokm_crypto_adaptive::KeyId;
use tokm_domain::Timestamp;

use crate::error::{AppendError, CompactError, IoFailure, OpenError, ReplayError, SealFailure};
use crate::format::{
    FormatVersion, HEADER_LEN, SegmentHeader, abort_frame, begin_frame, finish_frame, frame_len,
    quarantine_name, segment_name, temp_name,
};
use crate::ids::{LsnRange, SegmentId};
use crate::metrics::WalMetrics;
use crate::options::WalOptions;
use crate::plan::{LogPlan, Repair};
use crate::recovery::{RecoveryReport, ReplaySummary, WalReader};
use crate::seal::PayloadSeal;
use crate::survey::LogSurvey;
use crate::walk::LogWalk;
use tokm_storage::{Access, AtomicFile, Lsn, Storage, StorageFile};

mod rekey;

/// How many segments [`Wal::compact`] callers keep by default: the open one and two before it.
pub const COMPACT_KEEP_NEWEST_DEFAULT: usize = 3;

/// When `append` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// After the record is on disk (written and fdatasync'ed, sharing the fsync with concurrent
    /// appenders). A crash never loses it.
    Sync,
    /// After the record is buffered. The background flusher writes and syncs every
    /// `sync_interval`, so a power cut loses at most that window (plus the time one write and
    /// sync take); a process crash loses what was still buffered.
    Batch,
}

/// The segment records are encoded for.
#[derive(Debug)]
struct OpenSegment {
    id: SegmentId,
    name: String,
    disk: SegmentDisk,
    seal: PayloadSeal,
    created_at_ms: u64,
    /// From its header: what a replacement of the segment while empty repeats.
    previous_lsn: Lsn,
    /// Bytes in the file: the offset of the next write.
    written_bytes: u64,
    /// Records in the file plus those pending for it.
    records_count: u64,
}

/// Whether the open segment's file exists yet.
#[derive(Debug)]
enum SegmentDisk {
    /// Created: header and name are durable; write and sync rounds use this file.
    Created(Arc<dyn StorageFile>),
    /// Not created yet: the previous segment is full and waits for its seal round, which syncs
    /// it and then creates this one. Until then this segment's records stay in the pending
    /// buffer; no write or sync round runs.
    AwaitingSeal(Box<Sealing>),
}

/// A full segment not yet known to be synced, and what creating its successor needs.
#[derive(Debug)]
struct Sealing {
    name: String,
    file: Arc<dyn StorageFile>,
    /// Its frames not yet written (the pending buffer at the switch), and where they go.
    rest: Vec<u8>,
    rest_offset: u64,
    /// LSN of its last record.
    last_lsn: Lsn,
    /// The header of the successor (the open segment).
    next_header: SegmentHeader,
}

/// A segment decided (id, name, salt, header) before its file exists.
#[derive(Debug)]
struct NewSegment {
    id: SegmentId,
    name: String,
    seal: PayloadSeal,
    header: SegmentHeader,
}

impl NewSegment {
    fn open(self, disk: SegmentDisk) -> OpenSegment {
        OpenSegment {
            id: self.id,
            name: self.name,
            disk,
            seal: self.seal,
            created_at_ms: self.header.created_at_ms,
            previous_lsn: self.header.previous_lsn,
            written_bytes: HEADER_LEN as u64,
            records_count: 0,
        }
    }
}

/// Why the writer failed closed.
#[derive(Clone, Copy, Debug)]
struct Failure {
    cause: io::ErrorKind,
}

#[derive(Debug)]
struct State {
    segment: OpenSegment,
    /// Encoded frames for `segment` not yet written.
    pending: Vec<u8>,
    pending_records: usize,
    /// The previous batch buffer, kept to reuse its capacity.
    spare: Vec<u8>,
    next_lsn: Lsn,
    /// Every record up to here was handed to a successful write.
    written_lsn: Lsn,
    /// Every record up to here is on disk.
    durable_lsn: Lsn,
    /// A thread is writing the last taken batch with the lock released.
    writing: bool,
    /// A thread is in `sync_data` with the lock released.
    syncing: bool,
    /// Counts sync rounds (and rotations) started; selects a `sync_done` condvar.
    sync_generation: u64,
    /// What the sync in flight will make durable.
    sync_in_flight_target: Lsn,
    /// Bytes of the open segment written but not covered by a finished or running sync.
    unsynced_bytes: u64,
    failed: Option<Failure>,
    /// Copied from the options: the bound on the pending buffer.
    group_commit_records_max: usize,
    group_commit_bytes_max: usize,
    /// The bound on the pending buffer while the open segment awaits its seal round.
    awaiting_seal_bytes_max: usize,
}

/// The most bytes appenders buffer in memory for a segment whose file does not exist yet,
/// whatever `sync_bytes_max` says: memory stays bounded however slow the seal round is.
const AWAITING_SEAL_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Where a segment lives in the log, for compaction.
#[derive(Clone, Debug)]
struct SegmentEntry {
    name: String,
    first_lsn: Lsn,
    /// The key it is sealed under; `None` when plain (or its header was unreadable).
    key_id: Option<KeyId>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    options: WalOptions,
    /// Lock order: `state`, then `segments`. Never held across I/O: a round sets `writing` or
    /// `syncing` (a seal round both) under it, releases it for the I/O, and clears the flag
    /// under it again.
    state: Mutex<State>,
    /// Signalled when a write round (or a seal round) ends.
    write_done: Condvar,
    /// Signalled when a sync round ends, indexed by sync generation parity: waiters the
    /// in-flight sync will satisfy sleep on its generation's condvar (all woken when it ends);
    /// later ones on the next generation's (one woken to start the next sync). This keeps an
    /// fsync's end from waking appenders it did not cover.
    sync_done: [Condvar; 2],
    /// Signalled whenever `durable_lsn` moves or the writer fails, for
    /// [`Wal::wait_until_durable`], which waits without starting a sync.
    durable_changed: Condvar,
    /// Segments in the log, oldest first; the last is the newest created one (the open one,
    /// or the one being sealed while the open one awaits its seal round).
    segments: Mutex<Vec<SegmentEntry>>,
    /// Asks the background flusher for a sync now (`sync_bytes_max` reached, or a segment to
    /// seal). Bounded to one message: a request already queued covers later ones.
    sync_requests: Sender<()>,
    metrics: WalMetrics,
}

/// A write-ahead log directory opened for appending.
///
/// Opening recovers the directory (see [`RecoveryMode`](crate::RecoveryMode)) and starts a new
/// segment: a segment that was open before is never appended to again. Records recovered at
/// open are read with [`Wal::replay`]. `Wal` is `Send + Sync`; share it by reference or `Arc`.
#[derive(Debug)]
pub struct Wal {
    shared: Arc<Shared>,
    reader: WalReader,
    flusher: Option<(Sender<()>, JoinHandle<()>)>,
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`: recovers per `options.recovery_mode` with
    /// the log's own start as the base (see [`LogPlan::decide`]), applies the repairs the plan
    /// calls for, starts a new segment and the background flusher. Read the recovered records
    /// with [`Wal::replay`].
    ///
    /// A caller with a snapshot recovers in one pass instead: [`LogSurvey::read`], then
    /// [`LogSurvey::walk`] from the snapshot's LSN (records are delivered as they are read),
    /// then [`LogWalk::plan`] and [`LogWalk::open`].
    ///
    /// # Errors
    /// An [`OpenError`]: `InvalidArgument` for bad options; `NotASegment`/`UnsupportedVersion` when the directory
    /// holds a `.wal` file this crate did not write (left untouched); `WrongKey`;
    /// `WouldDropRecords` under `RefuseLoss`/`Absolute`, `Corrupt` under `Absolute`
    /// (nothing changed); `Io`; `Crypto`.
    pub fn open(dir: &Path, options: WalOptions) -> Result<(Wal, RecoveryReport), OpenError> {
        let walk =
            LogSurvey::read(dir, &options)?.walk(None, &mut |_, _| ControlFlow::Continue(()))?;
        let plan = walk.plan()?;
        walk.open(&plan)
    }

    /// Appends one record and returns its LSN; see [`Durability`] for when it returns.
    ///
    /// Errors ([`AppendError`]): `RecordTooLarge` (nothing appended); `WriterFailed` when this
    /// or an earlier write or sync failed (the writer then refuses all appends);
    /// `LsnExhausted`; `Crypto`.
    pub fn append(&self, payload: &[u8], durability: Durability) -> Result<Lsn, AppendError> {
        Ok(self.shared.append_batch(&[payload], durability)?.last)
    }

    /// Appends several records with consecutive LSNs in one call (one wait for durability).
    ///
    /// All sizes are checked before any record is appended; an empty batch is
    /// `InvalidArgument`.
    pub fn append_batch(
        &self,
        payloads: &[&[u8]],
        durability: Durability,
    ) -> Result<LsnRange, AppendError> {
        self.shared.append_batch(payloads, durability)
    }

    /// Writes buffered records to the file without syncing them.
    pub fn flush(&self) -> Result<(), AppendError> {
        self.shared.flush()
    }

    /// Writes and syncs every record appended so far.
    pub fn sync(&self) -> Result<(), AppendError> {
        self.shared.sync()
    }

    /// LSN of the last record appended (`Lsn::ZERO` when the log has never held one).
    pub fn last_lsn(&self) -> Lsn {
        self.shared.state.lock().next_lsn.prev()
    }

    /// Every record up to this LSN is on disk.
    pub fn durable_lsn(&self) -> Lsn {
        self.shared.state.lock().durable_lsn
    }

    /// Waits until every record up to `lsn` is on disk, without asking for a sync: the
    /// flusher's timer (`sync_interval`, by the options' clock), `sync_bytes_max`, a rotation
    /// or another caller's sync gets it there. For a `Batch` writer that wants to know when a
    /// write became durable without paying for an early fsync. Returns `Ok(false)` if
    /// `timeout` (real time) passed first.
    ///
    /// # Errors
    /// `WriterFailed` when a write or sync failed before `lsn` was durable.
    pub fn wait_until_durable(&self, lsn: Lsn, timeout: Duration) -> Result<bool, AppendError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.state.lock();
        loop {
            if state.durable_lsn >= lsn {
                return Ok(true);
            }
            if let Some(error) = state.failed_error() {
                return Err(error);
            }
            if self
                .shared
                .durable_changed
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                return Ok(state.durable_lsn >= lsn);
            }
        }
    }

    /// Replays the records recovered at open with an LSN above `after`; see
    /// [`WalReader::replay`]. Records appended since open are not included. Call it before
    /// [`Wal::compact`], which may delete the files it reads.
    pub fn replay(
        &self,
        after: Lsn,
        on_record: impl FnMut(Lsn, &[u8]) -> ControlFlow<()>,
    ) -> Result<ReplaySummary, ReplayError> {
        self.reader.replay(after, on_record)
    }

    /// Deletes sealed segments whose records all lie before `before` (the LSN of the oldest
    /// snapshot still retained), always keeping the newest `keep_newest` segments (the open
    /// one counts; [`COMPACT_KEEP_NEWEST_DEFAULT`] is the usual choice) and never the open segment; then syncs the directory. Returns the names
    /// deleted.
    ///
    /// A segment is dropped from the writer's list before its file is removed, so if a removal
    /// fails the file stays on disk (still a valid part of the log) until a later open.
    pub fn compact(&self, before: Lsn, keep_newest: usize) -> Result<Vec<String>, CompactError> {
        let victims: Vec<SegmentEntry> = {
            let mut segments = self.shared.segments.lock();
            let protected_from = segments.len().saturating_sub(keep_newest.max(1));
            let removable = segments
                .windows(2)
                .take(protected_from)
                .take_while(|pair| pair[1].first_lsn <= before)
                .count();
            segments.drain(..removable).collect()
        };
        if victims.is_empty() {
            return Ok(Vec::new());
        }
        let storage = &self.shared.options.storage;
        for victim in &victims {
            storage
                .remove(&self.shared.dir.join(&victim.name))
                .map_err(|source| CompactError::io("remove", &victim.name, source))?;
        }
        storage.sync_dir(&self.shared.dir).map_err(|source| {
            CompactError::io(
                "sync directory",
                &self.shared.dir.display().to_string(),
                source,
            )
        })?;
        Ok(victims.into_iter().map(|victim| victim.name).collect())
    }

    /// Flushes, syncs and stops the background flusher.
    pub fn close(mut self) -> Result<(), AppendError> {
        self.stop_flusher();
        self.shared.sync()
    }

    fn stop_flusher(&mut self) {
        if let Some((stop, handle)) = self.flusher.take() {
            drop(stop);
            // The flusher only returns; a panic there is our bug and is reported by the log.
            if handle.join().is_err() {
                tracing::error!("WAL flusher thread panicked");
            }
        }
    }
}

impl Drop for Wal {
    /// Best effort: stops the flusher and syncs; errors are logged, not raised. Use
    /// [`Wal::close`] to see them.
    fn drop(&mut self) {
        if self.flusher.is_none() {
            return;
        }
        self.stop_flusher();
        if let Err(error) = self.shared.sync() {
            tracing::warn!(code = error.code(), "WAL sync on drop failed");
        }
    }
}

impl LogWalk {
    /// Carries out `plan` (decided from this walk by [`LogWalk::plan`] or
    /// [`LogPlan::decide`]): makes the directory durable, applies the repairs, syncs the newest
    /// kept segment, creates a new segment and starts the writer. The first step that changes
    /// anything.
    ///
    /// # Errors
    /// `Io`; `Crypto` (the new segment's salt). A failure part-way leaves a directory that the
    /// next open decides the same way.
    pub fn open(self, plan: &LogPlan) -> Result<(Wal, RecoveryReport), OpenError> {
        let LogWalk { survey, .. } = &self;
        let options = survey.options.clone();
        let dir = survey.dir.clone();
        let storage = Arc::clone(&options.storage);
        let dir_name = dir.display().to_string();
        tokm_storage::create_dir_all_durable(storage.as_ref(), &dir)
            .map_err(|source| OpenError::io("create directory", &dir_name, source))?;
        let quarantined = apply_repairs(&options, &dir, plan.repairs())?;
        let report = RecoveryReport::new(self.findings(), plan, quarantined);
        let kept = self.kept_survey(plan);
        // Records recovered from the newest segment may sit in the page cache only (the process
        // died, the machine did not): make them durable before newer records can be.
        if let Some(newest) = kept.segments.last() {
            let file = storage
                .open(&dir.join(&newest.name), Access::ReadWrite)
                .map_err(|source| OpenError::io("open", &newest.name, source))?;
            file.sync_data()
                .map_err(|source| OpenError::io("sync", &newest.name, source))?;
        }
        let next_lsn = plan.next_lsn();
        let new_segment = prepare_segment(
            &options,
            next_lsn,
            plan.new_previous_lsn(),
            plan.next_segment_id(),
        )?;
        let file = create_segment_file(&options, &dir, &new_segment.header, &[])?;
        let segment = new_segment.open(SegmentDisk::Created(file));
        let mut segments: Vec<SegmentEntry> = kept
            .segments
            .iter()
            .map(|kept| SegmentEntry {
                name: kept.name.clone(),
                first_lsn: kept.first_lsn,
                key_id: kept.readable.as_ref().and_then(|(_, seal)| seal.key_id()),
            })
            .collect();
        segments.push(SegmentEntry {
            name: segment.name.clone(),
            first_lsn: next_lsn,
            key_id: segment.seal.key_id(),
        });
        let wal = Wal::start(
            dir,
            options,
            segment,
            segments,
            WalReader::from_survey(kept),
        )?;
        Ok((wal, report))
    }

    /// The survey restricted to the segments the plan keeps, as they are after the repairs:
    /// what [`Wal::replay`] reads again.
    fn kept_survey(&self, plan: &LogPlan) -> LogSurvey {
        let mut kept = self.survey.clone();
        kept.temp_files.clear();
        kept.segments = plan
            .kept()
            .iter()
            .map(|segment| {
                let mut surveyed = self.survey.segments[segment.index].clone();
                surveyed.size_bytes = segment.end_offset;
                surveyed
            })
            .collect();
        kept
    }
}

impl Wal {
    /// Starts the writer on `segment`, just created, and the background flusher.
    fn start(
        dir: PathBuf,
        options: WalOptions,
        segment: OpenSegment,
        segments: Vec<SegmentEntry>,
        reader: WalReader,
    ) -> Result<Wal, OpenError> {
        let recovered_lsn = segment_first_lsn(&segments).prev();
        let dir_name = dir.display().to_string();
        let state = State {
            segment,
            pending: Vec::with_capacity(options.group_commit_bytes_max),
            pending_records: 0,
            spare: Vec::with_capacity(options.group_commit_bytes_max),
            next_lsn: recovered_lsn.next(),
            written_lsn: recovered_lsn,
            durable_lsn: recovered_lsn,
            writing: false,
            syncing: false,
            sync_generation: 0,
            sync_in_flight_target: recovered_lsn,
            unsynced_bytes: 0,
            failed: None,
            group_commit_records_max: options.group_commit_records_max,
            group_commit_bytes_max: options.group_commit_bytes_max,
            awaiting_seal_bytes_max: usize::try_from(
                options.sync_bytes_max.min(AWAITING_SEAL_BYTES_MAX),
            )
            .unwrap_or(usize::MAX)
            .max(options.group_commit_bytes_max),
        };
        let (sync_requests, sync_request_receiver) = channel::bounded::<()>(1);
        let metrics = WalMetrics::register();
        // The segment `open` created before starting the writer.
        metrics.segment_created();
        let shared = Arc::new(Shared {
            dir,
            options,
            state: Mutex::new(state),
            write_done: Condvar::new(),
            sync_done: [Condvar::new(), Condvar::new()],
            durable_changed: Condvar::new(),
            segments: Mutex::new(segments),
            sync_requests,
            metrics,
        });
        let (stop_sender, stop_receiver) = channel::bounded::<()>(1);
        let flusher_shared = Arc::clone(&shared);
        let started = shared.options.clock.now();
        let handle = std::thread::Builder::new()
            .name("tokm-wal-flusher".to_owned())
            .spawn(move || {
                flusher_shared.run_flusher(started, &stop_receiver, &sync_request_receiver)
            })
            .map_err(|source| OpenError::io("spawn flusher", &dir_name, source))?;
        Ok(Wal {
            shared,
            reader,
            flusher: Some((stop_sender, handle)),
        })
    }
}

/// The first LSN of the newest segment (the one just created).
fn segment_first_lsn(segments: &[SegmentEntry]) -> Lsn {
    segments
        .last()
        .map_or(Lsn::new(1), |newest| newest.first_lsn)
}

impl State {
    /// Whether a frame of `frame_bytes` must go to a new segment. A segment always takes at
    /// least one record, however large.
    fn segment_full(&self, options: &WalOptions, frame_bytes: usize, now_ms: u64) -> bool {
        let segment = &self.segment;
        if segment.records_count == 0 {
            return false;
        }
        let bytes_after = segment.written_bytes + (self.pending.len() + frame_bytes) as u64;
        let age_ms = now_ms.saturating_sub(segment.created_at_ms);
        bytes_after > options.segment_bytes_max
            || segment.records_count >= options.segment_records_max
            || u128::from(age_ms) >= options.segment_age_max.as_millis()
    }

    fn reached(&self, goal: Goal) -> bool {
        match goal {
            Goal::Room => !self.pending_full_for_room(),
            Goal::Created => !self.awaiting_seal(),
            Goal::Written(target) => self.written_lsn >= target,
            Goal::Durable(target) => self.durable_lsn >= target,
        }
    }

    /// The open segment's file does not exist yet; only a seal round can make progress.
    fn awaiting_seal(&self) -> bool {
        matches!(self.segment.disk, SegmentDisk::AwaitingSeal(_))
    }

    /// The open segment's file, for a write or sync round.
    fn created_file(&self) -> Arc<dyn StorageFile> {
        match &self.segment.disk {
            SegmentDisk::Created(file) => Arc::clone(file),
            SegmentDisk::AwaitingSeal(_) => {
                panic!("a write or sync round ran before its segment was created")
            }
        }
    }

    /// The pending buffer holds a full group: appenders wait until it is written. While the
    /// open segment awaits its seal round nothing can be written, so the buffer takes up to
    /// `awaiting_seal_bytes_max` bytes instead, in as many records as they make.
    fn pending_full_for_room(&self) -> bool {
        if self.awaiting_seal() {
            return self.pending.len() >= self.awaiting_seal_bytes_max;
        }
        self.pending_records >= self.group_commit_records_max
            || self.pending.len() >= self.group_commit_bytes_max
    }

    /// Makes the next segment the open one at once, in memory: the full one's unwritten
    /// frames move aside for the seal round, which syncs it and then creates the new file.
    /// CPU only (a fresh salt and header), so it runs under the lock.
    fn switch_segment(&mut self, options: &WalOptions) -> Result<(), SealFailure> {
        let SegmentDisk::Created(file) = &self.segment.disk else {
            panic!("switching away from a segment that was never created");
        };
        let file = Arc::clone(file);
        let last_lsn = self.next_lsn.prev();
        let next = prepare_segment(
            options,
            self.next_lsn,
            last_lsn,
            SegmentId::new(self.segment.id.get() + 1),
        )?;
        let rest_offset = self.segment.written_bytes;
        let name = self.segment.name.clone();
        let (rest, _) = self.take_pending();
        let sealing = Sealing {
            name,
            file,
            rest,
            rest_offset,
            last_lsn,
            next_header: next.header.clone(),
        };
        self.segment = next.open(SegmentDisk::AwaitingSeal(Box::new(sealing)));
        Ok(())
    }

    /// Takes the pending buffer (leaving the spare in its place) and the LSN of its last record.
    fn take_pending(&mut self) -> (Vec<u8>, Lsn) {
        let spare = mem::take(&mut self.spare);
        let batch = mem::replace(&mut self.pending, spare);
        self.pending_records = 0;
        (batch, self.next_lsn.prev())
    }

    /// Keeps a written batch's capacity for reuse.
    fn recycle(&mut self, mut batch: Vec<u8>) {
        batch.clear();
        if batch.capacity() > self.spare.capacity() {
            self.spare = batch;
        }
    }

    /// Fails the writer closed. Never retry a write or fsync on this file: after a failed fsync
    /// the kernel may have dropped the dirty pages, and a retry would "succeed".
    fn fail(&mut self, error: &IoFailure, segment: &str) {
        tracing::error!(
            operation = error.operation,
            segment,
            error = %error.source,
            "WAL i/o failed; the writer fails closed"
        );
        self.failed.get_or_insert(Failure {
            cause: error.source.kind(),
        });
    }

    fn failed_error(&self) -> Option<AppendError> {
        let failure = self.failed?;
        Some(AppendError::WriterFailed {
            cause: failure.cause,
            durable_lsn: self.durable_lsn,
        })
    }

    /// Encodes one record into the pending buffer.
    fn encode(&mut self, payload: &[u8]) -> Result<Lsn, AppendError> {
        let lsn = self.next_lsn;
        if lsn.get() == u64::MAX {
            return Err(AppendError::LsnExhausted);
        }
        let segment = &mut self.segment;
        let start = begin_frame(&mut self.pending);
        if let Err(error) =
            segment
                .seal
                .seal_into(segment.id, lsn, payload, &mut self.pending, &segment.name)
        {
            abort_frame(&mut self.pending, start);
            return Err(error.into());
        }
        finish_frame(&mut self.pending, start, lsn);
        self.pending_records += 1;
        segment.records_count += 1;
        self.next_lsn = lsn.next();
        Ok(lsn)
    }
}

impl Shared {
    fn append_batch(
        &self,
        payloads: &[&[u8]],
        durability: Durability,
    ) -> Result<LsnRange, AppendError> {
        let Some((first_payload, rest)) = payloads.split_first() else {
            return Err(AppendError::InvalidArgument {
                reason: "empty batch",
            });
        };
        let limit_bytes = self.options.record_bytes_max;
        if let Some(too_large) = payloads.iter().find(|payload| payload.len() > limit_bytes) {
            return Err(AppendError::RecordTooLarge {
                size_bytes: too_large.len(),
                limit_bytes,
            });
        }
        // Read the clock (for age-based rotation) before taking the lock, not per record
        // under it: a batch is appended at one instant.
        let now_ms = self.options.clock.now().as_millis();
        let mut state = self.state.lock();
        let first = self.encode_one(&mut state, first_payload, now_ms)?;
        let mut last = first;
        for payload in rest {
            last = self.encode_one(&mut state, payload, now_ms)?;
        }
        self.metrics.appended(
            payloads.len(),
            payloads.iter().map(|payload| payload.len()).sum(),
        );
        if durability == Durability::Sync {
            self.advance(&mut state, Goal::Durable(last))?;
        }
        Ok(LsnRange { first, last })
    }

    /// Encodes one record, first making room: a full buffer is written, a full segment is
    /// switched for the next one (see [`State::switch_segment`]).
    fn encode_one(
        &self,
        state: &mut MutexGuard<'_, State>,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<Lsn, AppendError> {
        // At most three passes: a wait for the open segment's file, a switch, then an empty
        // segment that accepts the record whatever its size.
        loop {
            self.advance(state, Goal::Room)?;
            let frame_bytes = frame_len(state.segment.seal.stored_len(payload.len()));
            if !state.segment_full(&self.options, frame_bytes, now_ms) {
                return state.encode(payload);
            }
            if state.awaiting_seal() {
                // The open segment filled up before its file exists; switching again would
                // need two segments in memory. Rare: it takes a whole segment in one seal.
                self.advance(state, Goal::Created)?;
                continue;
            }
            state.switch_segment(&self.options)?;
            // Full means a request is already queued; the flusher will seal then.
            let _ = self.sync_requests.try_send(());
        }
    }

    /// Blocks until `goal` is reached, doing whichever I/O round is free and needed, or waiting
    /// for the thread doing it.
    fn advance(&self, state: &mut MutexGuard<'_, State>, goal: Goal) -> Result<(), AppendError> {
        // Bounded by writer progress: each round written or synced moves `written_lsn`,
        // `durable_lsn` or the segment forward, or fails the writer, which ends the loop.
        loop {
            // A failed writer takes no new records, but may still confirm what became durable
            // before it failed.
            let confirmable = matches!(goal, Goal::Written(_) | Goal::Durable(_));
            if confirmable && state.reached(goal) {
                return Ok(());
            }
            if let Some(error) = state.failed_error() {
                return Err(error);
            }
            if state.reached(goal) {
                return Ok(());
            }
            let round = if state.awaiting_seal() {
                // Every goal not yet reached needs the open segment's file first.
                (!state.writing && !state.syncing).then_some(Round::Seal)
            } else {
                match goal {
                    Goal::Room | Goal::Created | Goal::Written(_) => {
                        (!state.writing).then_some(Round::Write)
                    }
                    Goal::Durable(target) if state.written_lsn < target => {
                        (!state.writing).then_some(Round::Write)
                    }
                    Goal::Durable(_) => (!state.syncing).then_some(Round::Sync),
                }
            };
            match round {
                Some(Round::Write) => self.write_round(state),
                Some(Round::Sync) => self.sync_round(state),
                Some(Round::Seal) => self.seal_round(state),
                // Wait on the round that blocks this goal only, so appenders waiting for an
                // fsync are not woken by every write.
                None if state.writing
                    && !matches!(goal, Goal::Durable(target) if state.written_lsn >= target) =>
                {
                    self.write_done.wait(state);
                }
                None => {
                    let covered = matches!(goal, Goal::Durable(target) if target <= state.sync_in_flight_target);
                    let generation = state.sync_generation + u64::from(!covered);
                    self.sync_done[(generation % 2) as usize].wait(state);
                }
            }
        }
    }

    /// Writes the pending buffer with the lock released. May overlap a sync round: the sync
    /// only claims what was written before it started.
    fn write_round(&self, state: &mut MutexGuard<'_, State>) {
        assert!(!state.writing, "one writer at a time");
        state.writing = true;
        self.metrics.group_committed(state.pending_records);
        let (batch, batch_last) = state.take_pending();
        let file = state.created_file();
        // Reserve the range now so size-based rotation counts bytes in flight.
        let offset = state.segment.written_bytes;
        state.segment.written_bytes += batch.len() as u64;
        let name = state.segment.name.clone();
        let outcome = MutexGuard::unlocked(state, || {
            file.write_all_at(offset, &batch)
                .map_err(|source| IoFailure::new("write", &name, source))
        });
        state.writing = false;
        match outcome {
            Ok(()) => {
                state.written_lsn = batch_last;
                state.unsynced_bytes += batch.len() as u64;
                if state.unsynced_bytes >= self.options.sync_bytes_max && !state.syncing {
                    // Full means a request is already queued; it will cover these bytes too.
                    let _ = self.sync_requests.try_send(());
                }
            }
            Err(error) => {
                state.fail(&error, &name);
                self.notify_all_sync_waiters();
            }
        }
        state.recycle(batch);
        self.write_done.notify_all();
    }

    /// Syncs everything written so far with the lock released.
    fn sync_round(&self, state: &mut MutexGuard<'_, State>) {
        assert!(!state.syncing, "one sync at a time");
        state.syncing = true;
        let target = state.written_lsn;
        let claimed_bytes = state.unsynced_bytes;
        state.unsynced_bytes = 0;
        state.sync_generation += 1;
        state.sync_in_flight_target = target;
        let generation = state.sync_generation;
        let file = state.created_file();
        let name = state.segment.name.clone();
        let outcome = MutexGuard::unlocked(state, || {
            let started = Instant::now();
            let synced = file
                .sync_data()
                .map_err(|source| IoFailure::new("sync", &name, source));
            self.metrics.synced(started.elapsed());
            synced
        });
        state.syncing = false;
        self.durable_changed.notify_all();
        match outcome {
            Ok(()) => state.durable_lsn = state.durable_lsn.max(target),
            Err(error) => {
                // The writer has failed closed; nothing will be synced again, but keep the
                // count honest.
                state.unsynced_bytes += claimed_bytes;
                state.fail(&error, &name);
                self.write_done.notify_all();
                self.notify_all_sync_waiters();
            }
        }
        self.sync_done[(generation % 2) as usize].notify_all();
        // One waiter not covered by this sync starts the next; the rest ride on it.
        self.sync_done[((generation + 1) % 2) as usize].notify_one();
    }

    /// Finishes the full segment and creates the open one, with the lock released and no
    /// other round running: writes the full segment's rest, syncs it, and only then creates
    /// the open segment's file holding its header and the frames pending for it, synced and
    /// named durably. Everything encoded before the round began is then durable.
    ///
    /// The order is what recovery relies on: a segment's file exists only once every older
    /// segment is synced whole, so a sealed segment never has a torn end that recovery would
    /// count as lost records. A crash before the rename leaves a `.wal.tmp` that recovery
    /// removes; its records were never acknowledged.
    fn seal_round(&self, state: &mut MutexGuard<'_, State>) {
        assert!(!state.writing && !state.syncing, "a seal round runs alone");
        let SegmentDisk::AwaitingSeal(sealing) = &mut state.segment.disk else {
            panic!("a seal round without a segment awaiting it");
        };
        let rest = mem::take(&mut sealing.rest);
        let rest_offset = sealing.rest_offset;
        let sealed_file = Arc::clone(&sealing.file);
        let sealed_name = sealing.name.clone();
        let sealed_last = sealing.last_lsn;
        let header = sealing.next_header.clone();
        state.writing = true;
        state.syncing = true;
        self.metrics.group_committed(state.pending_records);
        let (batch, batch_last) = state.take_pending();
        state.segment.written_bytes += batch.len() as u64;
        let mut sealed_durable = false;
        let outcome = MutexGuard::unlocked(state, || -> Result<Arc<dyn StorageFile>, IoFailure> {
            if !rest.is_empty() {
                sealed_file
                    .write_all_at(rest_offset, &rest)
                    .map_err(|source| IoFailure::new("write", &sealed_name, source))?;
            }
            let started = Instant::now();
            sealed_file
                .sync_data()
                .map_err(|source| IoFailure::new("sync", &sealed_name, source))?;
            self.metrics.synced(started.elapsed());
            sealed_durable = true;
            create_segment_file(&self.options, &self.dir, &header, &batch)
        });
        state.writing = false;
        state.syncing = false;
        if sealed_durable {
            state.durable_lsn = state.durable_lsn.max(sealed_last);
            state.written_lsn = state.written_lsn.max(sealed_last);
        }
        match outcome {
            Ok(file) => {
                state.written_lsn = batch_last;
                state.durable_lsn = batch_last;
                state.unsynced_bytes = 0;
                self.segments.lock().push(SegmentEntry {
                    name: state.segment.name.clone(),
                    first_lsn: header.first_lsn,
                    key_id: state.segment.seal.key_id(),
                });
                state.segment.disk = SegmentDisk::Created(file);
                self.metrics.segment_created();
            }
            Err(error) => {
                let failed_name = if sealed_durable {
                    state.segment.name.clone()
                } else {
                    sealed_name
                };
                state.fail(&error, &failed_name);
            }
        }
        state.recycle(rest);
        state.recycle(batch);
        self.write_done.notify_all();
        self.notify_all_sync_waiters();
        self.durable_changed.notify_all();
    }

    fn notify_all_sync_waiters(&self) {
        for condvar in &self.sync_done {
            condvar.notify_all();
        }
    }

    /// The background flusher: syncs when asked (`sync_bytes_max` reached, a segment to seal)
    /// and at least every `sync_interval` by the options' clock, until `Wal` drops the stop
    /// sender. It waits as the clock's [`Clock::wait_hint`](tokm_domain::Clock::wait_hint)
    /// says, so with an injected clock the interval is the clock's, not the wall's: a test
    /// that advances a manual clock past it sees the sync.
    ///
    /// `started` is when the log opened: the first interval counts from there, not from
    /// whenever the thread gets to run.
    fn run_flusher(&self, started: Timestamp, stop: &Receiver<()>, sync_requests: &Receiver<()>) {
        let clock = &self.options.clock;
        let interval = self.options.sync_interval;
        let next_after = |now: Timestamp| {
            now.checked_add(interval)
                .unwrap_or(Timestamp::from_millis(u64::MAX))
        };
        let mut next_sync = next_after(started);
        loop {
            let asked = crossbeam::select! {
                recv(stop) -> _ => return,
                recv(sync_requests) -> _ => true,
                default(clock.wait_hint(next_sync)) => false,
            };
            let now = clock.now();
            if !asked && now < next_sync {
                continue;
            }
            // Any sync covers everything written before it, so the interval restarts after it.
            next_sync = next_after(now);
            if let Err(error) = self.sync() {
                tracing::warn!(
                    code = error.code(),
                    "background WAL sync failed; flusher stops"
                );
                return;
            }
        }
    }

    fn flush(&self) -> Result<(), AppendError> {
        let mut state = self.state.lock();
        let target = state.next_lsn.prev();
        self.advance(&mut state, Goal::Written(target))
    }

    fn sync(&self) -> Result<(), AppendError> {
        let mut state = self.state.lock();
        let target = state.next_lsn.prev();
        self.advance(&mut state, Goal::Durable(target))
    }
}

/// What a caller of `Shared::advance` waits for.
#[derive(Clone, Copy, Debug)]
enum Goal {
    /// The pending buffer has room.
    Room,
    /// The open segment's file exists (no seal round is due).
    Created,
    /// Every record up to this LSN is written to the file.
    Written(Lsn),
    /// Every record up to this LSN is durable.
    Durable(Lsn),
}

/// One unit of I/O, run by whichever waiting thread finds it free.
#[derive(Clone, Copy, Debug)]
enum Round {
    Write,
    Sync,
    Seal,
}

/// Decides a new segment without touching the disk: its name, a fresh salt (so its own
/// subkey) and its header.
fn prepare_segment(
    options: &WalOptions,
    first_lsn: Lsn,
    previous_lsn: Lsn,
    id: SegmentId,
) -> Result<NewSegment, SealFailure> {
    let name = segment_name(first_lsn);
    let seal = PayloadSeal::for_new_segment(options.keyring.as_deref(), &name)?;
    let header = SegmentHeader {
        version: FormatVersion::V1,
        segment_id: id,
        first_lsn,
        previous_lsn,
        created_at_ms: options.clock.now().as_millis(),
        node_id: options.node_id,
        cipher: seal.header_cipher(id, &name)?,
    };
    Ok(NewSegment {
        id,
        name,
        seal,
        header,
    })
}

/// Creates a segment atomically: header and `first_frames` (already encoded for it) written
/// and synced under a temp name, renamed into place, directory synced (an [`AtomicFile`]). A
/// crash leaves either no segment or a complete header followed by a prefix of the frames; a
/// failure before the rename removes the temp file (best effort: recovery removes any left).
fn create_segment_file(
    options: &WalOptions,
    dir: &Path,
    header: &SegmentHeader,
    first_frames: &[u8],
) -> Result<Arc<dyn StorageFile>, IoFailure> {
    let storage = &options.storage;
    let name = segment_name(header.first_lsn);
    let temp = temp_name(header.first_lsn);
    let final_path = dir.join(&name);
    // Renaming over an existing segment would destroy it; recovery removes any segment the new
    // one could collide with, so this is a bug or a foreign writer.
    if storage.open(&final_path, Access::ReadOnly).is_ok() {
        return Err(IoFailure::new(
            "create",
            &name,
            io::Error::new(io::ErrorKind::AlreadyExists, "segment already exists"),
        ));
    }
    let pending =
        AtomicFile::create(storage.as_ref(), dir, &temp, &name).map_err(IoFailure::atomic)?;
    let file = pending.file();
    file.write_all_at(0, &header.encode())
        .map_err(|source| IoFailure::new("write", &temp, source))?;
    if !first_frames.is_empty() {
        file.write_all_at(HEADER_LEN as u64, first_frames)
            .map_err(|source| IoFailure::new("write", &temp, source))?;
    }
    pending.commit().map_err(IoFailure::atomic)
}

/// Applies what recovery decided, then syncs the directory. Returns the quarantine files made.
fn apply_repairs(
    options: &WalOptions,
    dir: &Path,
    repairs: &[Repair],
) -> Result<Vec<String>, OpenError> {
    let mut quarantined = Vec::new();
    if repairs.is_empty() {
        return Ok(quarantined);
    }
    let storage = &options.storage;
    let truncate = |name: &str, offset: u64| -> Result<(), OpenError> {
        let file = storage
            .open(&dir.join(name), Access::ReadWrite)
            .map_err(|source| OpenError::io("open", name, source))?;
        file.set_len(offset)
            .map_err(|source| OpenError::io("truncate", name, source))?;
        file.sync_data()
            .map_err(|source| OpenError::io("sync", name, source))
    };
    for repair in repairs {
        match repair {
            Repair::RemoveTemp { file } | Repair::RemoveEmpty { file } => storage
                .remove(&dir.join(file))
                .map_err(|source| OpenError::io("remove", file, source))?,
            Repair::QuarantineSegment { file } => {
                let target = quarantine_name(file, 0);
                storage
                    .rename(&dir.join(file), &dir.join(&target))
                    .map_err(|source| OpenError::io("rename", file, source))?;
                quarantined.push(target);
            }
            Repair::QuarantineTail { file, offset } => {
                let target = quarantine_name(file, *offset);
                copy_tail(storage.as_ref(), dir, file, *offset, &target)?;
                truncate(file, *offset)?;
                quarantined.push(target);
            }
            Repair::Truncate { file, offset } => truncate(file, *offset)?,
        }
    }
    storage
        .sync_dir(dir)
        .map_err(|source| OpenError::io("sync directory", &dir.display().to_string(), source))?;
    Ok(quarantined)
}

/// Copies `[offset..)` of `dir/name` to `dir/target` through a bounded buffer and syncs it.
fn copy_tail(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    offset: u64,
    target: &str,
) -> Result<(), OpenError> {
    const CHUNK_BYTES: u64 = 1 << 20;
    let source_file = storage
        .open(&dir.join(name), Access::ReadOnly)
        .map_err(|source| OpenError::io("open", name, source))?;
    let len = source_file
        .len_bytes()
        .map_err(|source| OpenError::io("stat", name, source))?;
    let target_path = dir.join(target);
    // A leftover from an interrupted earlier recovery holds the same bytes.
    let _ = storage.remove(&target_path);
    let copy = storage
        .create_new(&target_path)
        .map_err(|source| OpenError::io("create", target, source))?;
    let mut buffer = Vec::new();
    let mut position = offset;
    while position < len {
        let chunk = (len - position).min(CHUNK_BYTES);
        buffer.resize(chunk as usize, 0);
        source_file
            .read_exact_at(position, &mut buffer)
            .map_err(|source| OpenError::io("read", name, source))?;
        copy.write_all_at(position - offset, &buffer)
            .map_err(|source| OpenError::io("write", target, source))?;
        position += chunk;
    }
    copy.sync_data()
        .map_err(|source| OpenError::io("sync", target, source))
}

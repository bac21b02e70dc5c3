//! [`Engine`]: the write path (prepare in the store, log, apply), reads, snapshots and shutdown.

use std::fs::File;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use parking_lot::{Mutex, RwLock};
use tokm_cmap::ShardedMap;
use tokm_domain::{
    CreateOutcome, Cursor, CursorPage, ErrorChain, ListResult, Mutation, NewSession, Page,
    PageSize, Session, SessionError, SessionFilter, SessionId, SessionRecord, SessionRepository,
    Sort, Timestamp, TokenHash, TokenRepository, UserId,
};
use tokm_memory_store::{Capture, MemoryStore, MemoryUsage, PreparedWrite};
use tokm_snapshot::{RecordSource, SnapshotMeta, SnapshotStore};
use tokm_storage::Lsn;
use tokm_wal::{AppendError, Wal};

use crate::config::{Durability, EngineConfig};
use crate::error::EngineError;
use crate::keys::KeyUsage;
use crate::metrics::{EngineMetrics, Operation};

/// A durable session store: [`MemoryStore`] for reads, a write-ahead log for every change,
/// snapshots for fast restarts. Implements [`SessionRepository`] and [`TokenRepository`].
///
/// Open with [`Engine::open`](crate::Engine::open); close with [`Engine::close`] (dropping
/// does the same, best effort). `Send + Sync`: share it behind an `Arc`.
pub struct Engine {
    pub(crate) shared: Arc<Shared>,
    pub(crate) background: Option<Background>,
}

/// The background thread that checks snapshot triggers.
pub(crate) struct Background {
    pub(crate) stop: Sender<()>,
    pub(crate) thread: JoinHandle<()>,
}

/// State shared by callers and the background thread.
pub(crate) struct Shared {
    pub(crate) config: EngineConfig,
    pub(crate) store: MemoryStore,
    pub(crate) wal: Wal,
    pub(crate) snapshots: SnapshotStore,
    /// Lock order 0, outermost. Every write holds it shared from validation to apply; a
    /// snapshot holds it exclusively only while it reads the LSN and starts the store's
    /// capture (O(shards)), so the snapshot is exactly the state at that LSN.
    pub(crate) write_gate: RwLock<()>,
    /// Serializes snapshots (manual and triggered). Held across snapshot I/O, never by a write.
    pub(crate) snapshot_state: Mutex<SnapshotState>,
    /// Payload bytes logged since the last snapshot began (the `wal_bytes` trigger).
    pub(crate) logged_bytes_since_snapshot: AtomicU64,
    /// When each session's last touch was logged, for touch coalescing.
    pub(crate) touch_logged_at: ShardedMap<SessionId, Timestamp>,
    /// Bookkeeping of the expiry sweep. Held across a sweep tick, never by a write.
    pub(crate) sweep_state: Mutex<SweepState>,
    /// What [`Engine::status`] reports of snapshots and sweeps, copied when each ends, so a
    /// status call never waits for one in progress. Innermost; held only to copy.
    pub(crate) published: Mutex<Published>,
    pub(crate) read_only: AtomicBool,
    pub(crate) last_error: Mutex<Option<StatusError>>,
    pub(crate) metrics: EngineMetrics,
    /// Held for the engine's lifetime: the OS lock that keeps a second engine out.
    pub(crate) _lock_file: File,
}

/// Bookkeeping of the snapshot triggers.
#[derive(Debug, Default)]
pub(crate) struct SnapshotState {
    pub(crate) last: Option<SnapshotMeta>,
    /// When the last snapshot was taken (or the engine opened, if none since).
    pub(crate) last_at: Timestamp,
}

/// Bookkeeping of the expiry sweep.
#[derive(Debug)]
pub(crate) struct SweepState {
    /// When the last sweep tick ran (or the engine opened, if none since).
    pub(crate) last_at: Timestamp,
    /// The last tick stopped at `per_tick_max`: the next check sweeps again at once.
    pub(crate) backlog: bool,
}

impl SweepState {
    pub(crate) fn new(opened_at: Timestamp) -> SweepState {
        SweepState {
            last_at: opened_at,
            backlog: false,
        }
    }
}

/// The snapshot and sweep facts [`EngineStatus`] shows.
#[derive(Debug, Default)]
pub(crate) struct Published {
    pub(crate) last_snapshot: Option<SnapshotMeta>,
    /// How long the last snapshot held the write gate exclusively (writes paused).
    pub(crate) last_snapshot_pause: Option<Duration>,
    pub(crate) sweep: SweepStatus,
}

/// What one sweep tick did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepReport {
    /// When it ran, by the engine's clock.
    pub at: Timestamp,
    /// Expired sessions it removed.
    pub removed_count: u64,
    /// Log appends it made (one per batch of at most `SweepPolicy::batch_max`).
    pub batch_count: u64,
    /// It stopped at `SweepPolicy::per_tick_max`; the next maintenance check goes on.
    pub backlog: bool,
    /// Real time it took.
    pub took: Duration,
}

/// The expiry sweep in [`EngineStatus`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepStatus {
    /// The last tick that ran, if any since open.
    pub last: Option<SweepReport>,
    /// Expired sessions removed by sweeps since open.
    pub total_removed_count: u64,
}

/// What one [`Engine::run_maintenance`] call did.
#[derive(Clone, Debug, Default)]
pub struct Maintenance {
    /// The sweep tick, when one was due.
    pub sweep: Option<SweepReport>,
    /// The snapshot taken, when one was due.
    pub snapshot: Option<SnapshotMeta>,
}

/// An error the engine recorded: a write path failure or a failed background snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusError {
    /// The stable code of the failing layer (`TM-WAL-*`, `TM-SNAP-*`, ...).
    pub code: &'static str,
    /// Its message (never holds a secret).
    pub message: String,
}

/// What [`Engine::status`] reports.
#[derive(Clone, Debug)]
pub struct EngineStatus {
    /// Writes are refused after a log failure until the engine is reopened; reads still work.
    pub read_only: bool,
    /// The most recent failure, if any.
    pub last_error: Option<StatusError>,
    /// Sessions held in memory (live or not yet cleaned up).
    pub session_count: usize,
    /// LSN of the last logged record.
    pub last_lsn: Lsn,
    /// Every record up to this LSN is on disk.
    pub durable_lsn: Lsn,
    /// The last snapshot taken since open.
    pub last_snapshot: Option<SnapshotMeta>,
    /// How long the last snapshot paused writes (it holds the write gate only while gathering
    /// session pointers and the LSN).
    pub last_snapshot_pause: Option<Duration>,
    /// Payload bytes logged since the last snapshot began.
    pub logged_bytes_since_snapshot: u64,
    /// The expiry sweep: its last tick and its total since open.
    pub sweep: SweepStatus,
    /// The active key, and the keys the log segments and snapshots on disk are sealed under:
    /// when an old key can leave the keyring after [`Engine::rotate_key`]. Reading it lists
    /// the snapshot directory and each snapshot's header (no block is read).
    pub keys: KeyUsage,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("dir", &self.shared.config.dir)
            .field("sessions", &self.shared.store.len())
            .field("read_only", &self.shared.read_only.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Health, positions and the last snapshot.
    pub fn status(&self) -> EngineStatus {
        let shared = &self.shared;
        // One guard: a second `lock()` in the same expression would wait for the first.
        let (last_snapshot, last_snapshot_pause, sweep) = {
            let published = shared.published.lock();
            (
                published.last_snapshot.clone(),
                published.last_snapshot_pause,
                published.sweep,
            )
        };
        EngineStatus {
            read_only: shared.read_only.load(Ordering::Acquire),
            last_error: shared.last_error.lock().clone(),
            session_count: shared.store.len(),
            last_lsn: shared.wal.last_lsn(),
            durable_lsn: shared.wal.durable_lsn(),
            last_snapshot,
            last_snapshot_pause,
            logged_bytes_since_snapshot: shared.logged_bytes_since_snapshot.load(Ordering::Relaxed),
            sweep,
            keys: shared.key_usage(),
        }
    }

    /// Takes a snapshot now, then applies retention and compacts the log behind the oldest
    /// snapshot kept. Writes pause only while session pointers are gathered.
    ///
    /// # Errors
    /// [`EngineError::Snapshot`] or [`EngineError::Wal`]; the engine keeps serving either way,
    /// and earlier snapshots and the log are as they were.
    pub fn snapshot_now(&self) -> Result<SnapshotMeta, EngineError> {
        self.shared.take_snapshot()
    }

    /// What the background thread does every `check_interval`, once, now: an expiry sweep
    /// tick if one is due ([`EngineConfig::sweep`]), then a snapshot if a trigger fired
    /// ([`EngineConfig::snapshots`]). Due-ness is judged by the engine's clock, so a test with
    /// a manual clock drives maintenance with this and no sleeps.
    ///
    /// # Errors
    /// [`EngineError::Sweep`] when the sweep's log append failed (the engine is then
    /// read-only); otherwise as [`Engine::snapshot_now`].
    pub fn run_maintenance(&self) -> Result<Maintenance, EngineError> {
        self.shared.maintain()
    }

    /// Calls `visit` on every stored session, live or expired, without copying it: the
    /// traversal for exports, audits and metrics. Walks the store shard by shard, holding each
    /// shard's read lock only while visiting its sessions, so writes elsewhere go on and no
    /// write waits for the whole walk; `visit` must not call the engine. Not one instant: a
    /// session written during the walk may be seen before or after the write (take a snapshot
    /// for a point-in-time copy).
    pub fn for_each_session(&self, visit: impl FnMut(&SessionRecord)) {
        self.shared.store.for_each(visit);
    }

    /// Estimated heap bytes of the sessions held in memory, per structure (records, primary
    /// map, each index): cheap, read shard by shard, no session is read.
    pub fn memory_usage(&self) -> MemoryUsage {
        self.shared.store.memory_usage()
    }

    /// Stops the background thread, then flushes and syncs the log.
    ///
    /// # Errors
    /// [`EngineError::Wal`] if the final sync fails: writes acknowledged in `Batch` mode since
    /// the last sync may be lost.
    pub fn close(mut self) -> Result<(), EngineError> {
        self.stop_background();
        self.shared.wal.sync()?;
        Ok(())
    }

    fn stop_background(&mut self) {
        if let Some(background) = self.background.take() {
            // A send error means the thread is already gone, which is what we want.
            let _ = background.stop.send(());
            if background.thread.join().is_err() {
                tracing::error!("tokm engine background thread panicked");
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_background();
        if let Err(error) = self.shared.wal.sync() {
            tracing::warn!(code = error.code(), error = %ErrorChain(&error), "final log sync on drop failed");
        }
    }
}

impl Shared {
    /// The write path, under the shared write gate: `prepare` validates in the store and
    /// returns the write holding its stripes; its mutations are appended to the log; then it
    /// is applied. A failed append drops the write, which changes nothing.
    pub(crate) fn write<'s, T>(
        &'s self,
        prepare: impl FnOnce(&'s MemoryStore) -> Result<PreparedWrite<'s, T>, SessionError>,
    ) -> Result<T, SessionError> {
        self.write_as(self.config.durability, prepare)
    }

    /// [`Shared::write`], with the log append waiting as `durability` says instead of as
    /// configured. Log order is still apply order: a later `Sync` write's fsync covers this
    /// one's records too.
    pub(crate) fn write_as<'s, T>(
        &'s self,
        durability: Durability,
        prepare: impl FnOnce(&'s MemoryStore) -> Result<PreparedWrite<'s, T>, SessionError>,
    ) -> Result<T, SessionError> {
        self.check_writable()?;
        let _gate = self.write_gate.read();
        let write = prepare(&self.store)?;
        self.log(write.mutations(), durability)?;
        Ok(write.apply())
    }

    /// `cleanup_expired` through the write path: one write per user with expired sessions,
    /// each logged and then applied. A failed append stops it: the users before it stay
    /// cleaned up (they were logged), the rest are not attempted.
    pub(crate) fn cleanup_expired(&self) -> Result<u64, SessionError> {
        self.check_writable()?;
        let _gate = self.write_gate.read();
        let mut cleanup = self.store.prepare_cleanup_expired();
        let mut removed = 0;
        while let Some(write) = cleanup.next_batch() {
            self.log(write.mutations(), self.config.durability)?;
            removed += write.apply();
        }
        Ok(removed)
    }

    /// `ReadOnly` after a log failure.
    fn check_writable(&self) -> Result<(), SessionError> {
        if self.read_only.load(Ordering::Acquire) {
            return Err(SessionError::ReadOnly);
        }
        Ok(())
    }

    /// Encodes a prepared write's `mutations` and appends them to the log as one batch; the
    /// caller holds the write (and so its stripes) across the call. Nothing to append for a
    /// write with no mutations, or a touch inside its session's `touch_log_window`.
    fn log(&self, mutations: &[Mutation], durability: Durability) -> Result<(), SessionError> {
        if mutations.is_empty() {
            return Ok(());
        }
        let now = self.config.clock.now();
        if let [Mutation::Touch { id, .. }] = mutations
            && !self.touch_is_due(*id, now)
        {
            return Ok(());
        }
        let bytes = match self.append_encoded(mutations, now, durability) {
            Ok(bytes) => bytes,
            // Refused before anything was appended: this write is too large for the log's
            // `record_bytes_max`, and the log itself is fine, so the engine stays writable.
            Err(error @ AppendError::RecordTooLarge { .. }) => {
                return Err(SessionError::Storage {
                    layer_code: error.code(),
                    source: Box::new(error),
                });
            }
            Err(error) => return Err(self.fail(error)),
        };
        self.logged_bytes_since_snapshot
            .fetch_add(bytes as u64, Ordering::Relaxed);
        for mutation in mutations {
            if let Mutation::Delete { id, .. } = mutation {
                self.touch_logged_at.remove(id);
            }
        }
        Ok(())
    }

    /// Encodes `mutations` and appends them to the log as one batch; returns the payload bytes
    /// appended.
    fn append_encoded(
        &self,
        mutations: &[Mutation],
        now: Timestamp,
        durability: Durability,
    ) -> Result<usize, AppendError> {
        // Every write runs through here: encode into buffers kept per thread rather than a
        // `Vec` per mutation plus a `Vec` of slices (the profile of 64 writers showed the
        // allocator and the payload's regrowth on this path). Calls do not nest, so the
        // `RefCell` is never borrowed twice.
        thread_local! {
            static ENCODED: std::cell::RefCell<(Vec<u8>, Vec<usize>)> =
                const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        /// Slices passed to the log without allocating: the usual one or two mutations.
        const INLINE_SLICES_MAX: usize = 4;
        /// A buffer grown past this by a large batch (a user's sessions deleted at once) is
        /// released rather than kept for the thread's lifetime.
        const KEPT_BUFFER_BYTES_MAX: usize = 64 * 1024;
        ENCODED.with_borrow_mut(|(encoded, ends)| {
            encoded.clear();
            ends.clear();
            for mutation in mutations {
                tokm_proto::encode_mutation(mutation, now, encoded);
                ends.push(encoded.len());
            }
            let slice = |index: usize| {
                let start = index.checked_sub(1).map_or(0, |previous| ends[previous]);
                &encoded[start..ends[index]]
            };
            let result = if ends.len() <= INLINE_SLICES_MAX {
                let slices: [&[u8]; INLINE_SLICES_MAX] = std::array::from_fn(|index| {
                    if index < ends.len() {
                        slice(index)
                    } else {
                        &[]
                    }
                });
                self.wal.append_batch(&slices[..ends.len()], durability)
            } else {
                let slices: Vec<&[u8]> = (0..ends.len()).map(slice).collect();
                self.wal.append_batch(&slices, durability)
            };
            let bytes = encoded.len();
            if encoded.capacity() > KEPT_BUFFER_BYTES_MAX {
                *encoded = Vec::new();
                *ends = Vec::new();
            }
            result.map(|_| bytes)
        })
    }

    /// Whether a touch of `id` at `now` must be logged: the first one, and then at most one
    /// per `touch_log_window`. Runs under the session's stripe, so two touches of one session
    /// never race here.
    fn touch_is_due(&self, id: SessionId, now: Timestamp) -> bool {
        let window = self.config.touch_log_window;
        if let Some(logged_at) = self.touch_logged_at.get(&id)
            && now.saturating_duration_since(logged_at) < window
        {
            return false;
        }
        self.touch_logged_at.insert(id, now);
        true
    }

    /// Puts the engine into read-only mode after a log failure and converts the error.
    fn fail(&self, error: AppendError) -> SessionError {
        self.read_only.store(true, Ordering::Release);
        self.metrics.read_only(true);
        self.record_error(error.code(), ErrorChain(&error).to_string());
        tracing::error!(code = error.code(), error = %ErrorChain(&error), "log write failed; engine is read-only");
        SessionError::Storage {
            layer_code: error.code(),
            source: Box::new(error),
        }
    }

    pub(crate) fn record_error(&self, code: &'static str, message: String) {
        *self.last_error.lock() = Some(StatusError { code, message });
    }

    pub(crate) fn maintain(&self) -> Result<Maintenance, EngineError> {
        let sweep = self.sweep_if_due()?;
        self.metrics.sessions(self.store.len());
        let snapshot = if self.snapshot_is_due() {
            Some(self.take_snapshot()?)
        } else {
            None
        };
        Ok(Maintenance { sweep, snapshot })
    }

    /// Runs a sweep tick when the interval has passed since the last one, or the last one
    /// left a backlog. Not while read-only: its deletes could not be logged.
    fn sweep_if_due(&self) -> Result<Option<SweepReport>, EngineError> {
        let Some(interval) = self.config.sweep.interval else {
            return Ok(None);
        };
        if self.read_only.load(Ordering::Acquire) {
            return Ok(None);
        }
        let mut state = self.sweep_state.lock();
        let now = self.config.clock.now();
        if !state.backlog && now.saturating_duration_since(state.last_at) < interval {
            return Ok(None);
        }
        let report = self.sweep_tick(now);
        state.last_at = now;
        match report {
            Ok(report) => {
                state.backlog = report.backlog;
                let mut published = self.published.lock();
                published.sweep.last = Some(report);
                published.sweep.total_removed_count += report.removed_count;
                Ok(Some(report))
            }
            Err((error, removed)) => {
                self.published.lock().sweep.total_removed_count += removed;
                self.record_error(
                    error.cause_code().unwrap_or(error.code()),
                    ErrorChain(&error).to_string(),
                );
                Err(error)
            }
        }
    }

    /// One sweep tick: batches of at most `batch_max` expired sessions, each one log append,
    /// until none remain or `per_tick_max` were removed. On failure, returns the error and how
    /// many the batches before it removed (they were logged and applied).
    fn sweep_tick(&self, now: Timestamp) -> Result<SweepReport, (EngineError, u64)> {
        let _span = tracing::info_span!("tokm.sweep").entered();
        let started = Instant::now();
        let policy = self.config.sweep;
        let mut removed: u64 = 0;
        let mut batches: u64 = 0;
        let mut backlog = false;
        // Bounded by batches, not by sessions removed: a batch whose candidates were all
        // extended since the index walk removes none, and must not make the tick spin.
        for _ in 0..policy.per_tick_max.div_ceil(policy.batch_max) {
            let limit = policy
                .batch_max
                .min(policy.per_tick_max.saturating_sub(removed as usize));
            if limit == 0 {
                backlog = true;
                break;
            }
            // Appended without waiting for their fsync, even in `Sync` mode: the sweep never
            // waits on the disk, and a writer beside it waits for no sweep batch. What a
            // crash loses of them, the next open drops again: those sessions are expired by
            // the same clock.
            let swept = self
                .write_as(Durability::Batch, |store| {
                    Ok(store.prepare_sweep_expired(limit))
                })
                .map_err(|source| (EngineError::Sweep { source }, removed))?;
            removed += swept.removed_count;
            batches += u64::from(swept.removed_count > 0);
            backlog = swept.limit_reached;
            if !swept.limit_reached {
                break;
            }
            pace(started, removed, policy.sessions_per_second_max);
        }
        let took = started.elapsed();
        self.metrics.swept(removed, took);
        if removed > 0 {
            tracing::info!(removed, batches, backlog, "expired sessions swept");
        }
        Ok(SweepReport {
            at: now,
            removed_count: removed,
            batch_count: batches,
            backlog,
            took,
        })
    }

    fn snapshot_is_due(&self) -> bool {
        let policy = &self.config.snapshots;
        let logged = self.logged_bytes_since_snapshot.load(Ordering::Relaxed);
        if policy.wal_bytes.is_some_and(|limit| logged >= limit) {
            return true;
        }
        let Some(interval) = policy.interval else {
            return false;
        };
        let since = self
            .config
            .clock
            .now()
            .saturating_duration_since(self.snapshot_state.lock().last_at);
        // An idle engine has nothing new to save; only a log that grew makes a snapshot useful.
        since >= interval && logged > 0
    }

    pub(crate) fn take_snapshot(&self) -> Result<SnapshotMeta, EngineError> {
        if self.read_only.load(Ordering::Acquire) {
            return Err(EngineError::ReadOnly);
        }
        let _span = tracing::info_span!("tokm.snapshot").entered();
        let mut state = self.snapshot_state.lock();
        let started = Instant::now();
        let result = self.write_snapshot(state.last.as_ref());
        match &result {
            Ok((meta, pause)) => {
                self.metrics.snapshot_written(
                    started.elapsed(),
                    *pause,
                    meta.size_bytes,
                    meta.session_count,
                );
                state.last = Some(meta.clone());
                state.last_at = meta.created_at;
                let mut published = self.published.lock();
                published.last_snapshot = Some(meta.clone());
                published.last_snapshot_pause = Some(*pause);
            }
            Err(error) => {
                self.metrics.snapshot_failed();
                self.record_error(
                    error.cause_code().unwrap_or(error.code()),
                    ErrorChain(&error).to_string(),
                );
            }
        }
        result.map(|(meta, _)| meta)
    }

    /// Captures the state at one LSN, writes it, then retention and compaction. Returns `last`
    /// unchanged when nothing was logged since it: an identical snapshot would add nothing.
    /// Also returns how long writes were paused.
    fn write_snapshot(
        &self,
        last: Option<&SnapshotMeta>,
    ) -> Result<(SnapshotMeta, Duration), EngineError> {
        let paused_at = Instant::now();
        let (capture, covered, logged_bytes) = {
            // Held exclusively only while no write is half applied: long enough to read the
            // LSN and start the capture, which costs O(shards), not O(sessions).
            let _exclusive = self.write_gate.write();
            let covered = self.wal.last_lsn();
            if let Some(last) = last.filter(|last| last.covered_lsn == covered) {
                return Ok((last.clone(), paused_at.elapsed()));
            }
            let logged = self.logged_bytes_since_snapshot.swap(0, Ordering::Relaxed);
            (self.store.capture(), covered, logged)
        };
        let pause = paused_at.elapsed();
        let written = self.sync_then_write(covered, &CapturedRecords(capture));
        let meta = match written {
            Ok(meta) => meta,
            Err(error) => {
                // The bytes are still unsnapshotted: put them back so the trigger fires again.
                self.logged_bytes_since_snapshot
                    .fetch_add(logged_bytes, Ordering::Relaxed);
                return Err(error);
            }
        };
        self.snapshots.apply_retention()?;
        self.compact()?;
        Ok((meta, pause))
    }

    /// Deletes the log segments every retained snapshot covers.
    fn compact(&self) -> Result<(), EngineError> {
        let _span = tracing::info_span!("tokm.compact").entered();
        if let Some(oldest) = self.snapshots.oldest_retained_lsn()? {
            // Records up to the oldest kept snapshot's LSN are in every snapshot we keep.
            let removed = self
                .wal
                .compact(oldest.next(), self.config.snapshots.wal_segments_kept)?;
            self.metrics.compacted(removed.len());
            tracing::info!(
                segments = removed.len(),
                "log compacted behind the oldest snapshot"
            );
        }
        Ok(())
    }

    fn sync_then_write(
        &self,
        covered: Lsn,
        records: &CapturedRecords<'_>,
    ) -> Result<SnapshotMeta, EngineError> {
        // In `Batch` mode the records up to `covered` may still be buffered. Sync them first, so
        // the log never ends before a snapshot's position after a crash.
        self.wal.sync()?;
        let meta = self.snapshots.write_records(covered, records)?;
        tracing::info!(
            covered_lsn = meta.covered_lsn.get(),
            sessions = meta.session_count,
            "snapshot written"
        );
        Ok(meta)
    }
}

/// Sleeps until `removed` sessions since `started` are within `rate_max` per second, so the
/// sweep's deletes reach the log (and the fsyncs of writers beside it) at a bounded rate.
fn pace(started: Instant, removed: u64, rate_max: Option<u64>) {
    let Some(rate_max) = rate_max.filter(|rate| *rate > 0) else {
        return;
    };
    let due = Duration::from_secs_f64(removed as f64 / rate_max as f64);
    if let Some(early) = due.checked_sub(started.elapsed()) {
        std::thread::sleep(early);
    }
}

/// The memory store's capture as the snapshot writer's source: one shard per chunk, pulled by
/// the encoder threads. Dropping it ends the store's copy-on-write.
struct CapturedRecords<'a>(Capture<'a>);

impl RecordSource for CapturedRecords<'_> {
    fn session_count(&self) -> u64 {
        self.0.session_count()
    }

    fn next_chunk(&self) -> Option<Vec<SessionRecord>> {
        self.0.next_shard()
    }
}

/// The background thread: checks the snapshot triggers every `check_interval` until told to
/// stop. Errors are recorded in the status, never raised.
pub(crate) fn spawn_background(shared: Arc<Shared>) -> Result<Background, EngineError> {
    let (stop, stopped) = channel::bounded::<()>(1);
    let check_interval = shared.config.snapshots.check_interval;
    let thread = std::thread::Builder::new()
        .name("tokm-engine-maintenance".to_owned())
        .spawn(move || maintenance_loop(&shared, &stopped, check_interval))
        .map_err(|source| EngineError::Io {
            path: "tokm-engine-maintenance thread".into(),
            source,
        })?;
    Ok(Background { stop, thread })
}

fn maintenance_loop(shared: &Shared, stopped: &Receiver<()>, check_interval: Duration) {
    loop {
        match stopped.recv_timeout(check_interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        if let Err(error) = shared.maintain() {
            tracing::warn!(code = error.code(), error = %ErrorChain(&error), "background maintenance failed");
        }
    }
}

impl Engine {
    fn observe<T>(
        &self,
        operation: Operation,
        call: impl FnOnce(&Shared) -> Result<T, SessionError>,
    ) -> Result<T, SessionError> {
        self.shared
            .metrics
            .observe(operation, || call(&self.shared))
    }
}

impl SessionRepository for Engine {
    fn create(&self, session: NewSession) -> Result<CreateOutcome, SessionError> {
        self.observe(Operation::Create, |shared| {
            shared.write(|store| store.prepare_create(session))
        })
    }

    fn get(&self, id: SessionId) -> Result<Session, SessionError> {
        self.observe(Operation::Get, |shared| shared.store.get(id))
    }

    fn update(&self, session: NewSession, expected_version: u64) -> Result<Session, SessionError> {
        self.observe(Operation::Update, |shared| {
            shared.write(|store| store.prepare_update(session, expected_version))
        })
    }

    fn delete(&self, id: SessionId) -> Result<bool, SessionError> {
        self.observe(Operation::Delete, |shared| {
            shared.write(|store| Ok(store.prepare_delete(id)))
        })
    }

    fn list(
        &self,
        filter: &SessionFilter,
        sort: Sort,
        page: Page,
    ) -> Result<ListResult<Session>, SessionError> {
        self.observe(Operation::List, |shared| {
            shared.store.list(filter, sort, page)
        })
    }

    fn list_after(
        &self,
        filter: &SessionFilter,
        sort: Sort,
        after: Option<&Cursor>,
        limit: PageSize,
    ) -> Result<CursorPage<Session>, SessionError> {
        self.observe(Operation::ListAfter, |shared| {
            shared.store.list_after(filter, sort, after, limit)
        })
    }

    fn count_by_user(&self, user_id: &UserId) -> Result<u64, SessionError> {
        self.observe(Operation::CountByUser, |shared| {
            shared.store.count_by_user(user_id)
        })
    }

    fn list_by_user(&self, user_id: &UserId) -> Result<Vec<Session>, SessionError> {
        self.observe(Operation::ListByUser, |shared| {
            shared.store.list_by_user(user_id)
        })
    }

    fn delete_by_user(&self, user_id: &UserId) -> Result<u64, SessionError> {
        self.observe(Operation::DeleteByUser, |shared| {
            shared.write(|store| Ok(store.prepare_delete_by_user(user_id)))
        })
    }

    fn cleanup_expired(&self) -> Result<u64, SessionError> {
        self.observe(Operation::CleanupExpired, Shared::cleanup_expired)
    }
}

impl TokenRepository for Engine {
    fn get_by_token_hash(&self, token_hash: &TokenHash) -> Result<Session, SessionError> {
        self.observe(Operation::GetByTokenHash, |shared| {
            shared.store.get_by_token_hash(token_hash)
        })
    }

    fn touch(
        &self,
        id: SessionId,
        now: Timestamp,
        last_access_ip: Option<IpAddr>,
    ) -> Result<Session, SessionError> {
        self.observe(Operation::Touch, |shared| {
            shared.write(|store| store.prepare_touch(id, now, last_access_ip))
        })
    }
}

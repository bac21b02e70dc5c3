//! The tokm storage engine: every live session in memory, every change in a write-ahead log,
//! snapshots for fast restarts.
//!
//! Is: [`Engine`], a durable implementation of `tokm-domain`'s [`SessionRepository`] and
//! [`TokenRepository`] composed from `tokm-memory-store`, `tokm-wal` and `tokm-snapshot`, with
//! cold-start recovery ([`Engine::open`] → [`RecoveryReport`]), snapshot triggers, retention,
//! log compaction and a read-only mode after durability failures.
//! Is not: a server or a cache in front of another database; it does no networking and has
//! one writer process per data directory (a `LOCK` file enforces it).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tokm_domain::{NewSession, SessionFields, SessionId, SessionRepository, SystemClock,
//!     Clock, TokenHash, TokenRepository, UserId};
//! use tokm_engine::{Engine, EngineConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let (engine, _report) = Engine::open(EngineConfig::new(dir.path()))?;
//!
//! let now = SystemClock.now();
//! let token_hash = TokenHash::of_token("raw bearer token")?;
//! let fields = SessionFields::new(
//!     SessionId::generate(now)?,
//!     UserId::new("alice")?,
//!     token_hash,
//!     now,
//!     now.checked_add(Duration::from_secs(3600)).expect("in range"),
//! );
//! // Sync durability (the default): `create` returns once the log record is on disk.
//! let created = engine.create(NewSession::new(fields)?)?.session;
//! engine.snapshot_now()?;
//! engine.close()?;
//!
//! // A restart recovers from the snapshot and the log.
//! let (engine, report) = Engine::open(EngineConfig::new(dir.path()))?;
//! assert_eq!(report.session_count, 1);
//! assert_eq!(engine.get_by_token_hash(&token_hash)?, created);
//! # Ok(())
//! # }
//! ```
//!
//! # Write path
//! Every write is `prepare → log → apply`, in a straight line: the memory store prepares it
//! ([`tokm_memory_store::MemoryStore::prepare_create`] and friends validate under the
//! session's and user's stripes and return a [`tokm_memory_store::PreparedWrite`] that keeps
//! them), the engine appends the write's mutations to the log as one batch, then applies the
//! write. The stripes are held from validation to apply, so the log order is the apply order
//! for every session and user. In `Sync` mode the append returns after the records'
//! group-commit fsync; in `Batch` mode after buffering. If the log fails, the prepared write is
//! dropped, so memory is unchanged; the write returns `TM-SESS-5001` (carrying the log's code)
//! and the engine turns read-only (`TM-SESS-5031`) until reopened; reads keep working.
//! [`Engine::for_each_session`] and [`Engine::memory_usage`] read the store; nothing writes to
//! it except through this path.
//!
//! Touches are coalesced: at most one `touch` per session is logged per
//! [`EngineConfig::touch_log_window`] (default 1 s); others change memory only.
//!
//! # Recovery
//! [`Engine::open`] examines the directory first, reading only (the log's headers and keys,
//! the newest snapshot that passes every check, then the log after it in one streaming pass
//! into the memory store), decides with a pure function of what it found, and only then
//! changes files. So an open that fails leaves the directory byte-identical, and by default
//! ([`tokm_wal::RecoveryMode::RefuseLoss`]) an open that would drop acknowledged records after
//! the snapshot — a revoked session working again — refuses with
//! [`EngineError::WouldDropRecords`]; dropping them is the explicit choice of another
//! [`EngineConfig::recovery_mode`]. A wrong or missing key is a key error naming the key id,
//! never damage. [`Engine::plan_recovery`] shows what an open would do without doing it. The
//! full decision table is in `docs/ARCHITECTURE.md` ("Recovery decisions").
//!
//! # Snapshots
//! Taken by [`Engine::snapshot_now`], by the background thread when the interval (1 h) or the
//! logged bytes (1 GiB) trigger fires ([`EngineConfig::snapshots`]), and after a recovery that replayed more than 100,000
//! records. Writers are paused only while the engine reads the LSN and starts the store's
//! capture, which costs O(shards), not O(sessions); copying, encoding (on every core) and I/O
//! run while writes continue. After each snapshot, retention runs,
//! then the log is compacted behind the *oldest* snapshot kept, so falling back to it still
//! works.
//!
//! # Expiry sweep
//! Expired sessions are invisible to reads at once; the maintenance thread removes them so
//! memory and snapshots do not grow with dead sessions. Every [`SweepPolicy::interval`]
//! (default 10 s, by [`EngineConfig::clock`]) it deletes them through the log like any write,
//! in batches of at most [`SweepPolicy::batch_max`] (64) sessions, one log append each; a
//! batch holds only the stripes of its users, so a writer of one of them waits for at most
//! that append. The appends do not wait for their fsync, even in `Sync` mode (the next group
//! commit or the flusher's timer syncs them): a crash may lose some, and the next open drops
//! those sessions again, since they are expired by the same clock. It deletes at most [`SweepPolicy::sessions_per_second_max`] (20,000) per second, pausing
//! between batches, so writers' fsyncs are not flooded with its deletes. A tick stops after
//! [`SweepPolicy::per_tick_max`] (10,000) and the next check
//! continues at once. [`EngineStatus::sweep`] shows the last tick; [`Engine::run_maintenance`]
//! runs one check now (tests drive it with a manual clock). `interval: None` turns it off.
//!
//! # Metrics and tracing
//! The engine and its log emit metrics through the [`metrics`](https://docs.rs/metrics)
//! facade: install a recorder (e.g. `metrics-exporter-prometheus`) **before**
//! [`Engine::open`], which registers the handles; without one they cost nothing.
//! [`Engine::status`] keeps working either way. Labels are fixed names and error codes only.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `tokm_operations_total` | counter | `operation`, `outcome`, `code` (errors) | repository calls |
//! | `tokm_operation_duration_seconds` | histogram | `operation` | their latency |
//! | `tokm_sessions` | gauge | | sessions in memory (updated each maintenance check) |
//! | `tokm_read_only` | gauge | | 1 after a log failure |
//! | `tokm_expired_swept_total` | counter | | sessions the sweep removed |
//! | `tokm_sweep_duration_seconds` | histogram | | one sweep tick |
//! | `tokm_snapshots_total` | counter | `outcome` | snapshots attempted |
//! | `tokm_snapshot_duration_seconds` | histogram | | one snapshot |
//! | `tokm_snapshot_pause_seconds` | histogram | | how long it paused writers |
//! | `tokm_snapshot_last_bytes`, `tokm_snapshot_last_sessions` | gauge | | the last snapshot |
//! | `tokm_wal_segments_compacted_total` | counter | | segments compaction deleted |
//! | `tokm_recovery_duration_seconds`, `tokm_recovery_replayed_records`, `tokm_recovery_sessions`, `tokm_recovery_snapshot_fallbacks`, `tokm_recovery_expired_dropped` | gauge | | the last open |
//! | `tokm_wal_appends_total`, `tokm_wal_appended_bytes_total` | counter | | log records and bytes |
//! | `tokm_wal_fsync_duration_seconds` | histogram | | one `fdatasync` |
//! | `tokm_wal_group_commit_records` | histogram | | records per group commit |
//! | `tokm_wal_segments_created_total` | counter | | segments created |
//!
//! The names are constants in [`crate::metrics`] and [`tokm_wal::METRIC_NAMES`]. `tracing` spans:
//! `tokm.open`, `tokm.snapshot`, `tokm.compact`, `tokm.sweep`.
//!
//! # Log policy
//! [`EngineConfig::log`] ([`LogPolicy`]) sets the log's segment limits (bytes, records, age),
//! `Batch` mode's `sync_interval` and `sync_bytes_max`, the group-commit limits and the
//! largest record; [`Engine::open`] refuses values the log would refuse
//! ([`EngineError::InvalidLogPolicy`], `TM-ENG-4002`, carrying `TM-WAL-4001`) before touching
//! the directory. Every time in it is measured by [`EngineConfig::clock`], the flusher's
//! timer included, so a test with a manual clock can prove what `Batch` mode loses.
//! # Key rotation
//! With [`EngineConfig::keyring`] set, [`Engine::rotate_key`] rotates the key online: the
//! keyring gains the new key and makes it active, the log starts a segment under it at once,
//! and every snapshot taken afterwards is sealed under it. Files sealed under older keys stay
//! readable, since the keyring keeps every key. [`EngineStatus::keys`] ([`KeyUsage`]) lists the
//! key ids the log segments and snapshots on disk still need: after a snapshot under the new
//! key, retention and the compaction behind it leave none under the old key,
//! [`KeyUsage::can_retire`] says yes, and the next open may use a keyring without it. Until
//! then an open without the old key is a key error naming it, changing nothing.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};
//! use tokm_domain::{Clock, NewSession, SessionFields, SessionId, SessionRepository, SystemClock,
//!     TokenHash, UserId};
//! use tokm_engine::{Engine, EngineConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut config = EngineConfig::new(dir.path());
//! config.keyring = Some(Arc::new(Keyring::new(KeyId::new(1), Key::generate()?, Algorithm::detect())));
//! config.snapshots.retention_count = 1;
//! config.snapshots.retention_age = std::time::Duration::ZERO;
//! config.snapshots.wal_segments_kept = 1;
//! let (engine, _report) = Engine::open(config)?;
//! let now = SystemClock.now();
//! let fields = SessionFields::new(
//!     SessionId::generate(now)?,
//!     UserId::new("alice")?,
//!     TokenHash::of_token("raw bearer token")?,
//!     now,
//!     now.checked_add(Duration::from_secs(3600)).expect("in range"),
//! );
//! engine.create(NewSession::new(fields)?)?; // logged under key 1
//!
//! engine.rotate_key(KeyId::new(2), Key::generate()?)?;
//! assert_eq!(engine.status().keys.in_use, [KeyId::new(1), KeyId::new(2)]);
//! // A snapshot under key 2, retention and compaction leave no file under key 1.
//! engine.snapshot_now()?;
//! assert!(engine.status().keys.can_retire(KeyId::new(1)));
//! engine.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! An engine opened without a keyring refuses to rotate ([`EngineError::NoKeyring`]): rotation
//! does not turn encryption on. The `tokm` tool reads a directory whose files span keys with
//! `--keyring FILE` (several keys in one owner-only file).
//!
//! # Error codes
//! | code | variant |
//! |---|---|
//! | `TM-ENG-4001` | `InvalidConfig`, `InvalidStoreOptions` (the memory store's refusal; see `cause_code()`) |
//! | `TM-ENG-4002` | `InvalidLogPolicy` (see `cause_code()`) |
//! | `TM-ENG-4091` | `NoKeyring` (`rotate_key` on an engine opened without a keyring) |
//! | `TM-ENG-4092` | `KeyRejected` (`rotate_key` with a key id the keyring holds; see `cause_code()`) |
//! | `TM-ENG-4231` | `Locked` (another engine has the directory) |
//! | `TM-ENG-5001` | `Io` |
//! | `TM-ENG-5002` | `Wal` (see `cause_code()`) |
//! | `TM-ENG-5003` | `Snapshot` (see `cause_code()`) |
//! | `TM-ENG-5201` | `UndecodableRecord` |
//! | `TM-ENG-5203` | `Replay` (see `cause_code()`) |
//! | `TM-ENG-5204` | `WouldDropRecords` (recovery refused; nothing changed) |
//! | `TM-ENG-5004` | `Sweep` (the expiry sweep's log append failed; see `cause_code()`) |
//! | `TM-ENG-5031` | `ReadOnly` |
#![forbid(unsafe_code)]

pub use crate::config::{Durability, EngineConfig, LogPolicy, SnapshotPolicy, SweepPolicy};
pub use crate::engine::{Engine, EngineStatus, Maintenance, StatusError, SweepReport, SweepStatus};
pub use crate::error::EngineError;
pub use crate::keys::KeyUsage;
pub use crate::recovery::RecoveryReport;
pub use tokm_memory_store::MemoryUsage;

#[cfg(doc)]
use tokm_domain::{SessionRepository, TokenRepository};

mod config;
mod decide;
mod engine;
mod error;
mod keys;
pub mod metrics;
mod open;
mod recovery;

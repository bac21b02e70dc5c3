//! Segmented, checksummed, optionally encrypted write-ahead log.
//!
//! Is: append with group commit ([`Wal::append`], [`Durability`]), rotation, replay under a
//! [`RecoveryMode`] with a [`RecoveryReport`] (totals, damage, and a [`SegmentInfo`] per
//! segment: LSN range, records, size, sealed or open, key id) and compaction
//! ([`Wal::compact`]). All I/O goes through the storage seam of `tokm-storage`
//! ([`tokm_storage::Storage`]), which also holds the typed [`Lsn`](tokm_storage::Lsn) and,
//! behind its `testkit` feature, the crash-simulating storage the tests use.
//!
//! Is not: a session store; payloads are opaque bytes it never interprets. It does not lock the
//! directory against a second writer process (the engine owns that), and it reads time only
//! through the injected [`tokm_domain::Clock`] (segment `created_at` and age-based rotation).
//!
//! ```
//! use std::ops::ControlFlow;
//! use tokm_storage::Lsn;
//! use tokm_wal::{Durability, Wal, WalOptions};
//!
//! # fn main() -> Result<(), tokm_wal::WalError> {
//! let dir = tempfile::tempdir().expect("temp dir");
//! let (wal, report) = Wal::open(dir.path(), WalOptions::default())?;
//! assert_eq!(report.records_count, 0);
//! let first = wal.append(b"create session 1", Durability::Sync)?;
//! wal.append_batch(&[b"update session 1", b"delete session 1"], Durability::Batch)?;
//! wal.close()?;
//!
//! // Cold start: reopen (recovery runs and a new segment starts), then replay after the
//! // snapshot's LSN; here there is no snapshot, so replay everything.
//! let (wal, report) = Wal::open(dir.path(), WalOptions::default())?;
//! assert_eq!(report.last_lsn, Lsn::new(first.get() + 2));
//! let mut payloads = Vec::new();
//! wal.replay(Lsn::ZERO, |_lsn, payload| {
//!     payloads.push(payload.to_vec());
//!     ControlFlow::Continue(())
//! })?;
//! assert_eq!(payloads[0], b"create session 1");
//! assert_eq!(payloads.len(), 3);
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//! Each operation has its own error type, so a caller matches only what that operation can
//! return: [`OpenError`] (open and the recovery steps), [`AppendError`] (append, flush, sync,
//! close, key adoption), [`ReplayError`] and [`CompactError`]. Each is `#[non_exhaustive]`
//! and converts into the umbrella [`WalError`]. Codes are stable and mean the same in every
//! type:
//!
//! | code | variant | returned by |
//! |---|---|---|
//! | `TM-WAL-4001` | `InvalidArgument` | open (options), append (empty batch) |
//! | `TM-WAL-4031` | `WrongKey` | open |
//! | `TM-WAL-4131` | `RecordTooLarge` | append |
//! | `TM-WAL-4151` | `NotASegment` | open |
//! | `TM-WAL-4152` | `UnsupportedVersion` | open |
//! | `TM-WAL-5001` | `Io` | open, replay, compact |
//! | `TM-WAL-5002` | `WriterFailed` | append |
//! | `TM-WAL-5071` | `LsnExhausted` | append |
//! | `TM-WAL-5201` | `Corrupt` | open, replay |
//! | `TM-WAL-5202` | `Crypto` (the `TM-CRYP-` code is `cause_code()`) | open, append |
//! | `TM-WAL-5203` | `WouldDropRecords` | open |
//!
//! # Durability
//! [`Durability::Sync`] returns after the record's write and `fdatasync`. Group commit needs no
//! dedicated thread: appenders encode into one bounded buffer (at most
//! `group_commit_records_max` records / `group_commit_bytes_max` bytes) and whichever waiter
//! finds a round free runs it: a *write round* writes the whole buffer, a *sync round* runs one
//! `fdatasync` covering everything written before it began, a *seal round* syncs a full
//! segment and only then creates the next. Writes overlap an in-flight fsync, so records
//! arriving during one fsync share the next. Rotation does not stall appenders: they switch to
//! the next segment at once and buffer its records in memory while the background flusher runs
//! the seal round; a `Sync` append after the switch is acknowledged only once the full segment
//! is synced. A new segment is created under a temp name with its header and first records,
//! synced, renamed, and the directory synced.
//!
//! [`Durability::Batch`] returns after buffering; the background flusher writes and syncs every
//! `sync_interval` (a power cut loses at most that window), sooner once `sync_bytes_max` bytes
//! are written but unsynced (so a seal round's sync stays short), and a full buffer is written inline
//! (never waiting for an fsync). After any failed write or sync the writer *fails closed*: every
//! waiter and every later append gets [`AppendError::WriterFailed`], and nothing not durable was
//! ever reported durable. A segment open at a crash is never appended to again; opening always
//! starts a new one.
//!
//! # Recovery
//! Recovery decides first and acts after, so an open that fails changes nothing:
//! 1. [`LogSurvey::read`] lists the directory and judges every header and key (reading only);
//! 2. [`LogSurvey::walk`] reads every segment once, through a bounded window (memory does not
//!    grow with the log), and delivers the records to replay as it goes, decrypting each once;
//! 3. [`LogPlan::decide`], a pure function of what the walk found ([`LogFindings`]), the
//!    [`RecoveryMode`] and a base LSN (a snapshot's), returns the plan or a refusal;
//! 4. [`LogWalk::open`] makes the plan's repairs and starts the writer.
//!
//! [`Wal::open`] runs all four with the log's own start as the base; a caller with snapshots
//! runs them itself, from its snapshot's LSN.
//!
//! The rules: a *torn tail* (an invalid frame in the newest segment with no intact frame
//! anywhere after it: a partial write, or zeros) was never acknowledged and is truncated in
//! every mode. Every other unreadable byte is *damage*. Damage among records at or below the
//! base loses nothing: it is reported and left in place. An LSN above the base that the log
//! should hold (every segment header says where the log stood when it was created) but cannot
//! read is a *loss*: [`RecoveryMode::RefuseLoss`], the default, refuses with
//! [`OpenError::WouldDropRecords`] naming file, offset and what each other mode would drop;
//! `PointInTime` and `SkipDamaged` drop by explicit choice. A header whose magic or version
//! byte is damaged, or whose checksum fails while its fields stay consistent, is reported and
//! still used; one beyond that loses its segment's records. The catch: damage to the very last
//! record of the newest segment looks like a torn tail.
//!
//! Directory contents: `*.wal` files must be segments: one whose magic is far from ours, or
//! intact with a newer version, is refused ([`OpenError::NotASegment`] /
//! [`OpenError::UnsupportedVersion`]) and nothing is changed; `*.wal.tmp` files are
//! half-created segments and are removed by an open; quarantined data goes to
//! `*.quarantine`; any other file is ignored and never touched.
//!
//! # Encryption
//! With a keyring in [`WalOptions::keyring`] every new segment gets a fresh random salt (its own
//! subkey); each payload is sealed with counter = LSN and associated data = segment id ‖ LSN.
//! The header carries algorithm, key id, salt and a key-check tag (counter 0), so a wrong key is
//! [`OpenError::WrongKey`], not damage: a key id the keyring lacks, or key bytes that open none
//! of the segments sealed under that id, refuse the open (naming the key id); a segment whose
//! check fails while another under the same key opens is damage. Since segments are never appended to after a restart, a
//! (subkey, counter) pair never repeats.
//!
//! # On-disk format
#![doc = include_str!("../FORMAT.md")]
#![forbid(unsafe_code)]

pub use crate::error::{AppendError, CompactError, OpenError, ReplayError, WalError};
pub use crate::findings::{
    DamageKind, DamagedRange, Found, HeaderFacts, HeaderState, LogFindings, LogLoss, LossCause,
    RecordRun, SegmentFindings,
};
pub use crate::ids::{LsnRange, SegmentId};
pub use crate::metrics::NAMES as METRIC_NAMES;
pub use crate::options::WalOptions;
pub use crate::plan::{LogPlan, Repair};
pub use crate::recovery::{RecoveryMode, RecoveryReport, ReplaySummary, SegmentInfo, WalReader};
pub use crate::survey::LogSurvey;
pub use crate::walk::LogWalk;
pub use crate::writer::{COMPACT_KEEP_NEWEST_DEFAULT, Durability, Wal};

mod error;
mod findings;
mod format;
mod ids;
mod metrics;
mod options;
mod plan;
mod recovery;
mod seal;
mod segment_reader;
mod survey;
mod walk;
mod writer;

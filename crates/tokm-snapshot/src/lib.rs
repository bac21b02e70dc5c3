//! Point-in-time snapshots of every session: write, load the newest valid one with fallback,
//! list, retain; and read them all without changing anything.
//!
//! Is: a directory of checksummed, optionally encrypted snapshot files ([`SnapshotStore`]),
//! encoded and sealed on every core a few blocks at a time (records are shared with the
//! caller, never copied whole), read
//! back with every byte verified, damaged files renamed aside (`*.broken`) and older ones
//! used instead ([`LoadReport`]), and a retention policy that never leaves fewer than one
//! intact snapshot. A read-only view of the same directory ([`SnapshotReader`]) lets a caller
//! decide what to do before anything on disk changes.
//!
//! Is not: a consistent-view provider. The caller passes sessions that reflect exactly the
//! log up to `covered_lsn` (a [`tokm_storage::Lsn`]; `tokm-engine` takes that view); this crate
//! stores what it is given and never reads the WAL (it does not depend on `tokm-wal`). It does
//! not lock the directory against another process. Its I/O goes through `tokm-storage`'s
//! [`Storage`](tokm_storage::Storage) seam.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tokm_domain::{Clock, ManualClock, NewSession, Session, SessionFields, SessionId, Timestamp, TokenHash, UserId};
//! use tokm_snapshot::{SnapshotOptions, SnapshotStore};
//! use tokm_storage::Lsn;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
//! let options = SnapshotOptions {
//!     clock: clock.clone(),
//!     retention_count: 2,
//!     retention_age: std::time::Duration::ZERO,
//!     ..SnapshotOptions::default()
//! };
//! let store = SnapshotStore::open(dir.path(), options)?;
//!
//! let now = clock.now();
//! let fields = SessionFields::new(
//!     SessionId::from_parts(now, 1)?,
//!     UserId::new("alice")?,
//!     TokenHash::of_token("raw bearer token")?,
//!     now,
//!     now.checked_add(Duration::from_secs(3600)).expect("in range"),
//! );
//! let sessions = vec![Arc::new(Session::new(NewSession::new(fields)?, Session::VERSION_FIRST)?)];
//!
//! // Three snapshots, at LSN 10, 20 and 30.
//! for lsn in [10, 20, 30] {
//!     store.write(Lsn::new(lsn), sessions.iter().map(|s| s.as_ref()))?;
//!     clock.advance(Duration::from_secs(60));
//! }
//!
//! // Cold start: the newest valid snapshot, then replay the log after its LSN.
//! let outcome = store.load_newest()?;
//! let snapshot = outcome.snapshot.expect("one was written");
//! assert_eq!(snapshot.meta.covered_lsn, Lsn::new(30));
//! let loaded: Vec<Session> = snapshot.records.iter().map(|record| record.to_session()).collect();
//! assert_eq!(loaded, [sessions[0].as_ref().clone()]);
//! assert!(outcome.report.fallbacks.is_empty());
//!
//! // Retention keeps the newest two; the WAL must keep everything after the oldest kept.
//! let report = store.apply_retention()?;
//! assert_eq!(report.removed.len(), 1);
//! assert_eq!(store.oldest_retained_lsn()?, Some(Lsn::new(20)));
//! # Ok(())
//! # }
//! ```
//!
//! # Reading without changing anything
//! [`SnapshotReader`] lists, verifies and loads snapshots and never creates, renames or
//! removes a file; a directory that does not exist simply holds none. A caller that must leave
//! the directory as it was unless it decides to go on (the engine at open: decide, then act;
//! the CLI on a live directory) reads through it first, and only then acts, for instance by
//! setting damaged snapshots aside with [`SnapshotStore::set_aside`]:
//!
//! ```
//! use std::sync::Arc;
//! use tokm_domain::Session;
//! use tokm_snapshot::{SnapshotOptions, SnapshotReader, SnapshotStore};
//! use tokm_storage::{FsStorage, Lsn};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = SnapshotStore::open(dir.path(), SnapshotOptions::default())?;
//! store.write(Lsn::new(10), std::iter::empty::<Session>())?;
//! let newer = store.write(Lsn::new(20), std::iter::empty::<Session>())?;
//! // A bad disk cuts the newer snapshot in half.
//! let path = dir.path().join(&newer.file_name);
//! let half = std::fs::read(&path)?.len() / 2;
//! std::fs::File::options().write(true).open(&path)?.set_len(half as u64)?;
//!
//! // Decide: find the newest snapshot that loads, changing nothing in the directory.
//! let reader = SnapshotReader::new(dir.path(), Arc::new(FsStorage), None);
//! let (mut loaded, mut damaged) = (None, Vec::new());
//! for info in reader.list()? {
//!     match reader.load(&info.file_name) {
//!         Ok(snapshot) => {
//!             loaded = Some(snapshot);
//!             break;
//!         }
//!         Err(error) if error.is_damage() => damaged.push(info.file_name),
//!         // A key problem, a foreign file, an I/O error: stop, and change nothing.
//!         Err(error) => return Err(error.into()),
//!     }
//! }
//! assert_eq!(loaded.map(|snapshot| snapshot.meta.covered_lsn), Some(Lsn::new(10)));
//! assert_eq!(damaged, [newer.file_name.clone()]);
//!
//! // Act, once the decision is to go on.
//! for file_name in &damaged {
//!     let renamed_to = store.set_aside(file_name)?;
//!     assert_eq!(renamed_to, format!("{file_name}.broken"));
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [`SnapshotStore`] reads through the same code ([`SnapshotStore::reader`]).
//!
//! # Writing
//! [`SnapshotStore::write`] streams blocks into `<name>.snap.tmp` (mode 0600; the directory is
//! created 0700), syncs it, renames it to its final name and syncs the directory (a
//! [`tokm_storage::AtomicFile`]). Any failure
//! (ENOSPC on any write or sync included) removes the temp file and leaves earlier snapshots
//! as they were; a temp file left by a crash is removed by the next [`SnapshotStore::open`].
//!
//! # Loading and fallback
//! [`SnapshotStore::load_newest`] tries snapshots newest first, each through
//! [`SnapshotReader::load`]. Checks, in order: magic and version (foreign or newer files stop
//! loading and are left untouched), header checksum, trailer and footer checksum, the index's
//! checksum, structure, each block's checksum, the whole-file checksum; then each block's tag
//! and each session's validity. A snapshot that is damaged ([`LoadError::is_damage`]) is
//! set aside as by [`SnapshotStore::set_aside`] (renamed to `*.broken`, never deleted) and
//! reported in [`LoadReport::fallbacks`] with its error ([`LoadError::code`] and
//! [`LoadError::cause_code`]); the next newest is tried. Any other error stops loading and
//! renames nothing. Blocks are decoded on up to four threads while the calling thread reads
//! and verifies the next ones.
//!
//! # A key problem is not damage
//! A wrong or missing key must never cost a snapshot. A sealed snapshot whose key id the
//! keyring lacks, or whose block 0 does not authenticate although its checksum matched (with
//! the wrong key every block fails; a random flip would break the checksum first, and block 0
//! is always opened first), returns [`LoadError::WrongKey`] naming the file and the key id;
//! without any keyring, [`LoadError::KeyringMissing`]. Neither is damage: the file is left
//! alone and loads once the right key is supplied. A later block that fails authentication
//! after block 0 authenticated was forged or moved, so it is damage
//! ([`LoadError::Crypto`]). Messages name key ids, never key bytes.
//!
//! # Bounded memory on any input
//! Checksums are unkeyed, so a crafted file can carry valid ones; the reader's limits hold on
//! their own. Every length read from disk (header, footer, index, block, session) is checked
//! against the file's size and a hard limit before it sizes an allocation; each message is
//! checked against its own checksum, where it has one, before it is decoded; and the index and
//! each block are decoded one entry at a time, each entry checked before the next (a handle
//! must continue the blocks before it; a block holds no more sessions than its handle
//! declares, at most 1024). What a read allocates is thus a small multiple of the bytes it
//! read, whatever the file claims. The limits are in the format section below.
//!
//! # Encryption
//! With [`SnapshotOptions::keyring`] set, each new file gets a fresh random salt and so its own
//! subkey; block `i` is sealed with counter `i` and associated data binding the snapshot id
//! and `i`. The header records algorithm, key id and salt, so keys can rotate.
//!
//! # Retention
//! [`SnapshotStore::apply_retention`] keeps the newest `retention_count` snapshots and all
//! younger than `retention_age` (by the injected [`tokm_domain::Clock`]), and never fewer than
//! one intact snapshot. [`SnapshotStore::oldest_retained_lsn`] is what the WAL compactor must
//! keep entries after.
//!
//! # Error codes
//!
//! Each operation has its own error type, so a caller matches only what that operation can
//! return: [`WriteError`] ([`SnapshotStore::open`], [`SnapshotStore::write`],
//! [`SnapshotStore::write_records`]), [`LoadError`] (listing, verifying, loading, setting
//! aside; also each [`Fallback`]'s reason) and [`RetainError`]
//! ([`SnapshotStore::apply_retention`], [`SnapshotStore::oldest_retained_lsn`]). Each is
//! `#[non_exhaustive]` and converts into the umbrella [`SnapshotError`]; a code means the same
//! in every type.
//!
//! | code | variant | in | meaning |
//! |---|---|---|---|
//! | `TM-SNAP-4001` | `NotASnapshot` | load | a `*.snap` file without our magic; untouched |
//! | `TM-SNAP-4002` | `UnsupportedVersion` | load | a newer format version; untouched |
//! | `TM-SNAP-4003` | `InvalidArgument` | write, load | bad option or an iterator whose `len()` lied; a name that is not a snapshot's |
//! | `TM-SNAP-4031` | `KeyringMissing` | load | encrypted snapshot, no keyring configured |
//! | `TM-SNAP-4032` | `WrongKey` | load | the keyring lacks the file's key id or holds other bytes for it; not damage |
//! | `TM-SNAP-4091` | `AlreadyExists` | write | same LSN and millisecond as an existing snapshot |
//! | `TM-SNAP-5001` | `Io` | write, load, retain | a storage call failed; names the operation and file |
//! | `TM-SNAP-5201` | `ChecksumMismatch` | load | stored bytes differ from their checksum |
//! | `TM-SNAP-5202` | `Malformed` | load | lengths, offsets or counts are inconsistent |
//! | `TM-SNAP-5203` | `Truncated` | load | the file ends before its structure does |
//! | `TM-SNAP-5204` | `Crypto` | write, load | the random source or sealing failed (write); a block after block 0 fails authentication (load); carries the `TM-CRYP-` code |
//! | `TM-SNAP-5205` | `Decode` | load | a message or session is invalid; carries the `TM-PROTO-` code |
//! | `TM-SNAP-5206` | `NoValidSnapshot` | load | snapshots exist but every one failed |
//!
//! # On-disk format
#![doc = include_str!("../FORMAT.md")]
#![forbid(unsafe_code)]

pub use crate::error::{LoadError, RetainError, SnapshotError, WriteError};
pub use crate::meta::{
    Encryption, Fallback, LoadOutcome, LoadReport, LoadedSnapshot, RetentionReport, SnapshotInfo,
    SnapshotMeta,
};
pub use crate::reader::SnapshotReader;
pub use crate::store::{SnapshotOptions, SnapshotStore};
pub use crate::write::{RecordSlice, RecordSource};

/// The name [`SnapshotStore::set_aside`] gives a snapshot: `<file_name>.broken`. For reports of
/// what a recovery would do before it does it.
pub fn set_aside_name(file_name: &str) -> String {
    format::broken_file_name(file_name)
}

mod error;
mod format;
mod index;
mod meta;
mod read;
mod reader;
mod store;
mod walk;
mod write;

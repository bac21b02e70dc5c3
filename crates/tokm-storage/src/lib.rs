//! The storage seam at the bottom of tokm's durable crates: how the write-ahead log
//! (`tokm-wal`) and the snapshots (`tokm-snapshot`) touch disk, and the log sequence number
//! both speak in.
//!
//! Is:
//! - [`Storage`] and [`StorageFile`]: every file and directory operation the log and the
//!   snapshots make, with POSIX durability rules spelled out (a file's bytes are durable after
//!   [`StorageFile::sync_data`], a directory entry after [`Storage::sync_dir`]);
//! - [`FsStorage`]: the real file system, creating files 0600 ([`FILE_MODE`]) and directories
//!   0700 ([`DIR_MODE`]);
//! - [`create_dir_all_durable`]: creating a directory path so no entry can vanish at a power
//!   cut;
//! - [`AtomicFile`]: the one way a file is created whole: temp name → write → sync → rename →
//!   sync the directory;
//! - [`Lsn`]: the typed log sequence number, carried by log records, snapshot metadata, engine
//!   status and errors;
//! - `testkit` (feature `testkit`): `SimStorage`, an in-memory storage with injected faults and
//!   simulated power cuts, for the crash tests of every crate above.
//!
//! Is not: a file format, a cache or a buffer pool. It knows nothing of segments, snapshots or
//! sessions, uses no other tokm crate, and never reads the clock. It does not lock a directory
//! against a second process (the engine owns that).
//!
//! ```
//! use std::path::Path;
//! use tokm_storage::{AtomicFile, FsStorage, Lsn, Storage, create_dir_all_durable};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let temp = tempfile::tempdir()?;
//! let dir = temp.path().join("data");
//! create_dir_all_durable(&FsStorage, &dir)?;
//! let covered = Lsn::new(41).next();
//! let name = format!("{:020}.example", covered.get());
//! let pending = AtomicFile::create(&FsStorage, &dir, &format!("{name}.tmp"), &name)?;
//! pending.file().write_all_at(0, b"complete or absent")?;
//! pending.commit()?;
//! assert_eq!(FsStorage.list(&dir)?, vec!["00000000000000000042.example".to_owned()]);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub use crate::atomic::{AtomicFile, AtomicStep, AtomicWriteError};
pub use crate::lsn::Lsn;
pub use crate::storage::{
    Access, DIR_MODE, FILE_MODE, FsStorage, Storage, StorageFile, create_dir_all_durable,
};

#[cfg(feature = "testkit")]
pub mod testkit;

mod atomic;
mod lsn;
mod storage;

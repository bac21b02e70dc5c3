//! Sharded concurrent hash map with versioned compare-and-swap; the foundation of the tokm
//! session store.
//!
//! Is: a generic `K -> V` map split into a power-of-two number of shards, each a cache-padded
//! `parking_lot::RwLock` around a std `HashMap`, all hashing with one foldhash `BuildHasher`
//! (randomly seeded per map); bits 40..56 of a key's hash pick its shard. On top: atomic closures
//! (`update`, `remove_if`, `get_or_insert_with`), shard-by-shard iteration with early stop or a
//! limit, per-shard statistics, and for [`Versioned`] values `insert_new`, `compare_and_swap` and
//! `compare_and_delete` with overflow-checked versions.
//!
//! Is not: a lock-free map; a transactional map (no operation spans two keys); a snapshotting
//! map (iteration is not a point-in-time view across shards); persistent; aware of sessions,
//! expiry or quotas (that is `tokm-memory-store`). It uses no other tokm crate and no `unsafe`.
//!
//! # Example
//!
//! ```
//! use tokm_cmap::{CasError, MapOptions, ShardedMap, Versioned};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sessions: ShardedMap<String, Versioned<u32>> =
//!     ShardedMap::with_options(MapOptions { shard_count: Some(16), capacity: 1024 })?;
//!
//! let version = sessions.insert_new("session-a".to_owned(), 10)?;
//! assert_eq!(version, 1);
//!
//! // Optimistic update: succeeds only against the version we read.
//! let next_version = sessions.compare_and_swap("session-a", version, 11)?;
//! assert_eq!(next_version, 2);
//! let stale = sessions.compare_and_swap("session-a", version, 12).unwrap_err();
//! assert_eq!(stale, CasError::VersionMismatch { expected: 1, actual: 2 });
//! assert_eq!(stale.code(), "TM-CMAP-4091");
//!
//! // Read part of a value in place, without cloning it.
//! assert_eq!(sessions.get_with("session-a", |stored| *stored.value()), Some(11));
//! assert_eq!(sessions.len(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Rules for closures
//!
//! Closures passed to [`ShardedMap`] run under a shard lock and must not call the same map; see
//! [the type's documentation](ShardedMap#closures-run-under-a-shard-lock).
//!
//! # API
//!
//! - [`ShardedMap`], built by [`ShardedMap::new`] or [`ShardedMap::with_options`] from
//!   [`MapOptions`]; reports [`ShardStats`]. [`default_shard_count`], [`SHARD_COUNT_MAX`] and
//!   [`DefaultHashBuilder`] say how it is sized and hashed.
//! - [`Versioned`] values, starting at [`INITIAL_VERSION`], with compare-and-swap operations.
//! - Errors: [`CmapError`] (building a map) and [`CasError`] (versioned operations), each with a
//!   stable `code()`.
//!
//! # Error codes
//!
//! | code | error | when |
//! |---|---|---|
//! | `TM-CMAP-4001` | `CmapError::ShardCountZero` | a map was asked for zero shards |
//! | `TM-CMAP-4002` | `CmapError::ShardCountNotPowerOfTwo` | the shard count is not a power of two |
//! | `TM-CMAP-4003` | `CmapError::ShardCountTooLarge` | the shard count is above [`SHARD_COUNT_MAX`] |
//! | `TM-CMAP-5071` | `CmapError::CapacityUnavailable` | the allocator refused the reserved capacity |
//! | `TM-CMAP-4041` | `CasError::NotFound` | no value under the key |
//! | `TM-CMAP-4091` | `CasError::VersionMismatch` | the value's version is not the expected one |
//! | `TM-CMAP-4092` | `CasError::AlreadyExists` | an insert found a value under the key |
//! | `TM-CMAP-4093` | `CasError::VersionOverflow` | the version cannot be incremented further |
#![forbid(unsafe_code)]

pub use crate::error::{CasError, CmapError};
pub use crate::map::{
    DefaultHashBuilder, MapOptions, SHARD_COUNT_MAX, ShardStats, ShardedMap, default_shard_count,
};
pub use crate::versioned::{INITIAL_VERSION, Versioned};

mod error;
mod map;
mod versioned;

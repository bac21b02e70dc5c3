//! In-memory session store: the primary record map, secondary indexes, per-user quota,
//! filtered/sorted/paged listing and expiry, implementing `tokm_domain`'s
//! [`SessionRepository`](tokm_domain::SessionRepository) and
//! [`TokenRepository`](tokm_domain::TokenRepository) on sharded `hashbrown` tables of compact
//! records and index entries.
//!
//! Is: a thread-safe, linearizable-per-session store for microsecond reads, whose writes can be
//! prepared (validated, locked, not yet visible) and then applied, with an idempotent replay
//! entry point, a parallel bulk load and a point-in-time capture, so that a durable engine can
//! put a write-ahead log and snapshots in front of it.
//! Is not: durable. It does no I/O, keeps nothing across restarts, and reads time only from the
//! injected [`Clock`](tokm_domain::Clock).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tokm_domain::{
//!     ManualClock, Mutation, NewSession, SessionFields, SessionId, SessionRepository, Timestamp,
//!     TokenHash, TokenRepository, UserId,
//! };
//! use tokm_memory_store::{MemoryStore, StoreOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_700_000_000_000)));
//! let store = MemoryStore::new(clock.clone(), StoreOptions::default())?;
//!
//! let now = Timestamp::from_millis(1_700_000_000_000);
//! let token_hash = TokenHash::of_token("raw-bearer-token")?;
//! let fields = SessionFields::new(
//!     SessionId::generate(now)?,
//!     UserId::new("alice")?,
//!     token_hash,
//!     now,
//!     now.checked_add(Duration::from_secs(3600)).expect("small"),
//! );
//!
//! // The engine's path: prepare (validated, stripes held, nothing visible yet), log the
//! // write's mutations, then apply. Dropping the write instead changes nothing.
//! let write = store.prepare_create(NewSession::new(fields)?)?;
//! assert!(matches!(write.mutations(), [Mutation::Create(_)]));
//! let logged = write.mutations().to_vec();
//! let outcome = write.apply();
//!
//! // Reads decode the stored record into a `Session`.
//! let found = store.get_by_token_hash(&token_hash)?;
//! assert_eq!(found, outcome.session);
//!
//! // Lazy expiry: an hour later the session is reported expired, then cleaned up.
//! clock.advance(Duration::from_secs(3600));
//! assert_eq!(store.get(found.id()).unwrap_err().code(), "TM-SESS-4101");
//! assert_eq!(store.cleanup_expired()?, 1);
//!
//! // Recovery replays the log without quota or version checks.
//! let replica = MemoryStore::new(clock, StoreOptions::default())?;
//! for mutation in &logged {
//!     replica.apply_replayed(mutation)?;
//! }
//! assert_eq!(replica.len(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! **Records.** The primary map holds one [`SessionRecord`](tokm_domain::SessionRecord) per
//! session: a validated session and its version in one immutable reference-counted allocation.
//! It is a sharded `hashbrown::HashTable<SessionRecord>` keyed by the id inside the record, so a
//! slot is the record's 16-byte pointer and no separate key is stored. A change stores a new
//! record, so [`MemoryStore::capture`] and [`MemoryStore::records`] hand out pointers, never
//! copies. Reads decode the record into the `Session` the traits return; filters and sorts read
//! the record's fields in place.
//!
//! **Indexes.** Token hash, user, device, API key and IP address (`ip_address` and
//! `last_access_ip`) each map to ids through one sharded table of `(fingerprint, id)` pairs, 20
//! bytes each, that allows duplicate keys: a key's ids are found by iterating its hash. The
//! fingerprint is a per-store seeded 32-bit hash of the key, not a copy of the text or address,
//! since every hit is confirmed against the record anyway; a key with more than 64 ids (a
//! shared address, a kiosk) moves to one id list so no probe sequence grows long. Three
//! time-ordered indexes hold 24-byte `(time, id)` keys in sorted chunks of 64: `created_at`,
//! `last_active` and expiry (the earlier of `expires_at` and `last_active + idle_timeout`, so a
//! touch moves it). They are sharded by session id, so one session's entry moves within one
//! shard in one step. Hash tables get a shard count chosen from
//! [`StoreOptions::capacity`] (64 to 128 shards) so that that many sessions fill each shard to
//! about 84% of its power-of-two size rather than just past a doubling.
//!
//! **Consistency.** The primary record is the commit point. Index entries for a session's keys
//! are added before its record is stored and removed after its record is replaced or removed,
//! so every stored session is reachable through every index that applies to it, at every
//! instant. Readers confirm every id an index yields against the primary record (and test the
//! record, not the index key), so an early entry, or one whose fingerprint another key shares,
//! is never returned. Token entries are added only for a session that holds the token and
//! removed with it, so none goes stale; a replayed body claiming a token another stored session
//! holds is not indexed under it (the holder keeps it). One count reads an index alone: the
//! `total` of a `list` whose filter is only a time range on the sort's own index (or empty) is
//! the number of entries in that range; exact when no write overlaps the call, and otherwise
//! it may include a create whose record is not stored yet or a delete whose entries are not
//! removed yet, and counts a moving session by its old or new key (once either way).
//!
//! **Captures.** [`MemoryStore::capture`] write-locks every primary shard at once (O(shards),
//! no record touched): that is the capture's instant. Each shard is then marked "not yet
//! copied"; a writer that changes a session in such a shard first keeps the session's old
//! record (or its absence) aside, once per session, under the shard lock it holds anyway. The
//! capture copies each shard once, under its lock, substituting the kept values, and clears
//! them. So the capture holds exactly the records committed before the instant, a write never
//! waits longer than one shard's copy, and dropping the [`Capture`] ends the copy-on-write.
//!
//! **Serialization and prepared writes.** Each write takes striped mutexes: the stripe of the
//! session id (operations on one id), then the stripes of the user and of any token it claims.
//! All writes of one user are therefore serialized, which makes the quota check and the insert
//! one atomic step; two claims of one token, or two creates of one id, are serialized too. A
//! `prepare_*` method takes those stripes, validates, builds the
//! [`Mutation`](tokm_domain::Mutation)s the write will log and the records it will store, and
//! returns them as a [`PreparedWrite`] that keeps the stripes. The caller (the engine) appends
//! [`PreparedWrite::mutations`] to its log, then calls [`PreparedWrite::apply`], which changes
//! the maps and indexes and releases the stripes; or drops the write (a failed append), which
//! changes nothing. Since the stripes are held from validation to apply, the log order of two
//! conflicting writes is their apply order. One write's mutations are everything that must
//! travel together: a quota eviction's `Delete` with its `Create`, all of a user's `Delete`s
//! for `delete_by_user`, one user's expired sessions per [`ExpiredCleanup`] batch, a sweep
//! step's sessions across users. Between prepare and apply **only** stripes are held, never a
//! map or index lock: readers are not blocked and see the state before the write, and writers
//! wait only if they share a stripe. The plain repository methods are prepare and apply with
//! no log in between.
//!
//! # Lock order
//!
//! 1. one id stripe (`update`, `delete`, `touch`, `create`, `apply_replayed`);
//! 2. key stripes (users, tokens), several at once in ascending stripe index;
//! 3. one map or index shard lock at a time (writers); readers walking a time-ordered index
//!    hold that index shard's read lock while reading primary shards (index shard, then primary
//!    shard); no writer ever holds a primary shard lock while taking an index lock;
//!    [`MemoryStore::capture`] takes every primary shard's write lock, in ascending order,
//!    holding no other lock (so it waits for walks in progress, and nobody holding a primary
//!    shard waits for another lock).
//!
//! The capture flag (`capture` waits while another [`Capture`] is alive) is never held with
//! any other lock. A [`PreparedWrite`] holds its step-1 and step-2 stripes and no step-3 lock
//! until it is applied or dropped; while it is alive its thread may read the store but must not
//! start another write (one needing the same stripe would wait for itself), and
//! [`ExpiredCleanup::next_batch`] lends one batch at a time for the same reason.
//! [`MemoryStore::for_each`] calls its closure under a primary shard's read lock; the closure
//! must not call the store.
//!
//! # Memory
//!
//! Measured on a 2-core Linux VM with `cargo run --release -p tokm-memory-store --example
//! memory` (glibc malloc), 1,000,000 typical sessions (12-char user id, 20 sessions per user,
//! unique 16-char device id, IPv4, 70-char user agent, one metadata entry) in a store built with
//! `capacity: 1_000_000`. Resident bytes per session, and [`MemoryStore::memory_usage`]'s
//! estimate per structure:
//!
//! | bytes per session | before (main at `eae3cd7`) | built by `create` | built by `bulk_load` |
//! |---|---|---|---|
//! | **RSS** | **1,115** | **456** | **489** (allocator keeps some of the load's scratch) |
//! | records (one allocation each) | | 256.0 | 256.0 |
//! | primary map | | 20.3 | 20.3 |
//! | token index | | 25.1 | 25.1 |
//! | user index | | 27.5 | 29.2 |
//! | device index | | 25.1 | 25.1 |
//! | address index | | 25.1 | 25.1 |
//! | API key index (empty) | | 0.0 | 0.0 |
//! | `created_at`, `last_active`, expiry indexes | | 3 × 24.8 | 3 × 24.8 |
//! | estimated total | | 453.6 | 455.2 |
//!
//! Before, an `Arc<Session>` body cost ~500 bytes in eight allocations, and every index a
//! std `HashMap` or `BTreeSet` entry at about half load. Tables fill to ~84% only at the
//! capacity they were sized for: a store that grows past it, or churns (hashbrown's tombstones
//! count as full until the table is rebuilt), doubles shard by shard, which costs about 17 to
//! 25 bytes more per session per hash table.
//!
//! # Cost of each operation
//!
//! | operation | cost |
//! |---|---|
//! | `get`, `get_by_token_hash` | one (two) hash lookups and a record decode |
//! | `create` | user's stored sessions (quota), ~10 index updates |
//! | `update`, `touch`, `delete` | index updates for the keys that change |
//! | `count_by_user`, `list_by_user`, `delete_by_user` | the user's stored sessions |
//! | `cleanup_expired` | the expired sessions |
//! | `list`, `list_after` with a user, device, API key or IP filter | the smallest of those id sets |
//! | `list` with no filter, or only the sort's own bound (`created_*` for `CreatedAt`, `active_after` for `LastActive`) | up to `(offset + size) × 16` entries confirmed; the total counted from index chunks alone, the fewer of the chunks inside and outside the range |
//! | with another `created_*` or `active_after` bound | the sessions in that time range |
//! | with `status: Expired` only | the expired sessions |
//! | `list_after` with no bound (sort order walk) | up to `(limit + 1) × 16` entries |
//! | `list` with only `status: Active` | **a full scan**: every session is read to make the total exact |
//! | `capture` | O(shards) to start; each `next_shard` one shard's record pointers |
//! | `bulk_load` | O(n log n / cores): partition, sort, build each shard once |
//!
//! Walks over a time-ordered index hold one index shard's read lock (1/16 of the sessions) at a
//! time, so a full scan delays writers of that shard for its length. Listing is not a
//! point-in-time view across shards: a session created, deleted, or whose sort key moves while
//! a list runs may or may not be seen; each session that exists throughout is seen once.
//!
//! # API
//!
//! - [`MemoryStore`], built by [`MemoryStore::new`] from [`StoreOptions`] (quota, capacity), or
//!   by [`MemoryStore::bulk_load`] from a snapshot's records.
//! - The repository traits; the same writes prepared, to be logged before they are applied
//!   (each a [`PreparedWrite`]): [`MemoryStore::prepare_create`],
//!   [`MemoryStore::prepare_update`], [`MemoryStore::prepare_delete`],
//!   [`MemoryStore::prepare_touch`], [`MemoryStore::prepare_delete_by_user`];
//!   [`MemoryStore::prepare_cleanup_expired`] (an [`ExpiredCleanup`], one write per user);
//!   [`MemoryStore::prepare_sweep_expired`] removes at most a given number of expired sessions
//!   in one write (the engine's bounded expiry sweep, reporting [`Swept`]).
//! - Recovery and snapshots: [`MemoryStore::apply_replayed`] (returns [`Replayed`]),
//!   [`MemoryStore::bulk_load`], [`MemoryStore::capture`] (a [`Capture`]),
//!   [`MemoryStore::for_each`], [`MemoryStore::records`].
//! - Metrics: [`MemoryStore::memory_usage`] (a [`MemoryUsage`]).
//! - [`MemoryStoreError`], with the stable codes below. Operations return
//!   `tokm_domain::SessionError`.
//!
//! | code | variant | when |
//! |---|---|---|
//! | `TM-MEMS-4001` | `InvalidOptions` | a [`StoreOptions`] field breaks a rule |
//! | `TM-MEMS-5071` | `CapacityUnavailable` | the allocator refused the reserved capacity |
//! | `TM-MEMS-5201` | `DuplicateSessionId` | a bulk load's records repeat a session id |
//! | `TM-MEMS-5202` | `DuplicateTokenHash` | a bulk load's records repeat a token hash |
#![forbid(unsafe_code)]

pub use crate::capture::Capture;
pub use crate::error::MemoryStoreError;
pub use crate::store::{MemoryStore, Replayed, StoreOptions, Swept};
pub use crate::usage::MemoryUsage;
pub use crate::write::{ExpiredCleanup, PreparedWrite};

mod bulk;
mod capture;
mod error;
mod index;
mod primary;
mod query;
mod shards;
mod store;
mod stripes;
mod usage;
mod write;

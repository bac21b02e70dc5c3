//! In-memory session store: the primary record map, secondary indexes, per-user quota,
//! filtered/sorted/paged listing and expiry, implementing `tokm_domain`'s
//! [`SessionRepository`](tokm_domain::SessionRepository) and
//! [`TokenRepository`](tokm_domain::TokenRepository) on `tokm_cmap::ShardedMap`.
//!
//! Is: a thread-safe, linearizable-per-session store for microsecond reads, with a commit hook
//! and an idempotent replay entry point so that a durable engine can put a write-ahead log in
//! front of it.
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
//! // The engine's path: the hook sees the mutations before they are applied.
//! let mut logged = Vec::new();
//! let outcome = store.create_with(NewSession::new(fields)?, &mut |mutations: &[Mutation]| {
//!     logged.extend_from_slice(mutations);
//!     Ok(())
//! })?;
//! assert!(matches!(logged.as_slice(), [Mutation::Create(_)]));
//!
//! // Reads return copies.
//! let found = store.get_by_token_hash(&token_hash)?;
//! assert_eq!(found, outcome.session);
//!
//! // Lazy expiry: an hour later the session is reported expired, then cleaned up.
//! clock.advance(Duration::from_secs(3600));
//! assert_eq!(store.get(found.id()).unwrap_err().code(), "TM-SESS-4101");
//! assert_eq!(store.cleanup_expired()?, 1);
//!
//! // Recovery replays the log without quota checks or hooks.
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
//! **Records.** The primary map `SessionId -> Arc<Session>` (a `tokm_cmap::ShardedMap`) holds
//! immutable bodies: a change stores a new `Arc`, so [`MemoryStore::sessions`] hands a
//! snapshot pointers, never copies. Reads clone the body out (the trait returns `Session`).
//!
//! **Indexes.** token hash → id (`ShardedMap`); user, device, API key → ids and IP address
//! (`ip_address` and `last_access_ip`) → ids (sharded hash maps of small id sets; keys are
//! stored as a per-store seeded 64-bit fingerprint, not a copy of the text or address, since
//! every hit is confirmed against the record anyway); and three
//! time-ordered indexes of `(time, id)`: `created_at`, `last_active` and expiry (the earlier of
//! `expires_at` and `last_active + idle_timeout`, so a touch moves it). The ordered indexes are
//! sharded by session id, so one session's entry moves within one shard in one step.
//!
//! **Consistency.** The primary record is the commit point. Index entries for a session's keys
//! are added before its record is stored and removed after its record is replaced or removed,
//! so every stored session is reachable through every index that applies to it, at every
//! instant. Readers confirm every id an index yields against the primary record (and test the
//! body, not the index key), so a stale or early entry is never returned. A token lookup that
//! finds a stale entry repairs it under the token's stripe. One count reads an index alone: the
//! `total` of a `list` whose filter is only a time range on the sort's own index (or empty) is
//! the number of entries in that range; exact when no write overlaps the call, and otherwise
//! it may include a create whose record is not stored yet or a delete whose entries are not
//! removed yet, and counts a moving session by its old or new key (once either way).
//!
//! **Serialization and the commit hook.** Each mutation takes striped mutexes: the stripe of
//! the session id (operations on one id), then the stripes of the user and of any token it
//! claims. All mutations of one user are therefore serialized, which makes the quota check and
//! the insert one atomic step; two claims of one token, or two creates of one id, are
//! serialized too. Under those stripes the store validates, builds the
//! [`Mutation`](tokm_domain::Mutation)s, calls the hook, and applies: so the order in which the
//! hook sees conflicting mutations is the order in which they are applied (log order is apply
//! order).
//! The hook runs with **only** stripes held, never a map or index lock: readers are not
//! blocked by it (the one exception: a token lookup that finds a stale entry takes that token's
//! stripe to repair it), and writers wait only if they share a stripe.
//!
//! # Lock order
//!
//! 1. one id stripe (`update`, `delete`, `touch`, `create`, `apply_replayed`);
//! 2. key stripes (users, tokens), several at once in ascending stripe index;
//! 3. one map or index shard lock at a time (writers); readers walking a time-ordered index
//!    hold that index shard's read lock while reading primary shards (index shard, then primary
//!    shard); no writer ever holds a primary shard lock while taking an index lock.
//!
//! The commit hook runs after step 2 with no step-3 lock held; it must not call the store.
//!
//! # Cost of each operation
//!
//! | operation | cost |
//! |---|---|
//! | `get`, `get_by_token_hash` | one (two) hash lookups and a body clone |
//! | `create` | user's stored sessions (quota), ~10 index updates |
//! | `update`, `touch`, `delete` | index updates for the keys that change |
//! | `count_by_user`, `list_by_user`, `delete_by_user` | the user's stored sessions |
//! | `cleanup_expired` | the expired sessions |
//! | `list`, `list_after` with a user, device, API key or IP filter | the smallest of those id sets |
//! | `list` with no filter, or only the sort's own bound (`created_*` for `CreatedAt`, `active_after` for `LastActive`) | up to `(offset + size) × 16` entries confirmed; the total counted from index keys alone, about twice the smaller of the range and the rest |
//! | with another `created_*` or `active_after` bound | the sessions in that time range |
//! | with `status: Expired` only | the expired sessions |
//! | `list_after` with no bound (sort order walk) | up to `(limit + 1) × 16` entries |
//! | `list` with only `status: Active` | **a full scan**: every session is read to make the total exact |
//!
//! Walks over a time-ordered index hold one index shard's read lock (1/16 of the sessions) at a
//! time, so a full scan delays writers of that shard for its length. Listing is not a
//! point-in-time view across shards: a session created, deleted, or whose sort key moves while
//! a list runs may or may not be seen; each session that exists throughout is seen once.
//!
//! # API
//!
//! - [`MemoryStore`], built by [`MemoryStore::new`] from [`StoreOptions`] (quota, capacity).
//! - The repository traits; the same operations with a [`CommitHook`]:
//!   [`MemoryStore::create_with`], [`MemoryStore::update_with`], [`MemoryStore::delete_with`],
//!   [`MemoryStore::touch_with`], [`MemoryStore::delete_by_user_with`],
//!   [`MemoryStore::cleanup_expired_with`].
//! - Recovery and snapshots: [`MemoryStore::apply_replayed`] (returns [`Replayed`]),
//!   [`MemoryStore::sessions`].
//! - [`MemoryStoreError`], with stable codes `TM-MEMS-4001` (invalid options) and
//!   `TM-MEMS-5071` (capacity unavailable). Operations return `tokm_domain::SessionError`.
#![forbid(unsafe_code)]

pub use crate::error::MemoryStoreError;
pub use crate::store::{CommitHook, MemoryStore, Replayed, StoreOptions};

mod error;
mod index;
mod query;
mod store;
mod stripes;

//! The session repositories on Redis Cluster: [`RedisClusterStore`] implements
//! [`SessionRepository`](tokm_domain::SessionRepository) and
//! [`TokenRepository`](tokm_domain::TokenRepository) on a cluster operators already run, for
//! services whose app nodes must share sessions or whose sessions outgrow one machine.
//!
//! Is: a client library. Every user's sessions live in one hash slot and change only through
//! Lua scripts on that slot's master; lookups by id or token go through pointer keys that every
//! read confirms against the record; time comes from the injected
//! [`Clock`](tokm_domain::Clock). It passes the same `tokm_domain::testkit` conformance suite as
//! the embedded engine, on a real cluster (`cargo xtask cluster test`).
//! Is not: the default. The embedded `tokm-engine` stays the store of a single machine; a
//! service switches by constructing this type instead. It is not a cluster manager either: it
//! neither starts, configures nor backs up Redis, whose persistence (AOF, RDB) and topology are
//! the operator's. Synchronous: no async runtime.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tokm_domain::{
//!     Clock, NewSession, SessionFields, SessionId, SessionRepository, SystemClock, TokenHash,
//!     TokenRepository, UserId,
//! };
//! use tokm_redis::{RedisClusterOptions, RedisClusterStore, WaitPolicy};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut options = RedisClusterOptions::new(
//!     vec!["10.0.0.11:6379".into(), "10.0.0.12:6379".into()],
//!     "sessions",
//! );
//! options.wait = WaitPolicy::Revocations; // the default: revocations survive a failover
//! let clock: Arc<dyn Clock> = Arc::new(SystemClock);
//! let store = RedisClusterStore::connect(options, clock.clone())?;
//!
//! let now = clock.now();
//! let token_hash = TokenHash::of_token("raw-bearer-token")?;
//! let fields = SessionFields::new(
//!     SessionId::generate(now)?,
//!     UserId::new("alice")?,
//!     token_hash,
//!     now,
//!     now.checked_add(Duration::from_secs(3600)).expect("small"),
//! );
//! let created = store.create(NewSession::new(fields)?)?;
//! assert_eq!(store.get_by_token_hash(&token_hash)?, created.session);
//! # Ok(())
//! # }
//! ```
//!
//! # Keys
//!
//! Under a namespace `NS` ([`RedisClusterOptions::namespace`]); `<fp>` is a 128-bit BLAKE3
//! fingerprint of the user id in hex (user ids may hold `{` `}`), `<id>` the session id (ULID
//! text), `<hash>` the token hash in hex:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `NS:{u:<fp>}:r` | hash | session id → session record (`tokm_domain::SessionRecord` bytes) |
//! | `NS:{u:<fp>}:c` | sorted set | session ids by `created_at` (oldest for eviction, `list_by_user`) |
//! | `NS:{u:<fp>}:e` | sorted set | session ids by expiry (live count, `cleanup_expired`) |
//! | `NS:{s:<id>}` | string | `<fp>`: the owner of a session id (a hint, and the id's claim) |
//! | `NS:{t:<hash>}` | string | `<fp>:<id>`: the holder of a token hash (a hint, and the token's claim) |
//!
//! A user's three keys share the hash tag `{u:<fp>}`, so one script changes them atomically.
//! Pointers are written (`SET NX`, which also makes them the claims that keep ids and tokens
//! unique) before the record and removed after it, and readers confirm every pointer against the
//! record: the hint model of the memory store's indexes. Every key carries a TTL, a backstop of
//! `expires_at − now + expired_grace`, so that nothing leaks if nobody cleans up; expiry itself
//! is judged by the store, never by Redis. [`KeyLayout`] names the keys.
//!
//! # Scripts
//!
//! Each runs on the master of one user's slot with "now" as an argument (`EVALSHA`, loaded on
//! `NOSCRIPT`, since Redis does not replicate its script cache to a promoted replica):
//!
//! | script | does, atomically |
//! |---|---|
//! | `create` | refuses a taken id, counts live sessions (`ZCOUNT` of the expiry index above now), rejects or evicts the oldest live one, stores the record and both index entries; the same record already stored is success (a retried create) |
//! | `update` | version CAS on the stored record, refuses a changed owner or `created_at`, keeps the later `last_active`, re-scores the expiry index |
//! | `touch` | refuses an expired session, raises `last_active`, sets `last_access_ip` (patching the record's bytes), re-scores the expiry index; the version stays |
//! | `delete` | removes the record and its index entries, returns the record (for its pointers) |
//! | `delete_user` | removes every record of the user (and any damaged value in the hash) |
//! | `cleanup_user` | removes up to 256 sessions expired at now, judged on each record |
//!
//! # Guarantees and relaxations
//!
//! The contract of the repository traits holds, checked by the unchanged conformance suite under
//! both quota policies: versions, CAS, `last_active = max`, the quota (one script per create, so
//! 16 concurrent creators never exceed it), expiry judged by `Session::is_expired_at` at the
//! store's clock, filters, sorts, pages and cursors by the domain's own rules. Where Redis
//! Cluster cannot give what one process gives, this is what holds instead:
//!
//! - **Asynchronous replication, failover loss.** A master acknowledges a write before its
//!   replicas have it; if it dies then, the promoted replica never had it. With
//!   [`WaitPolicy::Revocations`] (the default) deletes, `delete_by_user`, `cleanup_expired` and
//!   evictions return only after `WAIT wait_replicas` confirmed them, so a failover does not
//!   resurrect a revoked session; creates, updates and touches can be lost. With
//!   [`WaitPolicy::AllWrites`] nothing acknowledged is lost to one failover. The test
//!   `a_killed_master_is_replaced_and_only_unwaited_writes_are_lost` SIGKILLs a master under
//!   load both ways and prints how many acknowledged writes were lost (the README quotes a
//!   run; on a quiet loopback cluster replicas rarely lag, so few or none are lost even without
//!   `WAIT`, and a loaded network loses more). `WAIT` is not consensus:
//!   while a shard has no replica, waiting writes to it fail with `TM-REDIS-5041`, and the write
//!   is applied on the master nonetheless.
//! - **Cross-master lists are not one snapshot.** `list`, `list_after` and `cleanup_expired`
//!   without a user gather every master's keys with `SCAN` and read every session of the
//!   namespace: O(sessions) per call, and a session created, deleted or moved (resharding)
//!   meanwhile may or may not be seen; each session present throughout is seen once, and
//!   `total` is exact when no write overlaps. Filtered by user, they read one slot.
//! - **Expiry is judged by the app node's clock.** Every script takes now from the caller's
//!   [`Clock`](tokm_domain::Clock); app nodes with skewed clocks disagree by their skew about
//!   when a session expired. Redis's own TTLs are only a backstop `expired_grace` (default a
//!   day) after `expires_at`: after it an expired session is gone (`TM-SESS-4041`) rather than
//!   expired (`TM-SESS-4101`).
//! - **Orphaned pointers after a client crash between steps.** A create writes the id and token
//!   pointers, then the record; a delete removes the record, then the pointers. A client killed
//!   in between leaves pointers no record confirms: no reader ever sees them (tested with real
//!   SIGKILLs), a repeated create by the same client completes, and they expire with their TTL.
//!   Until then they hold their id and token hash: another session claiming that very id or
//!   token (both random) gets `TM-SESS-4092`/`4093`.
//! - **Ambiguous retries.** A call that hits a connection failure, `CLUSTERDOWN`, `TRYAGAIN`,
//!   `READONLY`, `UNBLOCKED` (a `WAIT` cut short by its master's demotion) or a redirection is
//!   run again from its start on a new connection, with backoff, for up to
//!   [`RedisClusterOptions::retry_budget`] (20 s), so a failover reaches no caller (tested
//!   under `CLUSTER FAILOVER` and SIGKILL of a master). If the first attempt was applied
//!   and its reply lost: a create or update recognises its own result and succeeds, a touch is
//!   idempotent, but a delete reports `Ok(false)` and an eviction is not reported again. A call
//!   that spends the budget returns `TM-REDIS-5031` with an unknown outcome.
//! - **User fingerprints.** Users are placed by a 128-bit fingerprint of the user id; two ids
//!   sharing one (probability about n²/2¹²⁹ for n users) would share a quota count.
//!   Records are always checked against the user id itself.
//!
//! # Round trips per operation
//!
//! Commands to different slots in one step are pipelined (one round, in parallel to their
//! masters). Without `WAIT`:
//!
//! | operation | round trips | `WAIT` adds (one per slot written) |
//! |---|---|---|
//! | `create` | 2: claim id and token pointers (`SET NX GET`), `create` script; +1 to remove an evicted session's pointers | `AllWrites` +3; `Revocations` +1 when it evicts |
//! | `get`, `get_by_token_hash` | 2: `GET` pointer, `HGET` record | – |
//! | `update` | 2: claim the token pointer, `update` script; +1 if the token changed, +1 if `expires_at` changed (pointer TTLs) | `AllWrites` +3 |
//! | `touch` | 2: `GET` pointer, `touch` script | `AllWrites` +1 |
//! | `delete` | 3: `GET` pointer, `delete` script, `DEL` pointers | +1 |
//! | `count_by_user` | 1: `ZCOUNT` | – |
//! | `list_by_user`; `list`/`list_after` with `user_id` | 1: `HGETALL` | – |
//! | `delete_by_user` | 2: `delete_user` script, `DEL` pointers | +1 |
//! | `list`/`list_after` across users | 1 (`CLUSTER SLOTS`) + per master, per 512 keys scanned: `SCAN` + one `HGETALL` round | – |
//! | `cleanup_expired` | 1 + per master, per 512 users: `SCAN` + one `ZRANGEBYSCORE` round; per user with expired sessions: `cleanup_user` + `DEL` pointers per 256 | +1 per master if it removed any |
//!
//! # Error codes
//!
//! Repository methods return `tokm_domain::SessionError` with the domain's codes
//! (`TM-SESS-4041`, `4092`, `4291`, ...); a failure of Redis or of the data in it is
//! `TM-SESS-5001` (`SessionError::Storage`) carrying a [`RedisStoreError`], whose code
//! [`redis_code`] reads. [`RedisClusterStore::connect`] returns [`RedisStoreError`] itself.
//!
//! | code | variant | meaning |
//! |---|---|---|
//! | `TM-REDIS-4001` | `InvalidOptions` | an option breaks a rule; names the field and limit |
//! | `TM-REDIS-4002` | `InvalidAddress` | a node address is not `host:port` |
//! | `TM-REDIS-5001` | `Command` | Redis refused a command (out of memory, no permission, wrong type) |
//! | `TM-REDIS-5002` | `Script` | one of the store's scripts failed on the server |
//! | `TM-REDIS-5031` | `Unavailable` | no node answered within the retry budget (nodes down, wrong address) |
//! | `TM-REDIS-5041` | `ReplicaAckTimeout` | `WAIT` saw fewer replicas than asked; the write is on the master only |
//! | `TM-REDIS-5201` | `CorruptRecord` | a stored value is not a valid session record |
//! | `TM-REDIS-5202` | `UnexpectedReply` | a reply had an unexpected shape |
//!
//! # API
//!
//! [`RedisClusterStore`] ([`RedisClusterStore::connect`], [`RedisClusterStore::keys`]),
//! [`RedisClusterOptions`], [`WaitPolicy`], [`KeyLayout`], [`UserKeys`], [`UserFingerprint`],
//! [`RedisStoreError`], [`redis_code`].
#![forbid(unsafe_code)]

pub use crate::error::{RedisStoreError, redis_code};
pub use crate::keys::{KeyLayout, UserFingerprint, UserKeys};
pub use crate::options::{
    NAMESPACE_LEN_MAX, NODES_MAX, POOL_SIZE_MAX, RedisClusterOptions, TIMEOUT_MAX, WaitPolicy,
};
pub use crate::store::RedisClusterStore;

mod error;
mod format;
mod keys;
mod options;
mod pool;
mod scripts;
mod store;

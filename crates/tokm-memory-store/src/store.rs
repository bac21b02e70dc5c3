//! [`MemoryStore`]: the records, the write path with its commit hook, replay, and point reads.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::ops::Bound;
use std::sync::Arc;

use tokm_cmap::{DefaultHashBuilder, MapOptions, ShardedMap};
use tokm_domain::{
    Clock, CreateOutcome, Cursor, CursorPage, ListResult, Mutation, NewSession, Page, PageSize,
    Quota, QuotaPolicy, Session, SessionError, SessionFilter, SessionId, SessionRepository, Sort,
    Timestamp, TokenHash, TokenRepository, UserId,
};

use crate::error::MemoryStoreError;
use crate::index::{Direction, IndexKey, KeyRange, MultiIndex, OrderedIndex, PackedId};
use crate::stripes::{StripeGuard, StripeIndex, Stripes};

/// What the store calls with the mutations of one operation, after validating it and before
/// applying it, while holding the stripe locks that serialize it (see [`MemoryStore`]).
///
/// Returning `Err` cancels the operation: nothing changes and the error is returned to the
/// caller. The hook must not call this store (its stripes are held, so a write or a token lookup
/// that repairs the index could wait for itself).
pub type CommitHook<'a> = dyn FnMut(&[Mutation]) -> Result<(), SessionError> + 'a;

/// Shards of the primary map and the token index: a power of two well above the core count, so
/// that 64 writers rarely meet on one shard lock.
const MAP_SHARD_COUNT: usize = 64;
/// Shards of the user, device, API key and address indexes.
const MULTI_INDEX_SHARD_COUNT: usize = 64;
/// Shards of each time-ordered index. An early-stopping cursor walk reads up to `limit + 1`
/// entries from every shard, so more shards cost list latency; 16 keeps a 100-item slice under
/// ~1,700 primary lookups while spreading writers.
const ORDERED_SHARD_COUNT: usize = 16;

/// How to build a [`MemoryStore`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// The per-user limit on live sessions and what `create` does at it.
    pub quota: Quota,
    /// Sessions to reserve room for up front in the primary map and token index; 0 reserves
    /// nothing (they grow as needed).
    pub capacity: usize,
}

/// What [`MemoryStore::apply_replayed`] did with a logged mutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replayed {
    /// The store changed.
    Applied,
    /// The store already reflected the mutation (or a later state of the session); nothing
    /// changed.
    Skipped,
}

/// An in-memory session store implementing [`SessionRepository`] and [`TokenRepository`].
///
/// See the crate docs for the design: indexes, lock order, consistency, costs.
pub struct MemoryStore {
    pub(crate) clock: Arc<dyn Clock>,
    quota: Quota,
    /// Seeded per store: fingerprints text keys (user, device, API key) for the indexes, so an
    /// index holds 8 bytes per key instead of a copy of the text.
    fingerprints: DefaultHashBuilder,
    /// Lock order 1: taken by operations on one session id, before any key stripe; at most one
    /// held per thread.
    id_stripes: Stripes,
    /// Lock order 2: user and token stripes, several at once in ascending index order.
    key_stripes: Stripes,
    /// The primary map; a record's presence here is the commit point of every mutation.
    pub(crate) sessions: ShardedMap<PackedId, Arc<Session>>,
    by_token: ShardedMap<TokenHash, PackedId>,
    pub(crate) by_user: MultiIndex<u64>,
    pub(crate) by_device: MultiIndex<u64>,
    pub(crate) by_creator: MultiIndex<u64>,
    pub(crate) by_ip: MultiIndex<u64>,
    pub(crate) by_created: OrderedIndex,
    pub(crate) by_active: OrderedIndex,
    pub(crate) by_expiry: OrderedIndex,
}

impl std::fmt::Debug for MemoryStore {
    /// Counts only: sessions are not printed, and reading anything else would take locks.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("quota", &self.quota)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Every index key of one session body.
struct Keys {
    token: TokenHash,
    user: [Option<u64>; 1],
    device: [Option<u64>; 1],
    creator: [Option<u64>; 1],
    /// Fingerprints of `ip_address` and `last_access_ip`, the second `None` when equal to the
    /// first.
    ips: [Option<u64>; 2],
    created: IndexKey,
    active: IndexKey,
    expiry: IndexKey,
}

/// The stripes held by an operation on one session.
struct Held<'a> {
    _id: StripeGuard<'a>,
    _keys: Option<StripeGuard<'a>>,
}

/// The hook of the plain trait methods: nothing to log.
fn no_hook(_: &[Mutation]) -> Result<(), SessionError> {
    Ok(())
}

impl MemoryStore {
    /// An empty store reading time from `clock`.
    ///
    /// # Errors
    /// [`MemoryStoreError::InvalidOptions`] if `quota.sessions_per_user_max` is 0;
    /// [`MemoryStoreError::CapacityUnavailable`] if `capacity` cannot be reserved.
    pub fn new(
        clock: Arc<dyn Clock>,
        options: StoreOptions,
    ) -> Result<MemoryStore, MemoryStoreError> {
        if options.quota.sessions_per_user_max == 0 {
            return Err(MemoryStoreError::InvalidOptions {
                reason: "quota.sessions_per_user_max is 0, must be at least 1".into(),
            });
        }
        let map_options = MapOptions {
            shard_count: Some(MAP_SHARD_COUNT),
            capacity: options.capacity,
        };
        let map_error = |source| MemoryStoreError::CapacityUnavailable {
            capacity: options.capacity,
            source,
        };
        Ok(MemoryStore {
            clock,
            quota: options.quota,
            fingerprints: DefaultHashBuilder::default(),
            id_stripes: Stripes::new(),
            key_stripes: Stripes::new(),
            sessions: ShardedMap::with_options(map_options.clone()).map_err(map_error)?,
            by_token: ShardedMap::with_options(map_options).map_err(map_error)?,
            by_user: MultiIndex::new(MULTI_INDEX_SHARD_COUNT),
            by_device: MultiIndex::new(MULTI_INDEX_SHARD_COUNT),
            by_creator: MultiIndex::new(MULTI_INDEX_SHARD_COUNT),
            by_ip: MultiIndex::new(MULTI_INDEX_SHARD_COUNT),
            by_created: OrderedIndex::new(ORDERED_SHARD_COUNT),
            by_active: OrderedIndex::new(ORDERED_SHARD_COUNT),
            by_expiry: OrderedIndex::new(ORDERED_SHARD_COUNT),
        })
    }

    /// The quota this store enforces.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Number of stored sessions, live or expired (summed shard by shard; exact when no writer
    /// runs).
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is stored.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Every stored session, live or expired, as shared pointers: a snapshot copies no body.
    ///
    /// Gathered shard by shard, so concurrent writes may or may not be included; a caller that
    /// needs the state at one log position must pause writers or replay idempotently across the
    /// gap (which [`MemoryStore::apply_replayed`] does).
    pub fn sessions(&self) -> Vec<Arc<Session>> {
        self.sessions.values()
    }

    /// [`SessionRepository::create`] that calls `hook` with `[Create]`, or
    /// `[Delete { evicted }, Create]` when [`QuotaPolicy::EvictOldest`] makes room, after the id,
    /// token and quota checks and before storing anything. Runs the hook holding the stripes of
    /// the id, the user and the token.
    ///
    /// # Errors
    /// As [`SessionRepository::create`], plus whatever `hook` returns.
    pub fn create_with(
        &self,
        session: NewSession,
        hook: &mut CommitHook<'_>,
    ) -> Result<CreateOutcome, SessionError> {
        let id = PackedId::of(session.id());
        let fields = session.fields();
        let _id_stripe = self
            .id_stripes
            .lock(&mut vec![self.id_stripes.index_of(&id)]);
        let _key_stripes = self.key_stripes.lock(&mut vec![
            self.user_stripe(&fields.user_id),
            self.token_stripe(&fields.token_hash),
        ]);
        if self.sessions.contains_key(&id) {
            return Err(SessionError::IdConflict { id: session.id() });
        }
        if self.token_holder(&fields.token_hash).is_some() {
            return Err(SessionError::TokenConflict { id: session.id() });
        }
        let evicted = self.make_room(&fields.user_id)?;
        let created = Arc::new(Session::new(session, Session::VERSION_FIRST)?);
        let mut plan = Vec::with_capacity(2);
        if let Some(victim) = &evicted {
            plan.push(Mutation::Delete {
                id: victim.id(),
                version: victim.version(),
            });
        }
        plan.push(Mutation::Create(Arc::clone(&created)));
        hook(&plan)?;
        if let Some(victim) = &evicted {
            self.apply_remove(victim);
        }
        self.apply_insert(Arc::clone(&created));
        Ok(CreateOutcome {
            session: Session::clone(&created),
            evicted: evicted.map(|victim| Session::clone(&victim)),
        })
    }

    /// [`SessionRepository::update`] that calls `hook` with `[Update(new body)]` after the
    /// version, owner and token checks; the body carries the new version and the later
    /// `last_active`. Runs the hook holding the stripes of the id, the user and the new token.
    ///
    /// # Errors
    /// As [`SessionRepository::update`], plus whatever `hook` returns.
    pub fn update_with(
        &self,
        session: NewSession,
        expected_version: u64,
        hook: &mut CommitHook<'_>,
    ) -> Result<Session, SessionError> {
        let id = session.id();
        let packed = PackedId::of(id);
        let token_stripe = self.token_stripe(&session.fields().token_hash);
        let (_held, stored) = self.lock_session(packed, &mut vec![token_stripe]);
        let stored = stored.ok_or(SessionError::NotFound { id })?;
        if stored.version() != expected_version {
            return Err(SessionError::VersionConflict {
                id,
                expected: expected_version,
                actual: stored.version(),
            });
        }
        let mut fields = session.into_fields();
        let before = stored.fields();
        if fields.user_id != before.user_id {
            return Err(SessionError::InvalidField {
                field: "user_id",
                reason: "cannot change: a session belongs to one user for life".into(),
            });
        }
        if fields.created_at != before.created_at {
            return Err(SessionError::InvalidField {
                field: "created_at",
                reason: "cannot change".into(),
            });
        }
        if fields.token_hash != before.token_hash && self.token_holder(&fields.token_hash).is_some()
        {
            return Err(SessionError::TokenConflict { id });
        }
        let version =
            stored
                .version()
                .checked_add(1)
                .ok_or_else(|| SessionError::InvalidField {
                    field: "version",
                    reason: "is u64::MAX, cannot grow".into(),
                })?;
        // A touch that ran since the caller read the session is not undone.
        fields.last_active = fields.last_active.max(before.last_active);
        let updated = Arc::new(Session::from_fields(fields, version)?);
        hook(&[Mutation::Update(Arc::clone(&updated))])?;
        self.apply_replace(&stored, Arc::clone(&updated));
        Ok(Session::clone(&updated))
    }

    /// [`SessionRepository::delete`] that calls `hook` with `[Delete]` when the session exists
    /// (and not at all otherwise). Runs the hook holding the stripes of the id and the user.
    ///
    /// # Errors
    /// Whatever `hook` returns.
    pub fn delete_with(
        &self,
        id: SessionId,
        hook: &mut CommitHook<'_>,
    ) -> Result<bool, SessionError> {
        let (_held, stored) = self.lock_session(PackedId::of(id), &mut Vec::new());
        let Some(stored) = stored else {
            return Ok(false);
        };
        hook(&[Mutation::Delete {
            id,
            version: stored.version(),
        }])?;
        self.apply_remove(&stored);
        Ok(true)
    }

    /// [`TokenRepository::touch`] that calls `hook` with `[Touch]` after the expiry check. Runs
    /// the hook holding the stripes of the id and the user.
    ///
    /// # Errors
    /// As [`TokenRepository::touch`], plus whatever `hook` returns.
    pub fn touch_with(
        &self,
        id: SessionId,
        now: Timestamp,
        last_access_ip: Option<IpAddr>,
        hook: &mut CommitHook<'_>,
    ) -> Result<Session, SessionError> {
        let (_held, stored) = self.lock_session(PackedId::of(id), &mut Vec::new());
        let stored = stored.ok_or(SessionError::NotFound { id })?;
        check_live(&stored, self.clock.now())?;
        let touched = Arc::new(touched(&stored, now, last_access_ip)?);
        hook(&[Mutation::Touch {
            id,
            last_active: now,
            last_access_ip,
        }])?;
        self.apply_replace(&stored, Arc::clone(&touched));
        Ok(Session::clone(&touched))
    }

    /// [`SessionRepository::delete_by_user`] that calls `hook` once with one `Delete` per
    /// session of the user (live or expired), in id order, if there is any. Runs the hook
    /// holding the user's stripe.
    ///
    /// # Errors
    /// Whatever `hook` returns.
    pub fn delete_by_user_with(
        &self,
        user_id: &UserId,
        hook: &mut CommitHook<'_>,
    ) -> Result<u64, SessionError> {
        let _user_stripe = self.key_stripes.lock(&mut vec![self.user_stripe(user_id)]);
        let mut doomed = self.sessions_of_user(user_id);
        doomed.sort_unstable_by_key(|session| session.id());
        self.remove_all(&doomed, hook)
    }

    /// [`SessionRepository::cleanup_expired`] that calls `hook` once per user that has expired
    /// sessions, with one `Delete` each, holding that user's stripe.
    ///
    /// Candidates come from the expiry index, so the cost follows the number removed, not the
    /// number stored. Each user's batch (its `Delete`s in id order) is all or nothing; if `hook`
    /// fails for one, the batches of users before it stay applied (they were logged), the rest
    /// are not attempted, and the error is returned.
    ///
    /// # Errors
    /// Whatever `hook` returns.
    pub fn cleanup_expired_with(&self, hook: &mut CommitHook<'_>) -> Result<u64, SessionError> {
        let now = self.clock.now();
        let mut expired = Vec::new();
        self.by_expiry.walk_shards(
            KeyRange {
                lower: Bound::Unbounded,
                upper: Bound::Included(IndexKey::last_at(now)),
            },
            Direction::Ascending,
            || {},
            |key| {
                expired.push(key.id);
                true
            },
        );
        // Group the candidates by owner: each user's batch is re-checked and removed under
        // that user's stripe, which is what serializes it with the user's other mutations.
        let mut candidates: Vec<(UserId, PackedId)> = expired
            .into_iter()
            .filter_map(|id| {
                self.sessions
                    .get_with(&id, |session| (session.fields().user_id.clone(), id))
            })
            .collect();
        candidates.sort_unstable();
        let mut removed = 0;
        for batch in candidates.chunk_by(|a, b| a.0 == b.0) {
            let user_id = &batch[0].0;
            let _user_stripe = self.key_stripes.lock(&mut vec![self.user_stripe(user_id)]);
            // Still stored, still this user's, still expired: a touch or update since the walk
            // may have extended it.
            let doomed: Vec<Arc<Session>> = batch
                .iter()
                .filter_map(|(_, id)| self.sessions.get(id))
                .filter(|session| {
                    session.fields().user_id == *user_id && session.is_expired_at(now)
                })
                .collect();
            removed += self.remove_all(&doomed, hook)?;
        }
        Ok(removed)
    }

    /// Applies one mutation read back from a log during recovery: no quota, conflict or version
    /// checks (the log already decided) and no hook.
    ///
    /// Idempotent with respect to versions, so replaying from before a snapshot's true position
    /// converges on the logged state: a `Create` or `Update` whose version the store already has
    /// or exceeds is skipped, and an `Update` of a missing id stores the body; a `Delete` of a
    /// missing id, or of a session stored at a higher version, is skipped; a `Touch` of a missing
    /// id is skipped. A token claimed by a body while another stored session holds it stays
    /// with the holder (a later mutation in the log releases one of them).
    ///
    /// Caveat for snapshots taken while writes continue: a `Touch` carries no version, so
    /// replaying one that is older than an `Update` already in the snapshot re-applies its
    /// `last_access_ip` (its `last_active` is harmless: the later value is kept).
    ///
    /// # Errors
    /// [`SessionError::InvalidField`] if a `Touch` would make an invalid body (a body from the
    /// log was validated when decoded).
    pub fn apply_replayed(&self, mutation: &Mutation) -> Result<Replayed, SessionError> {
        let id = PackedId::of(mutation.session_id());
        match mutation {
            Mutation::Create(body) | Mutation::Update(body) => {
                let fields = body.fields();
                let mut extra = vec![
                    self.user_stripe(&fields.user_id),
                    self.token_stripe(&fields.token_hash),
                ];
                let (_held, stored) = self.lock_session(id, &mut extra);
                match stored {
                    Some(stored) if stored.version() >= body.version() => Ok(Replayed::Skipped),
                    Some(stored) => {
                        self.apply_replace(&stored, Arc::clone(body));
                        Ok(Replayed::Applied)
                    }
                    None => {
                        self.apply_insert(Arc::clone(body));
                        Ok(Replayed::Applied)
                    }
                }
            }
            Mutation::Delete { version, .. } => {
                let (_held, stored) = self.lock_session(id, &mut Vec::new());
                match stored {
                    Some(stored) if stored.version() <= *version => {
                        self.apply_remove(&stored);
                        Ok(Replayed::Applied)
                    }
                    _ => Ok(Replayed::Skipped),
                }
            }
            Mutation::Touch {
                last_active,
                last_access_ip,
                ..
            } => {
                let (_held, stored) = self.lock_session(id, &mut Vec::new());
                let Some(stored) = stored else {
                    return Ok(Replayed::Skipped);
                };
                let touched = touched(&stored, *last_active, *last_access_ip)?;
                if touched == *stored {
                    return Ok(Replayed::Skipped);
                }
                self.apply_replace(&stored, Arc::new(touched));
                Ok(Replayed::Applied)
            }
        }
    }

    // ----- locking -----

    fn user_stripe(&self, user_id: &UserId) -> StripeIndex {
        self.key_stripes.index_of(&(0_u8, user_id.as_str()))
    }

    fn token_stripe(&self, token: &TokenHash) -> StripeIndex {
        self.key_stripes.index_of(&(1_u8, token.as_bytes()))
    }

    /// Locks the id's stripe, then the owner's stripe plus `extra` key stripes, and returns the
    /// stored session as it is under those locks (`None` if there is none).
    ///
    /// The owner read before taking its stripe is still the owner afterwards: a session's user
    /// never changes, and storing the id again for another user needs the id stripe held here.
    fn lock_session(
        &self,
        id: PackedId,
        extra: &mut Vec<StripeIndex>,
    ) -> (Held<'_>, Option<Arc<Session>>) {
        let id_stripe = self
            .id_stripes
            .lock(&mut vec![self.id_stripes.index_of(&id)]);
        let Some(seen) = self.sessions.get(&id) else {
            let keys = (!extra.is_empty()).then(|| self.key_stripes.lock(extra));
            return (
                Held {
                    _id: id_stripe,
                    _keys: keys,
                },
                None,
            );
        };
        extra.push(self.user_stripe(&seen.fields().user_id));
        let keys = self.key_stripes.lock(extra);
        let current = self.sessions.get(&id);
        debug_assert!(
            current
                .as_ref()
                .is_none_or(|current| current.fields().user_id == seen.fields().user_id),
            "the owner of an id changed under its id stripe"
        );
        (
            Held {
                _id: id_stripe,
                _keys: Some(keys),
            },
            current,
        )
    }

    // ----- validation helpers (callers hold the relevant stripes) -----

    /// The stored session that holds `token`, ignoring a stale index entry.
    fn token_holder(&self, token: &TokenHash) -> Option<Arc<Session>> {
        let id = self.by_token.get(token)?;
        self.sessions
            .get(&id)
            .filter(|session| session.fields().token_hash == *token)
    }

    /// Every stored session of `user_id`, live or expired.
    fn sessions_of_user(&self, user_id: &UserId) -> Vec<Arc<Session>> {
        let mut ids = Vec::new();
        self.by_user
            .ids_into(&self.fingerprint(user_id.as_str()), &mut ids);
        ids.iter()
            .filter_map(|id| self.sessions.get(id))
            .filter(|session| session.fields().user_id == *user_id)
            .collect()
    }

    /// The user's live sessions, oldest created first.
    pub(crate) fn live_of_user(&self, user_id: &UserId, now: Timestamp) -> Vec<Arc<Session>> {
        let mut live = self.sessions_of_user(user_id);
        live.retain(|session| !session.is_expired_at(now));
        live.sort_unstable_by_key(|session| (session.fields().created_at, session.id()));
        live
    }

    /// Enforces the quota for one more session of `user_id`: `Ok(None)` when there is room,
    /// the session to evict under `EvictOldest`, or `QuotaExceeded` under `Reject`.
    ///
    /// A user already over the limit (possible after replay, which skips quota checks, or after
    /// the quota was lowered) loses one session per create under `EvictOldest`, so the count
    /// never grows.
    fn make_room(&self, user_id: &UserId) -> Result<Option<Arc<Session>>, SessionError> {
        let live = self.live_of_user(user_id, self.clock.now());
        if live.len() < self.quota.sessions_per_user_max as usize {
            return Ok(None);
        }
        match self.quota.policy {
            QuotaPolicy::Reject => Err(SessionError::QuotaExceeded {
                user_id: user_id.clone(),
                limit: self.quota.sessions_per_user_max,
            }),
            QuotaPolicy::EvictOldest => Ok(live.into_iter().next()),
        }
    }

    /// Logs and removes `doomed` as one batch.
    fn remove_all(
        &self,
        doomed: &[Arc<Session>],
        hook: &mut CommitHook<'_>,
    ) -> Result<u64, SessionError> {
        if doomed.is_empty() {
            return Ok(0);
        }
        let plan: Vec<Mutation> = doomed
            .iter()
            .map(|session| Mutation::Delete {
                id: session.id(),
                version: session.version(),
            })
            .collect();
        hook(&plan)?;
        for session in doomed {
            self.apply_remove(session);
        }
        Ok(doomed.len() as u64)
    }

    // ----- applying (callers hold the stripes of everything touched) -----

    pub(crate) fn fingerprint(&self, text: &str) -> u64 {
        self.fingerprints.hash_one(text)
    }

    /// An address as an index key: 8 bytes instead of `IpAddr`'s 17, which pad a hash table
    /// entry from 32 to 48 bytes.
    pub(crate) fn ip_fingerprint(&self, ip: IpAddr) -> u64 {
        self.fingerprints.hash_one(ip)
    }

    fn keys_of(&self, session: &Session) -> Keys {
        let fields = session.fields();
        let last_access_ip = fields
            .last_access_ip
            .filter(|ip| fields.ip_address != Some(*ip));
        Keys {
            token: fields.token_hash,
            user: [Some(self.fingerprint(fields.user_id.as_str()))],
            device: [fields
                .device_id
                .as_ref()
                .map(|device| self.fingerprint(device.as_str()))],
            creator: [fields
                .created_by
                .as_ref()
                .map(|key| self.fingerprint(key.as_str()))],
            ips: [
                fields.ip_address.map(|ip| self.ip_fingerprint(ip)),
                last_access_ip.map(|ip| self.ip_fingerprint(ip)),
            ],
            created: IndexKey::new(fields.created_at, session.id()),
            active: IndexKey::new(fields.last_active, session.id()),
            expiry: IndexKey::new(session.expiry(), session.id()),
        }
    }

    /// Points `token` at `id` unless another stored session holds it. The caller holds the
    /// token's stripe, so no other claim of `token` runs concurrently; concurrent removals of
    /// stale entries compare ids and cannot remove this one.
    fn claim_token(&self, token: TokenHash, id: PackedId) {
        if let Some(holder) = self.by_token.get(&token)
            && holder != id
            && self
                .sessions
                .get_with(&holder, |session| session.fields().token_hash == token)
                .unwrap_or(false)
        {
            return;
        }
        self.by_token.insert(token, id);
    }

    /// Stores a new session: indexes first, then the primary record (the commit point).
    fn apply_insert(&self, session: Arc<Session>) {
        let id = PackedId::of(session.id());
        let keys = self.keys_of(&session);
        self.claim_token(keys.token, id);
        add_keys(&self.by_user, &[], &keys.user, id);
        add_keys(&self.by_device, &[], &keys.device, id);
        add_keys(&self.by_creator, &[], &keys.creator, id);
        add_keys(&self.by_ip, &[], &keys.ips, id);
        self.by_created.insert(keys.created);
        self.by_active.insert(keys.active);
        self.by_expiry.insert(keys.expiry);
        self.sessions.insert(id, session);
    }

    /// Removes a stored session: the primary record first (the commit point), then its index
    /// entries.
    fn apply_remove(&self, stored: &Session) {
        let id = PackedId::of(stored.id());
        let keys = self.keys_of(stored);
        self.sessions.remove(&id);
        self.by_token.remove_if(&keys.token, |holder| *holder == id);
        drop_keys(&self.by_user, &keys.user, &[], id);
        drop_keys(&self.by_device, &keys.device, &[], id);
        drop_keys(&self.by_creator, &keys.creator, &[], id);
        drop_keys(&self.by_ip, &keys.ips, &[], id);
        self.by_created.remove(keys.created);
        self.by_active.remove(keys.active);
        self.by_expiry.remove(keys.expiry);
    }

    /// Replaces a stored body: new index keys first, then the primary record (the commit
    /// point), then the keys only the old body had. Time-index entries move in one step each.
    fn apply_replace(&self, old: &Session, new: Arc<Session>) {
        let id = PackedId::of(new.id());
        let (before, after) = (self.keys_of(old), self.keys_of(&new));
        if before.token != after.token {
            self.claim_token(after.token, id);
        }
        add_keys(&self.by_user, &before.user, &after.user, id);
        add_keys(&self.by_device, &before.device, &after.device, id);
        add_keys(&self.by_creator, &before.creator, &after.creator, id);
        add_keys(&self.by_ip, &before.ips, &after.ips, id);
        self.sessions.insert(id, new);
        if before.token != after.token {
            self.by_token
                .remove_if(&before.token, |holder| *holder == id);
        }
        drop_keys(&self.by_user, &before.user, &after.user, id);
        drop_keys(&self.by_device, &before.device, &after.device, id);
        drop_keys(&self.by_creator, &before.creator, &after.creator, id);
        drop_keys(&self.by_ip, &before.ips, &after.ips, id);
        self.by_created.relocate(before.created, after.created);
        self.by_active.relocate(before.active, after.active);
        self.by_expiry.relocate(before.expiry, after.expiry);
    }

    /// Breaks the token index on purpose, for the repair test.
    #[cfg(test)]
    pub(crate) fn point_token_at(&self, token: TokenHash, id: SessionId) {
        self.by_token.insert(token, PackedId::of(id));
    }

    /// Removes `token`'s index entry if it points at a session that does not hold it. Takes the
    /// token's stripe, so it never races a claim in flight (whose entry precedes its record).
    fn repair_token(&self, token: &TokenHash) {
        let _token_stripe = self.key_stripes.lock(&mut vec![self.token_stripe(token)]);
        let Some(id) = self.by_token.get(token) else {
            return;
        };
        let held = self
            .sessions
            .get_with(&id, |session| session.fields().token_hash == *token)
            .unwrap_or(false);
        if !held {
            self.by_token.remove_if(token, |holder| *holder == id);
        }
    }
}

/// Adds `id` under each key of `new` that `old` does not have.
fn add_keys<K: std::hash::Hash + Eq + Copy>(
    index: &MultiIndex<K>,
    old: &[Option<K>],
    new: &[Option<K>],
    id: PackedId,
) {
    for key in new.iter().flatten() {
        if !old.contains(&Some(*key)) {
            index.insert(*key, id);
        }
    }
}

/// Removes `id` from each key of `old` that `new` does not have.
fn drop_keys<K: std::hash::Hash + Eq + Copy>(
    index: &MultiIndex<K>,
    old: &[Option<K>],
    new: &[Option<K>],
    id: PackedId,
) {
    for key in old.iter().flatten() {
        if !new.contains(&Some(*key)) {
            index.remove(key, id);
        }
    }
}

/// `Expired` if `session` is expired at `now`.
fn check_live(session: &Session, now: Timestamp) -> Result<(), SessionError> {
    if session.is_expired_at(now) {
        return Err(SessionError::Expired {
            id: session.id(),
            expired_at: session.expiry(),
        });
    }
    Ok(())
}

/// `stored` after a use at `at` from `ip`: `last_active` never moves back, the version stays.
fn touched(stored: &Session, at: Timestamp, ip: Option<IpAddr>) -> Result<Session, SessionError> {
    let mut fields = stored.fields().clone();
    fields.last_active = fields.last_active.max(at);
    if ip.is_some() {
        fields.last_access_ip = ip;
    }
    Session::from_fields(fields, stored.version())
}

impl SessionRepository for MemoryStore {
    fn create(&self, session: NewSession) -> Result<CreateOutcome, SessionError> {
        self.create_with(session, &mut no_hook)
    }

    fn get(&self, id: SessionId) -> Result<Session, SessionError> {
        let stored = self
            .sessions
            .get(&PackedId::of(id))
            .ok_or(SessionError::NotFound { id })?;
        check_live(&stored, self.clock.now())?;
        Ok(Session::clone(&stored))
    }

    fn update(&self, session: NewSession, expected_version: u64) -> Result<Session, SessionError> {
        self.update_with(session, expected_version, &mut no_hook)
    }

    fn delete(&self, id: SessionId) -> Result<bool, SessionError> {
        self.delete_with(id, &mut no_hook)
    }

    fn list(
        &self,
        filter: &SessionFilter,
        sort: Sort,
        page: Page,
    ) -> Result<ListResult<Session>, SessionError> {
        Ok(self.list_page(filter, sort, page))
    }

    fn list_after(
        &self,
        filter: &SessionFilter,
        sort: Sort,
        after: Option<&Cursor>,
        limit: PageSize,
    ) -> Result<CursorPage<Session>, SessionError> {
        if let Some(cursor) = after {
            cursor.check_sort(sort)?;
        }
        Ok(self.list_slice(filter, sort, after, limit))
    }

    fn count_by_user(&self, user_id: &UserId) -> Result<u64, SessionError> {
        Ok(self.live_of_user(user_id, self.clock.now()).len() as u64)
    }

    fn list_by_user(&self, user_id: &UserId) -> Result<Vec<Session>, SessionError> {
        Ok(self
            .live_of_user(user_id, self.clock.now())
            .iter()
            .map(|session| Session::clone(session))
            .collect())
    }

    fn delete_by_user(&self, user_id: &UserId) -> Result<u64, SessionError> {
        self.delete_by_user_with(user_id, &mut no_hook)
    }

    fn cleanup_expired(&self) -> Result<u64, SessionError> {
        self.cleanup_expired_with(&mut no_hook)
    }
}

impl TokenRepository for MemoryStore {
    fn get_by_token_hash(&self, token_hash: &TokenHash) -> Result<Session, SessionError> {
        let id = self
            .by_token
            .get(token_hash)
            .ok_or(SessionError::TokenNotFound)?;
        let Some(stored) = self
            .sessions
            .get(&id)
            .filter(|session| session.fields().token_hash == *token_hash)
        else {
            // Stale entry (its session is gone or holds another token now), or a claim whose
            // record is not stored yet; the repair tells the two apart under the token's stripe.
            self.repair_token(token_hash);
            return Err(SessionError::TokenNotFound);
        };
        check_live(&stored, self.clock.now())?;
        Ok(Session::clone(&stored))
    }

    fn touch(
        &self,
        id: SessionId,
        now: Timestamp,
        last_access_ip: Option<IpAddr>,
    ) -> Result<Session, SessionError> {
        self.touch_with(id, now, last_access_ip, &mut no_hook)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokm_domain::testkit::{SUITE_START, SessionFactory};
    use tokm_domain::{ManualClock, SessionFields};

    use super::*;

    fn store() -> (Arc<ManualClock>, MemoryStore) {
        let clock = Arc::new(ManualClock::new(SUITE_START));
        let store = MemoryStore::new(clock.clone(), StoreOptions::default()).unwrap();
        (clock, store)
    }

    #[test]
    fn token_lookup_repairs_an_entry_pointing_at_another_session() {
        let (_clock, store) = store();
        let mut sessions = SessionFactory::new(1, SUITE_START);
        let a = store
            .create(sessions.next_for(&SessionFactory::user(1)))
            .unwrap();
        let b = store
            .create(sessions.next_for(&SessionFactory::user(1)))
            .unwrap();
        let token = a.session.fields().token_hash;
        store.point_token_at(token, b.session.id());
        assert_eq!(
            store.get_by_token_hash(&token).unwrap_err().code(),
            "TM-SESS-4042",
            "b does not hold a's token, so the entry is not trusted"
        );
        assert_eq!(store.by_token.get(&token), None, "the stale entry is gone");
        // Nothing the index lost is still needed: claiming the token again works.
        let stolen = store
            .update(
                {
                    let mut fields = b.session.fields().clone();
                    fields.token_hash = token;
                    NewSession::new(fields).unwrap()
                },
                b.session.version(),
            )
            .unwrap();
        assert_eq!(store.get_by_token_hash(&token).unwrap(), stolen);
    }

    #[test]
    fn token_lookup_repairs_an_entry_pointing_at_a_missing_session() {
        let (_clock, store) = store();
        let mut sessions = SessionFactory::new(2, SUITE_START);
        let ghost = sessions.next_for(&SessionFactory::user(1));
        let token = ghost.fields().token_hash;
        store.point_token_at(token, ghost.id());
        assert_eq!(
            store.get_by_token_hash(&token).unwrap_err().code(),
            "TM-SESS-4042"
        );
        assert_eq!(store.by_token.get(&token), None);
        store.create(ghost.clone()).unwrap();
        assert_eq!(store.get_by_token_hash(&token).unwrap().id(), ghost.id());
    }

    #[test]
    fn token_lookup_keeps_a_valid_entry() {
        let (_clock, store) = store();
        let mut sessions = SessionFactory::new(3, SUITE_START);
        let created = store
            .create(sessions.next_for(&SessionFactory::user(1)))
            .unwrap();
        store.repair_token(&created.session.fields().token_hash);
        assert_eq!(
            store
                .get_by_token_hash(&created.session.fields().token_hash)
                .unwrap(),
            created.session
        );
    }

    /// Every index entry of every session, counted, so a test can see nothing leaks.
    fn index_entry_count(store: &MemoryStore) -> usize {
        let mut count = 0;
        for index in [&store.by_created, &store.by_active, &store.by_expiry] {
            index.walk_shards(
                KeyRange::ALL,
                Direction::Ascending,
                || {},
                |_| {
                    count += 1;
                    true
                },
            );
        }
        count + store.by_token.len()
    }

    #[test]
    fn moves_and_removals_leave_no_index_entry_behind() {
        let (clock, store) = store();
        let mut sessions = SessionFactory::new(4, SUITE_START);
        let user = SessionFactory::user(1);
        let mut fields: SessionFields = sessions.next_for(&user).into_fields();
        fields.idle_timeout = Some(Duration::from_secs(60));
        let created = store
            .create(NewSession::new(fields).unwrap())
            .unwrap()
            .session;
        assert_eq!(index_entry_count(&store), 4);
        clock.advance(Duration::from_secs(1));
        let ip = "192.0.2.1".parse().unwrap();
        let touched = store.touch(created.id(), clock.now(), Some(ip)).unwrap();
        let mut rotated = touched.fields().clone();
        rotated.token_hash = TokenHash::of_token("rotated").unwrap();
        rotated.device_id = None;
        let updated = store
            .update(NewSession::new(rotated).unwrap(), touched.version())
            .unwrap();
        assert_eq!(
            index_entry_count(&store),
            4,
            "entries moved, none duplicated"
        );
        let ip_filter = SessionFilter {
            ip_address: Some(ip),
            ..SessionFilter::default()
        };
        let listed = store
            .list(&ip_filter, Sort::default(), Page::default())
            .unwrap();
        assert_eq!(listed.items, vec![updated.clone()]);
        assert!(store.delete(created.id()).unwrap());
        assert_eq!(index_entry_count(&store), 0);
        assert_eq!(store.by_user.count(&store.fingerprint(user.as_str())), 0);
        assert_eq!(store.by_ip.count(&store.ip_fingerprint(ip)), 0);
    }

    #[test]
    fn zero_quota_is_refused() {
        let clock = Arc::new(ManualClock::new(SUITE_START));
        let options = StoreOptions {
            quota: Quota {
                sessions_per_user_max: 0,
                policy: QuotaPolicy::Reject,
            },
            capacity: 0,
        };
        let err = MemoryStore::new(clock, options).unwrap_err();
        assert_eq!(err.code(), "TM-MEMS-4001");
    }
}

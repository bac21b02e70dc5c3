//! [`MemoryStore`]: the records, the write path (prepare, then the caller applies), replay, and
//! point reads.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use parking_lot::{Condvar, Mutex};
use tokm_cmap::DefaultHashBuilder;
use tokm_domain::{
    Clock, CreateOutcome, Cursor, CursorPage, ListResult, Mutation, NewSession, Page, PageSize,
    Quota, QuotaPolicy, Session, SessionError, SessionFilter, SessionId, SessionRecord,
    SessionRepository, Sort, Timestamp, TokenHash, TokenRepository, UserId,
};

use crate::capture::Capture;
use crate::error::MemoryStoreError;
use crate::index::{
    Direction, Fingerprint, IndexKey, KeyRange, MultiIndex, OrderedIndex, PackedId,
};
use crate::primary::Primary;
use crate::shards::TableLayout;
use crate::stripes::{StripeGuard, StripeIndex, Stripes};
use crate::usage::MemoryUsage;
use crate::write::{ExpiredCleanup, Held, Mutations, Plan, PreparedWrite};

/// Shards of each time-ordered index. An early-stopping cursor walk reads up to `limit + 1`
/// entries from every shard, so more shards cost list latency; 16 keeps a 100-item slice under
/// ~1,700 primary lookups while spreading writers.
const ORDERED_SHARD_COUNT: usize = 16;

/// How to build a [`MemoryStore`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// The per-user limit on live sessions and what `create` does at it.
    pub quota: Quota,
    /// Sessions to reserve room for up front in the primary map and the token, user, device and
    /// address indexes; it also picks their shard counts, so that this many sessions fill each
    /// table to about 84% (see the crate docs). 0 reserves nothing (they grow as needed).
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

/// What one expiry sweep step ([`MemoryStore::prepare_sweep_expired`]) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Expired sessions removed.
    pub removed_count: u64,
    /// The step stopped at its limit: more expired sessions may remain.
    pub limit_reached: bool,
}

/// An in-memory session store implementing [`SessionRepository`] and [`TokenRepository`].
///
/// See the crate docs for the design: indexes, lock order, consistency, costs.
pub struct MemoryStore {
    pub(crate) clock: Arc<dyn Clock>,
    quota: Quota,
    /// Seeded per store: fingerprints keys (user, device, API key, address, token) for the
    /// indexes, so an index holds 4 bytes per key instead of a copy of the text or address.
    fingerprints: DefaultHashBuilder,
    /// Lock order 1: taken by operations on one session id, before any key stripe; at most one
    /// held per thread.
    id_stripes: Stripes,
    /// Lock order 2: user and token stripes, several at once in ascending index order.
    key_stripes: Stripes,
    /// The primary map; a record's presence here is the commit point of every mutation.
    pub(crate) records: Primary,
    pub(crate) by_token: MultiIndex,
    pub(crate) by_user: MultiIndex,
    pub(crate) by_device: MultiIndex,
    pub(crate) by_creator: MultiIndex,
    pub(crate) by_ip: MultiIndex,
    pub(crate) by_created: OrderedIndex,
    pub(crate) by_active: OrderedIndex,
    pub(crate) by_expiry: OrderedIndex,
    /// Whether a [`Capture`] is alive; [`MemoryStore::capture`] waits on `capture_ended` while
    /// it is. Never held together with another lock.
    capturing: Mutex<bool>,
    capture_ended: Condvar,
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

/// Every index key of one session record.
pub(crate) struct Keys {
    pub(crate) token: Fingerprint,
    pub(crate) user: [Option<Fingerprint>; 1],
    pub(crate) device: [Option<Fingerprint>; 1],
    pub(crate) creator: [Option<Fingerprint>; 1],
    /// Fingerprints of `ip_address` and `last_access_ip`, the second `None` when equal to the
    /// first.
    pub(crate) ips: [Option<Fingerprint>; 2],
    pub(crate) created: IndexKey,
    pub(crate) active: IndexKey,
    pub(crate) expiry: IndexKey,
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
        let layout = TableLayout::for_capacity(options.capacity);
        MemoryStore::with_layout(clock, options, layout)
    }

    /// An empty store whose hash tables have `layout`'s shards, each reserving
    /// `layout.shard_capacity`.
    pub(crate) fn with_layout(
        clock: Arc<dyn Clock>,
        options: StoreOptions,
        layout: TableLayout,
    ) -> Result<MemoryStore, MemoryStoreError> {
        if options.quota.sessions_per_user_max == 0 {
            return Err(MemoryStoreError::InvalidOptions {
                reason: "quota.sessions_per_user_max is 0, must be at least 1".into(),
            });
        }
        let unavailable = |structure: &'static str| {
            move |_| MemoryStoreError::CapacityUnavailable {
                capacity: options.capacity,
                structure,
            }
        };
        Ok(MemoryStore {
            clock,
            quota: options.quota,
            fingerprints: DefaultHashBuilder::default(),
            id_stripes: Stripes::new(),
            key_stripes: Stripes::new(),
            records: Primary::new(layout).map_err(unavailable("primary map"))?,
            by_token: MultiIndex::new(layout).map_err(unavailable("token index"))?,
            by_user: MultiIndex::new(layout).map_err(unavailable("user index"))?,
            by_device: MultiIndex::new(layout).map_err(unavailable("device index"))?,
            // Sessions created through an API key are usually few; this index grows as needed.
            by_creator: MultiIndex::unreserved(layout.shard_count),
            by_ip: MultiIndex::new(layout).map_err(unavailable("address index"))?,
            by_created: OrderedIndex::new(ORDERED_SHARD_COUNT),
            by_active: OrderedIndex::new(ORDERED_SHARD_COUNT),
            by_expiry: OrderedIndex::new(ORDERED_SHARD_COUNT),
            capturing: Mutex::new(false),
            capture_ended: Condvar::new(),
        })
    }

    /// The quota this store enforces.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Number of stored sessions, live or expired (summed shard by shard; exact when no writer
    /// runs).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no session is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `visit` on every stored session, live or expired, shard by shard of the primary
    /// map, holding each shard's read lock only while visiting its records (so writers to
    /// that shard wait for `visit`, and `visit` must not call this store).
    ///
    /// Not a point-in-time view: a session written while the walk runs may be seen before or
    /// after the write, or (if created or deleted) not at all. [`MemoryStore::capture`] gives
    /// one instant.
    pub fn for_each(&self, mut visit: impl FnMut(&SessionRecord)) {
        self.records.for_each(&mut visit);
    }

    /// Every stored session, live or expired, gathered by [`MemoryStore::for_each`] (same
    /// caveat: not one instant). Records share their bytes with the store.
    pub fn records(&self) -> Vec<SessionRecord> {
        let mut records = Vec::with_capacity(self.len());
        self.for_each(|record| records.push(record.clone()));
        records
    }

    /// Starts a capture of every stored session as of one instant (see [`Capture`]), waiting
    /// while another capture is alive.
    ///
    /// The instant is when every primary shard is write-locked at once, which takes time in
    /// the number of shards, not sessions. Until the `Capture` is dropped, the first write to
    /// each session in a shard not yet copied keeps the old record aside (a pointer copy), so
    /// [`Capture::next_shard`] can hand out the shard as it was. A write waits at most for the
    /// copy of its shard (its records' pointers).
    pub fn capture(&self) -> Capture<'_> {
        let mut capturing = self.capturing.lock();
        // Bounded by the captures alive or queued before this one; each ends when dropped.
        while *capturing {
            self.capture_ended.wait(&mut capturing);
        }
        *capturing = true;
        drop(capturing);
        let session_count = self.records.begin_capture();
        Capture::new(self, session_count, AtomicUsize::new(0))
    }

    /// Ends the running capture: copy-on-write stops and a waiting `capture` may begin.
    pub(crate) fn end_capture(&self) {
        self.records.end_capture();
        *self.capturing.lock() = false;
        self.capture_ended.notify_one();
    }

    /// Heap bytes held by each structure: an estimate computed from table capacities and
    /// record lengths (allocator overhead modelled on glibc; no allocator is asked), read shard
    /// by shard. Cheap: O(shards + chunks of the ordered indexes), no record is read.
    pub fn memory_usage(&self) -> MemoryUsage {
        let (primary_map_bytes, record_bytes) = self.records.memory_bytes();
        let bytes = |value: usize| value as u64;
        MemoryUsage {
            session_count: self.len() as u64,
            record_bytes: bytes(record_bytes),
            primary_map_bytes: bytes(primary_map_bytes),
            token_index_bytes: bytes(self.by_token.memory_bytes()),
            user_index_bytes: bytes(self.by_user.memory_bytes()),
            device_index_bytes: bytes(self.by_device.memory_bytes()),
            api_key_index_bytes: bytes(self.by_creator.memory_bytes()),
            ip_index_bytes: bytes(self.by_ip.memory_bytes()),
            created_index_bytes: bytes(self.by_created.memory_bytes()),
            active_index_bytes: bytes(self.by_active.memory_bytes()),
            expiry_index_bytes: bytes(self.by_expiry.memory_bytes()),
        }
    }

    // ----- the write path: prepare (validate under stripes), then the caller logs and applies

    /// Prepares [`SessionRepository::create`]: takes the stripes of the id, the user and the
    /// token, checks the id, the token and the quota, and returns the write. Its mutations
    /// are `[Create]`, or `[Delete { evicted }, Create]` when [`QuotaPolicy::EvictOldest`]
    /// makes room: the eviction travels with the create, logged and applied together.
    ///
    /// # Errors
    /// As [`SessionRepository::create`]; nothing is held or changed.
    pub fn prepare_create(
        &self,
        session: NewSession,
    ) -> Result<PreparedWrite<'_, CreateOutcome>, SessionError> {
        let id = PackedId::of(session.id());
        let fields = session.fields();
        let id_stripe = self
            .id_stripes
            .lock(&mut vec![self.id_stripes.index_of(&id)]);
        let key_stripes = self.key_stripes.lock(&mut vec![
            self.user_stripe(fields.user_id.as_str()),
            self.token_stripe(&fields.token_hash),
        ]);
        if self.records.contains(id) {
            return Err(SessionError::IdConflict { id: session.id() });
        }
        if self.token_holder(&fields.token_hash).is_some() {
            return Err(SessionError::TokenConflict { id: session.id() });
        }
        let evicted = self.make_room(&fields.user_id)?;
        let created = Arc::new(Session::new(session, Session::VERSION_FIRST)?);
        let record = SessionRecord::from_session(&created);
        let outcome = CreateOutcome {
            session: Session::clone(&created),
            evicted: evicted.as_ref().map(SessionRecord::to_session),
        };
        let mutations = match &evicted {
            Some(victim) => Mutations::Two([
                Mutation::Delete {
                    id: victim.id(),
                    version: victim.version(),
                },
                Mutation::Create(created),
            ]),
            None => Mutations::One([Mutation::Create(created)]),
        };
        Ok(PreparedWrite::new(
            self,
            Held {
                _id: Some(id_stripe),
                _keys: Some(key_stripes),
            },
            mutations,
            Plan::Insert { evicted, record },
            outcome,
        ))
    }

    /// Prepares [`SessionRepository::update`]: takes the stripes of the id, the user and the
    /// new token, checks the version, owner and token, and returns the write of
    /// `[Update(new body)]`; the body carries the new version and the later `last_active`.
    ///
    /// # Errors
    /// As [`SessionRepository::update`]; nothing is held or changed.
    pub fn prepare_update(
        &self,
        session: NewSession,
        expected_version: u64,
    ) -> Result<PreparedWrite<'_, Session>, SessionError> {
        let id = session.id();
        let packed = PackedId::of(id);
        let token_stripe = self.token_stripe(&session.fields().token_hash);
        let (held, stored) = self.lock_session(packed, &mut vec![token_stripe]);
        let stored = stored.ok_or(SessionError::NotFound { id })?;
        if stored.version() != expected_version {
            return Err(SessionError::VersionConflict {
                id,
                expected: expected_version,
                actual: stored.version(),
            });
        }
        let mut fields = session.into_fields();
        if fields.user_id.as_str() != stored.user_id() {
            return Err(SessionError::InvalidField {
                field: "user_id",
                reason: "cannot change: a session belongs to one user for life".into(),
            });
        }
        if fields.created_at != stored.created_at() {
            return Err(SessionError::InvalidField {
                field: "created_at",
                reason: "cannot change".into(),
            });
        }
        if fields.token_hash != stored.token_hash()
            && self.token_holder(&fields.token_hash).is_some()
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
        fields.last_active = fields.last_active.max(stored.last_active());
        let updated = Arc::new(Session::from_fields(fields, version)?);
        let record = SessionRecord::from_session(&updated);
        let outcome = Session::clone(&updated);
        Ok(PreparedWrite::new(
            self,
            held,
            Mutations::One([Mutation::Update(updated)]),
            Plan::Replace { stored, record },
            outcome,
        ))
    }

    /// Prepares [`SessionRepository::delete`]: takes the stripes of the id and the user and
    /// returns the write of `[Delete]` when the session exists, or a write with no mutations
    /// (nothing to log, applying it returns `false`) when it does not.
    pub fn prepare_delete(&self, id: SessionId) -> PreparedWrite<'_, bool> {
        let (held, stored) = self.lock_session(PackedId::of(id), &mut Vec::new());
        match stored {
            None => PreparedWrite::new(self, held, Mutations::NONE, Plan::Nothing, false),
            Some(stored) => PreparedWrite::new(
                self,
                held,
                Mutations::One([Mutation::Delete {
                    id,
                    version: stored.version(),
                }]),
                Plan::Remove(stored),
                true,
            ),
        }
    }

    /// Prepares [`TokenRepository::touch`]: takes the stripes of the id and the user, checks
    /// that the session is live, and returns the write of `[Touch]`.
    ///
    /// # Errors
    /// As [`TokenRepository::touch`]; nothing is held or changed.
    pub fn prepare_touch(
        &self,
        id: SessionId,
        now: Timestamp,
        last_access_ip: Option<IpAddr>,
    ) -> Result<PreparedWrite<'_, Session>, SessionError> {
        let (held, stored) = self.lock_session(PackedId::of(id), &mut Vec::new());
        let stored = stored.ok_or(SessionError::NotFound { id })?;
        check_live(&stored, self.clock.now())?;
        // Always valid: a touch only raises `last_active` and sets an address.
        let record = stored.touched(now, last_access_ip);
        let outcome = record.to_session();
        Ok(PreparedWrite::new(
            self,
            held,
            Mutations::One([Mutation::Touch {
                id,
                last_active: now,
                last_access_ip,
            }]),
            Plan::Replace { stored, record },
            outcome,
        ))
    }

    /// Prepares [`SessionRepository::delete_by_user`]: takes the user's stripe and returns one
    /// write of one `Delete` per session of the user (live or expired), in id order; applying
    /// it returns how many it removed.
    pub fn prepare_delete_by_user(&self, user_id: &UserId) -> PreparedWrite<'_, u64> {
        let user_stripe = self
            .key_stripes
            .lock(&mut vec![self.user_stripe(user_id.as_str())]);
        let mut doomed = self.sessions_of_user(user_id.as_str());
        doomed.sort_unstable_by_key(SessionRecord::id);
        self.prepare_removal(Some(user_stripe), doomed, |removed| removed)
    }

    /// Prepares [`SessionRepository::cleanup_expired`] as one write per user that has expired
    /// sessions (see [`ExpiredCleanup`]), judged by the store's clock now.
    pub fn prepare_cleanup_expired(&self) -> ExpiredCleanup<'_> {
        let now = self.clock.now();
        let (candidates, _) = self.expired_candidates(now, usize::MAX);
        ExpiredCleanup::new(self, now, candidates)
    }

    /// Prepares the removal of up to `limit` expired sessions of any users as one write of one
    /// `Delete` each: the bounded step of an expiry sweep, one log append however many users
    /// it spans. Applying it returns a [`Swept`].
    ///
    /// Holds the stripes of every user in the batch (taken together, in the usual order), so
    /// a writer of one of those users waits for at most one append. Sessions a touch or an
    /// update extended since the expiry index was read are left alone. A write with no
    /// mutations means nothing was expired (nothing to log).
    pub fn prepare_sweep_expired(&self, limit: usize) -> PreparedWrite<'_, Swept> {
        let now = self.clock.now();
        let (candidates, limit_reached) = self.expired_candidates(now, limit);
        let mut stripes: Vec<StripeIndex> = candidates
            .chunk_by(|a, b| a.0 == b.0)
            .map(|batch| self.user_stripe(&batch[0].0))
            .collect();
        let user_stripes = self.key_stripes.lock(&mut stripes);
        let doomed = self.still_expired(&candidates, now);
        self.prepare_removal(Some(user_stripes), doomed, |removed_count| Swept {
            removed_count,
            limit_reached,
        })
    }

    /// One user's batch of an [`ExpiredCleanup`]: `batch` holds that user's candidates.
    pub(crate) fn prepare_expired_of_user(
        &self,
        batch: &[(String, PackedId)],
        now: Timestamp,
    ) -> PreparedWrite<'_, u64> {
        let user_stripe = batch
            .first()
            .map(|(user_id, _)| self.key_stripes.lock(&mut vec![self.user_stripe(user_id)]));
        let doomed = self.still_expired(batch, now);
        self.prepare_removal(user_stripe, doomed, |removed| removed)
    }

    /// The write that removes `doomed`, one `Delete` each in that order, holding `stripes`.
    fn prepare_removal<'a, T>(
        &'a self,
        stripes: Option<StripeGuard<'a>>,
        doomed: Vec<SessionRecord>,
        outcome: impl FnOnce(u64) -> T,
    ) -> PreparedWrite<'a, T> {
        let mutations = doomed
            .iter()
            .map(|record| Mutation::Delete {
                id: record.id(),
                version: record.version(),
            })
            .collect();
        let outcome = outcome(doomed.len() as u64);
        PreparedWrite::new(
            self,
            Held {
                _id: None,
                _keys: stripes,
            },
            Mutations::Many(mutations),
            Plan::RemoveAll(doomed),
            outcome,
        )
    }
    /// Up to `limit` sessions the expiry index says expired by `now`, as `(user, id)` sorted by
    /// user then id, and whether the limit cut the walk short. Grouped by owner because
    /// removing them needs the owner's stripe, which serializes it with the user's other
    /// mutations.
    fn expired_candidates(&self, now: Timestamp, limit: usize) -> (Vec<(String, PackedId)>, bool) {
        let mut expired = Vec::new();
        let mut limit_reached = false;
        self.by_expiry.walk_shards(
            KeyRange {
                lower: Bound::Unbounded,
                upper: Bound::Included(IndexKey::last_at(now)),
            },
            Direction::Ascending,
            || {},
            |key| {
                if expired.len() >= limit {
                    limit_reached = true;
                    return false;
                }
                expired.push(key.id);
                true
            },
        );
        let mut candidates: Vec<(String, PackedId)> = expired
            .into_iter()
            .filter_map(|id| {
                self.records
                    .get_with(id, |record| (record.user_id().to_owned(), id))
            })
            .collect();
        candidates.sort_unstable();
        (candidates, limit_reached)
    }

    /// The candidates still stored, still their user's and still expired at `now`: a touch or
    /// an update since the index walk may have extended one. Callers hold the users' stripes.
    fn still_expired(
        &self,
        candidates: &[(String, PackedId)],
        now: Timestamp,
    ) -> Vec<SessionRecord> {
        candidates
            .iter()
            .filter_map(|(user_id, id)| {
                self.records
                    .get(*id)
                    .filter(|record| record.user_id() == user_id && record.is_expired_at(now))
            })
            .collect()
    }

    /// Applies one mutation read back from a log during recovery: no quota, conflict or version
    /// checks (the log already decided) and nothing to log.
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
    /// None today (a body from the log was validated when decoded, and a touch cannot make an
    /// invalid record); the `Result` leaves room for checks a later format may need.
    pub fn apply_replayed(&self, mutation: &Mutation) -> Result<Replayed, SessionError> {
        let id = PackedId::of(mutation.session_id());
        match mutation {
            Mutation::Create(body) | Mutation::Update(body) => {
                let fields = body.fields();
                let mut extra = vec![
                    self.user_stripe(fields.user_id.as_str()),
                    self.token_stripe(&fields.token_hash),
                ];
                let (_held, stored) = self.lock_session(id, &mut extra);
                match stored {
                    Some(stored) if stored.version() >= body.version() => Ok(Replayed::Skipped),
                    Some(stored) => {
                        self.apply_replace(&stored, SessionRecord::from_session(body));
                        Ok(Replayed::Applied)
                    }
                    None => {
                        self.apply_insert(SessionRecord::from_session(body));
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
                let touched = stored.touched(*last_active, *last_access_ip);
                if touched == stored {
                    return Ok(Replayed::Skipped);
                }
                self.apply_replace(&stored, touched);
                Ok(Replayed::Applied)
            }
        }
    }

    // ----- locking -----

    fn user_stripe(&self, user_id: &str) -> StripeIndex {
        self.key_stripes.index_of(&(0_u8, user_id))
    }

    fn token_stripe(&self, token: &TokenHash) -> StripeIndex {
        self.key_stripes.index_of(&(1_u8, token.as_bytes()))
    }

    /// Locks the id's stripe, then the owner's stripe plus `extra` key stripes, and returns the
    /// stored record as it is under those locks (`None` if there is none).
    ///
    /// The owner read before taking its stripe is still the owner afterwards: a session's user
    /// never changes, and storing the id again for another user needs the id stripe held here.
    fn lock_session(
        &self,
        id: PackedId,
        extra: &mut Vec<StripeIndex>,
    ) -> (Held<'_>, Option<SessionRecord>) {
        let id_stripe = self
            .id_stripes
            .lock(&mut vec![self.id_stripes.index_of(&id)]);
        let Some(seen) = self.records.get(id) else {
            let keys = (!extra.is_empty()).then(|| self.key_stripes.lock(extra));
            return (
                Held {
                    _id: Some(id_stripe),
                    _keys: keys,
                },
                None,
            );
        };
        extra.push(self.user_stripe(seen.user_id()));
        let keys = self.key_stripes.lock(extra);
        let current = self.records.get(id);
        debug_assert!(
            current
                .as_ref()
                .is_none_or(|current| current.user_id() == seen.user_id()),
            "the owner of an id changed under its id stripe"
        );
        (
            Held {
                _id: Some(id_stripe),
                _keys: Some(keys),
            },
            current,
        )
    }

    // ----- validation helpers (callers hold the relevant stripes) -----

    /// The stored record that holds `token`: the first id under the token's fingerprint whose
    /// record holds it (entries of other tokens with the same fingerprint are passed over).
    pub(crate) fn token_holder(&self, token: &TokenHash) -> Option<SessionRecord> {
        let mut ids = Vec::new();
        self.by_token
            .ids_into(self.token_fingerprint(token), &mut ids);
        ids.into_iter().find_map(|id| {
            self.records
                .get(id)
                .filter(|record| record.token_hash() == *token)
        })
    }

    /// Every stored record of `user_id`, live or expired.
    fn sessions_of_user(&self, user_id: &str) -> Vec<SessionRecord> {
        let mut ids = Vec::new();
        self.by_user.ids_into(self.fingerprint(user_id), &mut ids);
        ids.iter()
            .filter_map(|id| self.records.get(*id))
            .filter(|record| record.user_id() == user_id)
            .collect()
    }

    /// The user's live sessions, oldest created first.
    pub(crate) fn live_of_user(&self, user_id: &str, now: Timestamp) -> Vec<SessionRecord> {
        let mut live = self.sessions_of_user(user_id);
        live.retain(|record| !record.is_expired_at(now));
        live.sort_unstable_by_key(|record| (record.created_at(), record.id()));
        live
    }

    /// Enforces the quota for one more session of `user_id`: `Ok(None)` when there is room,
    /// the session to evict under `EvictOldest`, or `QuotaExceeded` under `Reject`.
    ///
    /// A user already over the limit (possible after replay, which skips quota checks, or after
    /// the quota was lowered) loses one session per create under `EvictOldest`, so the count
    /// never grows.
    fn make_room(&self, user_id: &UserId) -> Result<Option<SessionRecord>, SessionError> {
        let live = self.live_of_user(user_id.as_str(), self.clock.now());
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

    // ----- applying (callers hold the stripes of everything touched) -----

    pub(crate) fn fingerprint(&self, text: &str) -> Fingerprint {
        Fingerprint::from_hash(self.fingerprints.hash_one(text))
    }

    pub(crate) fn ip_fingerprint(&self, ip: IpAddr) -> Fingerprint {
        Fingerprint::from_hash(self.fingerprints.hash_one(ip))
    }

    pub(crate) fn token_fingerprint(&self, token: &TokenHash) -> Fingerprint {
        Fingerprint::from_hash(self.fingerprints.hash_one(token.as_bytes()))
    }

    pub(crate) fn keys_of(&self, record: &SessionRecord) -> Keys {
        let id = record.id();
        let ip = record.ip_address().map(|ip| self.ip_fingerprint(ip));
        let last_access_ip = record
            .last_access_ip()
            .map(|ip| self.ip_fingerprint(ip))
            .filter(|last| ip != Some(*last));
        Keys {
            token: self.token_fingerprint(&record.token_hash()),
            user: [Some(self.fingerprint(record.user_id()))],
            device: [record.device_id().map(|device| self.fingerprint(device))],
            creator: [record.created_by().map(|key| self.fingerprint(key))],
            ips: [ip, last_access_ip],
            created: IndexKey::new(record.created_at(), id),
            active: IndexKey::new(record.last_active(), id),
            expiry: IndexKey::new(record.expiry(), id),
        }
    }

    /// Indexes `token` for `id` unless another stored session holds it. The caller holds the
    /// token's stripe, so no other claim of `token` runs concurrently.
    fn claim_token(&self, token: &TokenHash, fingerprint: Fingerprint, id: PackedId) {
        if self
            .token_holder(token)
            .is_some_and(|holder| PackedId::of(holder.id()) != id)
        {
            return;
        }
        self.by_token.insert(fingerprint, id);
    }

    /// Stores a new session: indexes first, then the primary record (the commit point).
    pub(crate) fn apply_insert(&self, record: SessionRecord) {
        let id = PackedId::of(record.id());
        let keys = self.keys_of(&record);
        self.claim_token(&record.token_hash(), keys.token, id);
        add_keys(&self.by_user, &[], &keys.user, id);
        add_keys(&self.by_device, &[], &keys.device, id);
        add_keys(&self.by_creator, &[], &keys.creator, id);
        add_keys(&self.by_ip, &[], &keys.ips, id);
        self.by_created.insert(keys.created);
        self.by_active.insert(keys.active);
        self.by_expiry.insert(keys.expiry);
        self.records.insert(record);
    }

    /// Removes a stored session: the primary record first (the commit point), then its index
    /// entries.
    pub(crate) fn apply_remove(&self, stored: &SessionRecord) {
        let id = PackedId::of(stored.id());
        let keys = self.keys_of(stored);
        self.records.remove(id);
        self.by_token.remove(keys.token, id);
        drop_keys(&self.by_user, &keys.user, &[], id);
        drop_keys(&self.by_device, &keys.device, &[], id);
        drop_keys(&self.by_creator, &keys.creator, &[], id);
        drop_keys(&self.by_ip, &keys.ips, &[], id);
        self.by_created.remove(keys.created);
        self.by_active.remove(keys.active);
        self.by_expiry.remove(keys.expiry);
    }

    /// Replaces a stored record: new index keys first, then the primary record (the commit
    /// point), then the keys only the old record had. Time-index entries move in one step each.
    ///
    /// The token entry is keyed by fingerprint, so a new token whose fingerprint equals the
    /// old one's keeps the entry as it is (lookups confirm the token against the record).
    pub(crate) fn apply_replace(&self, old: &SessionRecord, new: SessionRecord) {
        let id = PackedId::of(new.id());
        let (before, after) = (self.keys_of(old), self.keys_of(&new));
        if before.token != after.token {
            self.claim_token(&new.token_hash(), after.token, id);
        }
        add_keys(&self.by_user, &before.user, &after.user, id);
        add_keys(&self.by_device, &before.device, &after.device, id);
        add_keys(&self.by_creator, &before.creator, &after.creator, id);
        add_keys(&self.by_ip, &before.ips, &after.ips, id);
        self.records.insert(new);
        if before.token != after.token {
            self.by_token.remove(before.token, id);
        }
        drop_keys(&self.by_user, &before.user, &after.user, id);
        drop_keys(&self.by_device, &before.device, &after.device, id);
        drop_keys(&self.by_creator, &before.creator, &after.creator, id);
        drop_keys(&self.by_ip, &before.ips, &after.ips, id);
        self.by_created.relocate(before.created, after.created);
        self.by_active.relocate(before.active, after.active);
        self.by_expiry.relocate(before.expiry, after.expiry);
    }
}

/// Adds `id` under each key of `new` that `old` does not have.
fn add_keys(
    index: &MultiIndex,
    old: &[Option<Fingerprint>],
    new: &[Option<Fingerprint>],
    id: PackedId,
) {
    for key in new.iter().flatten() {
        if !old.contains(&Some(*key)) {
            index.insert(*key, id);
        }
    }
}

/// Removes `id` from each key of `old` that `new` does not have.
fn drop_keys(
    index: &MultiIndex,
    old: &[Option<Fingerprint>],
    new: &[Option<Fingerprint>],
    id: PackedId,
) {
    for key in old.iter().flatten() {
        if !new.contains(&Some(*key)) {
            index.remove(*key, id);
        }
    }
}

/// `Expired` if `record` is expired at `now`.
fn check_live(record: &SessionRecord, now: Timestamp) -> Result<(), SessionError> {
    if record.is_expired_at(now) {
        return Err(SessionError::Expired {
            id: record.id(),
            expired_at: record.expiry(),
        });
    }
    Ok(())
}

impl SessionRepository for MemoryStore {
    fn create(&self, session: NewSession) -> Result<CreateOutcome, SessionError> {
        self.prepare_create(session).map(PreparedWrite::apply)
    }

    fn get(&self, id: SessionId) -> Result<Session, SessionError> {
        let stored = self
            .records
            .get(PackedId::of(id))
            .ok_or(SessionError::NotFound { id })?;
        check_live(&stored, self.clock.now())?;
        Ok(stored.to_session())
    }

    fn update(&self, session: NewSession, expected_version: u64) -> Result<Session, SessionError> {
        self.prepare_update(session, expected_version)
            .map(PreparedWrite::apply)
    }

    fn delete(&self, id: SessionId) -> Result<bool, SessionError> {
        Ok(self.prepare_delete(id).apply())
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
        self.list_slice(filter, sort, after, limit)
    }

    fn count_by_user(&self, user_id: &UserId) -> Result<u64, SessionError> {
        Ok(self.live_of_user(user_id.as_str(), self.clock.now()).len() as u64)
    }

    fn list_by_user(&self, user_id: &UserId) -> Result<Vec<Session>, SessionError> {
        Ok(self
            .live_of_user(user_id.as_str(), self.clock.now())
            .iter()
            .map(SessionRecord::to_session)
            .collect())
    }

    fn delete_by_user(&self, user_id: &UserId) -> Result<u64, SessionError> {
        Ok(self.prepare_delete_by_user(user_id).apply())
    }

    fn cleanup_expired(&self) -> Result<u64, SessionError> {
        let mut cleanup = self.prepare_cleanup_expired();
        let mut removed = 0;
        while let Some(batch) = cleanup.next_batch() {
            removed += batch.apply();
        }
        Ok(removed)
    }
}

impl TokenRepository for MemoryStore {
    fn get_by_token_hash(&self, token_hash: &TokenHash) -> Result<Session, SessionError> {
        // An entry whose record is not stored yet (a create in flight) or holds another token
        // (a fingerprint shared by two tokens) is passed over: the record decides.
        let stored = self
            .token_holder(token_hash)
            .ok_or(SessionError::TokenNotFound)?;
        check_live(&stored, self.clock.now())?;
        Ok(stored.to_session())
    }

    fn touch(
        &self,
        id: SessionId,
        now: Timestamp,
        last_access_ip: Option<IpAddr>,
    ) -> Result<Session, SessionError> {
        self.prepare_touch(id, now, last_access_ip)
            .map(PreparedWrite::apply)
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
    fn token_lookup_passes_over_an_entry_whose_record_holds_another_token() {
        let (_clock, store) = store();
        let mut sessions = SessionFactory::new(1, SUITE_START);
        let a = store
            .create(sessions.next_for(&SessionFactory::user(1)))
            .unwrap();
        let b = store
            .create(sessions.next_for(&SessionFactory::user(1)))
            .unwrap();
        let token = a.session.fields().token_hash;
        // As if b's token shared a's fingerprint, with b's entry found first.
        store.by_token.remove(
            store.token_fingerprint(&token),
            PackedId::of(a.session.id()),
        );
        store.by_token.insert(
            store.token_fingerprint(&token),
            PackedId::of(b.session.id()),
        );
        assert_eq!(
            store.get_by_token_hash(&token).unwrap_err().code(),
            "TM-SESS-4042",
            "b does not hold a's token, so its entry is not trusted"
        );
        store.by_token.insert(
            store.token_fingerprint(&token),
            PackedId::of(a.session.id()),
        );
        assert_eq!(store.get_by_token_hash(&token).unwrap(), a.session);
    }

    #[test]
    fn token_lookup_passes_over_an_entry_of_a_missing_session() {
        let (_clock, store) = store();
        let mut sessions = SessionFactory::new(2, SUITE_START);
        let ghost = sessions.next_for(&SessionFactory::user(1));
        let token = ghost.fields().token_hash;
        store
            .by_token
            .insert(store.token_fingerprint(&token), PackedId::of(ghost.id()));
        assert_eq!(
            store.get_by_token_hash(&token).unwrap_err().code(),
            "TM-SESS-4042"
        );
        store.create(ghost.clone()).unwrap();
        assert_eq!(store.get_by_token_hash(&token).unwrap().id(), ghost.id());
    }

    /// Every index entry of every session, counted, so a test can see nothing leaks.
    fn index_entry_count(store: &MemoryStore) -> usize {
        [
            &store.by_token,
            &store.by_user,
            &store.by_device,
            &store.by_creator,
            &store.by_ip,
        ]
        .iter()
        .map(|index| index.entry_count())
        .sum::<usize>()
            + [&store.by_created, &store.by_active, &store.by_expiry]
                .iter()
                .map(|index| index.entry_count())
                .sum::<usize>()
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
        let base = index_entry_count(&store);
        assert!(base >= 5, "token, user, three times at least");
        clock.advance(Duration::from_secs(1));
        let ip = "192.0.2.1".parse().unwrap();
        let touched = store.touch(created.id(), clock.now(), Some(ip)).unwrap();
        let mut rotated = touched.fields().clone();
        rotated.token_hash = TokenHash::of_token("rotated").unwrap();
        rotated.device_id = None;
        let updated = store
            .update(NewSession::new(rotated).unwrap(), touched.version())
            .unwrap();
        let new_ip = usize::from(created.fields().ip_address != Some(ip));
        let lost_device = usize::from(created.fields().device_id.is_some());
        assert_eq!(
            index_entry_count(&store),
            base + new_ip - lost_device,
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
        assert_eq!(store.memory_usage().record_bytes, 0);
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

    #[test]
    fn an_impossible_capacity_is_refused_not_a_panic() {
        let clock = Arc::new(ManualClock::new(SUITE_START));
        let options = StoreOptions {
            capacity: usize::MAX,
            ..StoreOptions::default()
        };
        let err = MemoryStore::new(clock, options).unwrap_err();
        assert_eq!(err.code(), "TM-MEMS-5071");
    }
}

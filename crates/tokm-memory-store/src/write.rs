//! [`PreparedWrite`]: a validated write that holds its stripes until it is applied or dropped,
//! and [`ExpiredCleanup`], which prepares `cleanup_expired` one user at a time.

use std::fmt;

use tokm_domain::{Mutation, SessionRecord, Timestamp};

use crate::index::PackedId;
use crate::store::MemoryStore;
use crate::stripes::StripeGuard;

/// A validated write to a [`MemoryStore`], not applied yet: the mutations a log must carry and
/// the changes that make them visible, holding the stripe locks that serialize it with every
/// conflicting write.
///
/// Made by the `prepare_*` methods of [`MemoryStore`]. The caller appends
/// [`PreparedWrite::mutations`] to its log, then calls [`PreparedWrite::apply`]; because the
/// stripes are held from validation to apply, two writes that conflict (same session, same
/// user, same token) are logged in the order they are applied. Dropping the guard without
/// applying it (a failed append) changes nothing and releases the stripes.
///
/// Until it is applied nothing is visible: readers (which take no stripe) see the state before
/// the write, and are never blocked by it. While it is alive, its thread must not start another
/// write on the same store: a write that needs one of its stripes would wait for itself.
#[must_use = "a prepared write changes nothing until `apply` is called"]
pub struct PreparedWrite<'a, T> {
    store: &'a MemoryStore,
    mutations: Mutations,
    plan: Plan,
    /// What [`PreparedWrite::apply`] returns, known once the write is validated.
    outcome: T,
    stripes: Held<'a>,
}

/// The stripes a write holds: its session's id stripe, when it names one, and key stripes
/// (users, token). Dropping it releases them.
pub(crate) struct Held<'a> {
    pub(crate) _id: Option<StripeGuard<'a>>,
    pub(crate) _keys: Option<StripeGuard<'a>>,
}

/// The records a write logs: inline for the usual one or two, so a point write allocates
/// nothing for them.
pub(crate) enum Mutations {
    One([Mutation; 1]),
    Two([Mutation; 2]),
    Many(Vec<Mutation>),
}

impl Mutations {
    /// No mutation: a write that changes nothing (and allocates nothing).
    pub(crate) const NONE: Mutations = Mutations::Many(Vec::new());

    fn as_slice(&self) -> &[Mutation] {
        match self {
            Mutations::One(one) => one,
            Mutations::Two(two) => two,
            Mutations::Many(many) => many,
        }
    }
}

/// The changes that make a write's mutations visible; each keeps the store's ordering rules
/// (index entries before the record is stored, after it is removed).
pub(crate) enum Plan {
    /// Nothing to change: the write found nothing to do (a delete of a missing id).
    Nothing,
    /// Remove `evicted` (a quota eviction), then store `record`.
    Insert {
        evicted: Option<SessionRecord>,
        record: SessionRecord,
    },
    /// Replace `stored` by `record`.
    Replace {
        stored: SessionRecord,
        record: SessionRecord,
    },
    /// Remove one stored session.
    Remove(SessionRecord),
    /// Remove several, in order.
    RemoveAll(Vec<SessionRecord>),
}

impl<'a, T> PreparedWrite<'a, T> {
    pub(crate) fn new(
        store: &'a MemoryStore,
        stripes: Held<'a>,
        mutations: Mutations,
        plan: Plan,
        outcome: T,
    ) -> PreparedWrite<'a, T> {
        PreparedWrite {
            store,
            mutations,
            plan,
            outcome,
            stripes,
        }
    }

    /// The mutations to log, in apply order: what replaying the write needs
    /// ([`MemoryStore::apply_replayed`] rebuilds the same state from them). Empty when the
    /// write changes nothing (a delete of a missing id, a sweep that found nothing expired):
    /// there is nothing to log.
    pub fn mutations(&self) -> &[Mutation] {
        self.mutations.as_slice()
    }

    /// Makes the write visible, releases its stripes and returns what the repository method
    /// returns (the created session and any eviction, the new body, whether a session was
    /// deleted, how many were removed).
    pub fn apply(self) -> T {
        let PreparedWrite {
            store,
            mutations,
            plan,
            outcome,
            stripes,
        } = self;
        match plan {
            Plan::Nothing => {}
            Plan::Insert { evicted, record } => {
                if let Some(victim) = &evicted {
                    store.apply_remove(victim);
                }
                store.apply_insert(record);
            }
            Plan::Replace { stored, record } => store.apply_replace(&stored, record),
            Plan::Remove(stored) => store.apply_remove(&stored),
            Plan::RemoveAll(doomed) => {
                for stored in &doomed {
                    store.apply_remove(stored);
                }
            }
        }
        drop(stripes);
        drop(mutations);
        outcome
    }
}

impl<T> fmt::Debug for PreparedWrite<'_, T> {
    /// Counts only: the mutations hold session bodies.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedWrite")
            .field("mutations", &self.mutations().len())
            .finish_non_exhaustive()
    }
}

/// [`SessionRepository::cleanup_expired`](tokm_domain::SessionRepository::cleanup_expired),
/// prepared one user at a time: made by [`MemoryStore::prepare_cleanup_expired`], which finds
/// the sessions the expiry index says expired (so the cost follows the number removed, not the
/// number stored).
///
/// Each [`ExpiredCleanup::next_batch`] locks one user's stripe, re-checks that user's
/// candidates (a touch or an update may have extended one since) and returns a write of one
/// `Delete` each, in id order. A caller that logs each batch before applying it, and stops at
/// the first failed append, leaves the batches before it applied (they were logged) and the
/// rest untouched.
pub struct ExpiredCleanup<'a> {
    store: &'a MemoryStore,
    now: Timestamp,
    /// `(user, id)`, sorted by user then id.
    candidates: Vec<(String, PackedId)>,
    /// Candidates before this one are done.
    next: usize,
}

impl<'a> ExpiredCleanup<'a> {
    pub(crate) fn new(
        store: &'a MemoryStore,
        now: Timestamp,
        candidates: Vec<(String, PackedId)>,
    ) -> ExpiredCleanup<'a> {
        ExpiredCleanup {
            store,
            now,
            candidates,
            next: 0,
        }
    }

    /// The next user's expired sessions as one write (holding that user's stripe), or `None`
    /// when no user is left. Users whose candidates are no longer expired are passed over, so
    /// a returned write always has mutations.
    ///
    /// The write borrows the cleanup, so only one batch is held at a time (a second user's
    /// stripe is never taken while one is held out of order).
    pub fn next_batch(&mut self) -> Option<PreparedWrite<'_, u64>> {
        loop {
            let rest = &self.candidates[self.next..];
            let user_id = &rest.first()?.0;
            let len = rest.iter().take_while(|(user, _)| user == user_id).count();
            self.next += len;
            let write = self.store.prepare_expired_of_user(&rest[..len], self.now);
            if !write.mutations().is_empty() {
                return Some(write);
            }
        }
    }
}

impl fmt::Debug for ExpiredCleanup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpiredCleanup")
            .field("now", &self.now)
            .field("candidates", &self.candidates.len())
            .field("done", &self.next)
            .finish_non_exhaustive()
    }
}

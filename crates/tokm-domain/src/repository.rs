//! The repository contract every session store implements.
//!
//! "Now" is always the store's injected [`Clock`](crate::Clock); no method takes a time except
//! [`TokenRepository::touch`], whose time is the moment of use the caller observed.

use std::net::IpAddr;

use crate::error::SessionError;
use crate::id::{SessionId, UserId};
use crate::query::{Cursor, CursorPage, ListResult, Page, PageSize, SessionFilter, Sort};
use crate::session::{NewSession, Session};
use crate::time::Timestamp;
use crate::token::TokenHash;

/// Default per-user limit on live sessions.
pub const SESSIONS_PER_USER_DEFAULT: u32 = 50;

/// What `create` does when the user already has the maximum number of live sessions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum QuotaPolicy {
    /// Refuse with [`SessionError::QuotaExceeded`].
    #[default]
    Reject,
    /// Delete the user's oldest live session (smallest `created_at`, then id) and report it in
    /// [`CreateOutcome::evicted`].
    EvictOldest,
}

/// The per-user session limit a store enforces.
///
/// Only live sessions count: expired ones never block a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Most live sessions per user, at least 1.
    pub sessions_per_user_max: u32,
    /// What to do at the limit.
    pub policy: QuotaPolicy,
}

impl Default for Quota {
    fn default() -> Quota {
        Quota {
            sessions_per_user_max: SESSIONS_PER_USER_DEFAULT,
            policy: QuotaPolicy::Reject,
        }
    }
}

/// The result of a successful `create`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateOutcome {
    /// The stored session, at [`Session::VERSION_FIRST`].
    pub session: Session,
    /// The session removed to make room, under [`QuotaPolicy::EvictOldest`].
    pub evicted: Option<Session>,
}

/// Session storage with optimistic locking. Object-safe; implementations are shared across
/// threads.
///
/// Contract, checked by the `testkit` conformance suite:
/// - `create` stores version 1 and every `update` yields a version one higher than before, so
///   replicas and logs can tell changes apart. `touch` is a heartbeat, not a change of the
///   body: it leaves the version alone, so ordinary traffic never makes a caller's
///   read-modify-write `update` fail, and touches can be coalesced.
/// - `last_active` never moves back: `update` and `touch` both keep the later of the stored
///   and the new value, so they commute.
/// - An expired session is never returned as live: `get` reports [`SessionError::Expired`]
///   until the session is deleted or cleaned up.
/// - Returned sessions are copies; changing them changes nothing stored.
pub trait SessionRepository: Send + Sync {
    /// Stores a new session at version 1. Errors: [`SessionError::IdConflict`],
    /// [`SessionError::TokenConflict`], [`SessionError::QuotaExceeded`] (policy `Reject`).
    fn create(&self, session: NewSession) -> Result<CreateOutcome, SessionError>;

    /// The session with `id`. Errors: [`SessionError::NotFound`], [`SessionError::Expired`].
    fn get(&self, id: SessionId) -> Result<Session, SessionError>;

    /// Replaces the stored body of `session.id()` if its version is `expected_version`, and
    /// returns it at `expected_version + 1`. `last_active` becomes the later of the stored and
    /// the given value (a concurrent `touch` is not undone). `user_id` and `created_at` cannot change
    /// ([`SessionError::InvalidField`]); a changed token hash moves the token index.
    /// Errors: [`SessionError::NotFound`], [`SessionError::VersionConflict`],
    /// [`SessionError::TokenConflict`], [`SessionError::InvalidField`]. An expired session can
    /// still be updated (e.g. to extend it): expiry is judged on the new body.
    fn update(&self, session: NewSession, expected_version: u64) -> Result<Session, SessionError>;

    /// Removes the session; `Ok(false)` if there was none. Idempotent.
    fn delete(&self, id: SessionId) -> Result<bool, SessionError>;

    /// The `page` of sessions matching `filter` in `sort` order, and the total match count.
    fn list(
        &self,
        filter: &SessionFilter,
        sort: Sort,
        page: Page,
    ) -> Result<ListResult<Session>, SessionError>;

    /// Up to `limit` sessions matching `filter` strictly after `after` in `sort` order (from the
    /// start when `None`); see [`Cursor`]. Errors: [`SessionError::InvalidCursor`] when the
    /// cursor was made for another sort.
    fn list_after(
        &self,
        filter: &SessionFilter,
        sort: Sort,
        after: Option<&Cursor>,
        limit: PageSize,
    ) -> Result<CursorPage<Session>, SessionError>;

    /// Number of live sessions of `user_id`.
    fn count_by_user(&self, user_id: &UserId) -> Result<u64, SessionError>;

    /// Live sessions of `user_id`, oldest created first (bounded by the quota).
    fn list_by_user(&self, user_id: &UserId) -> Result<Vec<Session>, SessionError>;

    /// Removes every session of `user_id`, live or expired; returns how many.
    fn delete_by_user(&self, user_id: &UserId) -> Result<u64, SessionError>;

    /// Removes every session expired at the store's current time; returns how many.
    fn cleanup_expired(&self) -> Result<u64, SessionError>;
}

/// Lookups by bearer token, for authenticating requests.
pub trait TokenRepository: Send + Sync {
    /// The live session holding `token_hash`. Errors: [`SessionError::TokenNotFound`],
    /// [`SessionError::Expired`].
    fn get_by_token_hash(&self, token_hash: &TokenHash) -> Result<Session, SessionError>;

    /// Records a use at `now` without a version check: `last_active` becomes
    /// `max(last_active, now)` (a late or skewed caller never moves it back), `last_access_ip`
    /// is set when `Some`, and the version is unchanged (see the trait contract). Errors: [`SessionError::NotFound`],
    /// [`SessionError::Expired`] (judged at the store's clock, before the touch).
    fn touch(
        &self,
        id: SessionId,
        now: Timestamp,
        last_access_ip: Option<IpAddr>,
    ) -> Result<Session, SessionError>;
}

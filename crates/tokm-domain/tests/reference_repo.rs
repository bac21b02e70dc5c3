//! A naive reference repository (one `Mutex<Vec<Session>>`, linear scans) that passes the
//! conformance suite, proving the suite's expectations are consistent and satisfiable; and the
//! same repository with one seeded bug at a time, proving the matching behaviour catches it.

use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokm_domain::testkit::{self, Repository, RepositoryFactory};
use tokm_domain::{
    Clock, CreateOutcome, Cursor, CursorPage, ListResult, ManualClock, NewSession, Page, PageSize,
    Quota, QuotaPolicy, Session, SessionError, SessionFilter, SessionId, SessionRepository, Sort,
    SortBy, SortOrder, Timestamp, TokenHash, TokenRepository, UserId,
};

/// A seeded bug, to check that the suite notices it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    UpdateIgnoresVersion,
    GetReturnsExpired,
    SortIgnoresIdTieBreak,
    CursorIsInclusive,
    TouchBumpsVersion,
    QuotaAllowsOneMore,
    CleanupRemovesLive,
}

#[derive(Debug)]
struct ReferenceRepo {
    clock: Arc<ManualClock>,
    quota: Quota,
    fault: Option<Fault>,
    sessions: Mutex<Vec<Session>>,
}

impl ReferenceRepo {
    fn live_of_user(&self, sessions: &[Session], user_id: &UserId) -> Vec<Session> {
        let now = self.clock.now();
        let mut live: Vec<Session> = sessions
            .iter()
            .filter(|s| s.fields().user_id == *user_id && !s.is_expired_at(now))
            .cloned()
            .collect();
        live.sort_by(|a, b| Sort::new(SortBy::CreatedAt, SortOrder::Asc).compare(a, b));
        live
    }

    fn live(&self, session: &Session) -> Result<Session, SessionError> {
        if session.is_expired_at(self.clock.now()) && self.fault != Some(Fault::GetReturnsExpired) {
            return Err(SessionError::Expired {
                id: session.id(),
                expired_at: session.expiry(),
            });
        }
        Ok(session.clone())
    }

    fn matching(&self, filter: &SessionFilter, sort: Sort) -> Vec<Session> {
        let now = self.clock.now();
        let sessions = self.sessions.lock();
        let mut found: Vec<Session> = sessions
            .iter()
            .filter(|s| filter.matches(s, now))
            .cloned()
            .collect();
        if self.fault == Some(Fault::SortIgnoresIdTieBreak) {
            found.sort_by_key(|s| sort.key_of(s));
            if sort.order == SortOrder::Desc {
                found.reverse();
            }
        } else {
            found.sort_by(|a, b| sort.compare(a, b));
        }
        found
    }
}

impl SessionRepository for ReferenceRepo {
    fn create(&self, new: NewSession) -> Result<CreateOutcome, SessionError> {
        let mut sessions = self.sessions.lock();
        let fields = new.fields();
        if sessions.iter().any(|s| s.id() == new.id()) {
            return Err(SessionError::IdConflict { id: new.id() });
        }
        if sessions
            .iter()
            .any(|s| s.fields().token_hash == fields.token_hash)
        {
            return Err(SessionError::TokenConflict { id: new.id() });
        }
        let live = self.live_of_user(&sessions, &fields.user_id);
        let mut evicted = None;
        let extra = usize::from(self.fault == Some(Fault::QuotaAllowsOneMore));
        if live.len() >= self.quota.sessions_per_user_max as usize + extra {
            match self.quota.policy {
                QuotaPolicy::Reject => {
                    return Err(SessionError::QuotaExceeded {
                        user_id: fields.user_id.clone(),
                        limit: self.quota.sessions_per_user_max,
                    });
                }
                QuotaPolicy::EvictOldest => {
                    let oldest = live[0].clone();
                    sessions.retain(|s| s.id() != oldest.id());
                    evicted = Some(oldest);
                }
            }
        }
        let session = Session::new(new, Session::VERSION_FIRST)?;
        sessions.push(session.clone());
        Ok(CreateOutcome { session, evicted })
    }

    fn get(&self, id: SessionId) -> Result<Session, SessionError> {
        let sessions = self.sessions.lock();
        let session = sessions
            .iter()
            .find(|s| s.id() == id)
            .ok_or(SessionError::NotFound { id })?;
        self.live(session)
    }

    fn update(&self, body: NewSession, expected_version: u64) -> Result<Session, SessionError> {
        let mut sessions = self.sessions.lock();
        let id = body.id();
        let index = sessions
            .iter()
            .position(|s| s.id() == id)
            .ok_or(SessionError::NotFound { id })?;
        let stored = &sessions[index];
        if stored.version() != expected_version && self.fault != Some(Fault::UpdateIgnoresVersion) {
            return Err(SessionError::VersionConflict {
                id,
                expected: expected_version,
                actual: stored.version(),
            });
        }
        if body.fields().user_id != stored.fields().user_id {
            return Err(SessionError::InvalidField {
                field: "user_id",
                reason: "cannot change".into(),
            });
        }
        if body.fields().created_at != stored.fields().created_at {
            return Err(SessionError::InvalidField {
                field: "created_at",
                reason: "cannot change".into(),
            });
        }
        if sessions
            .iter()
            .any(|s| s.id() != id && s.fields().token_hash == body.fields().token_hash)
        {
            return Err(SessionError::TokenConflict { id });
        }
        let version =
            expected_version
                .checked_add(1)
                .ok_or_else(|| SessionError::InvalidField {
                    field: "version",
                    reason: "overflow".into(),
                })?;
        let mut fields = body.into_fields();
        fields.last_active = fields.last_active.max(stored.fields().last_active);
        let updated = Session::from_fields(fields, version)?;
        sessions[index] = updated.clone();
        Ok(updated)
    }

    fn delete(&self, id: SessionId) -> Result<bool, SessionError> {
        let mut sessions = self.sessions.lock();
        let before = sessions.len();
        sessions.retain(|s| s.id() != id);
        Ok(sessions.len() != before)
    }

    fn list(
        &self,
        filter: &SessionFilter,
        sort: Sort,
        page: Page,
    ) -> Result<ListResult<Session>, SessionError> {
        Ok(ListResult::page_of(self.matching(filter, sort), page))
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
        let rest = self.matching(filter, sort).into_iter().filter(|s| {
            after.is_none_or(|c| {
                c.precedes(s)
                    || (self.fault == Some(Fault::CursorIsInclusive)
                        && c == &Cursor::after(s, sort))
            })
        });
        Ok(CursorPage::first_of(rest, sort, limit))
    }

    fn count_by_user(&self, user_id: &UserId) -> Result<u64, SessionError> {
        Ok(self.live_of_user(&self.sessions.lock(), user_id).len() as u64)
    }

    fn list_by_user(&self, user_id: &UserId) -> Result<Vec<Session>, SessionError> {
        Ok(self.live_of_user(&self.sessions.lock(), user_id))
    }

    fn delete_by_user(&self, user_id: &UserId) -> Result<u64, SessionError> {
        let mut sessions = self.sessions.lock();
        let before = sessions.len();
        sessions.retain(|s| s.fields().user_id != *user_id);
        Ok((before - sessions.len()) as u64)
    }

    fn cleanup_expired(&self) -> Result<u64, SessionError> {
        let now = self.clock.now();
        let mut sessions = self.sessions.lock();
        let before = sessions.len();
        let cutoff = match self.fault {
            Some(Fault::CleanupRemovesLive) => Timestamp::from_millis(u64::MAX),
            _ => now,
        };
        sessions.retain(|s| !s.is_expired_at(cutoff));
        Ok((before - sessions.len()) as u64)
    }
}

impl TokenRepository for ReferenceRepo {
    fn get_by_token_hash(&self, token_hash: &TokenHash) -> Result<Session, SessionError> {
        let sessions = self.sessions.lock();
        let session = sessions
            .iter()
            .find(|s| s.fields().token_hash == *token_hash)
            .ok_or(SessionError::TokenNotFound)?;
        self.live(session)
    }

    fn touch(
        &self,
        id: SessionId,
        now: Timestamp,
        last_access_ip: Option<IpAddr>,
    ) -> Result<Session, SessionError> {
        let mut sessions = self.sessions.lock();
        let index = sessions
            .iter()
            .position(|s| s.id() == id)
            .ok_or(SessionError::NotFound { id })?;
        let stored = self.live(&sessions[index])?;
        let mut fields = stored.fields().clone();
        fields.last_active = fields.last_active.max(now);
        if last_access_ip.is_some() {
            fields.last_access_ip = last_access_ip;
        }
        // A touch keeps the version; the planted fault bumps it (saturating: a test store only).
        let version = match self.fault {
            Some(Fault::TouchBumpsVersion) => stored.version().saturating_add(1),
            _ => stored.version(),
        };
        let touched = Session::from_fields(fields, version)?;
        sessions[index] = touched.clone();
        Ok(touched)
    }
}

struct ReferenceFactory {
    quota: Quota,
    fault: Option<Fault>,
}

impl RepositoryFactory for ReferenceFactory {
    fn fresh(&self, clock: Arc<ManualClock>) -> Box<dyn Repository> {
        Box::new(ReferenceRepo {
            clock,
            quota: self.quota,
            fault: self.fault,
            sessions: Mutex::new(Vec::new()),
        })
    }

    fn quota(&self) -> Quota {
        self.quota
    }
}

#[test]
fn reference_repository_passes_the_suite_with_default_quota() {
    testkit::run_all(&ReferenceFactory {
        quota: Quota::default(),
        fault: None,
    });
}

#[test]
fn reference_repository_passes_the_suite_when_evicting_oldest() {
    let quota = Quota {
        sessions_per_user_max: 20,
        policy: QuotaPolicy::EvictOldest,
    };
    testkit::run_all(&ReferenceFactory { quota, fault: None });
}

/// Runs `behaviour` against the reference repository with `fault` seeded; true if it failed.
fn catches(fault: Fault, behaviour: testkit::Behaviour) -> bool {
    let factory = ReferenceFactory {
        quota: Quota::default(),
        fault: Some(fault),
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| behaviour(&factory))).is_err()
}

#[test]
fn suite_catches_each_seeded_bug() {
    let cases: [(Fault, testkit::Behaviour); 7] = [
        (
            Fault::UpdateIgnoresVersion,
            testkit::update_with_stale_version_is_conflict,
        ),
        (
            Fault::GetReturnsExpired,
            testkit::expired_session_is_not_returned_as_live,
        ),
        (
            Fault::SortIgnoresIdTieBreak,
            testkit::list_sorts_each_way_with_ties_by_id,
        ),
        (
            Fault::CursorIsInclusive,
            testkit::cursor_paging_visits_each_session_once_under_writes,
        ),
        (Fault::TouchBumpsVersion, testkit::touch_updates_last_active),
        (
            Fault::QuotaAllowsOneMore,
            testkit::quota_is_enforced_at_the_limit,
        ),
        (
            Fault::CleanupRemovesLive,
            testkit::cleanup_expired_removes_only_expired,
        ),
    ];
    for (fault, behaviour) in cases {
        assert!(catches(fault, behaviour), "the suite missed {fault:?}");
    }
}

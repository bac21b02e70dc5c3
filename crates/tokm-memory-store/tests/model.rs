//! Model test: random operation sequences run against the store and against a `Vec<Session>`
//! with linear scans, compared after every step, with a `ManualClock` moving forward so that
//! sessions expire (absolutely and by idleness) along the way.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use tokm_domain::testkit::SUITE_START;
use tokm_domain::{
    ApiKeyId, Clock, CreateOutcome, Cursor, DeviceId, ManualClock, NewSession, Page, PageSize,
    Quota, QuotaPolicy, Session, SessionError, SessionFields, SessionFilter, SessionId,
    SessionRepository, SessionStatus, Sort, SortBy, SortOrder, Timestamp, TokenHash,
    TokenRepository, UserId,
};
use tokm_memory_store::{MemoryStore, StoreOptions};

const USER_COUNT: u8 = 4;
const QUOTA_MAX: u32 = 4;

#[derive(Clone, Debug)]
struct FilterSpec {
    user: Option<u8>,
    device: Option<u8>,
    creator: Option<u8>,
    ip: Option<u8>,
    status: Option<bool>,
    created_after_s: Option<u16>,
    created_before_s: Option<u16>,
    active_after_s: Option<u16>,
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        user: u8,
        lifetime_s: u16,
        idle_s: Option<u16>,
        device: Option<u8>,
        creator: Option<u8>,
        ip: u8,
    },
    Update {
        pick: usize,
        stale: bool,
        extend_s: u16,
        device: Option<u8>,
        token: TokenChange,
        change_owner: bool,
    },
    Touch {
        pick: usize,
        late_ms: u16,
        ip: Option<u8>,
    },
    Delete {
        pick: usize,
    },
    DeleteByUser {
        user: u8,
    },
    Cleanup,
    Advance {
        ms: u32,
    },
    Get {
        pick: usize,
    },
    GetByToken {
        pick: usize,
    },
    ByUser {
        user: u8,
    },
    List {
        filter: FilterSpec,
        sort: (bool, bool),
        page: u32,
        size: u32,
    },
    Walk {
        filter: FilterSpec,
        sort: (bool, bool),
        limit: u32,
    },
}

#[derive(Clone, Copy, Debug)]
enum TokenChange {
    Keep,
    Fresh,
    StealFrom(usize),
}

/// Filters whose fields are each set with probability `weight`: low for cursor walks, so they
/// mostly walk a time index rather than an equality set.
fn filter_spec(weight: f64) -> impl Strategy<Value = FilterSpec> {
    let small = move |n: u8| proptest::option::weighted(weight, 0..n);
    let seconds = proptest::option::weighted(0.25, 0_u16..900);
    (
        small(USER_COUNT),
        small(3),
        small(2),
        small(4),
        proptest::option::weighted(weight, any::<bool>()),
        seconds.clone(),
        seconds.clone(),
        seconds,
    )
        .prop_map(
            |(user, device, creator, ip, status, after, before, active)| FilterSpec {
                user,
                device,
                creator,
                ip,
                status,
                created_after_s: after,
                created_before_s: before,
                active_after_s: active,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let pick = any::<usize>();
    prop_oneof![
        6 => (
            0..USER_COUNT,
            30_u16..600,
            proptest::option::weighted(0.4, 10_u16..120),
            proptest::option::weighted(0.8, 0_u8..3),
            proptest::option::weighted(0.5, 0_u8..2),
            0_u8..4,
        )
            .prop_map(|(user, lifetime_s, idle_s, device, creator, ip)| Op::Create {
                user,
                lifetime_s,
                idle_s,
                device,
                creator,
                ip
            }),
        3 => (
            pick,
            proptest::bool::weighted(0.2),
            0_u16..300,
            proptest::option::weighted(0.3, 0_u8..3),
            prop_oneof![
                3 => Just(TokenChange::Keep),
                1 => Just(TokenChange::Fresh),
                1 => any::<usize>().prop_map(TokenChange::StealFrom),
            ],
            proptest::bool::weighted(0.05),
        )
            .prop_map(|(pick, stale, extend_s, device, token, change_owner)| Op::Update {
                pick,
                stale,
                extend_s,
                device,
                token,
                change_owner
            }),
        3 => (pick, 0_u16..5_000, proptest::option::weighted(0.5, 0_u8..4))
            .prop_map(|(pick, late_ms, ip)| Op::Touch { pick, late_ms, ip }),
        2 => pick.prop_map(|pick| Op::Delete { pick }),
        1 => (0..USER_COUNT).prop_map(|user| Op::DeleteByUser { user }),
        1 => Just(Op::Cleanup),
        3 => (0_u32..90_000).prop_map(|ms| Op::Advance { ms }),
        2 => pick.prop_map(|pick| Op::Get { pick }),
        2 => pick.prop_map(|pick| Op::GetByToken { pick }),
        1 => (0..USER_COUNT).prop_map(|user| Op::ByUser { user }),
        3 => (filter_spec(0.3), any::<(bool, bool)>(), 1_u32..4, 1_u32..6).prop_map(
            |(filter, sort, page, size)| Op::List {
                filter,
                sort,
                page,
                size
            }
        ),
        2 => (filter_spec(0.1), any::<(bool, bool)>(), 1_u32..5).prop_map(
            |(filter, sort, limit)| Op::Walk {
                filter,
                sort,
                limit
            }
        ),
    ]
}

/// The reference semantics: linear scans over every stored session.
struct Model {
    quota: Quota,
    sessions: Vec<Session>,
}

impl Model {
    fn find(&self, id: SessionId) -> Option<&Session> {
        self.sessions.iter().find(|s| s.id() == id)
    }

    fn live(session: &Session, now: Timestamp) -> Result<Session, SessionError> {
        if session.is_expired_at(now) {
            return Err(SessionError::Expired {
                id: session.id(),
                expired_at: session.expiry(),
            });
        }
        Ok(session.clone())
    }

    fn live_of_user(&self, user: &UserId, now: Timestamp) -> Vec<Session> {
        let mut live: Vec<Session> = self
            .sessions
            .iter()
            .filter(|s| s.fields().user_id == *user && !s.is_expired_at(now))
            .cloned()
            .collect();
        live.sort_by(|a, b| Sort::new(SortBy::CreatedAt, SortOrder::Asc).compare(a, b));
        live
    }

    fn create(&mut self, new: NewSession, now: Timestamp) -> Result<CreateOutcome, SessionError> {
        if self.find(new.id()).is_some() {
            return Err(SessionError::IdConflict { id: new.id() });
        }
        let token = new.fields().token_hash;
        if self.sessions.iter().any(|s| s.fields().token_hash == token) {
            return Err(SessionError::TokenConflict { id: new.id() });
        }
        let live = self.live_of_user(&new.fields().user_id, now);
        let mut evicted = None;
        if live.len() >= self.quota.sessions_per_user_max as usize {
            match self.quota.policy {
                QuotaPolicy::Reject => {
                    return Err(SessionError::QuotaExceeded {
                        user_id: new.fields().user_id.clone(),
                        limit: self.quota.sessions_per_user_max,
                    });
                }
                QuotaPolicy::EvictOldest => {
                    let oldest = live[0].clone();
                    self.sessions.retain(|s| s.id() != oldest.id());
                    evicted = Some(oldest);
                }
            }
        }
        let session = Session::new(new, 1)?;
        self.sessions.push(session.clone());
        Ok(CreateOutcome { session, evicted })
    }

    fn update(&mut self, body: NewSession, expected: u64) -> Result<Session, SessionError> {
        let id = body.id();
        let index = self
            .sessions
            .iter()
            .position(|s| s.id() == id)
            .ok_or(SessionError::NotFound { id })?;
        let stored = &self.sessions[index];
        if stored.version() != expected {
            return Err(SessionError::VersionConflict {
                id,
                expected,
                actual: stored.version(),
            });
        }
        if body.fields().user_id != stored.fields().user_id {
            return Err(invalid("user_id"));
        }
        if body.fields().created_at != stored.fields().created_at {
            return Err(invalid("created_at"));
        }
        let token = body.fields().token_hash;
        if self
            .sessions
            .iter()
            .any(|s| s.id() != id && s.fields().token_hash == token)
        {
            return Err(SessionError::TokenConflict { id });
        }
        let mut fields = body.into_fields();
        fields.last_active = fields.last_active.max(stored.fields().last_active);
        let updated = Session::from_fields(fields, stored.version() + 1)?;
        self.sessions[index] = updated.clone();
        Ok(updated)
    }

    fn touch(
        &mut self,
        id: SessionId,
        at: Timestamp,
        ip: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<Session, SessionError> {
        let index = self
            .sessions
            .iter()
            .position(|s| s.id() == id)
            .ok_or(SessionError::NotFound { id })?;
        Model::live(&self.sessions[index], now)?;
        let mut fields = self.sessions[index].fields().clone();
        fields.last_active = fields.last_active.max(at);
        if ip.is_some() {
            fields.last_access_ip = ip;
        }
        let touched = Session::from_fields(fields, self.sessions[index].version())?;
        self.sessions[index] = touched.clone();
        Ok(touched)
    }

    fn matching(&self, filter: &SessionFilter, sort: Sort, now: Timestamp) -> Vec<Session> {
        let mut found: Vec<Session> = self
            .sessions
            .iter()
            .filter(|s| filter.matches(s, now))
            .cloned()
            .collect();
        found.sort_by(|a, b| sort.compare(a, b));
        found
    }
}

fn invalid(field: &'static str) -> SessionError {
    SessionError::InvalidField {
        field,
        reason: String::new(),
    }
}

/// Results compare by value when `Ok` and by code when `Err` (messages may differ).
fn same<T: PartialEq + std::fmt::Debug>(
    step: usize,
    what: &str,
    store: Result<T, SessionError>,
    model: Result<T, SessionError>,
) -> Result<(), TestCaseError> {
    match (store, model) {
        (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "step {}: {}", step, what),
        (Err(a), Err(b)) => prop_assert_eq!(a.code(), b.code(), "step {}: {}", step, what),
        (a, b) => prop_assert!(false, "step {step}: {what}: store {a:?}, model {b:?}"),
    }
    Ok(())
}

fn user(index: u8) -> UserId {
    UserId::new(&format!("user-{index}")).unwrap()
}

fn address(index: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, index))
}

fn at_seconds(seconds: u16) -> Timestamp {
    SUITE_START
        .checked_add(Duration::from_secs(u64::from(seconds)))
        .unwrap()
}

fn filter_of(spec: &FilterSpec) -> SessionFilter {
    SessionFilter {
        user_id: spec.user.map(user),
        device_id: spec
            .device
            .map(|d| DeviceId::new(&format!("device-{d}")).unwrap()),
        created_by: spec
            .creator
            .map(|k| ApiKeyId::new(&format!("key-{k}")).unwrap()),
        ip_address: spec.ip.map(address),
        status: spec.status.map(|active| {
            if active {
                SessionStatus::Active
            } else {
                SessionStatus::Expired
            }
        }),
        created_after: spec.created_after_s.map(at_seconds),
        created_before: spec.created_before_s.map(at_seconds),
        active_after: spec.active_after_s.map(at_seconds),
    }
}

fn sort_of((by_created, asc): (bool, bool)) -> Sort {
    Sort::new(
        if by_created {
            SortBy::CreatedAt
        } else {
            SortBy::LastActive
        },
        if asc { SortOrder::Asc } else { SortOrder::Desc },
    )
}

fn run(ops: &[Op], policy: QuotaPolicy) -> Result<(), TestCaseError> {
    let quota = Quota {
        sessions_per_user_max: QUOTA_MAX,
        policy,
    };
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let store = MemoryStore::new(clock.clone(), StoreOptions { quota, capacity: 0 }).unwrap();
    let mut model = Model {
        quota,
        sessions: Vec::new(),
    };
    // Every body ever created, latest known version: operations pick targets here, so some
    // hit deleted or expired sessions.
    let mut known: Vec<Session> = Vec::new();
    let mut counter = 0_u64;
    for (step, op) in ops.iter().enumerate() {
        let now = clock.now();
        match op {
            Op::Create {
                user: owner,
                lifetime_s,
                idle_s,
                device,
                creator,
                ip,
            } => {
                counter += 1;
                let mut fields = SessionFields::new(
                    SessionId::from_parts(now, u128::from(counter)).unwrap(),
                    user(*owner),
                    TokenHash::of_token(&format!("token-{counter}")).unwrap(),
                    now,
                    now.checked_add(Duration::from_secs(u64::from(*lifetime_s)))
                        .unwrap(),
                );
                fields.idle_timeout = idle_s.map(|s| Duration::from_secs(u64::from(s)));
                fields.device_id = device.map(|d| DeviceId::new(&format!("device-{d}")).unwrap());
                fields.created_by = creator.map(|k| ApiKeyId::new(&format!("key-{k}")).unwrap());
                fields.ip_address = Some(address(*ip));
                let new = NewSession::new(fields).unwrap();
                let got = store.create(new.clone());
                let want = model.create(new, now);
                if let Ok(outcome) = &want {
                    known.push(outcome.session.clone());
                }
                same(step, "create", got, want)?;
            }
            Op::Update {
                pick,
                stale,
                extend_s,
                device,
                token,
                change_owner,
            } => {
                if known.is_empty() {
                    continue;
                }
                let index = pick % known.len();
                let base = model
                    .find(known[index].id())
                    .cloned()
                    .unwrap_or_else(|| known[index].clone());
                let mut fields = base.fields().clone();
                fields.expires_at = fields
                    .expires_at
                    .checked_add(Duration::from_secs(u64::from(*extend_s)))
                    .unwrap();
                if let Some(d) = device {
                    fields.device_id = Some(DeviceId::new(&format!("device-{d}")).unwrap());
                }
                match token {
                    TokenChange::Keep => {}
                    TokenChange::Fresh => {
                        counter += 1;
                        fields.token_hash =
                            TokenHash::of_token(&format!("token-{counter}")).unwrap();
                    }
                    TokenChange::StealFrom(other) => {
                        fields.token_hash = known[other % known.len()].fields().token_hash;
                    }
                }
                if *change_owner {
                    fields.user_id = user(USER_COUNT);
                }
                let Ok(body) = NewSession::new(fields) else {
                    continue;
                };
                let expected = if *stale {
                    base.version().saturating_sub(1)
                } else {
                    base.version()
                };
                let got = store.update(body.clone(), expected);
                let want = model.update(body, expected);
                if let Ok(updated) = &want {
                    known[index] = updated.clone();
                }
                same(step, "update", got, want)?;
            }
            Op::Touch { pick, late_ms, ip } => {
                if known.is_empty() {
                    continue;
                }
                let id = known[pick % known.len()].id();
                let at = now
                    .checked_sub(Duration::from_millis(u64::from(*late_ms)))
                    .unwrap();
                let ip = ip.map(address);
                same(
                    step,
                    "touch",
                    store.touch(id, at, ip),
                    model.touch(id, at, ip, now),
                )?;
            }
            Op::Delete { pick } => {
                if known.is_empty() {
                    continue;
                }
                let id = known[pick % known.len()].id();
                let existed = model.find(id).is_some();
                model.sessions.retain(|s| s.id() != id);
                same(step, "delete", store.delete(id), Ok(existed))?;
            }
            Op::DeleteByUser { user: owner } => {
                let owner = user(*owner);
                let before = model.sessions.len();
                model.sessions.retain(|s| s.fields().user_id != owner);
                let removed = (before - model.sessions.len()) as u64;
                same(
                    step,
                    "delete_by_user",
                    store.delete_by_user(&owner),
                    Ok(removed),
                )?;
            }
            Op::Cleanup => {
                let before = model.sessions.len();
                model.sessions.retain(|s| !s.is_expired_at(now));
                let removed = (before - model.sessions.len()) as u64;
                same(
                    step,
                    "cleanup_expired",
                    store.cleanup_expired(),
                    Ok(removed),
                )?;
            }
            Op::Advance { ms } => clock.advance(Duration::from_millis(u64::from(*ms))),
            Op::Get { pick } => {
                if known.is_empty() {
                    continue;
                }
                let id = known[pick % known.len()].id();
                let want = model
                    .find(id)
                    .ok_or(SessionError::NotFound { id })
                    .and_then(|s| Model::live(s, now));
                same(step, "get", store.get(id), want)?;
            }
            Op::GetByToken { pick } => {
                if known.is_empty() {
                    continue;
                }
                let token = known[pick % known.len()].fields().token_hash;
                let want = model
                    .sessions
                    .iter()
                    .find(|s| s.fields().token_hash == token)
                    .ok_or(SessionError::TokenNotFound)
                    .and_then(|s| Model::live(s, now));
                same(
                    step,
                    "get_by_token_hash",
                    store.get_by_token_hash(&token),
                    want,
                )?;
            }
            Op::ByUser { user: owner } => {
                let owner = user(*owner);
                let live = model.live_of_user(&owner, now);
                same(
                    step,
                    "count_by_user",
                    store.count_by_user(&owner),
                    Ok(live.len() as u64),
                )?;
                same(step, "list_by_user", store.list_by_user(&owner), Ok(live))?;
            }
            Op::List {
                filter,
                sort,
                page,
                size,
            } => {
                let (filter, sort) = (filter_of(filter), sort_of(*sort));
                let page = Page::new(*page, *size).unwrap();
                let all = model.matching(&filter, sort, now);
                let items = all
                    .iter()
                    .skip(page.offset() as usize)
                    .take(page.size().get() as usize)
                    .cloned()
                    .collect();
                let got = store.list(&filter, sort, page).map(|r| (r.items, r.total));
                same(step, "list", got, Ok((items, all.len() as u64)))?;
            }
            Op::Walk {
                filter,
                sort,
                limit,
            } => {
                let (filter, sort) = (filter_of(filter), sort_of(*sort));
                let limit = PageSize::new(*limit).unwrap();
                let all = model.matching(&filter, sort, now);
                let mut cursor: Option<Cursor> = None;
                let mut walked = Vec::new();
                // Each slice returns at least one item or ends, so this bounds the walk.
                for _ in 0..=all.len() {
                    let slice = store
                        .list_after(&filter, sort, cursor.as_ref(), limit)
                        .map_err(|e| TestCaseError::fail(format!("list_after: {e}")))?;
                    walked.extend(slice.items.iter().cloned());
                    prop_assert_eq!(
                        slice.next.is_some(),
                        walked.len() < all.len(),
                        "step {}: next is Some exactly while more remain",
                        step
                    );
                    match slice.next {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
                prop_assert_eq!(walked, all, "step {}: cursor walk", step);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_the_model_when_rejecting(ops in proptest::collection::vec(op(), 1..120)) {
        run(&ops, QuotaPolicy::Reject)?;
    }

    #[test]
    fn store_matches_the_model_when_evicting(ops in proptest::collection::vec(op(), 1..120)) {
        run(&ops, QuotaPolicy::EvictOldest)?;
    }
}

//! Conformance suite for [`SessionRepository`] + [`TokenRepository`] implementations, and a
//! deterministic session generator.
//!
//! Each behaviour is one `pub fn` taking a [`RepositoryFactory`]; [`run_all`] runs them all.
//! A store's tests call `run_all(&MyFactory)` or single functions for sharper failure reports.
//! Failures panic, as test assertions do, with a message saying what was expected.
//!
//! Time: each behaviour starts a [`ManualClock`] at [`SUITE_START`] and moves it only forward,
//! so that it reads at least the `created_at` of every session it creates; expiry is reached by
//! advancing it. Stores must take "now" from that clock.
//!
//! ```
//! use tokm_domain::testkit::SessionFactory;
//! use tokm_domain::Timestamp;
//!
//! let mut sessions = SessionFactory::new(7, Timestamp::from_millis(1_700_000_000_000));
//! let first = sessions.next_for(&SessionFactory::user(1));
//! assert_eq!(first.fields().user_id.as_str(), "user-1");
//! assert_eq!(first.fields().created_at, Timestamp::from_millis(1_700_000_000_000));
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use crate::{
    ApiKeyId, Clock, CreateOutcome, Cursor, DeviceId, ManualClock, Metadata, NewSession, Page,
    PageSize, Quota, QuotaPolicy, Session, SessionError, SessionFields, SessionFilter, SessionId,
    SessionRepository, SessionStatus, Sort, SortBy, SortOrder, Timestamp, TokenHash,
    TokenRepository, UserAgent, UserId,
};

/// Where every suite clock starts: 2023-11-14T22:13:20Z.
pub const SUITE_START: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// Smallest per-user quota the suite can run with.
pub const SUITE_QUOTA_MIN: u32 = 16;

/// A session store under test: both repository traits.
pub trait Repository: SessionRepository + TokenRepository {}

impl<T: SessionRepository + TokenRepository + ?Sized> Repository for T {}

/// Makes empty stores for the suite.
pub trait RepositoryFactory {
    /// A new, empty store reading time from `clock`.
    fn fresh(&self, clock: Arc<ManualClock>) -> Box<dyn Repository>;

    /// The quota the stores from [`RepositoryFactory::fresh`] enforce; the suite needs
    /// `sessions_per_user_max >= `[`SUITE_QUOTA_MIN`], as some behaviours give one user that many.
    fn quota(&self) -> Quota {
        Quota::default()
    }
}

/// A deterministic stream of valid sessions.
///
/// Session `n` (counting from 0 per factory) is created at `start + n` ms, lives one hour by
/// default, and has token [`SessionFactory::token`]`(n)`. Optional fields cycle through small
/// pools so filters have something to tell apart: device `device-{n % 3}`, `created_by`
/// `key-{n % 4 / 2}` on even `n`, IP `10.0.{n % 5}.1`, user agent `agent/{n % 2}`.
pub struct SessionFactory {
    seed: u64,
    start: Timestamp,
    lifetime: Duration,
    next_index: u64,
}

impl fmt::Debug for SessionFactory {
    // Manual so that no token-derivation detail leaks into logs, even a fake one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionFactory")
            .field("next_index", &self.next_index)
            .finish_non_exhaustive()
    }
}

impl SessionFactory {
    /// A generator whose first session is created at `start`.
    pub fn new(seed: u64, start: Timestamp) -> SessionFactory {
        SessionFactory {
            seed,
            start,
            lifetime: Duration::from_secs(3600),
            next_index: 0,
        }
    }

    /// Sets the lifetime (`expires_at - created_at`) of later sessions.
    pub fn set_lifetime(&mut self, lifetime: Duration) {
        self.lifetime = lifetime;
    }

    /// The index the next session will get.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// The `index`-th test user, `user-{index}`.
    pub fn user(index: u32) -> UserId {
        UserId::new(&format!("user-{index}")).expect("generated user ids are valid")
    }

    /// The raw bearer token of session `index`.
    pub fn token(&self, index: u64) -> String {
        format!("tok-{:016x}-{index}", self.seed)
    }

    /// The next session, owned by `user`.
    pub fn next_for(&mut self, user: &UserId) -> NewSession {
        let index = self.next_index;
        self.next_index += 1;
        let created_at = self
            .start
            .checked_add(Duration::from_millis(index))
            .expect("suite times are small");
        let expires_at = created_at
            .checked_add(self.lifetime)
            .expect("suite times are small");
        let random = u128::from(splitmix64(self.seed ^ index)) << 16 | u128::from(index as u16);
        let mut fields = SessionFields::new(
            SessionId::from_parts(created_at, random).expect("suite times fit a ULID"),
            user.clone(),
            TokenHash::of_token(&self.token(index)).expect("generated tokens are valid"),
            created_at,
            expires_at,
        );
        fields.device_id = Some(DeviceId::new(&format!("device-{}", index % 3)).expect("valid"));
        if index.is_multiple_of(2) {
            fields.created_by =
                Some(ApiKeyId::new(&format!("key-{}", index % 4 / 2)).expect("valid"));
        }
        fields.ip_address = Some(IpAddr::V4(Ipv4Addr::new(10, 0, (index % 5) as u8, 1)));
        fields.user_agent = Some(UserAgent::new(&format!("agent/{}", index % 2)).expect("valid"));
        let mut metadata = Metadata::new();
        metadata.insert("index", &index.to_string()).expect("valid");
        fields.metadata = metadata;
        NewSession::new(fields).expect("generated sessions are valid")
    }
}

/// SplitMix64: a tiny, well-mixed deterministic generator for id randomness.
fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One behaviour of the suite: panics with a message if the store breaks the contract.
pub type Behaviour = fn(&dyn RepositoryFactory);

/// Runs every behaviour of the suite against stores from `factory`.
pub fn run_all(factory: &dyn RepositoryFactory) {
    let behaviours: [Behaviour; 34] = [
        create_then_get_returns_equal_session,
        create_with_taken_id_is_id_conflict,
        create_with_taken_token_is_token_conflict,
        get_of_unknown_id_is_not_found,
        update_stores_body_and_increments_version,
        update_with_stale_version_is_conflict,
        update_of_unknown_id_is_not_found,
        update_cannot_change_owner_or_creation_time,
        update_moves_the_token_index,
        update_to_a_taken_token_is_conflict,
        update_can_extend_an_expired_session,
        delete_is_idempotent,
        quota_is_enforced_at_the_limit,
        expired_sessions_do_not_count_toward_quota,
        expired_session_is_not_returned_as_live,
        idle_session_expires,
        token_lookup_finds_session,
        touch_updates_last_active,
        touch_of_expired_session_is_expired,
        list_pages_are_disjoint_and_total_is_exact,
        list_filters_by_user,
        list_filters_by_device,
        list_filters_by_created_by,
        list_filters_by_ip_on_either_address,
        list_filters_by_status,
        list_filters_by_creation_time,
        list_filters_by_activity_time,
        list_sorts_each_way_with_ties_by_id,
        cursor_paging_visits_each_session_once_under_writes,
        cursor_next_is_none_exactly_at_the_end,
        cursor_of_another_sort_is_invalid,
        count_and_list_by_user_see_only_live_sessions,
        delete_by_user_cleans_everything,
        cleanup_expired_removes_only_expired,
    ];
    for behaviour in behaviours {
        behaviour(factory);
    }
}

struct Fixture {
    clock: Arc<ManualClock>,
    repo: Box<dyn Repository>,
    sessions: SessionFactory,
}

fn fixture(factory: &dyn RepositoryFactory) -> Fixture {
    let quota = factory.quota().sessions_per_user_max;
    assert!(
        quota >= SUITE_QUOTA_MIN,
        "the suite needs a quota of at least {SUITE_QUOTA_MIN}, got {quota}"
    );
    let clock = Arc::new(ManualClock::new(SUITE_START));
    let repo = factory.fresh(Arc::clone(&clock));
    Fixture {
        clock,
        repo,
        sessions: SessionFactory::new(0x70c3, SUITE_START),
    }
}

impl Fixture {
    fn create(&mut self, user: &UserId) -> Session {
        let new = self.sessions.next_for(user);
        self.create_new(new)
    }

    fn create_new(&self, new: NewSession) -> Session {
        let id = new.id();
        match self.try_create(new) {
            Ok(CreateOutcome { session, .. }) => session,
            Err(err) => panic!("create of {id} failed: {err} ({})", err.code()),
        }
    }

    /// `create`, with the clock first moved up to `created_at` if behind: sessions are created
    /// "now", never in the future of the store's clock.
    fn try_create(&self, new: NewSession) -> Result<CreateOutcome, SessionError> {
        if self.clock.now() < new.fields().created_at {
            self.clock.set(new.fields().created_at);
        }
        self.repo.create(new)
    }

    fn ids(&self, filter: &SessionFilter) -> BTreeSet<SessionId> {
        let page = Page::new(1, 100).expect("valid page");
        let result = self
            .repo
            .list(filter, Sort::default(), page)
            .expect("list succeeds");
        assert_eq!(
            result.total as usize,
            result.items.len(),
            "{filter:?}: total vs one full page"
        );
        result.items.iter().map(Session::id).collect()
    }

    fn advance(&self, duration: Duration) {
        self.clock.advance(duration);
    }
}

fn expect_code<T: fmt::Debug>(result: Result<T, SessionError>, code: &str, what: &str) {
    match result {
        Err(err) => assert_eq!(err.code(), code, "{what}: wrong error {err}"),
        Ok(value) => panic!("{what}: expected {code}, got Ok({value:?})"),
    }
}

fn edited(session: &Session, edit: impl FnOnce(&mut SessionFields)) -> NewSession {
    let mut fields = session.fields().clone();
    edit(&mut fields);
    NewSession::new(fields).expect("edited session stays valid")
}

/// `get` after `create` returns the created body at version 1.
pub fn create_then_get_returns_equal_session(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let new = fx.sessions.next_for(&SessionFactory::user(1));
    let outcome = fx.try_create(new.clone()).expect("create succeeds");
    assert_eq!(
        outcome.session.version(),
        Session::VERSION_FIRST,
        "created at version 1"
    );
    assert_eq!(
        outcome.session.fields(),
        new.fields(),
        "create stores the body as given"
    );
    assert_eq!(outcome.evicted, None, "nothing evicted below quota");
    let got = fx
        .repo
        .get(new.id())
        .expect("get finds the created session");
    assert_eq!(got, outcome.session, "get returns what create returned");
}

/// A second `create` with a taken id is `TM-SESS-4092` and changes nothing.
pub fn create_with_taken_id_is_id_conflict(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let first = fx.create(&SessionFactory::user(1));
    let other = fx.sessions.next_for(&SessionFactory::user(2));
    let clash = edited(&first, |f| {
        f.token_hash = other.fields().token_hash;
        f.user_id = SessionFactory::user(2);
    });
    expect_code(
        fx.try_create(clash),
        "TM-SESS-4092",
        "create with a taken id",
    );
    assert_eq!(fx.repo.get(first.id()).expect("first still there"), first);
    assert_eq!(
        fx.repo
            .count_by_user(&SessionFactory::user(2))
            .expect("count"),
        0,
        "no partial insert"
    );
    expect_code(
        fx.repo.get_by_token_hash(&other.fields().token_hash),
        "TM-SESS-4042",
        "token of refused create",
    );
}

/// A `create` with a token hash held by another session is `TM-SESS-4093`.
pub fn create_with_taken_token_is_token_conflict(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let first = fx.create(&SessionFactory::user(1));
    let next = fx.sessions.next_for(&SessionFactory::user(1));
    let id = next.id();
    let mut fields = next.into_fields();
    fields.token_hash = first.fields().token_hash;
    let clash = NewSession::new(fields).expect("valid");
    expect_code(
        fx.try_create(clash),
        "TM-SESS-4093",
        "create with a taken token",
    );
    expect_code(
        fx.repo.get(id),
        "TM-SESS-4041",
        "refused session is not stored",
    );
    let by_token = fx
        .repo
        .get_by_token_hash(&first.fields().token_hash)
        .expect("token still finds first");
    assert_eq!(
        by_token.id(),
        first.id(),
        "token index still points at the first session"
    );
}

/// `get` of an id never created is `TM-SESS-4041`.
pub fn get_of_unknown_id_is_not_found(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let never = fx.sessions.next_for(&SessionFactory::user(1));
    expect_code(fx.repo.get(never.id()), "TM-SESS-4041", "get of unknown id");
    expect_code(
        fx.repo.get_by_token_hash(&never.fields().token_hash),
        "TM-SESS-4042",
        "unknown token",
    );
}

/// `update` with the current version stores the new body at version + 1.
pub fn update_stores_body_and_increments_version(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let created = fx.create(&SessionFactory::user(1));
    let body = edited(&created, |f| {
        f.expires_at = f
            .expires_at
            .checked_add(Duration::from_secs(60))
            .expect("small");
        f.metadata.insert("role", "admin").expect("valid");
        f.device_id = None;
    });
    let updated = fx
        .repo
        .update(body.clone(), created.version())
        .expect("update at current version");
    assert_eq!(
        updated.version(),
        created.version() + 1,
        "version grows by one"
    );
    assert_eq!(
        updated.fields(),
        body.fields(),
        "update stores the body as given"
    );
    assert_eq!(
        fx.repo.get(created.id()).expect("get"),
        updated,
        "get sees the update"
    );
}

/// `update` with an old version is `TM-SESS-4091`, reports both versions, and changes nothing.
pub fn update_with_stale_version_is_conflict(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let created = fx.create(&SessionFactory::user(1));
    let first = fx
        .repo
        .update(created.to_new(), created.version())
        .expect("first update");
    let stale = edited(&created, |f| {
        f.metadata
            .insert("lost", "update")
            .map(drop)
            .expect("valid")
    });
    match fx.repo.update(stale, created.version()) {
        Err(SessionError::VersionConflict {
            id,
            expected,
            actual,
        }) => {
            assert_eq!(
                (id, expected, actual),
                (created.id(), created.version(), first.version())
            );
        }
        other => panic!("stale update: expected TM-SESS-4091, got {other:?}"),
    }
    assert_eq!(
        fx.repo.get(created.id()).expect("get"),
        first,
        "stale update changed nothing"
    );
}

/// `update` of an id never created is `TM-SESS-4041`.
pub fn update_of_unknown_id_is_not_found(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let never = fx.sessions.next_for(&SessionFactory::user(1));
    expect_code(
        fx.repo.update(never, 1),
        "TM-SESS-4041",
        "update of unknown id",
    );
}

/// `update` refuses to change `user_id` or `created_at` with `TM-SESS-4001`.
pub fn update_cannot_change_owner_or_creation_time(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let created = fx.create(&SessionFactory::user(1));
    let new_owner = edited(&created, |f| f.user_id = SessionFactory::user(2));
    expect_code(
        fx.repo.update(new_owner, created.version()),
        "TM-SESS-4001",
        "owner change",
    );
    let new_birth = edited(&created, |f| {
        f.created_at = f
            .created_at
            .checked_sub(Duration::from_millis(1))
            .expect("small");
    });
    expect_code(
        fx.repo.update(new_birth, created.version()),
        "TM-SESS-4001",
        "created_at change",
    );
    assert_eq!(
        fx.repo.get(created.id()).expect("get"),
        created,
        "refused updates changed nothing"
    );
    assert_eq!(
        fx.repo
            .count_by_user(&SessionFactory::user(2))
            .expect("count"),
        0
    );
}

/// A new token hash in `update` is found by token; the old one is not.
pub fn update_moves_the_token_index(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let created = fx.create(&SessionFactory::user(1));
    let rotated = TokenHash::of_token("rotated-token").expect("valid");
    let updated = fx
        .repo
        .update(
            edited(&created, |f| f.token_hash = rotated),
            created.version(),
        )
        .expect("token rotation");
    assert_eq!(
        fx.repo
            .get_by_token_hash(&rotated)
            .expect("new token finds session"),
        updated
    );
    expect_code(
        fx.repo.get_by_token_hash(&created.fields().token_hash),
        "TM-SESS-4042",
        "old token after rotation",
    );
}

/// `update` to a token hash another session holds is `TM-SESS-4093` and changes nothing.
pub fn update_to_a_taken_token_is_conflict(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let first = fx.create(&SessionFactory::user(1));
    let second = fx.create(&SessionFactory::user(1));
    let clash = edited(&second, |f| f.token_hash = first.fields().token_hash);
    expect_code(
        fx.repo.update(clash, second.version()),
        "TM-SESS-4093",
        "update to a taken token",
    );
    assert_eq!(
        fx.repo
            .get_by_token_hash(&first.fields().token_hash)
            .expect("first token")
            .id(),
        first.id()
    );
    assert_eq!(
        fx.repo
            .get_by_token_hash(&second.fields().token_hash)
            .expect("second token")
            .id(),
        second.id()
    );
}

/// An expired session can be extended by `update`; it is live again afterwards.
pub fn update_can_extend_an_expired_session(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let created = fx.create(&SessionFactory::user(1));
    fx.clock.set(created.expiry());
    expect_code(
        fx.repo.get(created.id()),
        "TM-SESS-4101",
        "get at the expiry instant",
    );
    let extended = edited(&created, |f| {
        f.expires_at = f
            .expires_at
            .checked_add(Duration::from_secs(3600))
            .expect("small");
    });
    let updated = fx
        .repo
        .update(extended, created.version())
        .expect("extending an expired session");
    assert_eq!(fx.repo.get(created.id()).expect("live again"), updated);
}

/// `delete` removes the session and its token; deleting again is `Ok(false)`.
pub fn delete_is_idempotent(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let created = fx.create(&SessionFactory::user(1));
    assert!(
        fx.repo.delete(created.id()).expect("first delete"),
        "first delete reports a removal"
    );
    assert!(
        !fx.repo.delete(created.id()).expect("second delete"),
        "second delete removes nothing"
    );
    expect_code(
        fx.repo.get(created.id()),
        "TM-SESS-4041",
        "get after delete",
    );
    expect_code(
        fx.repo.get_by_token_hash(&created.fields().token_hash),
        "TM-SESS-4042",
        "token after delete",
    );
    assert_eq!(
        fx.repo
            .count_by_user(&SessionFactory::user(1))
            .expect("count"),
        0
    );
    assert_eq!(
        fx.ids(&SessionFilter::default()),
        BTreeSet::new(),
        "list after delete"
    );
}

/// At the per-user limit, `create` is refused (`Reject`) or evicts the oldest (`EvictOldest`);
/// other users are unaffected.
pub fn quota_is_enforced_at_the_limit(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let quota = factory.quota();
    let user = SessionFactory::user(1);
    let first = fx.create(&user);
    for _ in 1..quota.sessions_per_user_max {
        fx.create(&user);
    }
    let limit = u64::from(quota.sessions_per_user_max);
    assert_eq!(
        fx.repo.count_by_user(&user).expect("count"),
        limit,
        "filled to the limit"
    );
    let one_more = fx.sessions.next_for(&user);
    match quota.policy {
        QuotaPolicy::Reject => {
            match fx.try_create(one_more.clone()) {
                Err(SessionError::QuotaExceeded {
                    user_id,
                    limit: reported,
                }) => {
                    assert_eq!(
                        (user_id, reported),
                        (user.clone(), quota.sessions_per_user_max)
                    );
                }
                other => panic!("create over quota: expected TM-SESS-4291, got {other:?}"),
            }
            expect_code(
                fx.repo.get(one_more.id()),
                "TM-SESS-4041",
                "refused session",
            );
        }
        QuotaPolicy::EvictOldest => {
            let outcome = fx.try_create(one_more.clone()).expect("create evicts");
            assert_eq!(
                outcome.evicted.as_ref().map(Session::id),
                Some(first.id()),
                "oldest evicted"
            );
            expect_code(fx.repo.get(first.id()), "TM-SESS-4041", "evicted session");
            expect_code(
                fx.repo.get_by_token_hash(&first.fields().token_hash),
                "TM-SESS-4042",
                "evicted token",
            );
        }
    }
    assert_eq!(
        fx.repo.count_by_user(&user).expect("count"),
        limit,
        "still at the limit"
    );
    fx.create(&SessionFactory::user(2));
}

/// Expired sessions do not count toward the quota.
pub fn expired_sessions_do_not_count_toward_quota(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let user = SessionFactory::user(1);
    fx.sessions.set_lifetime(Duration::from_secs(60));
    for _ in 0..factory.quota().sessions_per_user_max {
        fx.create(&user);
    }
    fx.advance(Duration::from_secs(3600));
    fx.sessions.set_lifetime(Duration::from_secs(7200));
    let new = fx.sessions.next_for(&user);
    let outcome = fx.try_create(new).expect("create after all expired");
    assert_eq!(outcome.evicted, None, "no live session had to go");
    assert_eq!(
        fx.repo.count_by_user(&user).expect("count"),
        1,
        "only the new session is live"
    );
}

/// Once expired, `get` and token lookup report `TM-SESS-4101`, never the session.
pub fn expired_session_is_not_returned_as_live(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let created = fx.create(&SessionFactory::user(1));
    fx.clock.set(
        created
            .expiry()
            .checked_sub(Duration::from_millis(1))
            .expect("small"),
    );
    assert_eq!(
        fx.repo.get(created.id()).expect("live 1 ms before expiry"),
        created
    );
    fx.clock.set(created.expiry());
    match fx.repo.get(created.id()) {
        Err(SessionError::Expired { id, expired_at }) => {
            assert_eq!((id, expired_at), (created.id(), created.expiry()));
        }
        other => panic!("get at expiry: expected TM-SESS-4101, got {other:?}"),
    }
    expect_code(
        fx.repo.get_by_token_hash(&created.fields().token_hash),
        "TM-SESS-4101",
        "token at expiry",
    );
}

/// A session unused for its idle timeout expires before `expires_at`.
pub fn idle_session_expires(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let new = fx.sessions.next_for(&SessionFactory::user(1));
    let mut fields = new.into_fields();
    fields.idle_timeout = Some(Duration::from_secs(60));
    let created = fx.create_new(NewSession::new(fields).expect("valid"));
    let idle_end = created
        .fields()
        .last_active
        .checked_add(Duration::from_secs(60))
        .expect("small");
    fx.clock.set(
        idle_end
            .checked_sub(Duration::from_millis(1))
            .expect("small"),
    );
    let touched = fx
        .repo
        .touch(created.id(), fx.clock.now(), None)
        .expect("touch before idle end");
    assert!(
        touched.expiry() > idle_end,
        "touch pushes the idle expiry out"
    );
    fx.clock.set(touched.expiry());
    expect_code(
        fx.repo.get(created.id()),
        "TM-SESS-4101",
        "get after idle timeout",
    );
}

/// `get_by_token_hash` finds the session holding the token, among many.
pub fn token_lookup_finds_session(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let sessions: Vec<Session> = (0..10)
        .map(|i| fx.create(&SessionFactory::user(i % 3)))
        .collect();
    for (index, session) in sessions.iter().enumerate() {
        let hash = TokenHash::of_token(&fx.sessions.token(index as u64)).expect("valid");
        assert_eq!(
            fx.repo
                .get_by_token_hash(&hash)
                .expect("token finds its session"),
            *session
        );
    }
}

/// `touch` sets `last_active` (never backwards) and `last_access_ip`, and keeps the version;
/// an `update` after it neither conflicts nor moves `last_active` back.
pub fn touch_updates_last_active(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let created = fx.create(&SessionFactory::user(1));
    fx.advance(Duration::from_secs(60));
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let now = fx.clock.now();
    let touched = fx.repo.touch(created.id(), now, Some(ip)).expect("touch");
    assert_eq!(
        touched.fields().last_active,
        now,
        "last_active is the touch time"
    );
    assert_eq!(
        touched.fields().last_access_ip,
        Some(ip),
        "last_access_ip recorded"
    );
    assert_eq!(
        touched.version(),
        created.version(),
        "touch is a heartbeat: the version stays"
    );
    let earlier = now.checked_sub(Duration::from_secs(30)).expect("small");
    let late = fx
        .repo
        .touch(created.id(), earlier, None)
        .expect("late touch");
    assert_eq!(
        late.fields().last_active,
        now,
        "a late touch never moves last_active back"
    );
    assert_eq!(
        late.fields().last_access_ip,
        Some(ip),
        "None keeps the last address"
    );
    assert_eq!(
        fx.repo.get(created.id()).expect("get"),
        late,
        "get sees the touch"
    );
    let updated = fx
        .repo
        .update(created.to_new(), created.version())
        .expect("update with the version read before the touches");
    assert_eq!(updated.version(), created.version() + 1, "update bumps");
    assert_eq!(
        updated.fields().last_active,
        now,
        "update keeps the later last_active of a concurrent touch"
    );
}

/// `touch` of an expired session is `TM-SESS-4101` and does not revive it.
pub fn touch_of_expired_session_is_expired(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let created = fx.create(&SessionFactory::user(1));
    fx.clock.set(created.expiry());
    expect_code(
        fx.repo.touch(created.id(), fx.clock.now(), None),
        "TM-SESS-4101",
        "touch at expiry",
    );
    expect_code(
        fx.repo.get(created.id()),
        "TM-SESS-4101",
        "still expired after the refused touch",
    );
    let never = fx.sessions.next_for(&SessionFactory::user(1));
    expect_code(
        fx.repo.touch(never.id(), fx.clock.now(), None),
        "TM-SESS-4041",
        "touch of unknown id",
    );
}

/// Offset pages are disjoint, sorted, cover every match, and each reports the exact total.
pub fn list_pages_are_disjoint_and_total_is_exact(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let count = 45;
    let mut all: Vec<Session> = (0..count)
        .map(|i| fx.create(&SessionFactory::user(i % 4)))
        .collect();
    let sort = Sort::new(SortBy::CreatedAt, SortOrder::Asc);
    all.sort_by(|a, b| sort.compare(a, b));
    let mut seen = Vec::new();
    for number in 1..=4 {
        let page = Page::new(number, 20).expect("valid page");
        let result = fx
            .repo
            .list(&SessionFilter::default(), sort, page)
            .expect("list");
        assert_eq!(result.total, u64::from(count), "page {number} total");
        let expected_len = (count as usize)
            .saturating_sub((number as usize - 1) * 20)
            .min(20);
        assert_eq!(result.items.len(), expected_len, "page {number} length");
        seen.extend(result.items);
    }
    assert_eq!(
        seen, all,
        "pages concatenate to the sorted whole, without overlap"
    );
}

fn check_filter(
    fx: &Fixture,
    all: &[Session],
    filter: SessionFilter,
    keep: impl Fn(&Session) -> bool,
) {
    let expected: BTreeSet<SessionId> = all.iter().filter(|s| keep(s)).map(Session::id).collect();
    assert!(
        !expected.is_empty() && expected.len() < all.len(),
        "{filter:?} must split the population"
    );
    assert_eq!(fx.ids(&filter), expected, "{filter:?}");
}

fn population(fx: &mut Fixture) -> Vec<Session> {
    (0..24)
        .map(|i| fx.create(&SessionFactory::user(i % 3)))
        .collect()
}

/// `user_id` filter returns exactly that user's sessions.
pub fn list_filters_by_user(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let all = population(&mut fx);
    let user = SessionFactory::user(1);
    let filter = SessionFilter {
        user_id: Some(user.clone()),
        ..SessionFilter::default()
    };
    check_filter(&fx, &all, filter, |s| s.fields().user_id == user);
}

/// `device_id` filter returns exactly the sessions of that device.
pub fn list_filters_by_device(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let all = population(&mut fx);
    let device = DeviceId::new("device-2").expect("valid");
    let filter = SessionFilter {
        device_id: Some(device.clone()),
        ..SessionFilter::default()
    };
    check_filter(&fx, &all, filter, |s| {
        s.fields().device_id.as_ref() == Some(&device)
    });
}

/// `created_by` filter returns exactly the sessions made by that API key.
pub fn list_filters_by_created_by(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let all = population(&mut fx);
    let key = ApiKeyId::new("key-1").expect("valid");
    let filter = SessionFilter {
        created_by: Some(key.clone()),
        ..SessionFilter::default()
    };
    check_filter(&fx, &all, filter, |s| {
        s.fields().created_by.as_ref() == Some(&key)
    });
}

/// `ip_address` filter matches the creation address or the last access address.
pub fn list_filters_by_ip_on_either_address(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let mut all = population(&mut fx);
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 3, 1));
    // Move one session that was created elsewhere onto `ip` through its last access.
    let index = all
        .iter()
        .position(|s| s.fields().ip_address != Some(ip))
        .expect("some elsewhere");
    all[index] = fx
        .repo
        .touch(all[index].id(), fx.clock.now(), Some(ip))
        .expect("touch");
    let filter = SessionFilter {
        ip_address: Some(ip),
        ..SessionFilter::default()
    };
    check_filter(&fx, &all, filter, |s| {
        s.fields().ip_address == Some(ip) || s.fields().last_access_ip == Some(ip)
    });
    assert!(
        fx.ids(&SessionFilter {
            ip_address: Some(ip),
            ..SessionFilter::default()
        })
        .contains(&all[index].id())
    );
}

/// `status` filter splits live from expired sessions at the store's time.
pub fn list_filters_by_status(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    fx.sessions.set_lifetime(Duration::from_secs(60));
    let mut all: Vec<Session> = (0..6)
        .map(|i| fx.create(&SessionFactory::user(i % 2)))
        .collect();
    fx.sessions.set_lifetime(Duration::from_secs(7200));
    all.extend((0..5).map(|i| fx.create(&SessionFactory::user(i % 2))));
    fx.advance(Duration::from_secs(3600));
    let now = fx.clock.now();
    for status in [SessionStatus::Active, SessionStatus::Expired] {
        let filter = SessionFilter {
            status: Some(status),
            ..SessionFilter::default()
        };
        check_filter(&fx, &all, filter, |s| s.status_at(now) == status);
    }
}

/// `created_after` and `created_before` are strict bounds on `created_at`.
pub fn list_filters_by_creation_time(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let all = population(&mut fx);
    let after = all[5].fields().created_at;
    let before = all[15].fields().created_at;
    let filter = SessionFilter {
        created_after: Some(after),
        created_before: Some(before),
        ..SessionFilter::default()
    };
    check_filter(&fx, &all, filter, |s| {
        s.fields().created_at > after && s.fields().created_at < before
    });
}

/// `active_after` is a strict bound on `last_active`.
pub fn list_filters_by_activity_time(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let mut all = population(&mut fx);
    fx.advance(Duration::from_secs(60));
    let cutoff = fx.clock.now();
    fx.advance(Duration::from_millis(1));
    for index in [2, 7, 11] {
        all[index] = fx
            .repo
            .touch(all[index].id(), fx.clock.now(), None)
            .expect("touch");
    }
    let filter = SessionFilter {
        active_after: Some(cutoff),
        ..SessionFilter::default()
    };
    check_filter(&fx, &all, filter, |s| s.fields().last_active > cutoff);
}

/// Every sort (key × order) returns the sessions in that order, ties on the key by id.
pub fn list_sorts_each_way_with_ties_by_id(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let mut all = population(&mut fx);
    // Two sessions sharing created_at and two sharing last_active, to exercise the tie-break.
    let twin_at = all[3].fields().created_at;
    let twin = fx.sessions.next_for(&SessionFactory::user(0));
    let mut twin_fields = twin.into_fields();
    twin_fields.created_at = twin_at;
    twin_fields.last_active = twin_at;
    twin_fields.id = SessionId::from_parts(twin_at, 0xffff_ffff).expect("valid");
    all.push(fx.create_new(NewSession::new(twin_fields).expect("valid")));
    fx.advance(Duration::from_secs(10));
    let touch_at = fx.clock.now();
    for index in [1, 9] {
        all[index] = fx
            .repo
            .touch(all[index].id(), touch_at, None)
            .expect("touch");
    }
    for by in [SortBy::CreatedAt, SortBy::LastActive] {
        for order in [SortOrder::Asc, SortOrder::Desc] {
            let sort = Sort::new(by, order);
            let mut expected = all.clone();
            expected.sort_by(|a, b| {
                let (ka, kb) = (sort.key_of(a), sort.key_of(b));
                let natural = ka.cmp(&kb).then(a.id().cmp(&b.id()));
                if order == SortOrder::Asc {
                    natural
                } else {
                    natural.reverse()
                }
            });
            let page = Page::new(1, 100).expect("valid");
            let result = fx
                .repo
                .list(&SessionFilter::default(), sort, page)
                .expect("list");
            let got: Vec<SessionId> = result.items.iter().map(Session::id).collect();
            let want: Vec<SessionId> = expected.iter().map(Session::id).collect();
            assert_eq!(got, want, "order for {sort:?}");
        }
    }
}

/// Cursor paging while sessions are created and deleted between slices: every session present
/// throughout is seen exactly once, deleted ones are never seen after deletion, nothing repeats.
pub fn cursor_paging_visits_each_session_once_under_writes(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let user_count = 4;
    let initial: Vec<Session> = (0..40)
        .map(|i| fx.create(&SessionFactory::user(i % user_count)))
        .collect();
    let sort = Sort::new(SortBy::CreatedAt, SortOrder::Asc);
    let limit = PageSize::new(7).expect("valid");
    let mut deleted = BTreeSet::new();
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut reached_end = false;
    // 40 sessions in slices of 7, each slice followed by one create and one delete: the net
    // shrink of 7 per slice ends the walk in about 6 slices; 20 bounds it.
    for round in 0..20u32 {
        let slice = fx
            .repo
            .list_after(&SessionFilter::default(), sort, cursor.as_ref(), limit)
            .expect("list_after");
        assert!(slice.items.len() <= 7, "slice {round} exceeds the limit");
        for pair in slice.items.windows(2) {
            assert_eq!(
                sort.compare(&pair[0], &pair[1]),
                std::cmp::Ordering::Less,
                "slice {round} is sorted"
            );
        }
        seen.extend(slice.items.iter().map(Session::id));
        let Some(next) = slice.next else {
            reached_end = true;
            break;
        };
        assert_eq!(
            Some(next),
            slice.items.last().map(|s| Cursor::after(s, sort)),
            "next follows the last item"
        );
        cursor = Some(next);
        // A create sorts after the cursor (created later), so the walk must reach it; the
        // delete hits a session not seen yet, so the walk must not return it.
        fx.create(&SessionFactory::user(round % user_count));
        if let Some(victim) = initial
            .iter()
            .rev()
            .find(|s| !seen.contains(&s.id()) && !deleted.contains(&s.id()))
        {
            assert!(
                fx.repo.delete(victim.id()).expect("delete"),
                "victim existed"
            );
            deleted.insert(victim.id());
        }
    }
    assert!(reached_end, "cursor walk did not end within 20 slices");
    assert!(
        !deleted.is_empty(),
        "the walk deleted sessions ahead of the cursor"
    );
    let unique: BTreeSet<SessionId> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no session is returned twice");
    assert_eq!(
        unique,
        fx.ids(&SessionFilter::default()),
        "the walk returned exactly the sessions stored at its end"
    );
}

/// `next` is `Some` while more matches exist and `None` on the slice that ends the list.
pub fn cursor_next_is_none_exactly_at_the_end(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    for i in 0..10 {
        fx.create(&SessionFactory::user(i % 2));
    }
    let sort = Sort::new(SortBy::LastActive, SortOrder::Desc);
    let limit = PageSize::new(5).expect("valid");
    let filter = SessionFilter::default();
    let first = fx
        .repo
        .list_after(&filter, sort, None, limit)
        .expect("first slice");
    assert_eq!(first.items.len(), 5);
    let next = first.next.expect("more after the first slice");
    let second = fx
        .repo
        .list_after(&filter, sort, Some(&next), limit)
        .expect("second slice");
    assert_eq!(second.items.len(), 5);
    assert_eq!(
        second.next, None,
        "the slice that reaches the end has no next cursor"
    );
    let whole = fx
        .repo
        .list_after(&filter, sort, None, PageSize::MAX)
        .expect("all at once");
    assert_eq!(whole.next, None);
    let mut joined = first.items;
    joined.extend(second.items);
    assert_eq!(joined, whole.items, "two slices equal one large slice");
}

/// A cursor made for one sort is `TM-SESS-4003` with another.
pub fn cursor_of_another_sort_is_invalid(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let session = fx.create(&SessionFactory::user(1));
    let cursor = Cursor::after(&session, Sort::new(SortBy::CreatedAt, SortOrder::Asc));
    let other = Sort::new(SortBy::LastActive, SortOrder::Asc);
    let result = fx.repo.list_after(
        &SessionFilter::default(),
        other,
        Some(&cursor),
        PageSize::DEFAULT,
    );
    expect_code(result, "TM-SESS-4003", "cursor used with another sort");
}

/// `count_by_user` and `list_by_user` see the user's live sessions only, oldest first.
pub fn count_and_list_by_user_see_only_live_sessions(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let user = SessionFactory::user(1);
    fx.sessions.set_lifetime(Duration::from_secs(60));
    for _ in 0..3 {
        fx.create(&user);
    }
    fx.sessions.set_lifetime(Duration::from_secs(7200));
    let live: Vec<Session> = (0..4).map(|_| fx.create(&user)).collect();
    fx.create(&SessionFactory::user(2));
    fx.advance(Duration::from_secs(3600));
    assert_eq!(
        fx.repo.count_by_user(&user).expect("count"),
        4,
        "expired sessions are not counted"
    );
    assert_eq!(
        fx.repo.list_by_user(&user).expect("list_by_user"),
        live,
        "live sessions, oldest first"
    );
    assert_eq!(
        fx.repo
            .count_by_user(&SessionFactory::user(9))
            .expect("count"),
        0,
        "unknown user"
    );
    assert_eq!(
        fx.repo
            .list_by_user(&SessionFactory::user(9))
            .expect("list"),
        Vec::new()
    );
}

/// `delete_by_user` removes every session of the user (live and expired) from every lookup.
pub fn delete_by_user_cleans_everything(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    let user = SessionFactory::user(1);
    fx.sessions.set_lifetime(Duration::from_secs(60));
    let mut doomed = vec![fx.create(&user)];
    fx.sessions.set_lifetime(Duration::from_secs(7200));
    doomed.extend((0..4).map(|_| fx.create(&user)));
    let kept = fx.create(&SessionFactory::user(2));
    fx.advance(Duration::from_secs(120));
    assert_eq!(
        fx.repo.delete_by_user(&user).expect("delete_by_user"),
        5,
        "live and expired removed"
    );
    for session in &doomed {
        expect_code(
            fx.repo.get(session.id()),
            "TM-SESS-4041",
            "get after delete_by_user",
        );
        expect_code(
            fx.repo.get_by_token_hash(&session.fields().token_hash),
            "TM-SESS-4042",
            "token",
        );
    }
    assert_eq!(fx.repo.count_by_user(&user).expect("count"), 0);
    let by_user = SessionFilter {
        user_id: Some(user.clone()),
        ..SessionFilter::default()
    };
    assert_eq!(
        fx.ids(&by_user),
        BTreeSet::new(),
        "list by user after delete_by_user"
    );
    assert_eq!(fx.repo.get(kept.id()).expect("other user untouched"), kept);
    assert_eq!(
        fx.repo.delete_by_user(&user).expect("again"),
        0,
        "second call removes nothing"
    );
}

/// `cleanup_expired` removes exactly the sessions expired at the store's time.
pub fn cleanup_expired_removes_only_expired(factory: &dyn RepositoryFactory) {
    let mut fx = fixture(factory);
    fx.sessions.set_lifetime(Duration::from_secs(60));
    let expired: Vec<Session> = (0..5)
        .map(|i| fx.create(&SessionFactory::user(i % 2)))
        .collect();
    fx.sessions.set_lifetime(Duration::from_secs(7200));
    let live: Vec<Session> = (0..3)
        .map(|i| fx.create(&SessionFactory::user(i % 2)))
        .collect();
    assert_eq!(
        fx.repo.cleanup_expired().expect("cleanup"),
        0,
        "nothing expired yet"
    );
    fx.advance(Duration::from_secs(3600));
    assert_eq!(
        fx.repo.cleanup_expired().expect("cleanup"),
        5,
        "the five short sessions"
    );
    for session in &expired {
        expect_code(
            fx.repo.get(session.id()),
            "TM-SESS-4041",
            "expired session after cleanup",
        );
        expect_code(
            fx.repo.get_by_token_hash(&session.fields().token_hash),
            "TM-SESS-4042",
            "token",
        );
    }
    for session in &live {
        assert_eq!(
            fx.repo.get(session.id()).expect("live session kept"),
            *session
        );
    }
    assert_eq!(
        fx.repo.cleanup_expired().expect("cleanup"),
        0,
        "second cleanup finds nothing"
    );
}

//! Redis deletes nothing the store still needs, and keeps nothing forever: every key of a
//! session carries a TTL of `expires_at - now + expired_grace` (by the store's clock), and an
//! update that moves `expires_at` moves the TTLs of the session's pointers with it.

mod common;

use std::time::Duration;

use tokm_domain::testkit::SessionFactory;
use tokm_domain::{Clock, NewSession, SessionRepository, TokenRepository};
use tokm_redis::RedisClusterStore;

const GRACE: Duration = Duration::from_secs(3600);
/// Slack for the time between the write and the `PTTL` read, and for the test's own pace.
const SLACK: Duration = Duration::from_secs(60);

fn ttls(
    store: &RedisClusterStore,
    raw: &mut redis::cluster::ClusterConnection,
    session: &NewSession,
) -> Vec<(String, Duration)> {
    let user = store.keys().user(&session.fields().user_id);
    [
        user.records,
        user.created,
        user.expiry,
        store.keys().session_pointer(session.id()),
        store.keys().token_pointer(&session.fields().token_hash),
    ]
    .into_iter()
    .enumerate()
    .map(|(index, key)| {
        let ttl_ms: i64 = redis::cmd("PTTL").arg(&key).query(raw).expect("PTTL");
        // Name keys by position: the token pointer's name holds the token hash.
        let name = [
            "records",
            "created",
            "expiry",
            "id pointer",
            "token pointer",
        ][index];
        assert!(ttl_ms > 0, "{name} has a TTL ({ttl_ms})");
        (name.to_owned(), Duration::from_millis(ttl_ms as u64))
    })
    .collect()
}

#[test]
fn every_key_of_a_session_expires_a_grace_period_after_the_session() {
    let Some(nodes) = common::cluster("backstop TTL") else {
        return;
    };
    let clock = common::clock();
    let mut options = common::options(&nodes, "ttl");
    options.expired_grace = GRACE;
    let store = RedisClusterStore::connect(options, clock.clone()).expect("cluster");
    let mut raw = common::raw(&nodes);
    let mut sessions = SessionFactory::new(5, clock.now());
    let session = sessions.next_for(&SessionFactory::user(1));
    let lifetime = session
        .fields()
        .expires_at
        .saturating_duration_since(clock.now());
    let created = store.create(session.clone()).expect("create").session;
    for (name, ttl) in ttls(&store, &mut raw, &session) {
        assert!(
            ttl <= lifetime + GRACE && ttl + SLACK >= lifetime + GRACE,
            "{name}: {ttl:?} for a lifetime of {lifetime:?} and a grace of {GRACE:?}"
        );
    }

    // Ten more days: the pointers follow, or the session would vanish before it expires.
    let extension = Duration::from_secs(10 * 86_400);
    let mut fields = created.fields().clone();
    fields.expires_at = fields.expires_at.checked_add(extension).expect("small");
    let longer = NewSession::new(fields).expect("valid");
    store
        .update(longer.clone(), created.version())
        .expect("update");
    for (name, ttl) in ttls(&store, &mut raw, &longer) {
        assert!(
            ttl + SLACK >= lifetime + extension + GRACE,
            "{name}: {ttl:?} after extending by {extension:?}"
        );
    }
    // Much later by the store's clock, still within the grace: expired, not gone.
    clock.advance(lifetime + extension + Duration::from_secs(1));
    assert_eq!(store.get(session.id()).unwrap_err().code(), "TM-SESS-4101");
    assert_eq!(
        store
            .get_by_token_hash(&session.fields().token_hash)
            .unwrap_err()
            .code(),
        "TM-SESS-4101"
    );
}

//! Sixteen threads creating sessions for one user at the quota limit never push the user past
//! it: the quota check and the insert are one script in the user's slot.

mod common;

use std::sync::Barrier;

use tokm_domain::testkit::SessionFactory;
use tokm_domain::{NewSession, Quota, QuotaPolicy, SessionRepository, TokenRepository, UserId};
use tokm_redis::RedisClusterStore;

const THREADS: usize = 16;
const CREATES_PER_THREAD: usize = 4;
const QUOTA: u32 = 10;

fn run(nodes: &[String], policy: QuotaPolicy) {
    let clock = common::clock();
    let mut options = common::options(nodes, "quota");
    options.quota = Quota {
        sessions_per_user_max: QUOTA,
        policy,
    };
    let store = RedisClusterStore::connect(options, clock).expect("cluster");
    let user = UserId::new("crowded{user}").expect("valid");
    let mut factory = SessionFactory::new(16, tokm_domain::testkit::SUITE_START);
    let sessions: Vec<NewSession> = (0..THREADS * CREATES_PER_THREAD)
        .map(|_| factory.next_for(&user))
        .collect();
    let start = Barrier::new(THREADS);
    let outcomes: Vec<Vec<Result<bool, &'static str>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .chunks(CREATES_PER_THREAD)
            .map(|chunk| {
                let (store, start) = (&store, &start);
                scope.spawn(move || {
                    start.wait();
                    chunk
                        .iter()
                        .map(|session| match store.create(session.clone()) {
                            Ok(outcome) => {
                                let live = store.count_by_user(&session.fields().user_id);
                                assert!(
                                    live.expect("count") <= u64::from(QUOTA),
                                    "never above the quota"
                                );
                                Ok(outcome.evicted.is_some())
                            }
                            Err(err) => Err(err.code()),
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    let all: Vec<Result<bool, &str>> = outcomes.into_iter().flatten().collect();
    let created = all.iter().filter(|outcome| outcome.is_ok()).count();
    let evictions = all.iter().filter(|outcome| **outcome == Ok(true)).count();
    let refused = all
        .iter()
        .filter(|outcome| **outcome == Err("TM-SESS-4291"))
        .count();
    assert_eq!(created + refused, all.len(), "only quota refusals: {all:?}");
    assert_eq!(store.count_by_user(&user).expect("count"), u64::from(QUOTA));
    let listed = store.list_by_user(&user).expect("list");
    assert_eq!(listed.len(), QUOTA as usize);
    for session in &listed {
        assert_eq!(
            store
                .get_by_token_hash(&session.fields().token_hash)
                .expect("token"),
            *session
        );
    }
    match policy {
        QuotaPolicy::Reject => {
            assert_eq!(created, QUOTA as usize, "exactly the quota was admitted");
            assert_eq!(evictions, 0);
        }
        QuotaPolicy::EvictOldest => {
            assert_eq!(created, all.len(), "eviction admits every create");
            assert_eq!(
                evictions,
                all.len() - QUOTA as usize,
                "one eviction per create past the quota"
            );
        }
    }
}

#[test]
fn concurrent_creates_at_the_limit_never_exceed_it_when_rejecting() {
    let Some(nodes) = common::cluster("quota, reject") else {
        return;
    };
    run(&nodes, QuotaPolicy::Reject);
}

#[test]
fn concurrent_creates_at_the_limit_never_exceed_it_when_evicting() {
    let Some(nodes) = common::cluster("quota, evict") else {
        return;
    };
    run(&nodes, QuotaPolicy::EvictOldest);
}

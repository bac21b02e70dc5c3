//! Bad input and faults come back as typed errors with stable codes, never a panic: a wrong or
//! malformed address, a seed node that is down, a script error, a record that does not decode.

mod common;

use std::time::{Duration, Instant};

use tokm_domain::testkit::SessionFactory;
use tokm_domain::{
    Page, SessionError, SessionFilter, SessionRepository, Sort, TokenRepository, UserId,
};
use tokm_redis::{RedisClusterOptions, RedisClusterStore};

/// A port nothing listens on: bound by this test, then closed.
fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    format!("127.0.0.1:{port}")
}

#[test]
fn a_wrong_address_is_unavailable_at_connect() {
    let mut options = RedisClusterOptions::new(vec![dead_address()], "faults");
    options.connect_timeout = Duration::from_millis(200);
    let started = Instant::now();
    let err = RedisClusterStore::connect(options, common::clock()).expect_err("nobody answers");
    assert_eq!(err.code(), "TM-REDIS-5031", "{err}");
    assert!(err.to_string().contains("connect"), "{err}");
    // Not a timing assertion on the store: a refused connection must not wait out the
    // 20 s retry budget, which would hang a service's start-up.
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn malformed_addresses_and_options_are_refused_before_connecting() {
    for (nodes, namespace, code) in [
        (vec!["localhost".to_owned()], "ns", "TM-REDIS-4002"),
        (vec!["127.0.0.1:notaport".to_owned()], "ns", "TM-REDIS-4002"),
        (vec!["[::1:7000".to_owned()], "ns", "TM-REDIS-4002"),
        (Vec::new(), "ns", "TM-REDIS-4001"),
        (vec!["127.0.0.1:7000".to_owned()], "{tag}", "TM-REDIS-4001"),
        (vec!["127.0.0.1:7000".to_owned()], "", "TM-REDIS-4001"),
    ] {
        let options = RedisClusterOptions::new(nodes.clone(), namespace);
        let err = RedisClusterStore::connect(options, common::clock()).expect_err("refused");
        assert_eq!(err.code(), code, "{nodes:?} {namespace:?}: {err}");
    }
}

#[test]
fn a_seed_node_that_is_down_is_skipped() {
    let Some(nodes) = common::cluster("seed node down") else {
        return;
    };
    let mut seeds = vec![dead_address()];
    seeds.extend(nodes);
    let mut options = common::options(&seeds, "seed");
    options.connect_timeout = Duration::from_millis(200);
    let store = RedisClusterStore::connect(options, common::clock()).expect("a live seed answers");
    let mut sessions = SessionFactory::new(1, tokm_domain::testkit::SUITE_START);
    let created = store
        .create(sessions.next_for(&SessionFactory::user(1)))
        .expect("create");
    assert_eq!(
        store.get(created.session.id()).expect("get"),
        created.session
    );
}

#[test]
fn a_record_that_does_not_decode_is_a_corrupt_record_error() {
    let Some(nodes) = common::cluster("corrupt record") else {
        return;
    };
    let store = common::store(&nodes, "corrupt", common::clock());
    let mut sessions = SessionFactory::new(2, tokm_domain::testkit::SUITE_START);
    let user = SessionFactory::user(1);
    let created = store
        .create(sessions.next_for(&user))
        .expect("create")
        .session;
    let records_key = store.keys().user(&user).records;
    let mut raw = common::raw(&nodes);
    for damage in [&b""[..], b"not a record", &[0xff; 120]] {
        redis::cmd("HSET")
            .arg(&records_key)
            .arg(created.id().to_string())
            .arg(damage)
            .exec(&mut raw)
            .expect("damage the record");
        let by_id = store.get(created.id()).expect_err("damaged");
        assert_eq!(common::code_of(&by_id), "TM-REDIS-5201", "{by_id}");
        assert_eq!(
            by_id.code(),
            "TM-SESS-5001",
            "the domain code of a storage failure"
        );
        let by_token = store
            .get_by_token_hash(&created.fields().token_hash)
            .expect_err("damaged");
        assert_eq!(common::code_of(&by_token), "TM-REDIS-5201");
        let by_user = store.list_by_user(&user).expect_err("damaged");
        assert_eq!(common::code_of(&by_user), "TM-REDIS-5201");
        let everything = store
            .list(&SessionFilter::default(), Sort::default(), Page::default())
            .expect_err("damaged");
        assert_eq!(common::code_of(&everything), "TM-REDIS-5201");
    }
    // A revocation is not stopped by damage: the damaged value goes with the user's sessions.
    assert_eq!(store.delete_by_user(&user).expect("delete_by_user"), 1);
    assert!(matches!(
        store.get(created.id()),
        Err(SessionError::NotFound { .. })
    ));
    assert_eq!(
        store
            .list(&SessionFilter::default(), Sort::default(), Page::default())
            .expect("nothing damaged is left")
            .total,
        0
    );
}

#[test]
fn a_script_error_is_a_typed_error_and_leaves_no_claim() {
    let Some(nodes) = common::cluster("script error") else {
        return;
    };
    let store = common::store(&nodes, "script", common::clock());
    let user = UserId::new("wrong-type").expect("valid");
    let keys = store.keys().user(&user);
    let mut raw = common::raw(&nodes);
    // A string where the user's record hash belongs: every script on that user fails.
    redis::cmd("SET")
        .arg(&keys.records)
        .arg("not a hash")
        .exec(&mut raw)
        .expect("plant");
    let mut sessions = SessionFactory::new(3, tokm_domain::testkit::SUITE_START);
    let session = sessions.next_for(&user);
    let err = store.create(session.clone()).expect_err("script fails");
    assert_eq!(common::code_of(&err), "TM-REDIS-5002", "{err}");
    assert_eq!(err.code(), "TM-SESS-5001");
    // The claims made before the script were released: no pointer outlives the failure.
    let pointers: u64 = redis::cmd("EXISTS")
        .arg(store.keys().session_pointer(session.id()))
        .query(&mut raw)
        .expect("exists");
    let token_pointers: u64 = redis::cmd("EXISTS")
        .arg(store.keys().token_pointer(&session.fields().token_hash))
        .query(&mut raw)
        .expect("exists");
    assert_eq!((pointers, token_pointers), (0, 0));
    assert!(matches!(
        store.get(session.id()),
        Err(SessionError::NotFound { .. })
    ));
    let err = store.delete_by_user(&user).expect_err("script fails");
    assert_eq!(common::code_of(&err), "TM-REDIS-5002");
    let err = store.list_by_user(&user).expect_err("command fails");
    assert_eq!(common::code_of(&err), "TM-REDIS-5001");
    // The expiry index is intact, so counting still works: only the hash has the wrong type.
    assert_eq!(store.count_by_user(&user).expect("count"), 0);
}

#[test]
fn scripts_flushed_from_every_node_are_loaded_again() {
    let Some(nodes) = common::cluster("script flush") else {
        return;
    };
    let clock = common::clock();
    let store = common::store(&nodes, "flush", clock.clone());
    let mut sessions = SessionFactory::new(4, tokm_domain::testkit::SUITE_START);
    let user = SessionFactory::user(1);
    let first = store
        .create(sessions.next_for(&user))
        .expect("create")
        .session;
    // As after a restart, or on a replica promoted since the scripts were loaded.
    for address in &nodes {
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .exec(&mut common::node(address).expect("node"))
            .expect("SCRIPT FLUSH");
    }
    let second = store
        .create(sessions.next_for(&user))
        .expect("create after flush");
    let touched = store
        .touch(first.id(), second.session.fields().created_at, None)
        .expect("touch after flush");
    assert_eq!(touched.version(), first.version());
    assert!(store.delete(first.id()).expect("delete after flush"));
    assert_eq!(store.count_by_user(&user).expect("count"), 1);
}

//! A client that dies between writing a session's pointers and its record (or between removing
//! the record and its pointers) leaves nothing a reader can see: every reader confirms a
//! pointer against the record, so a session is whole or absent.
//!
//! Two ways in: the exact state such a crash leaves, written by hand; and real crashes, a child
//! process creating and deleting sessions that is SIGKILLed after a varying number of
//! acknowledged writes, so that some kills land between the steps of one call.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{
    NewSession, Page, SessionError, SessionFilter, SessionId, SessionRepository, Sort,
    TokenRepository, UserId,
};
use tokm_redis::{RedisClusterStore, UserFingerprint};

const CHILD_NAMESPACE_ENV: &str = "TOKM_REDIS_CHILD_NAMESPACE";
const CHILD_START_ENV: &str = "TOKM_REDIS_CHILD_START";
/// Sessions the child works through at most; the parent kills it long before.
const CHILD_SESSIONS_MAX: u64 = 10_000;
const FACTORY_SEED: u64 = 0xdead;
const USERS: u32 = 3;

fn user_of(index: u64) -> UserId {
    SessionFactory::user((index % u64::from(USERS)) as u32)
}

/// Session `index` of the child's deterministic stream.
fn sessions(count: u64) -> Vec<NewSession> {
    let mut factory = SessionFactory::new(FACTORY_SEED, SUITE_START);
    (0..count)
        .map(|index| factory.next_for(&user_of(index)))
        .collect()
}

/// Whatever a reader can learn of `session`: `Some` only if every lookup agrees it is whole.
fn visible(store: &RedisClusterStore, session: &NewSession) -> Option<()> {
    let by_id = store.get(session.id());
    let by_token = store.get_by_token_hash(&session.fields().token_hash);
    let user = &session.fields().user_id;
    let listed = store
        .list_by_user(user)
        .expect("list_by_user")
        .iter()
        .any(|listed| listed.id() == session.id());
    match by_id {
        Ok(found) => {
            assert_eq!(found.fields(), session.fields(), "a found session is whole");
            assert_eq!(
                by_token.expect("found by id, so by token").id(),
                session.id()
            );
            assert!(listed, "found by id, so listed");
            Some(())
        }
        Err(SessionError::NotFound { .. }) => {
            assert!(
                matches!(by_token, Err(SessionError::TokenNotFound)),
                "absent by id, so by token: {by_token:?}"
            );
            assert!(!listed, "absent by id, so not listed");
            None
        }
        Err(other) => panic!("get: {other}"),
    }
}

#[test]
fn pointers_without_a_record_are_invisible_and_a_retry_completes_the_create() {
    let Some(nodes) = common::cluster("orphaned pointers") else {
        return;
    };
    let clock = common::clock();
    let store = common::store(&nodes, "orphan", clock.clone());
    let session = sessions(1).remove(0);
    let user = &session.fields().user_id;
    let fingerprint = UserFingerprint::of(user).to_hex();
    let mut raw = common::raw(&nodes);
    // Exactly what `create` writes before its script: the two claims.
    redis::cmd("SET")
        .arg(store.keys().session_pointer(session.id()))
        .arg(&fingerprint)
        .exec(&mut raw)
        .expect("claim id");
    redis::cmd("SET")
        .arg(store.keys().token_pointer(&session.fields().token_hash))
        .arg(format!("{fingerprint}:{}", session.id()))
        .exec(&mut raw)
        .expect("claim token");

    assert_eq!(visible(&store, &session), None);
    assert!(matches!(
        store.touch(session.id(), clock_now(&clock), None),
        Err(SessionError::NotFound { .. })
    ));
    assert!(matches!(
        store.update(session.clone(), 1),
        Err(SessionError::NotFound { .. })
    ));
    assert!(
        !store.delete(session.id()).expect("delete"),
        "nothing to delete"
    );
    assert_eq!(store.count_by_user(user).expect("count"), 0);
    let everything = store
        .list(&SessionFilter::default(), Sort::default(), Page::default())
        .expect("list");
    assert_eq!(everything.total, 0);
    assert_eq!(store.cleanup_expired().expect("cleanup"), 0);

    // The client, restarted, repeats its create: the claims are its own, so it completes.
    let created = store.create(session.clone()).expect("retried create");
    assert_eq!(created.session.fields(), session.fields());
    assert_eq!(visible(&store, &session), Some(()));
}

fn clock_now(clock: &tokm_domain::ManualClock) -> tokm_domain::Timestamp {
    use tokm_domain::Clock;
    clock.now()
}

#[test]
fn a_client_killed_mid_write_leaves_each_session_whole_or_absent() {
    if let Ok(namespace) = std::env::var(CHILD_NAMESPACE_ENV) {
        run_child(&namespace);
        return;
    }
    let Some(nodes) = common::cluster("killed client") else {
        return;
    };
    let namespace = common::namespace("killed");
    let mut deleted: HashSet<SessionId> = HashSet::new();
    let mut acked: HashSet<SessionId> = HashSet::new();
    // Each cycle starts where the last acknowledged create left off, so the create a kill
    // interrupted is repeated (and completes) and nothing acknowledged is redone.
    let mut next_index = 0;
    for kill_after in [3_u64, 17, 40, 8, 29] {
        let (created, removed, next) = run_cycle(&namespace, next_index, kill_after);
        acked.extend(created);
        deleted.extend(removed);
        next_index = next;
    }
    let mut options = common::options(&nodes, "verify");
    options.namespace = namespace;
    let store = RedisClusterStore::connect(options, common::clock()).expect("cluster");
    let mut whole = 0;
    // One past the last index: the create a kill interrupted there, if any.
    for (index, session) in sessions(next_index + 1).into_iter().enumerate() {
        let seen = visible(&store, &session);
        let id = session.id();
        if acked.contains(&id) && !is_deleted_by_child(index as u64) {
            assert_eq!(seen, Some(()), "acknowledged create {index} is there");
        }
        if deleted.contains(&id) {
            assert_eq!(seen, None, "acknowledged delete {index} holds");
        }
        whole += usize::from(seen.is_some());
    }
    println!(
        "killed client: {} sessions reached over 5 kills, {} creates and {} deletes \
         acknowledged, {whole} whole, the rest absent",
        next_index + 1,
        acked.len(),
        deleted.len()
    );
}

/// The child deletes every third session right after creating it.
fn is_deleted_by_child(index: u64) -> bool {
    index % 3 == 2
}

/// Starts a child on `namespace` from session `start`, reads its acknowledgements until
/// `kill_after`, SIGKILLs it; returns the acknowledged creates and deletes, and the index after
/// the last acknowledged create.
fn run_cycle(
    namespace: &str,
    start: u64,
    kill_after: u64,
) -> (Vec<SessionId>, Vec<SessionId>, u64) {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "a_client_killed_mid_write_leaves_each_session_whole_or_absent",
            "--nocapture",
        ])
        .env(CHILD_NAMESPACE_ENV, namespace)
        .env(CHILD_START_ENV, start.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    let (mut created, mut deleted, mut next) = (Vec::new(), Vec::new(), start);
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["CREATED", index, id] => {
                created.push(SessionId::parse(id).expect("an id"));
                next = index.parse::<u64>().expect("an index") + 1;
            }
            ["DELETED", id] => deleted.push(SessionId::parse(id).expect("an id")),
            _ => continue,
        }
        if (created.len() + deleted.len()) as u64 >= kill_after {
            break;
        }
    }
    // SIGKILL while the child is in the middle of its next call.
    child.kill().expect("kill child");
    child.wait().expect("reap child");
    (created, deleted, next)
}

/// The child: creates the stream's sessions in order from `TOKM_REDIS_CHILD_START` and deletes
/// every third right after creating it, printing each acknowledgement.
fn run_child(namespace: &str) {
    let start: usize = std::env::var(CHILD_START_ENV)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0);
    let nodes = common::cluster("killed client, child").expect("the parent had a cluster");
    let mut options = common::options(&nodes, "child");
    options.namespace = namespace.to_owned();
    options.retry_budget = Duration::from_secs(5);
    let store = RedisClusterStore::connect(options, common::clock()).expect("cluster");
    let mut out = std::io::stdout().lock();
    for (index, session) in sessions(CHILD_SESSIONS_MAX)
        .into_iter()
        .enumerate()
        .skip(start)
    {
        let id = session.id();
        if let Err(err) = store.create(session) {
            panic!("child create {index}: {err}");
        }
        writeln!(out, "CREATED {index} {id}").expect("stdout");
        out.flush().expect("stdout");
        if is_deleted_by_child(index as u64) {
            store.delete(id).expect("child delete");
            writeln!(out, "DELETED {id}").expect("stdout");
            out.flush().expect("stdout");
        }
    }
}

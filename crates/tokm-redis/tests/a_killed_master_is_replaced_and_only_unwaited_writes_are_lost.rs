//! SIGKILL of a master while four writers create sessions, once without `WAIT` and once with
//! `WAIT 1` after every write.
//!
//! Without `WAIT`, the store retries through the failover (node timeout 2 s) and no call fails;
//! writes the dead master acknowledged before its replica copied them may be lost: the test
//! counts them. With `WAIT 1`, every acknowledged write was on the replica that takes over, so
//! none is lost; writes to the dead master's shard fail with `TM-REDIS-5041` while it has no
//! replica, until the killed node is back (as a replica of the new master).

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::load::{self, Mix};
use tokm_domain::{SessionError, SessionRepository, UserId};
use tokm_redis::{RedisClusterStore, WaitPolicy};

const WRITERS: usize = 4;
const USERS_PER_WRITER: usize = 60;

#[derive(Debug)]
struct Run {
    acknowledged: usize,
    on_victim: usize,
    lost: usize,
    errors: Vec<(&'static str, String)>,
    /// The longest time between two acknowledged writes on the killed shard around the kill:
    /// how long its writes stalled.
    longest_stall: Duration,
    slowest: Duration,
}

#[test]
fn a_killed_master_is_replaced_and_only_unwaited_writes_are_lost() {
    let Some(nodes) = common::cluster("SIGKILL of a master") else {
        return;
    };
    let Some(dir) = common::cluster_dir("SIGKILL of a master") else {
        return;
    };
    let unwaited = kill_a_master_under_load(&nodes, &dir, WaitPolicy::None);
    let waited = kill_a_master_under_load(&nodes, &dir, WaitPolicy::AllWrites);
    for (name, run) in [
        ("no WAIT", &unwaited),
        ("WAIT 1 after every write", &waited),
    ] {
        println!(
            "SIGKILL of a master, {name}: {} creates acknowledged ({} on the killed shard), \
             {} lost, {} errors ({:?}), writes on the shard stalled {:?} at most, slowest call \
             {:?}",
            run.acknowledged,
            run.on_victim,
            run.lost,
            run.errors.len(),
            run.errors
                .iter()
                .map(|(code, _)| *code)
                .collect::<HashSet<_>>(),
            run.longest_stall,
            run.slowest
        );
    }
    assert!(
        unwaited.errors.is_empty(),
        "without WAIT the failover reaches no caller: {:?}",
        &unwaited.errors[..unwaited.errors.len().min(5)]
    );
    assert_eq!(waited.lost, 0, "no write acknowledged after WAIT 1 is lost");
    assert!(
        waited
            .errors
            .iter()
            .all(|(code, _)| *code == "TM-REDIS-5041"),
        "with WAIT only the replica acknowledgement can fail: {:?}",
        &waited.errors[..waited.errors.len().min(5)]
    );
}

fn kill_a_master_under_load(nodes: &[String], dir: &Path, wait: WaitPolicy) -> Run {
    assert!(
        common::poll_until(Duration::from_secs(60), || common::healthy(nodes)),
        "the cluster is healthy before the kill"
    );
    let mut options = common::options(nodes, "sigkill");
    options.wait = wait;
    options.wait_timeout = Duration::from_millis(300);
    let namespace = options.namespace.clone();
    let store = RedisClusterStore::connect(options.clone(), common::clock()).expect("cluster");
    let topology = common::topology(&nodes[0]).expect("CLUSTER NODES");
    let victim = topology
        .iter()
        .find(|node| node.master && node.has_slots && !node.failing)
        .expect("a master")
        .clone();
    let victim_port: u16 = victim
        .address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .expect("host:port");
    let pid = common::pid_of(&victim.address);
    let mut raw = common::raw(nodes);
    let victim_users: HashSet<UserId> = (0..WRITERS)
        .flat_map(|thread| (0..USERS_PER_WRITER).map(move |index| load::user(thread, index)))
        .filter(|user| {
            let key = store.keys().user(user).records;
            victim.serves(common::slot_of(&mut raw, &key))
        })
        .collect();
    assert!(!victim_users.is_empty(), "some users live on the victim");
    let witness = nodes
        .iter()
        .find(|address| **address != victim.address)
        .expect("another node");
    let (outcome, killed_at) = load::run(&store, WRITERS, USERS_PER_WRITER, Mix::Creates, |done| {
        load::calls(done, 300);
        let killed_at = Instant::now();
        common::sigkill(pid);
        // Whatever happens next, the node comes back, so later tests find a whole cluster.
        let restart = RestartOnDrop {
            dir,
            port: victim_port,
        };
        let promoted = common::poll_until(Duration::from_secs(30), || {
            common::topology(witness).is_ok_and(|nodes| {
                nodes.iter().any(|node| {
                    node.master
                        && node.id != victim.id
                        && !node.failing
                        && node.serves(victim.slots[0].0)
                })
            })
        });
        assert!(promoted, "a replica took over the killed master's slots");
        load::calls(done, 300);
        drop(restart);
        assert!(
            common::poll_until(Duration::from_secs(60), || common::healthy(nodes)),
            "the killed node is back as a replica"
        );
        load::calls(done, 300);
        killed_at
    });
    assert!(!outcome.acks.is_empty(), "the load acknowledged writes");
    // Every acknowledged create, read back through a new store once the cluster is whole.
    let mut options = common::options(nodes, "verify");
    options.namespace = namespace;
    let reader = RedisClusterStore::connect(options, common::clock()).expect("cluster");
    let mut lost = 0;
    for ack in &outcome.acks {
        match reader.get(ack.id) {
            Ok(_) => {}
            Err(SessionError::NotFound { .. }) => lost += 1,
            Err(other) => panic!("reading back {}: {other}", ack.id),
        }
    }
    let on_victim = outcome
        .acks
        .iter()
        .filter(|ack| victim_users.contains(&ack.user))
        .count();
    let mut shard_acks: Vec<Instant> = outcome
        .acks
        .iter()
        .filter(|ack| victim_users.contains(&ack.user))
        .map(|ack| ack.at)
        .collect();
    shard_acks.sort_unstable();
    let resumed = shard_acks
        .iter()
        .any(|at| *at > killed_at + Duration::from_secs(1));
    assert!(resumed, "writes on the killed shard resumed");
    let longest_stall = shard_acks
        .windows(2)
        .map(|pair| pair[1].duration_since(pair[0]))
        .max()
        .unwrap_or_default();
    Run {
        acknowledged: outcome.acks.len(),
        on_victim,
        lost,
        errors: outcome
            .errors
            .iter()
            .map(|failed| (failed.code, failed.message.clone()))
            .collect(),
        longest_stall,
        slowest: outcome.slowest,
    }
}

/// Starts the killed node again when dropped.
struct RestartOnDrop<'a> {
    dir: &'a Path,
    port: u16,
}

impl Drop for RestartOnDrop<'_> {
    fn drop(&mut self) {
        common::restart_node(self.dir, self.port);
    }
}

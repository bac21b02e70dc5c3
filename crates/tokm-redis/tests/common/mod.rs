//! What the cluster tests share: where the cluster is, fresh namespaces, raw connections, and
//! a look at the cluster's topology.
//!
//! The cluster comes from `TOKM_REDIS_CLUSTER` (comma-separated `host:port`), which
//! `cargo xtask cluster test` sets after starting a private 3-master + 3-replica cluster.
//! Without it a test prints why it is skipped and passes, except under `CI=true`, where a
//! missing cluster is a failure (CI runs these tests only through `cargo xtask cluster test`).

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterConnection};
use tokm_domain::{Clock, ManualClock, SessionError};
use tokm_redis::{RedisClusterOptions, RedisClusterStore, redis_code};

/// Seed addresses of the cluster under test.
pub const ADDRESSES_VAR: &str = "TOKM_REDIS_CLUSTER";
/// The cluster's directory (`node-<port>/redis.conf`), for tests that restart a node.
pub const DIR_VAR: &str = "TOKM_REDIS_CLUSTER_DIR";

/// The cluster's seed addresses, or `None` when the test should be skipped (panics under
/// `CI=true`: there the cluster must be given).
pub fn cluster(test: &str) -> Option<Vec<String>> {
    let addresses = std::env::var(ADDRESSES_VAR).unwrap_or_default();
    let nodes: Vec<String> = addresses
        .split(',')
        .map(str::trim)
        .filter(|node| !node.is_empty())
        .map(str::to_owned)
        .collect();
    if !nodes.is_empty() {
        return Some(nodes);
    }
    let on_ci = std::env::var("CI").is_ok_and(|value| value == "true" || value == "1");
    assert!(
        !on_ci,
        "{test}: CI is set but {ADDRESSES_VAR} is not; CI runs the tokm-redis tests through \
         `cargo xtask cluster test`, which starts a cluster and sets it"
    );
    eprintln!(
        "{test}: skipped, no Redis Cluster ({ADDRESSES_VAR} is unset; `cargo xtask cluster test` \
         starts one and runs these tests against it)"
    );
    None
}

/// The cluster's directory, or `None` (skipped, or a panic under `CI=true`).
pub fn cluster_dir(test: &str) -> Option<std::path::PathBuf> {
    match std::env::var_os(DIR_VAR) {
        Some(dir) if !dir.is_empty() => Some(dir.into()),
        _ => {
            let on_ci = std::env::var("CI").is_ok_and(|value| value == "true" || value == "1");
            assert!(!on_ci, "{test}: CI is set but {DIR_VAR} is not");
            eprintln!("{test}: skipped, {DIR_VAR} is unset (it names the nodes' configurations)");
            None
        }
    }
}

/// A namespace no other store of this run uses.
pub fn namespace(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    format!(
        "t.{tag}.{}.{}.{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Options for `nodes` under a fresh namespace, with a retry budget that outlasts a failover of
/// the test cluster (node timeout 2 s).
pub fn options(nodes: &[String], tag: &str) -> RedisClusterOptions {
    let mut options = RedisClusterOptions::new(nodes.to_vec(), &namespace(tag));
    options.retry_budget = Duration::from_secs(20);
    options
}

/// A store on `nodes` with a fresh namespace and the given clock.
pub fn store(nodes: &[String], tag: &str, clock: Arc<dyn Clock>) -> RedisClusterStore {
    RedisClusterStore::connect(options(nodes, tag), clock).expect("the test cluster answers")
}

/// A clock for tests that do not move time: the suite's start.
pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(tokm_domain::testkit::SUITE_START))
}

/// A cluster connection of the tests' own, to look at or damage keys directly.
pub fn raw(nodes: &[String]) -> ClusterConnection {
    let urls: Vec<String> = nodes.iter().map(|node| format!("redis://{node}")).collect();
    ClusterClient::builder(urls)
        .build()
        .and_then(|client| client.get_connection())
        .expect("the test cluster answers")
}

/// A connection to one node (no cluster routing).
pub fn node(address: &str) -> redis::RedisResult<redis::Connection> {
    let connection = redis::Client::open(format!("redis://{address}"))?
        .get_connection_with_timeout(Duration::from_secs(2))?;
    connection.set_read_timeout(Some(Duration::from_secs(2)))?;
    Ok(connection)
}

/// The `TM-REDIS-…` code inside a store error (panics if there is none).
pub fn code_of(error: &SessionError) -> &'static str {
    redis_code(error)
        .unwrap_or_else(|| panic!("not a redis store error: {error} ({})", error.code()))
}

/// One line of `CLUSTER NODES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    /// `host:port`.
    pub address: String,
    pub master: bool,
    /// Flagged `fail` or `fail?`, or not connected.
    pub failing: bool,
    /// The master's id, for a replica.
    pub master_id: Option<String>,
    /// Holds at least one slot.
    pub has_slots: bool,
    /// The slot ranges it serves, inclusive.
    pub slots: Vec<(u16, u16)>,
}

impl NodeInfo {
    /// Whether this node serves `slot`.
    pub fn serves(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|&(first, last)| (first..=last).contains(&slot))
    }
}

/// The cluster as `address` sees it.
pub fn topology(address: &str) -> redis::RedisResult<Vec<NodeInfo>> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut node(address)?)?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [id, address, flags, master_id, _, _, _, link, ..] = parts[..] else {
                return None;
            };
            let address = address.split('@').next()?.to_owned();
            Some(NodeInfo {
                id: id.to_owned(),
                address,
                master: flags.split(',').any(|flag| flag == "master"),
                failing: flags.contains("fail") || link != "connected",
                master_id: (master_id != "-").then(|| master_id.to_owned()),
                has_slots: parts.len() > 8,
                slots: parts[8..]
                    .iter()
                    .filter(|range| !range.starts_with('['))
                    .filter_map(|range| match range.split_once('-') {
                        Some((first, last)) => Some((first.parse().ok()?, last.parse().ok()?)),
                        None => range.parse().ok().map(|slot| (slot, slot)),
                    })
                    .collect(),
            })
        })
        .collect())
}

/// A field of `INFO <section>` on `address`.
pub fn info_field(address: &str, section: &str, field: &str) -> Option<String> {
    field_of(address, redis::cmd("INFO").arg(section), field)
}

/// A field of `CLUSTER INFO` on `address` (e.g. `cluster_state`).
pub fn cluster_info_field(address: &str, field: &str) -> Option<String> {
    field_of(address, redis::cmd("CLUSTER").arg("INFO"), field)
}

fn field_of(address: &str, command: &redis::Cmd, field: &str) -> Option<String> {
    let mut connection = redis::Client::open(format!("redis://{address}"))
        .ok()?
        .get_connection_with_timeout(Duration::from_secs(1))
        .ok()?;
    let text: String = command.query(&mut connection).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(|value| value.trim().to_owned())
}

/// Polls `ready` every 50 ms until it holds or `timeout` passes; returns whether it held.
///
/// Only for the state of other processes (a failover, a node restarting), which no clock or
/// channel of the test can observe; never for the store's own behaviour.
pub fn poll_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if ready() {
            return true;
        }
        if started.elapsed() > timeout {
            return false;
        }
        // tidy: allow(no-sleep-in-tests) another process's state, which only polling can see
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether every node in `addresses` reports `cluster_state:ok` and every master has a
/// connected, in-sync replica: the state `cargo xtask cluster` starts in.
pub fn healthy(addresses: &[String]) -> bool {
    let Ok(nodes) = topology(&addresses[0]) else {
        return false;
    };
    let live_masters: Vec<&NodeInfo> = nodes
        .iter()
        .filter(|node| node.master && node.has_slots && !node.failing)
        .collect();
    let all_ok = nodes.iter().all(|node| {
        !node.failing && cluster_info_field(&node.address, "cluster_state").as_deref() == Some("ok")
    });
    all_ok
        && live_masters.len() == 3
        && live_masters.iter().all(|master| {
            info_field(&master.address, "replication", "connected_slaves").as_deref() == Some("1")
        })
}

/// The hash slot of `key`, as the cluster computes it.
pub fn slot_of(connection: &mut ClusterConnection, key: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(connection)
        .expect("CLUSTER KEYSLOT")
}

/// The pid of the redis-server answering on `address`.
pub fn pid_of(address: &str) -> u32 {
    info_field(address, "server", "process_id")
        .and_then(|pid| pid.parse().ok())
        .expect("INFO server names the process id")
}

/// SIGKILL to `pid`, through the shell's `kill` builtin.
pub fn sigkill(pid: u32) {
    let status = std::process::Command::new("sh")
        .args(["-c", "kill -s KILL \"$0\"", &pid.to_string()])
        .status()
        .expect("sh");
    assert!(status.success(), "kill -s KILL {pid}");
}

/// Starts the node on `port` again from its configuration in the cluster directory (it
/// daemonizes and rejoins the cluster as it left it).
pub fn restart_node(dir: &std::path::Path, port: u16) {
    let config = dir.join(format!("node-{port}")).join("redis.conf");
    let status = std::process::Command::new("redis-server")
        .arg(&config)
        .status()
        .expect("redis-server");
    assert!(status.success(), "restarting {}", config.display());
}

/// A write load: `threads` writers creating (and, per `mix`, reading, touching, updating and
/// deleting) sessions of their own users until told to stop.
pub mod load {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use tokm_domain::testkit::{SUITE_START, SessionFactory};
    use tokm_domain::{SessionId, SessionRepository, TokenRepository, UserId};
    use tokm_redis::RedisClusterStore;

    /// What each writer does per session.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Mix {
        /// Create only.
        Creates,
        /// Create, token lookup, touch, update; delete every third.
        Everything,
    }

    /// An acknowledged create.
    #[derive(Clone, Debug)]
    pub struct Ack {
        pub id: SessionId,
        pub user: UserId,
        pub at: Instant,
    }

    /// A call that returned an error.
    #[derive(Clone, Debug)]
    pub struct Failed {
        pub code: &'static str,
        pub message: String,
        pub user: UserId,
        pub at: Instant,
    }

    /// Everything the writers saw.
    #[derive(Debug, Default)]
    pub struct Outcome {
        pub acks: Vec<Ack>,
        pub deleted: Vec<SessionId>,
        pub errors: Vec<Failed>,
        pub calls: u64,
        pub slowest: Duration,
    }

    /// Users of writer `thread`.
    pub fn user(thread: usize, index: usize) -> UserId {
        UserId::new(&format!("load-{thread}-{index}")).expect("valid")
    }

    /// Runs `threads` writers over `users_per_thread` users each while `control` runs;
    /// `control` gets a receiver with one message per completed call, and stops the load by
    /// returning.
    pub fn run<R>(
        store: &RedisClusterStore,
        threads: usize,
        users_per_thread: usize,
        mix: Mix,
        control: impl FnOnce(&mpsc::Receiver<()>) -> R,
    ) -> (Outcome, R) {
        let stop = AtomicBool::new(false);
        let outcome = Mutex::new(Outcome::default());
        let (done_tx, done_rx) = mpsc::channel();
        let result = std::thread::scope(|scope| {
            // Stops the writers however `control` ends, also by a failed assertion, so the
            // scope can join them.
            let _stop = StopOnDrop(&stop);
            for thread in 0..threads {
                let (stop, outcome, done_tx) = (&stop, &outcome, done_tx.clone());
                scope.spawn(move || {
                    writer(store, thread, users_per_thread, mix, stop, outcome, done_tx)
                });
            }
            drop(done_tx);
            control(&done_rx)
        });
        (outcome.into_inner().expect("no writer panicked"), result)
    }

    struct StopOnDrop<'a>(&'a AtomicBool);

    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            // Relaxed: the flag publishes nothing; results come back through the mutex.
            self.0.store(true, Ordering::Relaxed);
        }
    }

    /// Waits for `count` more completed calls (or until the writers are gone).
    pub fn calls(done: &mpsc::Receiver<()>, count: usize) {
        for _ in 0..count {
            if done.recv().is_err() {
                return;
            }
        }
    }

    fn writer(
        store: &RedisClusterStore,
        thread: usize,
        users: usize,
        mix: Mix,
        stop: &AtomicBool,
        outcome: &Mutex<Outcome>,
        done: mpsc::Sender<()>,
    ) {
        let mut sessions = SessionFactory::new(0x10ad + thread as u64, SUITE_START);
        let mut mine = Outcome::default();
        let timed =
            |mine: &mut Outcome,
             user: &UserId,
             call: &mut dyn FnMut() -> Result<(), tokm_domain::SessionError>| {
                let started = Instant::now();
                let result = call();
                let elapsed = started.elapsed();
                mine.calls += 1;
                mine.slowest = mine.slowest.max(elapsed);
                let _ = done.send(());
                if let Err(err) = &result {
                    // The whole chain: the store's message, then Redis's own.
                    let mut message = err.to_string();
                    let mut source = std::error::Error::source(err);
                    while let Some(cause) = source {
                        message.push_str(&format!(": {cause}"));
                        source = cause.source();
                    }
                    mine.errors.push(Failed {
                        code: tokm_redis::redis_code(err).unwrap_or_else(|| err.code()),
                        message,
                        user: user.clone(),
                        at: Instant::now(),
                    });
                }
                result.is_ok()
            };
        let mut index = 0;
        while !stop.load(Ordering::Relaxed) && index < 1_000_000 {
            let user = user(thread, index % users);
            index += 1;
            let session = sessions.next_for(&user);
            let id = session.id();
            let token = session.fields().token_hash;
            let mut created = None;
            let ok = timed(&mut mine, &user, &mut || {
                created = Some(store.create(session.clone())?.session);
                Ok(())
            });
            if !ok {
                continue;
            }
            mine.acks.push(Ack {
                id,
                user: user.clone(),
                at: Instant::now(),
            });
            if mix == Mix::Creates {
                continue;
            }
            let Some(created) = created else { continue };
            timed(&mut mine, &user, &mut || {
                store.get_by_token_hash(&token).map(drop)
            });
            timed(&mut mine, &user, &mut || {
                store.touch(id, created.fields().created_at, None).map(drop)
            });
            timed(&mut mine, &user, &mut || {
                store.update(created.to_new(), created.version()).map(drop)
            });
            if index % 3 == 0 && timed(&mut mine, &user, &mut || store.delete(id).map(drop)) {
                mine.deleted.push(id);
            }
        }
        let mut shared = outcome.lock().expect("not poisoned");
        shared.acks.append(&mut mine.acks);
        shared.deleted.append(&mut mine.deleted);
        shared.errors.append(&mut mine.errors);
        shared.calls += mine.calls;
        shared.slowest = shared.slowest.max(mine.slowest);
    }
}

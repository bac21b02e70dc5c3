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
pub fn node(address: &str) -> redis::Connection {
    redis::Client::open(format!("redis://{address}"))
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        .expect("the node answers")
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
}

/// The cluster as `address` sees it.
pub fn topology(address: &str) -> redis::RedisResult<Vec<NodeInfo>> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut node(address))?;
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

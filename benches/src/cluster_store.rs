//! `RedisClusterStore` measured the way the embedded engine is: the same typical sessions through
//! the same [`Peer`](crate::driver::Peer) operations and driver, on a Redis Cluster that
//! `cargo xtask bench` starts (3 masters and 3 replicas on 127.0.0.1, see `cargo xtask cluster`)
//! and names in `TOKM_BENCH_REDIS_CLUSTER`.
//!
//! Is: a fill, latencies of create, get, token lookup, touch, CAS update, list by user and a
//! filtered global page of 100, creates/s at 1 and 64 clients, Redis memory per session (the
//! sum of `used_memory` growth over the masters during the fill), and the latencies and errors
//! of calls while a replica takes over with `CLUSTER FAILOVER`.
//! Is not: a cluster manager; without `TOKM_BENCH_REDIS_CLUSTER` [`cluster_from_env`] is `None`
//! and the acceptance table says so.
//!
//! The store's clock is a [`ManualClock`] set just after the workload's creation times (the
//! typical sessions are dated November 2023 and live a day), so every session is live; Redis's
//! own TTLs are relative to that clock, so nothing expires during the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokm_domain::{ManualClock, SessionRepository as _, Timestamp, TokenRepository as _};
use tokm_redis::{RedisClusterOptions, RedisClusterStore, WaitPolicy};

use crate::driver::{BenchError, Limit, Load, Measured, Op, closed_loop, drive};
use crate::{WORKLOAD_START, mix, typical_session};

/// Environment variable with the cluster's `host:port` list, set by `cargo xtask bench`.
pub const CLUSTER_VAR: &str = "TOKM_BENCH_REDIS_CLUSTER";

/// Clients of the fill.
const FILL_CLIENTS: usize = 16;
/// Clients during the failover.
const FAILOVER_CLIENTS: usize = 4;
/// How long calls are still counted after the replica reports itself master.
const FAILOVER_TAIL: Duration = Duration::from_millis(500);
/// How long the promotion may take before the run gives up on it.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// The cluster's seed nodes from [`CLUSTER_VAR`], if set.
pub fn cluster_from_env() -> Option<Vec<String>> {
    let list = std::env::var(CLUSTER_VAR).ok()?;
    let nodes: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|node| !node.is_empty())
        .map(str::to_owned)
        .collect();
    (!nodes.is_empty()).then_some(nodes)
}

/// How much to measure.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Sessions filled before the reads.
    pub sessions: u64,
    /// Calls per latency row.
    pub samples: u64,
    /// Calls of the filtered global page (each reads every session).
    pub page_samples: u64,
    /// Length of each creates/s run.
    pub throughput_run: Duration,
}

/// Everything measured.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Sessions filled.
    pub sessions: u64,
    /// Masters of the cluster.
    pub masters: usize,
    /// Create, get, token lookup, touch, CAS update and list by user (20 sessions), one client.
    pub latencies: Vec<(&'static str, Measured)>,
    /// The filtered global page of 100.
    pub filtered_page: Measured,
    /// Creates with 1 and with 64 clients.
    pub creates: [Measured; 2],
    /// Sum over the masters of `used_memory` growth during the fill, per session filled.
    pub used_memory_per_session: f64,
    /// Calls while a replica took over.
    pub failover: Failover,
}

/// Calls while a replica took over.
#[derive(Debug, Clone)]
pub struct Failover {
    /// Calls from `CLUSTER FAILOVER` until half a second after the promotion.
    pub during: Measured,
    /// Calls that returned an error.
    pub errors: u64,
    /// From `CLUSTER FAILOVER` until the replica reported role master.
    pub promotion: Duration,
}

/// Runs the whole plan on a fresh namespace of the cluster at `nodes`.
pub fn measure(nodes: &[String], plan: Plan) -> Result<Figures, BenchError> {
    let now = Timestamp::from_millis(WORKLOAD_START.as_millis() + plan.sessions + 60_000);
    let clock = Arc::new(ManualClock::new(now));
    let namespace = format!("bench.{}", std::process::id());
    let mut options = RedisClusterOptions::new(nodes.to_vec(), &namespace);
    options.wait = WaitPolicy::Revocations;
    let store = RedisClusterStore::connect(options, clock)
        .map_err(|err| BenchError::Server(format!("connect RedisClusterStore: {err}")))?;
    let masters = master_addresses(&nodes[0])?;

    let memory_before = used_memory(&masters)?;
    let sessions = plan.sessions;
    let fill = Load {
        clients: FILL_CLIENTS,
        warmup: 0,
        limit: Limit::Ops(sessions),
    };
    drive(&store, Op::Create { stream: 0 }, &fill)?;
    let used_memory_per_session =
        used_memory(&masters)?.saturating_sub(memory_before) as f64 / sessions as f64;

    let samples = Load::ops(plan.samples);
    let mut latencies = Vec::new();
    for (name, op, load) in [
        ("create", Op::Create { stream: 1 }, samples),
        ("get", Op::Get { sessions }, samples),
        ("token lookup", Op::TokenLookup { sessions }, samples),
        ("touch", Op::Touch { sessions, now }, samples),
        ("CAS update", Op::CasUpdate { sessions }, samples),
        (
            "list by user (20 sessions)",
            Op::ListByUser { sessions },
            Load::ops(plan.samples / 10),
        ),
    ] {
        latencies.push((name, drive(&store, op, &load)?));
    }
    let filtered_page = drive(
        &store,
        Op::ListWindow { sessions },
        &Load::ops(plan.page_samples),
    )?;
    let creates = [
        drive(
            &store,
            Op::Create { stream: 100 },
            &Load::timed(1, plan.throughput_run),
        )?,
        drive(
            &store,
            Op::Create { stream: 101 },
            &Load::timed(64, plan.throughput_run),
        )?,
    ];
    let failover = failover(&store, nodes, sessions, now)?;
    Ok(Figures {
        sessions,
        masters: masters.len(),
        latencies,
        filtered_page,
        creates,
        used_memory_per_session,
        failover,
    })
}

/// [`FAILOVER_CLIENTS`] clients (get, touch, create in turn) while a replica takes over its
/// master; errors are counted, not fatal.
fn failover(
    store: &RedisClusterStore,
    nodes: &[String],
    sessions: u64,
    now: Timestamp,
) -> Result<Failover, BenchError> {
    let replica = replica_address(&nodes[0])?;
    let stop = AtomicBool::new(false);
    let errors = AtomicU64::new(0);
    let load = Load {
        clients: FAILOVER_CLIENTS,
        warmup: 0,
        limit: Limit::Until(&stop),
    };
    std::thread::scope(|scope| {
        let calls = scope.spawn(|| {
            closed_loop(
                &load,
                |_| Ok(()),
                |_, _, n| Ok(n),
                |_, n| {
                    let id = typical_session(0, mix(n) % sessions).id();
                    let ok = match n % 3 {
                        0 => store.get(id).is_ok(),
                        1 => store.touch(id, now, None).is_ok(),
                        _ => store.create(typical_session(900, n)).is_ok(),
                    };
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                },
            )
        });
        let started = Instant::now();
        let promoted = cluster_failover(&replica).and_then(|()| wait_for_master(&replica));
        let promotion = started.elapsed();
        std::thread::sleep(FAILOVER_TAIL);
        stop.store(true, Ordering::Relaxed);
        let during = calls
            .join()
            .map_err(|_panic| BenchError::ClientPanicked(0))??;
        promoted?;
        Ok(Failover {
            during,
            errors: errors.load(Ordering::Relaxed),
            promotion,
        })
    })
}

/// A connection to one node.
fn node(address: &str) -> Result<redis::Connection, BenchError> {
    redis::Client::open(format!("redis://{address}"))
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        .map_err(BenchError::redis(format!("connect to {address}")))
}

/// The reply of `command` (with `arg`) on the node at `address`.
fn query(address: &str, command: &str, arg: &str) -> Result<String, BenchError> {
    redis::cmd(command)
        .arg(arg)
        .query(&mut node(address)?)
        .map_err(BenchError::redis(format!("{command} {arg} on {address}")))
}

/// `CLUSTER NODES` as (address, is a master with slots, is a replica), failing nodes left out.
fn cluster_nodes(seed: &str) -> Result<Vec<(String, bool, bool)>, BenchError> {
    Ok(query(seed, "CLUSTER", "NODES")?
        .lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let address = parts.get(1)?.split('@').next()?.to_owned();
            let flags = parts.get(2)?;
            let failing = flags.contains("fail");
            let master = flags.contains("master") && parts.len() > 8 && !failing;
            Some((address, master, flags.contains("slave") && !failing))
        })
        .collect())
}

fn master_addresses(seed: &str) -> Result<Vec<String>, BenchError> {
    let masters: Vec<String> = cluster_nodes(seed)?
        .into_iter()
        .filter_map(|(address, master, _)| master.then_some(address))
        .collect();
    if masters.is_empty() {
        return Err(BenchError::Server("the cluster reports no master".into()));
    }
    Ok(masters)
}

fn replica_address(seed: &str) -> Result<String, BenchError> {
    cluster_nodes(seed)?
        .into_iter()
        .find_map(|(address, _, replica)| replica.then_some(address))
        .ok_or_else(|| BenchError::Server("the cluster has no replica to fail over to".into()))
}

/// Sum of `used_memory` over `masters`.
fn used_memory(masters: &[String]) -> Result<u64, BenchError> {
    let mut total = 0;
    for address in masters {
        total += query(address, "INFO", "memory")?
            .lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .and_then(|value| value.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                BenchError::Server(format!("INFO memory on {address} lacks used_memory"))
            })?;
    }
    Ok(total)
}

fn cluster_failover(replica: &str) -> Result<(), BenchError> {
    match query(replica, "CLUSTER", "FAILOVER")?.as_str() {
        "OK" => Ok(()),
        other => Err(BenchError::Server(format!(
            "CLUSTER FAILOVER on {replica} answered {other}"
        ))),
    }
}

/// Polls `INFO replication` until `address` reports `role:master`; the promotion happens in
/// another process, so polling is the only way to see it.
fn wait_for_master(address: &str) -> Result<(), BenchError> {
    let started = Instant::now();
    loop {
        let info = query(address, "INFO", "replication").unwrap_or_default();
        if info.lines().any(|line| line.trim() == "role:master") {
            return Ok(());
        }
        if started.elapsed() > FAILOVER_TIMEOUT {
            return Err(BenchError::Server(format!(
                "{address} did not become master within {FAILOVER_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

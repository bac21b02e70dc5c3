//! `RedisClusterStore` measured the way the embedded engine is: the same typical sessions through
//! the same repository traits, on a Redis Cluster that `cargo xtask bench` starts (3 masters and
//! 3 replicas on 127.0.0.1, see `cargo xtask cluster`) and names in `TOKM_BENCH_REDIS_CLUSTER`.
//!
//! Is: a fill, latency samples of create, get, token lookup, touch and CAS update, list by user,
//! a filtered global page of 100, creates/s at 1 and 64 clients, Redis memory per session (the
//! sum of `used_memory` growth over the masters during the fill), and the latencies and errors
//! of calls while a replica takes over with `CLUSTER FAILOVER`.
//! Is not: a cluster manager; without `TOKM_BENCH_REDIS_CLUSTER` [`cluster_from_env`] is `None`
//! and the acceptance table says so.
//!
//! The store's clock is a [`ManualClock`] set just after the workload's creation times (the
//! typical sessions are dated November 2023 and live a day), so every session is live; Redis's
//! own TTLs are relative to that clock, so nothing expires during the run.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokm_domain::{
    ManualClock, Page, SessionFilter, SessionRepository, Sort, SortBy, SortOrder, Timestamp,
    TokenRepository,
};
use tokm_redis::{RedisClusterOptions, RedisClusterStore, WaitPolicy};

use crate::{SESSIONS_PER_USER, WORKLOAD_START, mix, typical_session, user_id};

/// Environment variable with the cluster's `host:port` list, set by `cargo xtask bench`.
pub const CLUSTER_VAR: &str = "TOKM_BENCH_REDIS_CLUSTER";

/// Threads of the fill.
const FILL_THREADS: u64 = 16;
/// Writers during the failover.
const FAILOVER_WRITERS: usize = 4;
/// How long calls are still counted after the replica reports itself master.
const FAILOVER_TAIL: Duration = Duration::from_millis(500);
/// How long the promotion may take before the run gives up on it.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// Streams of sessions beyond the fill's (stream 0).
const CREATE_STREAM: u64 = 1;
const THROUGHPUT_STREAM: u64 = 100;
const FAILOVER_STREAM: u64 = 900;

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
    /// Samples per latency.
    pub samples: usize,
    /// Samples of the filtered global page (each reads every session).
    pub page_samples: usize,
    /// Length of each creates/s run.
    pub throughput_run: Duration,
}

/// Everything measured; latencies sorted ascending.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Sessions filled.
    pub sessions: u64,
    /// Masters of the cluster.
    pub masters: usize,
    /// Create latency, one client.
    pub create: Vec<Duration>,
    /// Get by id latency.
    pub get: Vec<Duration>,
    /// Token lookup latency.
    pub token_lookup: Vec<Duration>,
    /// Touch latency.
    pub touch: Vec<Duration>,
    /// Update with the version check, latency of the update call.
    pub cas_update: Vec<Duration>,
    /// List by user (20 sessions) latency.
    pub list_by_user: Vec<Duration>,
    /// Latency of the filtered global page of 100.
    pub filtered_page: Vec<Duration>,
    /// Creates per second with 1 client.
    pub creates_per_sec_1: f64,
    /// Creates per second with 64 clients.
    pub creates_per_sec_64: f64,
    /// Sum over the masters of `used_memory` growth during the fill, per session filled.
    pub used_memory_per_session: f64,
    /// Calls while a replica took over.
    pub failover: Failover,
}

/// Calls while a replica took over.
#[derive(Debug, Clone, Default)]
pub struct Failover {
    /// Latencies of calls that started between `CLUSTER FAILOVER` and
    /// half a second after the promotion, sorted.
    pub during: Vec<Duration>,
    /// Calls that returned an error, over the whole failover run.
    pub errors: u64,
    /// From `CLUSTER FAILOVER` until the replica reported role master.
    pub promotion: Duration,
}

/// Runs the whole plan on a fresh namespace of the cluster at `nodes`.
pub fn measure(nodes: &[String], plan: Plan) -> Result<Figures, String> {
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(
        WORKLOAD_START.as_millis() + plan.sessions + 60_000,
    )));
    let namespace = format!("bench.{}", std::process::id());
    let mut options = RedisClusterOptions::new(nodes.to_vec(), &namespace);
    options.wait = WaitPolicy::Revocations;
    let store =
        RedisClusterStore::connect(options, clock.clone()).map_err(|err| err.to_string())?;
    let masters = master_addresses(&nodes[0])?;
    let store = &store;

    let memory_before = used_memory(&masters)?;
    let next = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..FILL_THREADS {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= plan.sessions {
                        break;
                    }
                    store
                        .create(typical_session(0, index))
                        .expect("fill create");
                }
            });
        }
    });
    let memory_after = used_memory(&masters)?;
    let used_memory_per_session =
        memory_after.saturating_sub(memory_before) as f64 / plan.sessions as f64;

    let samples = plan.samples as u64;
    let create = timed(0..samples, |n| {
        store
            .create(typical_session(CREATE_STREAM, n))
            .expect("create");
    });
    let index = |n: u64| mix(n ^ 0xbe7c) % plan.sessions;
    let get = timed(0..samples, |n| {
        store.get(typical_session(0, index(n)).id()).expect("get");
    });
    let token_lookup = timed(0..samples, |n| {
        let session = typical_session(0, index(n + 1));
        store
            .get_by_token_hash(&session.fields().token_hash)
            .expect("token lookup");
    });
    let now = Timestamp::from_millis(WORKLOAD_START.as_millis() + plan.sessions + 60_000);
    let address = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    let touch = timed(0..samples, |n| {
        let id = typical_session(0, index(n + 2)).id();
        store.touch(id, now, address).expect("touch");
    });
    let mut cas_update = Vec::with_capacity(plan.samples);
    for n in 0..samples {
        let stored = store
            .get(typical_session(0, index(n + 3)).id())
            .expect("get before CAS");
        let mut fields = stored.fields().clone();
        fields
            .metadata
            .insert("region", if n % 2 == 0 { "eu-west-2" } else { "eu-west-1" })
            .expect("small");
        let body = tokm_domain::NewSession::new(fields).expect("valid");
        let began = Instant::now();
        store.update(body, stored.version()).expect("CAS update");
        cas_update.push(began.elapsed());
    }
    cas_update.sort_unstable();
    let users = (plan.sessions / SESSIONS_PER_USER).max(1);
    let list_by_user = timed(0..samples / 10, |n| {
        store
            .list_by_user(&user_id(mix(n) % users))
            .expect("list by user");
    });
    // As the engine's row: the newest 100 of a 1,000 ms created-at window (1,000 sessions).
    let window_ms = 1_000.min(plan.sessions);
    let newest_first = Sort::new(SortBy::CreatedAt, SortOrder::Desc);
    let page = Page::new(1, 100).expect("a valid page");
    let filtered_page = timed(0..plan.page_samples as u64, |n| {
        let start = WORKLOAD_START.as_millis() + mix(n) % (plan.sessions - window_ms).max(1);
        let filter = SessionFilter {
            created_after: Some(Timestamp::from_millis(start)),
            created_before: Some(Timestamp::from_millis(start + window_ms + 1)),
            ..SessionFilter::default()
        };
        let result = store.list(&filter, newest_first, page).expect("list");
        assert!(result.total >= result.items.len() as u64);
    });

    let creates_per_sec_1 = creates_per_sec(store, 1, THROUGHPUT_STREAM, plan.throughput_run);
    let creates_per_sec_64 = creates_per_sec(store, 64, THROUGHPUT_STREAM + 1, plan.throughput_run);
    let failover = failover(store, nodes, plan.sessions, now)?;
    Ok(Figures {
        sessions: plan.sessions,
        masters: masters.len(),
        create,
        get,
        token_lookup,
        touch,
        cas_update,
        list_by_user,
        filtered_page,
        creates_per_sec_1,
        creates_per_sec_64,
        used_memory_per_session,
        failover,
    })
}

fn timed<T>(inputs: impl IntoIterator<Item = T>, mut operation: impl FnMut(T)) -> Vec<Duration> {
    let mut samples: Vec<Duration> = inputs
        .into_iter()
        .map(|input| {
            let began = Instant::now();
            operation(input);
            began.elapsed()
        })
        .collect();
    samples.sort_unstable();
    samples
}

/// Creates/s with `clients` threads, each on its own stream, for `run`.
fn creates_per_sec(store: &RedisClusterStore, clients: u64, stream: u64, run: Duration) -> f64 {
    let stop = AtomicBool::new(false);
    let created = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for client in 0..clients {
            let (stop, created) = (&stop, &created);
            scope.spawn(move || {
                let stream = stream * 1_000 + client;
                let mut index = 0;
                // Relaxed: a counter and a flag that publish no other memory.
                while !stop.load(Ordering::Relaxed) {
                    store
                        .create(typical_session(stream, index))
                        .expect("create");
                    index += 1;
                    created.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(run);
        stop.store(true, Ordering::Relaxed);
    });
    created.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Four writers (get, touch, create) while a replica takes over its master.
fn failover(
    store: &RedisClusterStore,
    nodes: &[String],
    sessions: u64,
    now: Timestamp,
) -> Result<Failover, String> {
    let replica = replica_address(&nodes[0])?;
    let stop = AtomicBool::new(false);
    let calls: Mutex<Vec<(Instant, Duration, bool)>> = Mutex::new(Vec::new());
    let mut promotion = Duration::ZERO;
    let mut window = (Instant::now(), Instant::now());
    std::thread::scope(|scope| -> Result<(), String> {
        for writer in 0..FAILOVER_WRITERS as u64 {
            let (stop, calls) = (&stop, &calls);
            scope.spawn(move || {
                let mut mine = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = typical_session(0, mix(n ^ writer << 32) % sessions).id();
                    let began = Instant::now();
                    let ok = match n % 3 {
                        0 => store.get(id).is_ok(),
                        1 => store.touch(id, now, None).is_ok(),
                        _ => store
                            .create(typical_session(FAILOVER_STREAM + writer, n))
                            .is_ok(),
                    };
                    mine.push((began, began.elapsed(), ok));
                    n += 1;
                }
                calls.lock().expect("not poisoned").extend(mine);
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let outcome = cluster_failover(&replica)
            .and_then(|()| wait_for_role(&replica, "master", FAILOVER_TIMEOUT));
        promotion = started.elapsed();
        std::thread::sleep(FAILOVER_TAIL);
        window = (started, started + promotion + FAILOVER_TAIL);
        stop.store(true, Ordering::Relaxed);
        outcome
    })?;
    let calls = calls.into_inner().expect("not poisoned");
    let in_window: Vec<&(Instant, Duration, bool)> = calls
        .iter()
        .filter(|(began, _, _)| *began >= window.0 && *began <= window.1)
        .collect();
    let mut during: Vec<Duration> = in_window.iter().map(|(_, took, _)| *took).collect();
    during.sort_unstable();
    Ok(Failover {
        during,
        errors: calls.iter().filter(|(_, _, ok)| !ok).count() as u64,
        promotion,
    })
}

fn node(address: &str) -> Result<redis::Connection, String> {
    redis::Client::open(format!("redis://{address}"))
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
        .map_err(|err| format!("connecting to {address}: {err}"))
}

/// `CLUSTER NODES` as (address, is master with slots, is replica) per line.
fn cluster_nodes(seed: &str) -> Result<Vec<(String, bool, bool)>, String> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut node(seed)?)
        .map_err(|err| format!("CLUSTER NODES: {err}"))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let address = parts.get(1)?.split('@').next()?.to_owned();
            let flags = parts.get(2)?;
            let failing = flags.contains("fail");
            let master = flags.contains("master") && parts.len() > 8 && !failing;
            let replica = flags.contains("slave") && !failing;
            Some((address, master, replica))
        })
        .collect())
}

fn master_addresses(seed: &str) -> Result<Vec<String>, String> {
    let masters: Vec<String> = cluster_nodes(seed)?
        .into_iter()
        .filter(|(_, master, _)| *master)
        .map(|(address, _, _)| address)
        .collect();
    if masters.is_empty() {
        return Err("the cluster reports no master".to_owned());
    }
    Ok(masters)
}

fn replica_address(seed: &str) -> Result<String, String> {
    cluster_nodes(seed)?
        .into_iter()
        .find(|(_, _, replica)| *replica)
        .map(|(address, _, _)| address)
        .ok_or_else(|| "the cluster has no replica to fail over to".to_owned())
}

/// Sum of `used_memory` over `masters`.
fn used_memory(masters: &[String]) -> Result<u64, String> {
    let mut total = 0;
    for address in masters {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query(&mut node(address)?)
            .map_err(|err| format!("INFO memory on {address}: {err}"))?;
        total += info
            .lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .and_then(|value| value.trim().parse::<u64>().ok())
            .ok_or_else(|| format!("INFO memory on {address} lacks used_memory"))?;
    }
    Ok(total)
}

fn cluster_failover(replica: &str) -> Result<(), String> {
    let reply: String = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .query(&mut node(replica)?)
        .map_err(|err| format!("CLUSTER FAILOVER on {replica}: {err}"))?;
    if reply == "OK" {
        Ok(())
    } else {
        Err(format!("CLUSTER FAILOVER on {replica} answered {reply}"))
    }
}

/// Polls `INFO replication` until `address` reports `role`; the promotion happens in another
/// process, so polling is the only way to see it.
fn wait_for_role(address: &str, role: &str, timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let info: Option<String> = node(address).ok().and_then(|mut connection| {
            redis::cmd("INFO")
                .arg("replication")
                .query(&mut connection)
                .ok()
        });
        if info.is_some_and(|info| {
            info.lines()
                .any(|line| line.trim() == format!("role:{role}"))
        }) {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(format!(
                "{address} did not become {role} within {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

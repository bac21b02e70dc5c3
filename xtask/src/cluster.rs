//! `cargo xtask cluster up|down|test`: a private Redis Cluster of 3 masters and 3 replicas on
//! 127.0.0.1, for `tokm-redis`'s tests, manual use and the bench.
//!
//! - `up` starts one under `target/tokm-redis-cluster/` and leaves it running; it prints the
//!   `TOKM_REDIS_CLUSTER=...` line the tests and the bench read.
//! - `down` stops the nodes of `up` by process id (the pid file each node writes) and removes
//!   the directory.
//! - `test` starts a fresh one under `target/tokm-redis-cluster-test/`, runs
//!   `cargo test -p tokm-redis` against it, and stops it afterwards whether the tests passed or
//!   not. `cargo xtask ci` runs this as its own step.
//!
//! Each node is `redis-server <dir>/node-<port>/redis.conf` (daemonized, so that a test may
//! SIGKILL one and start it again from the same file), with `cluster-node-timeout 2000` and
//! diskless replication without delay, so a failover takes about 3 s and a resync a moment.
//! The cluster is made with `redis-cli --cluster create ... --cluster-replicas 1` and is ready
//! when every node reports `cluster_state:ok` and every master has its replica connected.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::shell::{cargo, run_tee_stdout, workspace_root};

/// Environment variable with the cluster's `host:port` list, comma-separated.
pub(crate) const ADDRESSES_VAR: &str = "TOKM_REDIS_CLUSTER";
/// Environment variable with the cluster's directory (holding `node-<port>/redis.conf`).
pub(crate) const DIR_VAR: &str = "TOKM_REDIS_CLUSTER_DIR";

const MASTERS: usize = 3;
const NODES: usize = MASTERS * 2;
/// `cluster-node-timeout`: how long a master may be unreachable before its replica takes over.
const NODE_TIMEOUT_MS: u32 = 2000;
/// The cluster bus listens on the client port + 10000.
const BUS_PORT_OFFSET: u16 = 10_000;
/// How long the cluster has to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between readiness checks (xtask is not a test: polling an external process is the
/// only way to see it change).
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long a node has to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

const USAGE: &str = "usage: cargo xtask cluster up|down|test";

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    match args {
        [command] if command == "up" => {
            let cluster = Cluster::start(&manual_dir())?;
            println!(
                "cluster: 3 masters + 3 replicas running in {}",
                cluster.dir.display()
            );
            println!("export {ADDRESSES_VAR}={}", cluster.addresses());
            println!("export {DIR_VAR}={}", cluster.dir.display());
            println!("stop it with: cargo xtask cluster down");
            Ok(())
        }
        [command] if command == "down" => stop_dir(&manual_dir()),
        [command] if command == "test" => test().map(drop),
        _ => Err(USAGE.to_owned()),
    }
}

/// Whether `redis-server` and `redis-cli` are on `PATH`.
pub(crate) fn redis_installed() -> bool {
    ["redis-server", "redis-cli"].iter().all(|program| {
        Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    })
}

/// Starts a fresh cluster, runs `cargo test -p tokm-redis` against it, stops it; returns the
/// test output (for `ci`'s totals).
pub(crate) fn test() -> Result<String, String> {
    let dir = workspace_root().join("target/tokm-redis-cluster-test");
    let started = Instant::now();
    let cluster = Cluster::start_fresh(&dir)?;
    println!(
        "cluster: ready in {:.1} s at {}",
        started.elapsed().as_secs_f64(),
        cluster.addresses()
    );
    // `--show-output` prints what the failover tests measured (lost writes, stalls).
    let mut command = cargo(&[
        "test",
        "--package",
        "tokm-redis",
        "--locked",
        "--",
        "--show-output",
    ]);
    command
        .env(ADDRESSES_VAR, cluster.addresses())
        .env(DIR_VAR, &cluster.dir)
        .env("RUST_BACKTRACE", "1");
    let tested = run_tee_stdout(&mut command);
    let stopped = cluster.stop();
    let output = tested?;
    stopped?;
    Ok(output)
}

fn manual_dir() -> PathBuf {
    workspace_root().join("target/tokm-redis-cluster")
}

/// A running cluster: its directory and the nodes' ports.
#[derive(Debug)]
pub(crate) struct Cluster {
    dir: PathBuf,
    ports: Vec<u16>,
}

impl Cluster {
    /// Starts six nodes in a fresh `dir`, joins them into a cluster and waits until it is
    /// ready. Refuses a `dir` whose nodes are still running; on failure stops what it started.
    pub(crate) fn start(dir: &Path) -> Result<Cluster, String> {
        if !redis_installed() {
            return Err(
                "redis-server and redis-cli are not on PATH (Debian: apt-get install redis-server)"
                    .to_owned(),
            );
        }
        let running = running_pids(dir);
        if !running.is_empty() {
            return Err(format!(
                "a cluster is already running in {} (pids {running:?}); stop it first \
                 (cargo xtask cluster down)",
                dir.display()
            ));
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .map_err(|error| format!("removing {}: {error}", dir.display()))?;
        }
        let ports = free_ports(NODES)?;
        let cluster = Cluster {
            dir: dir.to_path_buf(),
            ports,
        };
        match cluster.bring_up() {
            Ok(()) => Ok(cluster),
            Err(error) => {
                let _stopped = cluster.stop();
                Err(error)
            }
        }
    }

    /// [`Cluster::start`] in a directory only automation uses, first stopping whatever a run
    /// that was killed left running there.
    pub(crate) fn start_fresh(dir: &Path) -> Result<Cluster, String> {
        stop_dir(dir)?;
        Cluster::start(dir)
    }

    /// `127.0.0.1:<port>` of every node, comma-separated.
    pub(crate) fn addresses(&self) -> String {
        let addresses: Vec<String> = self
            .ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        addresses.join(",")
    }

    /// The cluster's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops every node by pid and removes the directory.
    pub(crate) fn stop(&self) -> Result<(), String> {
        stop_dir(&self.dir)
    }

    fn bring_up(&self) -> Result<(), String> {
        for &port in &self.ports {
            let node_dir = self.dir.join(format!("node-{port}"));
            create_private_dir(&node_dir)?;
            let config = node_dir.join("redis.conf");
            std::fs::write(&config, node_config(port, &node_dir))
                .map_err(|error| format!("writing {}: {error}", config.display()))?;
            let status = Command::new("redis-server")
                .arg(&config)
                .stdin(Stdio::null())
                .status()
                .map_err(|error| format!("starting redis-server: {error}"))?;
            if !status.success() {
                return Err(format!(
                    "redis-server {} failed ({status}); see {}",
                    config.display(),
                    node_dir.join("redis.log").display()
                ));
            }
        }
        for &port in &self.ports {
            wait_until(&format!("node {port} answers PING"), || {
                cli(port, &["PING"]).is_ok_and(|reply| reply.trim() == "PONG")
            })?;
        }
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for &port in &self.ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        let output = create
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("running redis-cli --cluster create: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        wait_until(
            "cluster_state:ok on every node, a replica on every master",
            || self.ready(),
        )
    }

    /// Every node says `cluster_state:ok` and every master has a connected replica.
    fn ready(&self) -> bool {
        let mut masters_with_replica = 0;
        for &port in &self.ports {
            let Ok(info) = cli(port, &["CLUSTER", "INFO"]) else {
                return false;
            };
            if !info.contains("cluster_state:ok") {
                return false;
            }
            let Ok(replication) = cli(port, &["INFO", "replication"]) else {
                return false;
            };
            if replication.contains("role:master") && replication.contains("connected_slaves:1") {
                masters_with_replica += 1;
            }
        }
        masters_with_replica == MASTERS
    }
}

/// The configuration of the node on `port` with its files in `dir`.
fn node_config(port: u16, dir: &Path) -> String {
    let dir = dir.display();
    format!(
        "port {port}
bind 127.0.0.1
protected-mode yes
daemonize yes
pidfile \"{dir}/redis.pid\"
logfile \"{dir}/redis.log\"
dir \"{dir}\"
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout {NODE_TIMEOUT_MS}
save \"\"
appendonly no
repl-diskless-sync yes
repl-diskless-sync-delay 0
loglevel notice
"
    )
}

/// `redis-cli -p port args...`; its stdout, or an error when it fails.
fn cli(port: u16, args: &[&str]) -> Result<String, String> {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("running redis-cli: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Polls `ready` until it holds, for at most [`READY_TIMEOUT`].
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let started = Instant::now();
    while !ready() {
        if started.elapsed() > READY_TIMEOUT {
            return Err(format!(
                "gave up waiting for {what} after {READY_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    Ok(())
}

/// `count` ports on 127.0.0.1 that are free, each with its bus port (+10000) free too. All
/// are held open until every one is found, so they differ; another process may still take one
/// before the node binds it, in which case the node fails to start and the error says so.
fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _attempt in 0..1000 {
        if ports.len() == count {
            break;
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|error| format!("finding a free port: {error}"))?;
        let port = listener
            .local_addr()
            .map_err(|error| format!("finding a free port: {error}"))?
            .port();
        let Some(bus_port) = port.checked_add(BUS_PORT_OFFSET) else {
            continue;
        };
        let Ok(bus) = TcpListener::bind((Ipv4Addr::LOCALHOST, bus_port)) else {
            continue;
        };
        held.push(listener);
        held.push(bus);
        ports.push(port);
    }
    if ports.len() < count {
        return Err(format!(
            "found only {} of {count} free port pairs",
            ports.len()
        ));
    }
    Ok(ports)
}

fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|error| format!("creating {}: {error}", dir.display()))
}

/// The pids in `dir/node-*/redis.pid` whose process is a running `redis-server`.
fn running_pids(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let pid_file = entry.path().join("redis.pid");
        let Ok(text) = std::fs::read_to_string(&pid_file) else {
            continue;
        };
        let Ok(pid) = text.trim().parse::<u32>() else {
            continue;
        };
        if is_redis_server(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// Whether `pid` is a live `redis-server` (so that a recycled pid is never signalled).
fn is_redis_server(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|name| name.trim_end().starts_with("redis-server"))
}

/// Sends `signal` to `pid` through the shell's `kill` builtin (no extra dependency, and no
/// `procps` needed on a minimal machine).
fn signal(pid: u32, signal: &str) -> bool {
    Command::new("sh")
        .args(["-c", "kill -s \"$0\" \"$1\"", signal, &pid.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Stops every node of the cluster in `dir` (SIGTERM, SIGKILL after [`STOP_TIMEOUT`]) and
/// removes `dir`.
fn stop_dir(dir: &Path) -> Result<(), String> {
    let pids = running_pids(dir);
    for &pid in &pids {
        signal(pid, "TERM");
    }
    let started = Instant::now();
    let mut left: Vec<u32> = pids;
    while !left.is_empty() && started.elapsed() < STOP_TIMEOUT {
        std::thread::sleep(POLL_INTERVAL);
        left.retain(|&pid| is_redis_server(pid));
    }
    for &pid in &left {
        signal(pid, "KILL");
    }
    let still: Vec<u32> = left
        .into_iter()
        .filter(|&pid| is_redis_server(pid))
        .collect();
    if !still.is_empty() {
        return Err(format!("redis-server pids {still:?} did not stop"));
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|error| format!("removing {}: {error}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_config_names_its_own_files_and_the_short_node_timeout() {
        let config = node_config(7001, Path::new("/tmp/c/node-7001"));
        for line in [
            "port 7001",
            "cluster-enabled yes",
            "cluster-node-timeout 2000",
            "repl-diskless-sync-delay 0",
            "daemonize yes",
            "pidfile \"/tmp/c/node-7001/redis.pid\"",
        ] {
            assert!(config.lines().any(|l| l == line), "{line} in\n{config}");
        }
    }

    #[test]
    fn free_ports_differ_and_leave_room_for_the_bus_port() {
        let ports = free_ports(6).unwrap();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 6);
        assert!(
            ports
                .iter()
                .all(|port| port.checked_add(BUS_PORT_OFFSET).is_some())
        );
    }

    #[test]
    fn a_directory_without_pid_files_has_nothing_running() {
        assert!(running_pids(Path::new("/nonexistent/tokm")).is_empty());
        assert!(!is_redis_server(u32::MAX));
    }
}

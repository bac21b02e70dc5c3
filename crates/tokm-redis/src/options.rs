//! [`RedisClusterOptions`]: where the cluster is, the namespace, the quota, and how long and
//! how durably writes wait.

use std::time::Duration;

use tokm_domain::{LIFETIME_MAX, Quota};

use crate::error::RedisStoreError;

/// Longest namespace, in bytes.
pub const NAMESPACE_LEN_MAX: usize = 64;
/// Most seed nodes in [`RedisClusterOptions::nodes`].
pub const NODES_MAX: usize = 1000;
/// Largest connection pool ([`RedisClusterOptions::pool_size_max`]).
pub const POOL_SIZE_MAX: usize = 1024;
/// Longest retry budget, `WAIT` timeout and I/O timeout: ten minutes.
pub const TIMEOUT_MAX: Duration = Duration::from_secs(600);

/// Which writes wait for replicas (`WAIT n timeout`) before they are acknowledged.
///
/// Redis replicates asynchronously: a write acknowledged by a master that dies before its
/// replica received it is lost when the replica is promoted. For a session store the costly
/// loss is a revocation (a deleted session comes back), so the default waits for those only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WaitPolicy {
    /// No write waits: the fastest, and a failover may lose the last writes of any kind.
    None,
    /// `delete`, `delete_by_user`, `cleanup_expired` and a create that evicts wait for the
    /// removal to reach [`RedisClusterOptions::wait_replicas`] replicas. The default.
    #[default]
    Revocations,
    /// Every write waits (creates, updates and touches too): one more round trip per slot
    /// written.
    AllWrites,
}

/// How to reach the cluster and how the store behaves on it.
///
/// Build with [`RedisClusterOptions::new`] and change fields; [`RedisClusterStore::connect`]
/// checks them.
///
/// [`RedisClusterStore::connect`]: crate::RedisClusterStore::connect
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisClusterOptions {
    /// Seed nodes as `host:port` (any nodes of the cluster; the rest is discovered). At least
    /// one, at most [`NODES_MAX`].
    pub nodes: Vec<String>,
    /// Prefix of every key, so that several stores (or other data) share a cluster: ASCII
    /// letters, digits, `-`, `_`, `.` and `:`, 1 to [`NAMESPACE_LEN_MAX`] bytes.
    pub namespace: String,
    /// Per-user live-session limit and what `create` does at it.
    pub quota: Quota,
    /// Which writes wait for replicas. Default [`WaitPolicy::Revocations`]; a cluster without
    /// replicas needs [`WaitPolicy::None`], or every revocation fails after `wait_timeout`.
    pub wait: WaitPolicy,
    /// Replicas a waiting write needs (`WAIT numreplicas`); default 1, at least 1.
    pub wait_replicas: u32,
    /// `WAIT` timeout; default 1 s.
    pub wait_timeout: Duration,
    /// How long one operation keeps retrying through connection failures, `CLUSTERDOWN` and
    /// failovers before it reports [`RedisStoreError::Unavailable`]. Default 20 s: above a
    /// failover with Redis's default `cluster-node-timeout` of 15 s.
    pub retry_budget: Duration,
    /// Read and write timeout on every connection; default 2 s.
    pub io_timeout: Duration,
    /// Connect timeout per node; default 1 s.
    pub connect_timeout: Duration,
    /// How long after `expires_at` Redis itself deletes a session's keys (a backstop, so that
    /// nothing leaks if nobody calls `cleanup_expired`). Until then an expired session is
    /// reported as expired, as everywhere else. Default 1 day, at most `LIFETIME_MAX`.
    pub expired_grace: Duration,
    /// Cluster connections the store opens at most (each holds one TCP connection per node it
    /// has talked to); a call that finds all in use waits for one. Default 32, 1 to
    /// [`POOL_SIZE_MAX`].
    pub pool_size_max: usize,
}

impl RedisClusterOptions {
    /// Options for the cluster reachable through `nodes`, under `namespace`, with every other
    /// field at its default.
    pub fn new(nodes: Vec<String>, namespace: &str) -> RedisClusterOptions {
        RedisClusterOptions {
            nodes,
            namespace: namespace.to_owned(),
            quota: Quota::default(),
            wait: WaitPolicy::default(),
            wait_replicas: 1,
            wait_timeout: Duration::from_secs(1),
            retry_budget: Duration::from_secs(20),
            io_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            expired_grace: Duration::from_secs(24 * 60 * 60),
            pool_size_max: 32,
        }
    }

    /// Checks every rule; the error names the first field that breaks one.
    pub(crate) fn validate(&self) -> Result<Vec<(String, u16)>, RedisStoreError> {
        let invalid = |reason: String| RedisStoreError::InvalidOptions { reason };
        check_namespace(&self.namespace).map_err(|reason| invalid(reason.to_owned()))?;
        if self.nodes.is_empty() || self.nodes.len() > NODES_MAX {
            return Err(invalid(format!(
                "nodes: {} given, 1 to NODES_MAX = {NODES_MAX} allowed",
                self.nodes.len()
            )));
        }
        if self.quota.sessions_per_user_max == 0 {
            return Err(invalid("quota.sessions_per_user_max is 0".into()));
        }
        if self.wait != WaitPolicy::None && self.wait_replicas == 0 {
            return Err(invalid("wait_replicas is 0 while wait is not None".into()));
        }
        for (name, value) in [
            ("wait_timeout", self.wait_timeout),
            ("retry_budget", self.retry_budget),
            ("io_timeout", self.io_timeout),
            ("connect_timeout", self.connect_timeout),
        ] {
            if value < Duration::from_millis(1) || value > TIMEOUT_MAX {
                return Err(invalid(format!(
                    "{name} is {value:?}, allowed 1 ms to TIMEOUT_MAX = 600 s"
                )));
            }
        }
        if self.expired_grace > LIFETIME_MAX {
            return Err(invalid(format!(
                "expired_grace is {:?}, limit LIFETIME_MAX",
                self.expired_grace
            )));
        }
        if self.pool_size_max == 0 || self.pool_size_max > POOL_SIZE_MAX {
            return Err(invalid(format!(
                "pool_size_max is {}, allowed 1 to POOL_SIZE_MAX = {POOL_SIZE_MAX}",
                self.pool_size_max
            )));
        }
        self.nodes.iter().map(|node| parse_address(node)).collect()
    }
}

/// The namespace rules of [`RedisClusterOptions::namespace`]: no `{`/`}` (they would change
/// the hash slot of every key) and no glob characters (they would widen the store's scans).
fn check_namespace(namespace: &str) -> Result<(), &'static str> {
    if namespace.is_empty() {
        return Err("namespace is empty");
    }
    if namespace.len() > NAMESPACE_LEN_MAX {
        return Err("namespace is longer than NAMESPACE_LEN_MAX = 64 bytes");
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':');
    if !namespace.bytes().all(allowed) {
        return Err("namespace may hold only ASCII letters, digits, '-', '_', '.' and ':'");
    }
    Ok(())
}

/// `host:port` or `[v6]:port` as a host and a port.
pub(crate) fn parse_address(address: &str) -> Result<(String, u16), RedisStoreError> {
    let invalid = |reason| RedisStoreError::InvalidAddress {
        address: address.chars().take(256).collect(),
        reason,
    };
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(invalid("no ':port'"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| invalid("the port is not a number from 1 to 65535"))?;
    if port == 0 {
        return Err(invalid("the port is not a number from 1 to 65535"));
    }
    let host = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .ok_or_else(|| invalid("an IPv6 host lacks its closing ']'"))?,
        None if host.contains(':') => return Err(invalid("an IPv6 host must be in brackets")),
        None => host,
    };
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'_');
    if host.is_empty() || host.len() > 253 || !host.bytes().all(plain) {
        return Err(invalid("the host is empty or not a name or an address"));
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> RedisClusterOptions {
        RedisClusterOptions::new(vec!["127.0.0.1:7000".into()], "tokm")
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(
            options().validate().unwrap(),
            vec![("127.0.0.1".to_owned(), 7000)]
        );
    }

    #[test]
    fn addresses_are_host_and_port() {
        assert_eq!(
            parse_address("[::1]:7001").unwrap(),
            ("::1".to_owned(), 7001)
        );
        assert_eq!(
            parse_address("redis-0.cache:6379").unwrap(),
            ("redis-0.cache".to_owned(), 6379)
        );
        for bad in [
            "",
            "host",
            "host:",
            "host:0",
            "host:65536",
            ":7000",
            "::1:7000",
            "[::1:7000",
            "redis://host:7000",
            "a b:1",
        ] {
            let err = parse_address(bad).unwrap_err();
            assert_eq!(err.code(), "TM-REDIS-4002", "{bad:?}");
        }
    }

    #[test]
    fn each_broken_rule_is_invalid_options() {
        type Edit = Box<dyn Fn(&mut RedisClusterOptions)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("empty namespace", Box::new(|o| o.namespace.clear())),
            ("brace", Box::new(|o| o.namespace = "a{b}".into())),
            ("glob", Box::new(|o| o.namespace = "a*".into())),
            ("long", Box::new(|o| o.namespace = "n".repeat(65))),
            ("no nodes", Box::new(|o| o.nodes.clear())),
            ("quota 0", Box::new(|o| o.quota.sessions_per_user_max = 0)),
            ("replicas 0", Box::new(|o| o.wait_replicas = 0)),
            ("zero budget", Box::new(|o| o.retry_budget = Duration::ZERO)),
            (
                "sub-ms timeout",
                Box::new(|o| o.io_timeout = Duration::from_micros(10)),
            ),
            (
                "huge wait",
                Box::new(|o| o.wait_timeout = Duration::from_secs(601)),
            ),
            (
                "grace",
                Box::new(|o| o.expired_grace = LIFETIME_MAX + Duration::from_secs(1)),
            ),
            ("pool", Box::new(|o| o.pool_size_max = 0)),
        ];
        for (what, edit) in cases {
            let mut options = options();
            edit(&mut options);
            let err = options.validate().unwrap_err();
            assert_eq!(err.code(), "TM-REDIS-4001", "{what}: {err}");
        }
        let mut no_wait = options();
        no_wait.wait = WaitPolicy::None;
        no_wait.wait_replicas = 0;
        assert!(
            no_wait.validate().is_ok(),
            "replicas do not matter without WAIT"
        );
    }
}

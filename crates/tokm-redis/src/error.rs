//! [`RedisStoreError`]: what can go wrong between tokm and a Redis Cluster.
//!
//! [`RedisClusterStore::connect`](crate::RedisClusterStore::connect) returns it directly; the
//! repository methods return the domain's [`SessionError`], with this error inside
//! [`SessionError::Storage`] (its `layer_code` is this error's code), so a caller that only knows
//! the traits still sees `TM-SESS-5001` and one that looks inside sees `TM-REDIS-…`.

use std::time::Duration;

use tokm_domain::SessionError;

/// A failure of the Redis-backed store: bad options, an unreachable cluster, a refused command
/// or script, or a stored value that is not a session record.
///
/// Messages name the operation, the key or the node, never a token, a token hash or a record's
/// content. Every variant has a stable code (see [`RedisStoreError::code`] and the table in the
/// crate docs); codes are never renumbered or reused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// [`RedisClusterOptions`](crate::RedisClusterOptions) break a rule; `reason` names the
    /// field and the limit.
    #[error("invalid redis store options: {reason}")]
    InvalidOptions {
        /// Which rule was broken.
        reason: String,
    },
    /// A node address is not `host:port` (IPv6 hosts in brackets, `[::1]:7000`).
    #[error("invalid node address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No node answered within the retry budget: every seed node is down or the addresses are
    /// wrong, or a failover took longer than the budget. The operation's outcome is unknown if
    /// it was a write (it may have been applied before the connection broke).
    #[error("redis cluster unavailable during {operation} (gave up after {waited:?})")]
    Unavailable {
        /// The repository operation, e.g. `create`.
        operation: &'static str,
        /// How long the operation kept retrying.
        waited: Duration,
        /// The last error the client reported.
        #[source]
        source: redis::RedisError,
    },
    /// Redis refused a command with an error that retrying cannot cure (out of memory, no
    /// permission, a key of the wrong type, ...).
    #[error("redis refused a command during {operation}")]
    Command {
        /// The repository operation.
        operation: &'static str,
        /// The error Redis returned.
        #[source]
        source: redis::RedisError,
    },
    /// One of the store's Lua scripts failed on the server (a key of the wrong type under the
    /// store's namespace, a script that cannot be loaded, ...). Nothing the script did before
    /// the error is rolled back by Redis, but every script checks before it writes.
    #[error("redis script {script} failed")]
    Script {
        /// The script: `create`, `update`, `touch`, `delete`, `delete_user` or `cleanup_user`.
        script: &'static str,
        /// The error Redis returned.
        #[source]
        source: redis::RedisError,
    },
    /// A value under the store's namespace is not a valid session record (written by
    /// something else, or damaged).
    #[error("stored value in {key} (field {field}) is not a session record")]
    CorruptRecord {
        /// The Redis key holding it (a user's record hash: a fingerprint, no user id).
        key: String,
        /// The hash field (the session id it was stored under), at most 32 characters.
        field: String,
        /// Which rule the bytes broke.
        #[source]
        source: SessionError,
    },
    /// A reply did not have the shape the store expects (a script or command answered with
    /// another type): a version mismatch between the store and what runs on the server.
    #[error("unexpected reply to {operation}: {detail}")]
    UnexpectedReply {
        /// The command or script.
        operation: &'static str,
        /// What was expected.
        detail: &'static str,
    },
    /// `WAIT` returned before enough replicas acknowledged the write. The write is applied on
    /// the master but a failover may still lose it; repeating an idempotent operation (a
    /// delete) waits again.
    #[error(
        "{operation}: {acknowledged} of {wanted} replicas acknowledged within {timeout:?}; the write may be lost on failover"
    )]
    ReplicaAckTimeout {
        /// The repository operation.
        operation: &'static str,
        /// Replicas asked for ([`RedisClusterOptions::wait_replicas`](crate::RedisClusterOptions::wait_replicas)).
        wanted: u32,
        /// Replicas that acknowledged.
        acknowledged: u32,
        /// The `WAIT` timeout.
        timeout: Duration,
    },
}

impl RedisStoreError {
    /// Every code, in declaration order; the crate docs table lists the same codes.
    pub const CODES: [&'static str; 8] = [
        "TM-REDIS-4001",
        "TM-REDIS-4002",
        "TM-REDIS-5031",
        "TM-REDIS-5001",
        "TM-REDIS-5002",
        "TM-REDIS-5201",
        "TM-REDIS-5202",
        "TM-REDIS-5041",
    ];

    /// The stable code of this error, `TM-REDIS-NNNN`; never renumbered or reused.
    pub fn code(&self) -> &'static str {
        match self {
            RedisStoreError::InvalidOptions { .. } => "TM-REDIS-4001",
            RedisStoreError::InvalidAddress { .. } => "TM-REDIS-4002",
            RedisStoreError::Unavailable { .. } => "TM-REDIS-5031",
            RedisStoreError::Command { .. } => "TM-REDIS-5001",
            RedisStoreError::Script { .. } => "TM-REDIS-5002",
            RedisStoreError::CorruptRecord { .. } => "TM-REDIS-5201",
            RedisStoreError::UnexpectedReply { .. } => "TM-REDIS-5202",
            RedisStoreError::ReplicaAckTimeout { .. } => "TM-REDIS-5041",
        }
    }

    /// This error as the domain's [`SessionError::Storage`], keeping its code.
    pub fn into_session_error(self) -> SessionError {
        SessionError::Storage {
            layer_code: self.code(),
            source: Box::new(self),
        }
    }
}

impl From<RedisStoreError> for SessionError {
    fn from(error: RedisStoreError) -> SessionError {
        error.into_session_error()
    }
}

/// The `TM-REDIS-…` code inside a [`SessionError`] returned by the store, if it carries one:
/// `Some("TM-REDIS-5031")` for an unavailable cluster, `None` for domain errors such as
/// `TM-SESS-4041`.
pub fn redis_code(error: &SessionError) -> Option<&'static str> {
    match error {
        SessionError::Storage { layer_code, .. } if layer_code.starts_with("TM-REDIS-") => {
            Some(layer_code)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn one_of_each() -> Vec<RedisStoreError> {
        let redis_error = || redis::RedisError::from(std::io::Error::other("test"));
        vec![
            RedisStoreError::InvalidOptions {
                reason: "namespace".into(),
            },
            RedisStoreError::InvalidAddress {
                address: "x".into(),
                reason: "no port",
            },
            RedisStoreError::Unavailable {
                operation: "get",
                waited: Duration::from_secs(1),
                source: redis_error(),
            },
            RedisStoreError::Command {
                operation: "get",
                source: redis_error(),
            },
            RedisStoreError::Script {
                script: "create",
                source: redis_error(),
            },
            RedisStoreError::CorruptRecord {
                key: "ns:{u:00}:r".into(),
                field: "x".into(),
                source: SessionError::TokenNotFound,
            },
            RedisStoreError::UnexpectedReply {
                operation: "create",
                detail: "an array",
            },
            RedisStoreError::ReplicaAckTimeout {
                operation: "delete",
                wanted: 1,
                acknowledged: 0,
                timeout: Duration::from_secs(1),
            },
        ]
    }

    #[test]
    fn codes_are_unique_well_formed_and_listed() {
        let codes: Vec<&str> = one_of_each().iter().map(RedisStoreError::code).collect();
        assert_eq!(codes, RedisStoreError::CODES);
        let unique: HashSet<&str> = codes.iter().copied().collect();
        assert_eq!(unique.len(), codes.len(), "codes are unique");
        for code in codes {
            let digits = code.strip_prefix("TM-REDIS-").expect("area prefix");
            assert!(
                digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()),
                "{code} is TM-REDIS-NNNN"
            );
        }
    }

    #[test]
    fn the_domain_error_keeps_the_code() {
        for error in one_of_each() {
            let code = error.code();
            let wrapped = SessionError::from(error);
            assert_eq!(wrapped.code(), "TM-SESS-5001");
            assert_eq!(redis_code(&wrapped), Some(code));
        }
        assert_eq!(redis_code(&SessionError::TokenNotFound), None);
    }
}

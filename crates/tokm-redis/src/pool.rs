//! Connections and retries: a small pool of synchronous `ClusterConnection`s, and the loop that
//! carries an operation through a failover.
//!
//! The redis client follows `MOVED`/`ASK` redirections and retries `TRYAGAIN` and
//! `CLUSTERDOWN` a few times, but it keeps routing to a master that died until a redirection
//! tells it otherwise. So an operation that fails with a transient error (I/O, `CLUSTERDOWN`,
//! `READONLY`, ...) is run again from its start on a new connection, which reads the slot map
//! afresh, after a short backoff, until [`RedisClusterOptions::retry_budget`] is spent. Every
//! operation is written so that running it again after a partial or unknown outcome is safe
//! (see "Ambiguous retries" in the crate docs).
//!
//! [`RedisClusterOptions::retry_budget`]: crate::RedisClusterOptions::retry_budget

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{ErrorKind, RedisError, ServerErrorKind};
use tokm_domain::SessionError;

use crate::error::RedisStoreError;

/// First pause before a retry.
const BACKOFF_FIRST: Duration = Duration::from_millis(25);
/// Longest pause between retries.
const BACKOFF_MAX: Duration = Duration::from_millis(400);
/// Attempts of one operation at most, whatever the budget: a bound on the loop.
const ATTEMPTS_MAX: u32 = 10_000;

/// Why one attempt of an operation stopped.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth another attempt on a new connection: the cluster may be failing over.
    Transient(RedisError),
    /// Final: a store error.
    Store(RedisStoreError),
    /// Final: a domain outcome (not found, conflict, quota, ...).
    Domain(SessionError),
}

impl From<RedisStoreError> for Failure {
    fn from(error: RedisStoreError) -> Failure {
        Failure::Store(error)
    }
}

impl From<SessionError> for Failure {
    fn from(error: SessionError) -> Failure {
        Failure::Domain(error)
    }
}

/// A command's error: transient, or final as what `fatal` makes of it.
pub(crate) fn classify(
    error: RedisError,
    fatal: impl FnOnce(RedisError) -> RedisStoreError,
) -> Failure {
    if is_transient(&error) {
        Failure::Transient(error)
    } else {
        Failure::Store(fatal(error))
    }
}

/// A plain command's error during `operation`.
pub(crate) fn command_failure(operation: &'static str) -> impl FnOnce(RedisError) -> Failure {
    move |error| {
        classify(error, |source| RedisStoreError::Command {
            operation,
            source,
        })
    }
}

/// Whether another attempt, on a new connection with a fresh slot map, may succeed.
pub(crate) fn is_transient(error: &RedisError) -> bool {
    match error.kind() {
        ErrorKind::Server(kind) => matches!(
            kind,
            ServerErrorKind::Moved
                | ServerErrorKind::Ask
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::BusyLoading
                | ServerErrorKind::ReadOnly
        ),
        ErrorKind::Io | ErrorKind::ClusterConnectionNotFound | ErrorKind::Parse => true,
        // The cluster client reports a slot map without a node for a slot, or a topology
        // query that found no slots, as a client error: both pass once a failover completes.
        ErrorKind::Client => error.to_string().to_ascii_lowercase().contains("slot"),
        _ => false,
    }
}

/// Idle connections to one cluster, and the retry loop.
pub(crate) struct Pool {
    client: ClusterClient,
    /// Connections not in use. Locked only to push or pop one, never across I/O.
    idle: Mutex<Vec<ClusterConnection>>,
    idle_max: usize,
    retry_budget: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.idle.lock().len())
            .field("idle_max", &self.idle_max)
            .field("retry_budget", &self.retry_budget)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool over `client`; connects once, so that a cluster nobody can reach is reported
    /// now ([`RedisStoreError::Unavailable`], operation `connect`) rather than at first use.
    pub(crate) fn connect(
        client: ClusterClient,
        idle_max: usize,
        retry_budget: Duration,
    ) -> Result<Pool, RedisStoreError> {
        let started = Instant::now();
        let connection =
            client
                .get_connection()
                .map_err(|source| RedisStoreError::Unavailable {
                    operation: "connect",
                    waited: started.elapsed(),
                    source,
                })?;
        Ok(Pool {
            client,
            idle: Mutex::new(vec![connection]),
            idle_max,
            retry_budget,
        })
    }

    /// Runs `body` with a connection until it succeeds, fails for good, or the retry budget is
    /// spent. `body` gets the attempt number (0 for the first) so that it can recognise the
    /// result of an earlier attempt whose reply was lost.
    pub(crate) fn run<T>(
        &self,
        operation: &'static str,
        mut body: impl FnMut(&mut ClusterConnection, u32) -> Result<T, Failure>,
    ) -> Result<T, SessionError> {
        let started = Instant::now();
        let mut backoff = BACKOFF_FIRST;
        let mut attempt = 0;
        loop {
            let outcome = match self.checkout() {
                Ok(mut connection) => {
                    let outcome = body(&mut connection, attempt);
                    // A connection that saw a transient error may point at a dead node or
                    // hold a stale slot map: drop it; any other outcome leaves it usable.
                    if !matches!(outcome, Err(Failure::Transient(_))) {
                        self.checkin(connection);
                    }
                    outcome
                }
                Err(error) => Err(Failure::Transient(error)),
            };
            let source = match outcome {
                Ok(value) => return Ok(value),
                Err(Failure::Domain(error)) => return Err(error),
                Err(Failure::Store(error)) => return Err(error.into_session_error()),
                Err(Failure::Transient(source)) => source,
            };
            let waited = started.elapsed();
            attempt += 1;
            if waited + backoff > self.retry_budget || attempt >= ATTEMPTS_MAX {
                return Err(RedisStoreError::Unavailable {
                    operation,
                    waited,
                    source,
                }
                .into_session_error());
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    fn checkout(&self) -> Result<ClusterConnection, RedisError> {
        if let Some(connection) = self.idle.lock().pop() {
            return Ok(connection);
        }
        self.client.get_connection()
    }

    fn checkin(&self, connection: ClusterConnection) {
        let mut idle = self.idle.lock();
        if idle.len() < self.idle_max {
            idle.push(connection);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_and_failover_errors_are_transient_and_refusals_are_not() {
        let io = RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert!(is_transient(&io));
        let refused = RedisError::from((ErrorKind::Extension, "OOM", "command not allowed".into()));
        assert!(!is_transient(&refused));
        let config = RedisError::from((ErrorKind::InvalidClientConfig, "bad"));
        assert!(!is_transient(&config));
    }
}

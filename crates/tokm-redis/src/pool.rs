//! Connections and retries: a bounded pool of synchronous `ClusterConnection`s, and the loop
//! that carries an operation through a failover.
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

use parking_lot::{Condvar, Mutex};
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{ErrorKind, RedisError, ServerErrorKind};
use tokm_domain::SessionError;

use crate::error::RedisStoreError;

/// First pause before a retry.
const BACKOFF_FIRST: Duration = Duration::from_millis(10);
/// Longest pause between retries.
const BACKOFF_MAX: Duration = Duration::from_millis(250);
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
    // A master demoted by a failover ends the commands blocked on it (`WAIT` after a write)
    // with `UNBLOCKED`; the promoted replica takes the retry. The write itself may have run:
    // an ambiguous retry (crate docs, "Guarantees and relaxations").
    if error.code() == Some("UNBLOCKED") {
        return true;
    }
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
                // A promoted replica lacks the scripts, and a stale slot map can load them on
                // the old master: a new connection reads the map afresh.
                | ServerErrorKind::NoScript
        ),
        ErrorKind::Io | ErrorKind::ClusterConnectionNotFound | ErrorKind::Parse => true,
        // The cluster client reports a slot map without a node for a slot, or a topology
        // query that found no slots, as a client error: both pass once a failover completes.
        ErrorKind::Client => error.to_string().to_ascii_lowercase().contains("slot"),
        _ => false,
    }
}

/// Connections to one cluster, at most `size_max` of them, and the retry loop.
pub(crate) struct Pool {
    client: ClusterClient,
    /// Idle connections and how many exist. Locked only to take or return one, never across
    /// I/O.
    state: Mutex<PoolState>,
    /// Signalled when a connection is returned or dropped.
    returned: Condvar,
    size_max: usize,
    retry_budget: Duration,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<ClusterConnection>,
    /// Connections in existence: idle, in use, or being opened.
    open: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock();
        f.debug_struct("Pool")
            .field("idle", &state.idle.len())
            .field("open", &state.open)
            .field("size_max", &self.size_max)
            .field("retry_budget", &self.retry_budget)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool over `client`; connects once, so that a cluster nobody can reach is reported
    /// now ([`RedisStoreError::Unavailable`], operation `connect`) rather than at first use.
    pub(crate) fn connect(
        client: ClusterClient,
        size_max: usize,
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
            state: Mutex::new(PoolState {
                idle: vec![connection],
                open: 1,
            }),
            returned: Condvar::new(),
            size_max,
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
            let outcome = match self.checkout(started) {
                Ok(mut connection) => {
                    let outcome = body(&mut connection, attempt);
                    // A connection that saw a transient error may point at a dead node or
                    // hold a stale slot map: drop it; any other outcome leaves it usable.
                    if matches!(outcome, Err(Failure::Transient(_))) {
                        self.discard(connection);
                    } else {
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

    /// An idle connection, a new one while fewer than `size_max` exist, or else the next one
    /// returned (waiting at most until the retry budget of an operation started at `started`
    /// is spent, then opening one anyway rather than failing a call for want of a slot).
    fn checkout(&self, started: Instant) -> Result<ClusterConnection, RedisError> {
        let mut state = self.state.lock();
        loop {
            if let Some(connection) = state.idle.pop() {
                return Ok(connection);
            }
            let budget_left = self.retry_budget.saturating_sub(started.elapsed());
            if state.open < self.size_max || budget_left.is_zero() {
                break;
            }
            // Spurious or timed-out wake-ups go round the loop again.
            let _timed_out = self.returned.wait_for(&mut state, budget_left);
        }
        state.open += 1;
        drop(state);
        self.client.get_connection().inspect_err(|_| {
            self.state.lock().open -= 1;
            self.returned.notify_one();
        })
    }

    fn checkin(&self, connection: ClusterConnection) {
        let mut state = self.state.lock();
        if state.idle.len() < self.size_max {
            state.idle.push(connection);
        } else {
            state.open -= 1;
        }
        drop(state);
        self.returned.notify_one();
    }

    fn discard(&self, connection: ClusterConnection) {
        drop(connection);
        self.state.lock().open -= 1;
        self.returned.notify_one();
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
        // What a `WAIT` blocked on a master gets when a failover demotes it.
        let unblocked = redis::make_extension_error(
            "UNBLOCKED".to_owned(),
            Some("force unblock from blocking operation, instance state changed".to_owned()),
        );
        assert!(is_transient(&unblocked));
    }
}

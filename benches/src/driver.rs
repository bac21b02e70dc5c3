//! The closed-loop driver behind every latency and throughput row, and the [`Peer`] trait it
//! drives.
//!
//! Is: [`closed_loop`], which runs N clients, each on its own state (a connection, or nothing),
//! through an untimed warmup, a start barrier, then prepare (untimed) and execute (timed) calls
//! until an operation count, a duration or a stop flag ends the run, recording every execute in
//! an [`hdrhistogram::Histogram`]; [`Peer`], the operations of the table's rows (create, get,
//! token lookup, touch, CAS update, list by user, a filtered page), implemented by every
//! `SessionRepository + TokenRepository` (the embedded engine, `RedisClusterStore`) and by the
//! standalone Redis peer ([`crate::redis_peer::RedisServer`], create only); and [`drive`], which
//! runs one [`Op`] on a peer.
//! Is not: a statistics package beyond the histogram, nor an open-loop load generator: a client
//! sends its next call only when the last one returned, so a slow peer is offered less load.
//!
//! Client `c` of `N` takes the indices `c, c + N, c + 2N, ...`: warmup first, then the measured
//! ones, so a run of creates writes each index of its stream once and an `Ops(total)` run makes
//! exactly `total` calls.
//!
//! ```
//! use std::time::Duration;
//!
//! use tokm_benches::driver::{Limit, Load, closed_loop};
//!
//! let load = Load { clients: 2, warmup: 10, limit: Limit::Ops(1_000) };
//! let measured = closed_loop(&load, |_| Ok(()), |_, _, n| Ok(n), |_, n| {
//!     std::hint::black_box(n);
//!     Ok(())
//! })?;
//! assert_eq!(measured.ops, 1_000);
//! assert!(measured.us(99.0) >= measured.us(50.0));
//! # Ok::<(), tokm_benches::driver::BenchError>(())
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, mpsc};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokm_domain::{
    ListResult, NewSession, Page, Session, SessionError, SessionFilter, SessionId,
    SessionRepository, Sort, SortBy, SortOrder, Timestamp, TokenHash, TokenRepository, UserId,
};

use crate::{SESSIONS_PER_USER, WORKLOAD_START, mix, typical_session, user_id};

/// Why a run, a peer or a check failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A load the driver cannot run.
    #[error("TM-BENCH-4011: invalid load: {0}")]
    InvalidLoad(&'static str),
    /// The peer does not offer this operation.
    #[error("TM-BENCH-4012: {peer} does not offer {op}")]
    Unsupported {
        /// The peer.
        peer: &'static str,
        /// The operation.
        op: &'static str,
    },
    /// A session store refused an operation.
    #[error("TM-BENCH-5101: {op}: {source}")]
    Store {
        /// The operation.
        op: &'static str,
        /// What the store said.
        source: SessionError,
    },
    /// A Redis command or connection failed.
    #[error("TM-BENCH-5102: {what}: {source}")]
    Redis {
        /// The command or the address connected to.
        what: String,
        /// What the client said.
        source: redis::RedisError,
    },
    /// A file or process operation failed.
    #[error("TM-BENCH-5103: {what}: {source}")]
    Io {
        /// What was done, with its path.
        what: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A server or cluster was not in the state the run needs (it exited, did not answer in
    /// time, is someone else's, has no replica...).
    #[error("TM-BENCH-5104: {0}")]
    Server(String),
    /// A result the run checks was wrong (a page too short, a count off).
    #[error("TM-BENCH-5105: {0}")]
    Check(String),
    /// A client thread panicked (a bug in the bench).
    #[error("TM-BENCH-5106: client {0} panicked")]
    ClientPanicked(usize),
}

impl BenchError {
    /// `source` of a store's `op`, for `map_err`.
    pub fn store(op: &'static str) -> impl FnOnce(SessionError) -> BenchError {
        move |source| BenchError::Store { op, source }
    }

    /// `source` of the Redis command or connection `what`, for `map_err`.
    pub fn redis(what: impl Into<String>) -> impl FnOnce(redis::RedisError) -> BenchError {
        move |source| BenchError::Redis {
            what: what.into(),
            source,
        }
    }

    /// `source` of the file or process operation `what`, for `map_err`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        move |source| BenchError::Io {
            what: what.into(),
            source,
        }
    }
}

/// When a run ends.
#[derive(Debug, Clone, Copy)]
pub enum Limit<'a> {
    /// After this many measured calls over all clients.
    Ops(u64),
    /// After this long (calls in flight then still finish and count).
    For(Duration),
    /// When the flag is raised, by another thread.
    Until(&'a AtomicBool),
}

/// How many clients, how much warmup, and when to stop.
#[derive(Debug, Clone, Copy)]
pub struct Load<'a> {
    /// Client threads, at least 1.
    pub clients: usize,
    /// Untimed calls per client before the start barrier.
    pub warmup: u64,
    /// When the measured part ends.
    pub limit: Limit<'a>,
}

impl Load<'_> {
    /// `ops` calls by one client, no warmup: the latency rows.
    pub fn ops(ops: u64) -> Load<'static> {
        Load {
            clients: 1,
            warmup: 0,
            limit: Limit::Ops(ops),
        }
    }

    /// `clients` clients for `run`, no warmup: the throughput rows.
    pub fn timed(clients: usize, run: Duration) -> Load<'static> {
        Load {
            clients,
            warmup: 0,
            limit: Limit::For(run),
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Measured calls over all clients.
    pub ops: u64,
    /// From the start barrier to the last client's last reply.
    pub elapsed: Duration,
    /// Latency of every measured call, in nanoseconds.
    pub latency: Histogram<u64>,
}

impl Measured {
    /// Calls per second over [`Measured::elapsed`].
    pub fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.max(Duration::from_nanos(1)).as_secs_f64()
    }

    /// Percentile `p` (0..=100) of the latency, in microseconds (0 without calls).
    pub fn us(&self, p: f64) -> f64 {
        latency_us(&self.latency, p)
    }

    /// The slowest call, in microseconds.
    pub fn max_us(&self) -> f64 {
        self.latency.max() as f64 / 1e3
    }
}

/// Percentile `p` (0..=100) of a nanosecond histogram, in microseconds (0 when empty).
pub fn latency_us(latency: &Histogram<u64>, p: f64) -> f64 {
    if latency.is_empty() {
        return 0.0;
    }
    latency.value_at_percentile(p) as f64 / 1e3
}

/// An empty nanosecond histogram that grows to whatever it records.
pub fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures are in range")
}

/// What one client did.
struct Tally {
    ops: u64,
    latency: Histogram<u64>,
    finished: Instant,
}

/// Runs `load`: `connect(c)` makes client `c`'s state before any thread starts; each client then
/// calls `prepare(state, c, n)` (untimed) and `execute(state, input)` (timed) for its indices `n`
/// (see the module docs). The first error stops every client and is returned.
pub fn closed_loop<C: Send, I>(
    load: &Load<'_>,
    connect: impl Fn(usize) -> Result<C, BenchError>,
    prepare: impl Fn(&mut C, usize, u64) -> Result<I, BenchError> + Sync,
    execute: impl Fn(&mut C, I) -> Result<(), BenchError> + Sync,
) -> Result<Measured, BenchError> {
    if load.clients == 0 {
        return Err(BenchError::InvalidLoad("no clients"));
    }
    let states = (0..load.clients)
        .map(connect)
        .collect::<Result<Vec<_>, _>>()?;
    let clients = load.clients as u64;
    let start = Barrier::new(load.clients + 1);
    // Raised at the end of a timed run or by a failing client; `Relaxed`: it publishes nothing
    // (results come back through `join`), and a client seeing it one call late is harmless.
    let stop = AtomicBool::new(false);
    let stopped = |stop: &AtomicBool| {
        stop.load(Ordering::Relaxed)
            || matches!(load.limit, Limit::Until(flag) if flag.load(Ordering::Relaxed))
    };
    let (finished_tx, finished_rx) = mpsc::channel::<()>();
    let (began, outcomes) = std::thread::scope(|scope| {
        let handles: Vec<_> = states
            .into_iter()
            .enumerate()
            .map(|(client, mut state)| {
                let (start, stop, prepare, execute) = (&start, &stop, &prepare, &execute);
                let finished = finished_tx.clone();
                scope.spawn(move || {
                    // Dropped when the client returns: once every client's sender is gone the
                    // coordinator stops waiting for a timed run's end.
                    let _finished = finished;
                    let index = |k: u64| k * clients + client as u64;
                    let warmed = (0..load.warmup).try_for_each(|k| {
                        let input = prepare(&mut state, client, index(k))?;
                        execute(&mut state, input)
                    });
                    // Every client reaches the barrier, failed or not, so none waits forever.
                    start.wait();
                    let run = || -> Result<Tally, BenchError> {
                        warmed?;
                        let mut latency = histogram();
                        let mut k = load.warmup;
                        loop {
                            let n = index(k);
                            let done = match load.limit {
                                Limit::Ops(total) => n >= load.warmup * clients + total,
                                Limit::For(_) | Limit::Until(_) => stopped(stop),
                            };
                            if done {
                                break;
                            }
                            let input = prepare(&mut state, client, n)?;
                            let sent = Instant::now();
                            execute(&mut state, input)?;
                            let took = sent.elapsed();
                            // Auto-resizing: takes any latency under 2^62 ns (146 years).
                            latency
                                .record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX >> 2))
                                .expect("an auto-resizing histogram grows to any latency");
                            k += 1;
                        }
                        Ok(Tally {
                            ops: latency.len(),
                            latency,
                            finished: Instant::now(),
                        })
                    };
                    let tally = run();
                    if tally.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    tally
                })
            })
            .collect();
        drop(finished_tx);
        start.wait();
        let began = Instant::now();
        if let Limit::For(run) = load.limit {
            // Nothing is sent: this returns after `run`, or once every client has returned.
            let _timeout_or_all_finished = finished_rx.recv_timeout(run);
            stop.store(true, Ordering::Relaxed);
        }
        let outcomes: Vec<_> = handles.into_iter().map(|handle| handle.join()).collect();
        (began, outcomes)
    });
    let mut measured = Measured {
        ops: 0,
        elapsed: Duration::ZERO,
        latency: histogram(),
    };
    for (client, outcome) in outcomes.into_iter().enumerate() {
        let tally = outcome.map_err(|_panic| BenchError::ClientPanicked(client))??;
        measured.ops += tally.ops;
        measured.elapsed = measured
            .elapsed
            .max(tally.finished.saturating_duration_since(began));
        measured
            .latency
            .add(&tally.latency)
            .expect("auto-resizing histograms of one precision add up");
    }
    Ok(measured)
}

/// A session store as the table's rows use it. Every method but [`Peer::create`] has a default
/// that answers [`BenchError::Unsupported`], for peers that offer only the create workload.
pub trait Peer: Sync {
    /// One client's state: a connection for a networked peer, `()` for an embedded one.
    type Client: Send;

    /// Its name in errors.
    fn name(&self) -> &'static str;

    /// A new client.
    fn client(&self) -> Result<Self::Client, BenchError>;

    /// Stores a new session.
    fn create(&self, client: &mut Self::Client, session: NewSession) -> Result<(), BenchError>;

    /// The session with `id`.
    fn get(&self, _client: &mut Self::Client, _id: SessionId) -> Result<Session, BenchError> {
        Err(self.unsupported("get"))
    }

    /// The session holding `token`.
    fn token_lookup(
        &self,
        _client: &mut Self::Client,
        _token: &TokenHash,
    ) -> Result<(), BenchError> {
        Err(self.unsupported("token lookup"))
    }

    /// Records a use of session `id` at `now`.
    fn touch(
        &self,
        _client: &mut Self::Client,
        _id: SessionId,
        _now: Timestamp,
    ) -> Result<(), BenchError> {
        Err(self.unsupported("touch"))
    }

    /// Replaces the body of `session.id()` if it is at `version`.
    fn update(
        &self,
        _client: &mut Self::Client,
        _session: NewSession,
        _version: u64,
    ) -> Result<(), BenchError> {
        Err(self.unsupported("CAS update"))
    }

    /// The sessions of `user`; returns how many.
    fn list_by_user(
        &self,
        _client: &mut Self::Client,
        _user: &UserId,
    ) -> Result<usize, BenchError> {
        Err(self.unsupported("list by user"))
    }

    /// A page of the sessions matching `filter`.
    fn list(
        &self,
        _client: &mut Self::Client,
        _filter: &SessionFilter,
        _sort: Sort,
        _page: Page,
    ) -> Result<ListResult<Session>, BenchError> {
        Err(self.unsupported("list"))
    }

    /// The error of an operation this peer does not offer.
    fn unsupported(&self, op: &'static str) -> BenchError {
        BenchError::Unsupported {
            peer: self.name(),
            op,
        }
    }
}

/// Every repository is a peer: the embedded engine and `RedisClusterStore` alike.
impl<R: SessionRepository + TokenRepository> Peer for R {
    type Client = ();

    fn name(&self) -> &'static str {
        std::any::type_name::<R>()
    }

    fn client(&self) -> Result<(), BenchError> {
        Ok(())
    }

    fn create(&self, (): &mut (), session: NewSession) -> Result<(), BenchError> {
        SessionRepository::create(self, session)
            .map(drop)
            .map_err(BenchError::store("create"))
    }

    fn get(&self, (): &mut (), id: SessionId) -> Result<Session, BenchError> {
        SessionRepository::get(self, id).map_err(BenchError::store("get"))
    }

    fn token_lookup(&self, (): &mut (), token: &TokenHash) -> Result<(), BenchError> {
        self.get_by_token_hash(token)
            .map(drop)
            .map_err(BenchError::store("token lookup"))
    }

    fn touch(&self, (): &mut (), id: SessionId, now: Timestamp) -> Result<(), BenchError> {
        let address = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        TokenRepository::touch(self, id, now, address)
            .map(drop)
            .map_err(BenchError::store("touch"))
    }

    fn update(&self, (): &mut (), session: NewSession, version: u64) -> Result<(), BenchError> {
        SessionRepository::update(self, session, version)
            .map(drop)
            .map_err(BenchError::store("CAS update"))
    }

    fn list_by_user(&self, (): &mut (), user: &UserId) -> Result<usize, BenchError> {
        SessionRepository::list_by_user(self, user)
            .map(|sessions| sessions.len())
            .map_err(BenchError::store("list by user"))
    }

    fn list(
        &self,
        (): &mut (),
        filter: &SessionFilter,
        sort: Sort,
        page: Page,
    ) -> Result<ListResult<Session>, BenchError> {
        SessionRepository::list(self, filter, sort, page).map_err(BenchError::store("list"))
    }
}

/// The operation of a row. Reads and updates pick sessions of the fill's stream 0 at random
/// among its first `sessions`.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// Creates typical session `n` of `stream`.
    Create {
        /// The workload stream, distinct per run so that no id repeats.
        stream: u64,
    },
    /// Gets a session by id.
    Get {
        /// Sessions filled.
        sessions: u64,
    },
    /// Looks a session up by its token hash.
    TokenLookup {
        /// Sessions filled.
        sessions: u64,
    },
    /// Touches a session at `now`.
    Touch {
        /// Sessions filled.
        sessions: u64,
        /// The time of the touch.
        now: Timestamp,
    },
    /// Reads a session (untimed), then updates it with one more metadata pair at the version
    /// read (timed).
    CasUpdate {
        /// Sessions filled.
        sessions: u64,
    },
    /// Lists the sessions of one user (20 of them).
    ListByUser {
        /// Sessions filled.
        sessions: u64,
    },
    /// The newest 100 of a 1,000 ms created-at window: 1,000 sessions, as they are created 1 ms
    /// apart.
    ListWindow {
        /// Sessions filled.
        sessions: u64,
    },
}

/// What [`Op`] hands from prepare to execute.
enum Input {
    Create(NewSession),
    Id(SessionId),
    Token(TokenHash),
    Update(NewSession, u64),
    User(UserId),
    Window(SessionFilter),
}

/// Page size of [`Op::ListWindow`].
const WINDOW_PAGE: u32 = 100;
/// Width of [`Op::ListWindow`]'s created-at window in ms (so in sessions).
const WINDOW_MS: u64 = 1_000;

/// Runs `op` on `peer` under `load`.
pub fn drive<P: Peer>(peer: &P, op: Op, load: &Load<'_>) -> Result<Measured, BenchError> {
    let newest_first = Sort::new(SortBy::CreatedAt, SortOrder::Desc);
    let first_page = Page::new(1, WINDOW_PAGE).expect("a valid page");
    let pick = |sessions: u64, salt: u64, n: u64| mix(n ^ salt) % sessions.max(1);
    let prepare = |client: &mut P::Client, _: usize, n: u64| -> Result<Input, BenchError> {
        Ok(match op {
            Op::Create { stream } => Input::Create(typical_session(stream, n)),
            Op::Get { sessions } => Input::Id(typical_session(0, pick(sessions, 1, n)).id()),
            Op::Touch { sessions, .. } => Input::Id(typical_session(0, pick(sessions, 2, n)).id()),
            Op::TokenLookup { sessions } => {
                Input::Token(typical_session(0, pick(sessions, 3, n)).fields().token_hash)
            }
            Op::CasUpdate { sessions } => {
                let stored = peer.get(client, typical_session(0, pick(sessions, 4, n)).id())?;
                let mut fields = stored.fields().clone();
                let seen = if n.is_multiple_of(2) { "1" } else { "2" };
                fields.metadata.insert("seen", seen).expect("a small pair");
                let body = NewSession::new(fields).expect("a stored body stays valid");
                Input::Update(body, stored.version())
            }
            Op::ListByUser { sessions } => {
                Input::User(user_id(pick(sessions / SESSIONS_PER_USER, 5, n)))
            }
            Op::ListWindow { sessions } => {
                let window = WINDOW_MS.min(sessions);
                let start = WORKLOAD_START.as_millis() + pick(sessions - window, 6, n);
                Input::Window(SessionFilter {
                    created_after: Some(Timestamp::from_millis(start - 1)),
                    created_before: Some(Timestamp::from_millis(start + window)),
                    ..SessionFilter::default()
                })
            }
        })
    };
    let execute = |client: &mut P::Client, input: Input| match (op, input) {
        (_, Input::Create(session)) => peer.create(client, session),
        (Op::Touch { now, .. }, Input::Id(id)) => peer.touch(client, id, now),
        (_, Input::Id(id)) => peer.get(client, id).map(drop),
        (_, Input::Token(token)) => peer.token_lookup(client, &token),
        (_, Input::Update(body, version)) => peer.update(client, body, version),
        (_, Input::User(user)) => peer.list_by_user(client, &user).map(drop),
        (_, Input::Window(filter)) => {
            let listed = peer.list(client, &filter, newest_first, first_page)?;
            if listed.items.len() < WINDOW_PAGE as usize && listed.total >= u64::from(WINDOW_PAGE) {
                return Err(BenchError::Check(format!(
                    "a window of {} sessions gave a page of {}",
                    listed.total,
                    listed.items.len()
                )));
            }
            std::hint::black_box(listed);
            Ok(())
        }
    };
    closed_loop(load, |_| peer.client(), prepare, execute)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokm_domain::ManualClock;
    use tokm_memory_store::{MemoryStore, StoreOptions};

    use super::*;

    #[test]
    fn ops_runs_make_exactly_the_calls_asked_each_index_once() {
        let seen = std::sync::Mutex::new(Vec::new());
        let load = Load {
            clients: 3,
            warmup: 2,
            limit: Limit::Ops(100),
        };
        let measured = closed_loop(
            &load,
            |_| Ok(()),
            |_, _, n| Ok(n),
            |_, n| {
                seen.lock().expect("not poisoned").push(n);
                Ok(())
            },
        )
        .expect("run");
        assert_eq!(measured.ops, 100);
        let mut seen = seen.into_inner().expect("not poisoned");
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..106).collect::<Vec<_>>(),
            "6 warmup calls, then 100"
        );
    }

    #[test]
    fn a_failing_client_stops_the_run_with_its_error() {
        let load = Load::timed(4, Duration::from_secs(60));
        let failed = closed_loop(
            &load,
            |_| Ok(()),
            |_, _, n| Ok(n),
            |_, n| {
                if n == 50 {
                    Err(BenchError::Check("fifty".into()))
                } else {
                    Ok(())
                }
            },
        );
        assert!(matches!(failed, Err(BenchError::Check(_))), "{failed:?}");
    }

    #[test]
    fn every_op_runs_on_a_repository() {
        let clock = Arc::new(ManualClock::new(WORKLOAD_START));
        let store = MemoryStore::new(clock, StoreOptions::default()).expect("store");
        let sessions = 2_000;
        let fill = drive(
            &store,
            Op::Create { stream: 0 },
            &Load {
                clients: 4,
                warmup: 0,
                limit: Limit::Ops(sessions),
            },
        )
        .expect("fill");
        assert_eq!(fill.ops, sessions);
        for op in [
            Op::Get { sessions },
            Op::TokenLookup { sessions },
            Op::Touch {
                sessions,
                now: WORKLOAD_START,
            },
            Op::CasUpdate { sessions },
            Op::ListByUser { sessions },
            Op::ListWindow { sessions },
        ] {
            let measured = drive(&store, op, &Load::ops(50)).expect("op");
            assert_eq!(measured.ops, 50, "{op:?}");
            assert!(measured.max_us() >= measured.us(50.0));
        }
    }
}

//! Redis as a peer: the same session-create workload against a real `redis-server`.
//!
//! Is: a throwaway `redis-server` on 127.0.0.1 whose append-only file lives in a temporary
//! directory ([`RedisServer::start_in`]), and a closed-loop create workload measured the way the
//! engine run is measured ([`RedisServer::create_sessions`]): client threads start behind a
//! barrier, each on its own connection, and run until a stop flag is raised after `run`.
//!
//! Is not: a Redis session store, an installer, or a requirement. Without `redis-server` on
//! `PATH` (or with `TOKM_BENCH_REDIS=off`) [`RedisServer::start`] returns `Ok(None)` and the
//! report says "not installed"; nothing fails.
//!
//! One create is one atomic round trip, the way a Redis-backed session store would write it:
//!
//! ```text
//! MULTI
//! HSET session:<id> id <ulid> user_id <user> token_hash <hex> created_at <ms> last_active <ms>
//!      expires_at <ms> device_id <..> ip_address <..> user_agent <..> meta:<key> <value> ...
//! PEXPIREAT session:<id> <expiry ms>
//! SADD user:<user_id>:sessions <id>
//! SET token:<hash hex> <id> PXAT <expiry ms>
//! EXEC
//! ```
//!
//! The typical sessions are dated November 2023 ([`crate::WORKLOAD_START`]) and Redis expires
//! keys by its own wall clock, so the expiry sent to Redis is moved forward by the time between
//! that date and the start of the run; the hash keeps the session's own timestamps.
//!
//! ```
//! use std::time::Duration;
//!
//! use tokm_benches::redis_peer::{AppendFsync, PeerError, RedisServer};
//!
//! # fn main() -> Result<(), PeerError> {
//! let Some(server) = RedisServer::start(AppendFsync::EverySec)? else {
//!     println!("Redis: not installed");
//!     return Ok(());
//! };
//! let run = server.create_sessions(2, Duration::from_millis(100))?;
//! println!(
//!     "Redis {}: {:.0} creates/s over {} sampled latencies",
//!     server.version(),
//!     run.creates_per_sec,
//!     run.latencies.len()
//! );
//! // Dropping the server shuts it down and removes its directory.
//! # Ok(())
//! # }
//! ```
//!
//! API: [`AppendFsync`], [`RedisServer`] (`start`, `start_in`, `version`, `create_sessions`),
//! [`PeerRun`], [`PeerError`].

use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, mpsc};
use std::time::{Duration, Instant, SystemTime};

use tempfile::TempDir;
use tokm_domain::SessionFields;

use crate::{WORKLOAD_START, mix, typical_session};

/// The server binary looked up on `PATH`.
const PROGRAM: &str = "redis-server";
/// Environment variable that, set to `off`, makes [`RedisServer::start`] return `Ok(None)`.
const DISABLE_VAR: &str = "TOKM_BENCH_REDIS";
/// Log file (the server's stdout and stderr) inside the server's temporary directory.
const LOG_FILE: &str = "redis-server.log";
/// Bytes from the end of the log quoted in a start error.
const LOG_TAIL_BYTES: u64 = 2048;
/// Launches tried before giving up: another process may take the free port between our probe
/// and the server's bind.
const START_ATTEMPTS_MAX: u32 = 3;
/// How long a freshly launched server has to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between `PING` attempts while the server starts.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long `Drop` waits for `SHUTDOWN NOSAVE` to end the process before killing it.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between checks that the process has exited.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Connect timeout for every connection to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Read and write timeout on every connection, so a hung server fails a run instead of hanging
/// it; an fsync-bound create takes milliseconds.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Most clients one run may use; far above the acceptance run's 64, far below Redis's default
/// `maxclients` of 10,000.
const CLIENTS_MAX: usize = 1024;
/// Most creates one client makes in one run: a bound on the client loop far above what any run
/// of seconds reaches.
const CREATES_PER_CLIENT_MAX: u64 = 100_000_000;
/// Most latencies a run keeps, shared out evenly between its clients.
const LATENCY_SAMPLES_MAX: usize = 100_000;
/// The first workload stream; client `n` of the first run uses stream `FIRST_STREAM + n`.
const FIRST_STREAM: u64 = 100;

/// Redis's `appendfsync` policy: when the append-only file is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFsync {
    /// Fsync after every write before replying: the peer of tokm's sync mode.
    Always,
    /// Fsync once per second in the background: the peer of tokm's batch mode.
    EverySec,
}

impl AppendFsync {
    /// The value of `redis-server --appendfsync`.
    fn config_value(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::EverySec => "everysec",
        }
    }
}

/// What one [`RedisServer::create_sessions`] run measured.
#[derive(Debug, Clone)]
pub struct PeerRun {
    /// Completed creates over the time from the start barrier to the last client's last reply.
    pub creates_per_sec: f64,
    /// Round-trip latency of a uniform sample of the creates (at most 100,000, shared evenly
    /// between clients), sorted ascending.
    pub latencies: Vec<Duration>,
}

/// A `redis-server` child process on 127.0.0.1 with its files in a temporary directory.
///
/// Dropping it sends `SHUTDOWN NOSAVE` (which also stops any AOF rewrite child), kills the
/// process if it has not exited after 5 s, then removes the directory.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
    version: String,
    /// Workload streams handed out so far, so that a second run on the same server writes new
    /// sessions instead of overwriting the first run's. Only `fetch_add` touches it, so
    /// `Relaxed` suffices: the value publishes no other memory.
    streams_used: AtomicU64,
    /// The server's `--dir`; `Some` until `Drop` removes it, after the process has stopped.
    temp_dir: Option<TempDir>,
}

impl RedisServer {
    /// Starts `redis-server` with its directory under the system temporary directory.
    ///
    /// `Ok(None)` when `redis-server` is not on `PATH` or `TOKM_BENCH_REDIS=off`.
    pub fn start(appendfsync: AppendFsync) -> Result<Option<RedisServer>, PeerError> {
        RedisServer::start_in(&std::env::temp_dir(), appendfsync)
    }

    /// Starts `redis-server` with its directory (and so its append-only file) in a new
    /// temporary directory inside `dir`, which is created if missing. Put `dir` on the disk
    /// the engine writes to, so both pay the same fsync.
    ///
    /// `Ok(None)` when `redis-server` is not on `PATH` or `TOKM_BENCH_REDIS=off`.
    pub fn start_in(
        dir: &Path,
        appendfsync: AppendFsync,
    ) -> Result<Option<RedisServer>, PeerError> {
        if std::env::var_os(DISABLE_VAR).is_some_and(|value| value == "off") {
            return Ok(None);
        }
        RedisServer::start_program(PROGRAM, dir, appendfsync)
    }

    /// [`RedisServer::start_in`] with the program named, so a test can name one that is absent.
    fn start_program(
        program: &str,
        dir: &Path,
        appendfsync: AppendFsync,
    ) -> Result<Option<RedisServer>, PeerError> {
        let Some(program) = find_on_path(program) else {
            return Ok(None);
        };
        std::fs::create_dir_all(dir).map_err(|source| PeerError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let temp_dir = tempfile::Builder::new()
            .prefix("tokm-redis-")
            .tempdir_in(dir)
            .map_err(|source| PeerError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        let mut attempt = 1;
        loop {
            match launch(&program, temp_dir.path(), appendfsync) {
                Ok(launched) => {
                    return Ok(Some(RedisServer {
                        child: launched.child,
                        port: launched.port,
                        version: launched.version,
                        streams_used: AtomicU64::new(0),
                        temp_dir: Some(temp_dir),
                    }));
                }
                Err(err) if attempt < START_ATTEMPTS_MAX && err.may_be_port_race() => {
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// The server's version as it reports it, e.g. `7.0.15`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Runs the session-create workload: `clients` threads, each on its own connection and
    /// its own workload stream, create typical sessions one round trip at a time for `run`.
    ///
    /// Fails on `clients` outside `1..=1024`, on a connection the server refuses, and on the
    /// first create the server fails (which also stops the other clients).
    pub fn create_sessions(&self, clients: usize, run: Duration) -> Result<PeerRun, PeerError> {
        self.create_sessions_bounded(clients, run, CREATES_PER_CLIENT_MAX)
    }

    /// [`RedisServer::create_sessions`], each client stopping after `creates_per_client_max`
    /// creates if `run` has not passed by then.
    fn create_sessions_bounded(
        &self,
        clients: usize,
        run: Duration,
        creates_per_client_max: u64,
    ) -> Result<PeerRun, PeerError> {
        if !(1..=CLIENTS_MAX).contains(&clients) {
            return Err(PeerError::InvalidClients { clients });
        }
        // Every connection is made before any thread starts, so a refused one fails the run
        // without leaving threads waiting at the barrier.
        let connections = (0..clients)
            .map(|_| self.connect())
            .collect::<Result<Vec<_>, _>>()?;
        let client_count = clients as u64;
        let first_stream =
            FIRST_STREAM + self.streams_used.fetch_add(client_count, Ordering::Relaxed);
        let plan = ClientPlan {
            port: self.port,
            creates_max: creates_per_client_max,
            samples_max: (LATENCY_SAMPLES_MAX / clients).max(1),
            expiry_shift_ms: expiry_shift_ms(),
            start: Barrier::new(clients + 1),
            stop: AtomicBool::new(false),
        };
        let (finished_tx, finished_rx) = mpsc::channel::<()>();
        let (started, outcomes) = std::thread::scope(|scope| {
            let handles: Vec<_> = connections
                .into_iter()
                .zip(first_stream..)
                .map(|(connection, stream)| {
                    let finished = finished_tx.clone();
                    let plan = &plan;
                    scope.spawn(move || {
                        // Dropped when the client returns (or unwinds): once every client's
                        // sender is gone, the receiver below stops waiting for `run`.
                        let _finished = finished;
                        run_client(plan, connection, stream)
                    })
                })
                .collect();
            drop(finished_tx);
            plan.start.wait();
            let started = Instant::now();
            // Nothing is ever sent: this returns after `run`, or earlier once every client has
            // returned (creates limit reached, or a failure raised the stop flag).
            let _timeout_or_all_finished = finished_rx.recv_timeout(run);
            plan.stop.store(true, Ordering::Relaxed);
            let outcomes: Vec<_> = handles.into_iter().map(|handle| handle.join()).collect();
            (started, outcomes)
        });

        let mut creates = 0_u64;
        let mut finished_last = started;
        let mut latencies = Vec::with_capacity(LATENCY_SAMPLES_MAX.min(plan.samples_max * clients));
        for (client, outcome) in outcomes.into_iter().enumerate() {
            let tally = outcome.map_err(|_panic| PeerError::ClientPanicked { client })??;
            creates += tally.creates;
            finished_last = finished_last.max(tally.finished);
            latencies.extend(tally.latencies.samples);
        }
        latencies.sort_unstable();
        let elapsed = finished_last.saturating_duration_since(started);
        let creates_per_sec = if elapsed.is_zero() {
            0.0
        } else {
            creates as f64 / elapsed.as_secs_f64()
        };
        Ok(PeerRun {
            creates_per_sec,
            latencies,
        })
    }

    /// A new connection with the bounded timeouts.
    fn connect(&self) -> Result<redis::Connection, PeerError> {
        connect(self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SHUTDOWN NOSAVE rather than a kill: it also ends an AOF rewrite child, which a kill
        // of the parent would leave running. Its reply is the connection closing, so the
        // result says nothing; whether the process exits is what counts. A server that has
        // already exited gets no SHUTDOWN: its port may belong to someone else by now.
        let running = matches!(self.child.try_wait(), Ok(None));
        if let Some(mut connection) = running.then(|| self.connect().ok()).flatten() {
            let _closed = redis::cmd("SHUTDOWN").arg("NOSAVE").exec(&mut connection);
        }
        if !wait_for_exit(&mut self.child, SHUTDOWN_TIMEOUT) {
            // Errors here mean the process is already gone; there is nothing else to do.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(temp_dir) = self.temp_dir.take() {
            // A directory that cannot be removed is left for the OS's temp cleaner; a drop
            // has no one to report to.
            let _ = temp_dir.close();
        }
    }
}

/// Why the Redis peer could not start or run.
#[derive(Debug)]
#[non_exhaustive]
pub enum PeerError {
    /// `clients` is outside `1..=1024`.
    InvalidClients {
        /// The number asked for.
        clients: usize,
    },
    /// Creating the server's directory or log file failed.
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Binding 127.0.0.1:0 to find a free port failed.
    FreePort {
        /// The underlying error.
        source: std::io::Error,
    },
    /// The server process could not be launched.
    Spawn {
        /// The program found on `PATH`.
        program: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Checking whether the server process is still running failed.
    Process {
        /// The server's port.
        port: u16,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The server exited while starting.
    Exited {
        /// The port it was told to use.
        port: u16,
        /// Its exit status.
        status: String,
        /// The end of its log.
        log_tail: String,
    },
    /// The server did not answer `PING` in time; it has been killed.
    NotReady {
        /// The port it was told to use.
        port: u16,
        /// How long it was given.
        waited: Duration,
        /// The end of its log.
        log_tail: String,
    },
    /// Another process answered on the port meant for our server.
    ForeignServer {
        /// The port.
        port: u16,
        /// Our server's process id.
        expected_pid: u32,
        /// The process id the answering server reported.
        answered_pid: String,
    },
    /// Connecting to the server failed.
    Connect {
        /// The server's port.
        port: u16,
        /// The client's error.
        source: redis::RedisError,
    },
    /// The server failed a command.
    Command {
        /// The server's port.
        port: u16,
        /// The command, e.g. `MULTI/EXEC create`.
        command: &'static str,
        /// The client's error.
        source: redis::RedisError,
    },
    /// A reply lacked what this module reads from it.
    UnexpectedReply {
        /// The server's port.
        port: u16,
        /// The command.
        command: &'static str,
        /// What was missing.
        detail: &'static str,
    },
    /// A client thread panicked (a bug in this module).
    ClientPanicked {
        /// The client's index in the run.
        client: usize,
    },
}

impl PeerError {
    /// Every code, in declaration order.
    pub const CODES: [&'static str; 12] = [
        "TM-PEER-4001",
        "TM-PEER-5001",
        "TM-PEER-5002",
        "TM-PEER-5003",
        "TM-PEER-5004",
        "TM-PEER-5021",
        "TM-PEER-5041",
        "TM-PEER-4091",
        "TM-PEER-5022",
        "TM-PEER-5023",
        "TM-PEER-5201",
        "TM-PEER-5005",
    ];

    /// The stable code of this error, `TM-PEER-NNNN`; never renumbered or reused.
    pub fn code(&self) -> &'static str {
        match self {
            PeerError::InvalidClients { .. } => "TM-PEER-4001",
            PeerError::Io { .. } => "TM-PEER-5001",
            PeerError::FreePort { .. } => "TM-PEER-5002",
            PeerError::Spawn { .. } => "TM-PEER-5003",
            PeerError::Process { .. } => "TM-PEER-5004",
            PeerError::Exited { .. } => "TM-PEER-5021",
            PeerError::NotReady { .. } => "TM-PEER-5041",
            PeerError::ForeignServer { .. } => "TM-PEER-4091",
            PeerError::Connect { .. } => "TM-PEER-5022",
            PeerError::Command { .. } => "TM-PEER-5023",
            PeerError::UnexpectedReply { .. } => "TM-PEER-5201",
            PeerError::ClientPanicked { .. } => "TM-PEER-5005",
        }
    }

    /// Whether a fresh port might cure it: the free port can be taken by another process
    /// between our probe and the server's bind.
    fn may_be_port_race(&self) -> bool {
        matches!(
            self,
            PeerError::Exited { .. } | PeerError::ForeignServer { .. }
        )
    }
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::InvalidClients { clients } => {
                write!(
                    f,
                    "{clients} clients asked for; a run takes 1 to {CLIENTS_MAX}"
                )
            }
            PeerError::Io { path, .. } => write!(f, "i/o on {}", path.display()),
            PeerError::FreePort { .. } => f.write_str("finding a free port on 127.0.0.1"),
            PeerError::Spawn { program, .. } => write!(f, "launching {}", program.display()),
            PeerError::Process { port, .. } => {
                write!(f, "checking the redis-server process on port {port}")
            }
            PeerError::Exited {
                port,
                status,
                log_tail,
            } => write!(
                f,
                "redis-server on port {port} exited while starting ({status}); log ends:\n{log_tail}"
            ),
            PeerError::NotReady {
                port,
                waited,
                log_tail,
            } => write!(
                f,
                "redis-server on port {port} did not answer PING within {waited:?}; log ends:\n{log_tail}"
            ),
            PeerError::ForeignServer {
                port,
                expected_pid,
                answered_pid,
            } => write!(
                f,
                "port {port} is answered by process {answered_pid}, not our redis-server {expected_pid}"
            ),
            PeerError::Connect { port, .. } => {
                write!(f, "connecting to redis-server on port {port}")
            }
            PeerError::Command { port, command, .. } => {
                write!(f, "redis-server on port {port} failed {command}")
            }
            PeerError::UnexpectedReply {
                port,
                command,
                detail,
            } => write!(
                f,
                "redis-server on port {port} answered {command} without {detail}"
            ),
            PeerError::ClientPanicked { client } => write!(f, "client thread {client} panicked"),
        }
    }
}

impl std::error::Error for PeerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PeerError::Io { source, .. }
            | PeerError::FreePort { source }
            | PeerError::Spawn { source, .. }
            | PeerError::Process { source, .. } => Some(source),
            PeerError::Connect { source, .. } | PeerError::Command { source, .. } => Some(source),
            PeerError::InvalidClients { .. }
            | PeerError::Exited { .. }
            | PeerError::NotReady { .. }
            | PeerError::ForeignServer { .. }
            | PeerError::UnexpectedReply { .. }
            | PeerError::ClientPanicked { .. } => None,
        }
    }
}

/// `program` if it is a path, else the first executable file of that name in a `PATH` entry.
fn find_on_path(program: &str) -> Option<PathBuf> {
    if program.contains(std::path::MAIN_SEPARATOR) {
        let path = PathBuf::from(program);
        return is_executable(&path).then_some(path);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// A server that answers `PING` on `port`.
#[derive(Debug)]
struct Launched {
    child: Child,
    port: u16,
    version: String,
}

/// Launches the server on a free port with its files in `dir` and waits until it answers.
fn launch(program: &Path, dir: &Path, appendfsync: AppendFsync) -> Result<Launched, PeerError> {
    let port = free_port()?;
    let log_path = dir.join(LOG_FILE);
    let log_io = |source| PeerError::Io {
        path: log_path.clone(),
        source,
    };
    let stdout_log = File::create(&log_path).map_err(log_io)?;
    let stderr_log = stdout_log.try_clone().map_err(log_io)?;
    let mut child = Command::new(program)
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        .args(["--appendonly", "yes"])
        .args(["--appendfsync", appendfsync.config_value()])
        .args(["--save", ""])
        .args(["--daemonize", "no"])
        .args(["--protected-mode", "yes"])
        .args(["--loglevel", "warning"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout_log))
        .stderr(Stdio::from(stderr_log))
        .spawn()
        .map_err(|source| PeerError::Spawn {
            program: program.to_path_buf(),
            source,
        })?;
    match wait_until_ready(&mut child, port, &log_path) {
        Ok(version) => Ok(Launched {
            child,
            port,
            version,
        }),
        Err(err) => {
            // Errors here mean the process is already gone.
            let _ = child.kill();
            let _ = child.wait();
            Err(err)
        }
    }
}

/// A port that was free a moment ago: the OS picks it for a listener we drop at once.
fn free_port() -> Result<u16, PeerError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|source| PeerError::FreePort { source })?;
    let address = listener
        .local_addr()
        .map_err(|source| PeerError::FreePort { source })?;
    Ok(address.port())
}

/// Polls until the server on `port` answers `PING` and is our `child`; returns its version.
fn wait_until_ready(child: &mut Child, port: u16, log_path: &Path) -> Result<String, PeerError> {
    let started = Instant::now();
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|source| PeerError::Process { port, source })?
        {
            return Err(PeerError::Exited {
                port,
                status: status.to_string(),
                log_tail: log_tail(log_path),
            });
        }
        // Refused connections and `LOADING` replies both mean "not yet".
        let answering = connect(port).ok().and_then(|mut connection| {
            redis::cmd("PING")
                .query::<String>(&mut connection)
                .ok()
                .map(|_pong| connection)
        });
        if let Some(mut connection) = answering {
            return identify(&mut connection, port, child.id());
        }
        if started.elapsed() >= READY_TIMEOUT {
            return Err(PeerError::NotReady {
                port,
                waited: READY_TIMEOUT,
                log_tail: log_tail(log_path),
            });
        }
        std::thread::sleep(READY_POLL_INTERVAL);
    }
}

/// Reads `INFO server`: the version, after checking that the answering process is `pid`.
/// Without the check a server that took the port first would be benchmarked, and shut down.
fn identify(connection: &mut redis::Connection, port: u16, pid: u32) -> Result<String, PeerError> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(connection)
        .map_err(|source| PeerError::Command {
            port,
            command: "INFO server",
            source,
        })?;
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let missing = |detail| PeerError::UnexpectedReply {
        port,
        command: "INFO server",
        detail,
    };
    let answered_pid = field("process_id").ok_or_else(|| missing("process_id"))?;
    if answered_pid != pid.to_string() {
        return Err(PeerError::ForeignServer {
            port,
            expected_pid: pid,
            answered_pid: answered_pid.to_owned(),
        });
    }
    let version = field("redis_version").ok_or_else(|| missing("redis_version"))?;
    Ok(version.to_owned())
}

/// The last [`LOG_TAIL_BYTES`] of the log, or a note saying why it could not be read.
fn log_tail(log_path: &Path) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(log_path)?;
        let length = file.metadata()?.len();
        file.seek(SeekFrom::Start(length.saturating_sub(LOG_TAIL_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    read().unwrap_or_else(|err| format!("(log {} unreadable: {err})", log_path.display()))
}

/// Whether `child` exits within `timeout`.
fn wait_for_exit(child: &mut Child, timeout: Duration) -> bool {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_status)) => return true,
            Ok(None) if started.elapsed() < timeout => std::thread::sleep(EXIT_POLL_INTERVAL),
            Ok(None) | Err(_) => return false,
        }
    }
}

/// A connection to 127.0.0.1:`port` with bounded connect, read and write timeouts.
fn connect(port: u16) -> Result<redis::Connection, PeerError> {
    let connect_error = |source| PeerError::Connect { port, source };
    let client = redis::Client::open(("127.0.0.1", port)).map_err(connect_error)?;
    let connection = client
        .get_connection_with_timeout(CONNECT_TIMEOUT)
        .map_err(connect_error)?;
    connection
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(connect_error)?;
    connection
        .set_write_timeout(Some(IO_TIMEOUT))
        .map_err(connect_error)?;
    Ok(connection)
}

/// Milliseconds to add to a typical session's expiry so that it lies as far after now as it
/// lies after [`WORKLOAD_START`]. A wall clock before 1970 gives 0 and expired keys; the run
/// still measures the same commands.
fn expiry_shift_ms() -> u64 {
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    now_ms.saturating_sub(WORKLOAD_START.as_millis())
}

/// What every client of one run shares.
#[derive(Debug)]
struct ClientPlan {
    port: u16,
    creates_max: u64,
    samples_max: usize,
    expiry_shift_ms: u64,
    /// Released when every client and the coordinator are ready, so all start together.
    start: Barrier,
    /// Raised after `run` or by a failing client. `Relaxed` suffices: it publishes no data
    /// (results come back through `join`), and a client seeing it one create late is harmless.
    stop: AtomicBool,
}

/// What one client did.
#[derive(Debug)]
struct ClientTally {
    creates: u64,
    /// When its last reply arrived.
    finished: Instant,
    latencies: LatencySample,
}

/// One client's loop: create typical sessions of `stream` until stopped.
fn run_client(
    plan: &ClientPlan,
    mut connection: redis::Connection,
    stream: u64,
) -> Result<ClientTally, PeerError> {
    let mut pipe = redis::pipe();
    pipe.atomic();
    let mut text = CreateText::default();
    let mut latencies = LatencySample::new(plan.samples_max, stream);
    let mut creates = 0;
    plan.start.wait();
    for index in 0..plan.creates_max {
        if plan.stop.load(Ordering::Relaxed) {
            break;
        }
        let session = typical_session(stream, index);
        let fields = session.fields();
        let expiry_ms = fields
            .expires_at
            .as_millis()
            .saturating_add(plan.expiry_shift_ms);
        pipe.clear();
        push_create(&mut pipe, fields, expiry_ms, &mut text);
        let sent = Instant::now();
        let reply = pipe.exec(&mut connection);
        let latency = sent.elapsed();
        if let Err(source) = reply {
            plan.stop.store(true, Ordering::Relaxed);
            return Err(PeerError::Command {
                port: plan.port,
                command: "MULTI/EXEC create",
                source,
            });
        }
        creates += 1;
        latencies.record(latency);
    }
    Ok(ClientTally {
        creates,
        finished: Instant::now(),
        latencies,
    })
}

/// Text buffers for one create, reused from create to create.
#[derive(Debug, Default)]
struct CreateText {
    id: String,
    token_hex: String,
    session_key: String,
    user_key: String,
    token_key: String,
    scratch: String,
}

impl CreateText {
    fn fill(&mut self, fields: &SessionFields) {
        set_display(&mut self.id, &fields.id);
        self.token_hex.clear();
        push_hex(&mut self.token_hex, fields.token_hash.as_bytes());
        set_display(&mut self.session_key, &format_args!("session:{}", self.id));
        set_display(
            &mut self.user_key,
            &format_args!("user:{}:sessions", fields.user_id),
        );
        set_display(
            &mut self.token_key,
            &format_args!("token:{}", self.token_hex),
        );
    }
}

/// Appends the create's `HSET`, `PEXPIREAT`, `SADD` and `SET` to `pipe` (atomic, so one
/// MULTI/EXEC round trip). Every reply is ignored: success is the EXEC succeeding.
fn push_create(
    pipe: &mut redis::Pipeline,
    fields: &SessionFields,
    expiry_ms: u64,
    text: &mut CreateText,
) {
    text.fill(fields);
    pipe.cmd("HSET")
        .arg(text.session_key.as_str())
        .arg("id")
        .arg(text.id.as_str())
        .arg("user_id")
        .arg(fields.user_id.as_str())
        .arg("token_hash")
        .arg(text.token_hex.as_str())
        .arg("created_at")
        .arg(fields.created_at.as_millis())
        .arg("last_active")
        .arg(fields.last_active.as_millis())
        .arg("expires_at")
        .arg(fields.expires_at.as_millis());
    // `arg` copies its bytes at once, so one scratch buffer serves every formatted field.
    if let Some(device_id) = &fields.device_id {
        pipe.arg("device_id").arg(device_id.as_str());
    }
    if let Some(created_by) = &fields.created_by {
        pipe.arg("created_by").arg(created_by.as_str());
    }
    if let Some(ip_address) = &fields.ip_address {
        set_display(&mut text.scratch, ip_address);
        pipe.arg("ip_address").arg(text.scratch.as_str());
    }
    if let Some(last_access_ip) = &fields.last_access_ip {
        set_display(&mut text.scratch, last_access_ip);
        pipe.arg("last_access_ip").arg(text.scratch.as_str());
    }
    if let Some(user_agent) = &fields.user_agent {
        pipe.arg("user_agent").arg(user_agent.as_str());
    }
    if let Some(idle_timeout) = fields.idle_timeout {
        pipe.arg("idle_timeout_ms")
            .arg(u64::try_from(idle_timeout.as_millis()).unwrap_or(u64::MAX));
    }
    for (key, value) in fields.metadata.iter() {
        set_display(&mut text.scratch, &format_args!("meta:{key}"));
        pipe.arg(text.scratch.as_str()).arg(value);
    }
    pipe.ignore();
    pipe.cmd("PEXPIREAT")
        .arg(text.session_key.as_str())
        .arg(expiry_ms)
        .ignore();
    pipe.cmd("SADD")
        .arg(text.user_key.as_str())
        .arg(text.id.as_str())
        .ignore();
    pipe.cmd("SET")
        .arg(text.token_key.as_str())
        .arg(text.id.as_str())
        .arg("PXAT")
        .arg(expiry_ms)
        .ignore();
}

/// Replaces `buffer`'s content with `value`'s `Display` form, keeping its allocation.
fn set_display(buffer: &mut String, value: &dyn fmt::Display) {
    buffer.clear();
    // Writing to a `String` cannot fail; only a `Display` impl returning an error could, and
    // none of the types written here does.
    let _ = write!(buffer, "{value}");
}

/// Appends `bytes` in lowercase hex.
fn push_hex(buffer: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &byte in bytes {
        buffer.push(char::from(DIGITS[usize::from(byte >> 4)]));
        buffer.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

/// A uniform sample of at most `capacity` latencies (reservoir sampling, Algorithm R), so a
/// long run keeps bounded memory without favouring its start.
#[derive(Debug)]
struct LatencySample {
    capacity: usize,
    /// Latencies offered so far.
    seen: u64,
    /// Seed of the slot choice; the client's stream, so runs are reproducible.
    seed: u64,
    samples: Vec<Duration>,
}

impl LatencySample {
    fn new(capacity: usize, seed: u64) -> LatencySample {
        LatencySample {
            capacity,
            seen: 0,
            seed,
            samples: Vec::with_capacity(capacity),
        }
    }

    fn record(&mut self, latency: Duration) {
        if self.samples.len() < self.capacity {
            self.samples.push(latency);
        } else {
            // Keep the n-th latency (0-based) with probability capacity / (n + 1).
            let slot = mix(self.seed ^ mix(self.seen)) % (self.seen + 1);
            if let Some(kept) = usize::try_from(slot)
                .ok()
                .and_then(|slot| self.samples.get_mut(slot))
            {
                *kept = latency;
            }
        }
        self.seen += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::TcpStream;

    use redis::Commands;

    use super::*;
    use crate::SESSIONS_PER_USER;

    fn one_of_each() -> Vec<PeerError> {
        let io = || std::io::Error::other("test");
        let redis_error = || redis::RedisError::from(io());
        vec![
            PeerError::InvalidClients { clients: 0 },
            PeerError::Io {
                path: PathBuf::from("/tmp"),
                source: io(),
            },
            PeerError::FreePort { source: io() },
            PeerError::Spawn {
                program: PathBuf::from(PROGRAM),
                source: io(),
            },
            PeerError::Process {
                port: 1,
                source: io(),
            },
            PeerError::Exited {
                port: 1,
                status: "exit status: 1".into(),
                log_tail: String::new(),
            },
            PeerError::NotReady {
                port: 1,
                waited: READY_TIMEOUT,
                log_tail: String::new(),
            },
            PeerError::ForeignServer {
                port: 1,
                expected_pid: 2,
                answered_pid: "3".into(),
            },
            PeerError::Connect {
                port: 1,
                source: redis_error(),
            },
            PeerError::Command {
                port: 1,
                command: "PING",
                source: redis_error(),
            },
            PeerError::UnexpectedReply {
                port: 1,
                command: "INFO server",
                detail: "redis_version",
            },
            PeerError::ClientPanicked { client: 0 },
        ]
    }

    #[test]
    fn codes_are_unique_well_formed_and_listed() {
        let codes: Vec<&str> = one_of_each().iter().map(PeerError::code).collect();
        assert_eq!(codes, PeerError::CODES);
        let unique: HashSet<&str> = codes.iter().copied().collect();
        assert_eq!(unique.len(), codes.len(), "codes are unique");
        for code in codes {
            let digits = code.strip_prefix("TM-PEER-").expect("area prefix");
            assert!(
                digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()),
                "{code} is TM-PEER-NNNN"
            );
        }
    }

    #[test]
    fn a_missing_program_starts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let started = RedisServer::start_program(
            "tokm-no-such-redis-server-8d1c",
            dir.path(),
            AppendFsync::Always,
        )
        .unwrap();
        assert!(started.is_none());
        let left = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(left, 0, "no directory is made for a missing server");
    }

    #[test]
    fn a_program_that_exits_at_once_is_reported_with_its_status() {
        // `false` is on PATH wherever this workspace builds, and exits 1 whatever it is given.
        let dir = tempfile::tempdir().unwrap();
        let err = RedisServer::start_program("false", dir.path(), AppendFsync::Always)
            .expect_err("`false` never answers PING");
        assert_eq!(err.code(), "TM-PEER-5021");
        assert!(err.to_string().contains("exit status: 1"), "{err}");
    }

    #[test]
    fn find_on_path_takes_names_and_paths() {
        let sh = find_on_path("sh").expect("sh is on PATH");
        assert!(sh.is_absolute() || sh.starts_with("."), "{}", sh.display());
        assert_eq!(find_on_path(sh.to_str().unwrap()), Some(sh.clone()));
        assert_eq!(find_on_path("tokm-no-such-program-8d1c"), None);
        assert_eq!(find_on_path("/nonexistent/tokm/redis-server"), None);
    }

    #[test]
    fn hex_is_lowercase_and_two_digits_per_byte() {
        let mut text = String::from("token:");
        push_hex(&mut text, &[0x00, 0x0f, 0xa5, 0xff]);
        assert_eq!(text, "token:000fa5ff");
    }

    #[test]
    fn latency_sample_keeps_everything_below_capacity_and_stays_bounded_above() {
        let mut sample = LatencySample::new(10, 7);
        for micros in 0..10 {
            sample.record(Duration::from_micros(micros));
        }
        let all: Vec<Duration> = (0..10).map(Duration::from_micros).collect();
        assert_eq!(sample.samples, all);
        for micros in 10..10_000 {
            sample.record(Duration::from_micros(micros));
        }
        assert_eq!(sample.samples.len(), 10);
        assert_eq!(sample.seen, 10_000);
        let late = sample
            .samples
            .iter()
            .filter(|latency| latency.as_micros() >= 10)
            .count();
        // Each of the first ten survives 9,990 rounds with probability 10 / 10,000.
        assert!(
            late >= 8,
            "the sample follows the run, kept {late} late ones"
        );
    }

    /// A server under this test's own temporary directory, or `None` after checking that
    /// `None` is right: `redis-server` is absent or switched off.
    fn start_or_skip(dir: &Path, appendfsync: AppendFsync) -> Option<RedisServer> {
        let started = RedisServer::start_in(dir, appendfsync).unwrap();
        if started.is_none() {
            let switched_off = std::env::var_os(DISABLE_VAR).is_some_and(|value| value == "off");
            assert!(
                switched_off || find_on_path(PROGRAM).is_none(),
                "start gave None although {PROGRAM} is installed"
            );
        }
        started
    }

    fn session_key_parts(stream: u64, index: u64) -> (String, String, String) {
        let session = typical_session(stream, index);
        let fields = session.fields();
        let mut token_hex = String::new();
        push_hex(&mut token_hex, fields.token_hash.as_bytes());
        (fields.id.to_string(), fields.user_id.to_string(), token_hex)
    }

    #[test]
    fn creates_store_session_user_and_token_keys_with_a_ttl_and_drop_stops_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let Some(server) = start_or_skip(dir.path(), AppendFsync::EverySec) else {
            return;
        };
        assert!(
            server
                .version()
                .split('.')
                .all(|part| part.parse::<u32>().is_ok()),
            "version {:?}",
            server.version()
        );

        let per_client = 50;
        let run = server
            .create_sessions_bounded(2, Duration::from_secs(60), per_client)
            .unwrap();
        assert_eq!(run.latencies.len(), 100, "every create is sampled");
        assert!(run.latencies.is_sorted());
        assert!(run.creates_per_sec > 0.0);

        let mut connection = server.connect().unwrap();
        let users_per_client = per_client.div_ceil(SESSIONS_PER_USER);
        let keys: u64 = redis::cmd("DBSIZE").query(&mut connection).unwrap();
        assert_eq!(keys, 2 * (2 * per_client + users_per_client));
        for stream in [FIRST_STREAM, FIRST_STREAM + 1] {
            for index in 0..per_client {
                let (id, user, token_hex) = session_key_parts(stream, index);
                let session_key = format!("session:{id}");
                let token_key = format!("token:{token_hex}");
                let stored_hash: String = connection.hget(&session_key, "token_hash").unwrap();
                assert_eq!(stored_hash, token_hex);
                let region: String = connection.hget(&session_key, "meta:region").unwrap();
                assert_eq!(region, "eu-west-1");
                let session_ttl_ms: i64 = connection.pttl(&session_key).unwrap();
                assert!(session_ttl_ms > 0, "{session_key} has ttl {session_ttl_ms}");
                let token_id: String = connection.get(&token_key).unwrap();
                assert_eq!(token_id, id);
                let token_ttl_ms: i64 = connection.pttl(&token_key).unwrap();
                assert!(token_ttl_ms > 0, "{token_key} has ttl {token_ttl_ms}");
                let indexed: bool = connection
                    .sismember(format!("user:{user}:sessions"), &id)
                    .unwrap();
                assert!(indexed, "session {id} is in user {user}'s set");
            }
        }
        drop(connection);

        let port = server.port;
        let server_dir = server.temp_dir.as_ref().unwrap().path().to_path_buf();
        drop(server);
        assert!(
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
            "port {port} still answers after drop"
        );
        assert!(!server_dir.exists(), "the server's directory is removed");
    }

    #[test]
    fn a_second_run_writes_new_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let Some(server) = start_or_skip(dir.path(), AppendFsync::EverySec) else {
            return;
        };
        for _ in 0..2 {
            let run = server
                .create_sessions_bounded(1, Duration::from_secs(60), 10)
                .unwrap();
            assert_eq!(run.latencies.len(), 10);
        }
        let mut connection = server.connect().unwrap();
        let keys: u64 = redis::cmd("DBSIZE").query(&mut connection).unwrap();
        // Per run: 10 sessions, 10 tokens, 1 user set.
        assert_eq!(keys, 2 * 21);
    }

    #[test]
    fn the_server_runs_as_configured_and_refuses_zero_clients() {
        let dir = tempfile::tempdir().unwrap();
        let Some(server) = start_or_skip(dir.path(), AppendFsync::Always) else {
            return;
        };
        let mut connection = server.connect().unwrap();
        let config = |connection: &mut redis::Connection, name: &str| -> String {
            let (_name, value): (String, String) = redis::cmd("CONFIG")
                .arg("GET")
                .arg(name)
                .query(connection)
                .unwrap();
            value
        };
        assert_eq!(config(&mut connection, "appendonly"), "yes");
        assert_eq!(config(&mut connection, "appendfsync"), "always");
        assert_eq!(config(&mut connection, "save"), "");
        let server_dir = PathBuf::from(config(&mut connection, "dir"));
        assert_eq!(
            server_dir.canonicalize().unwrap(),
            server
                .temp_dir
                .as_ref()
                .unwrap()
                .path()
                .canonicalize()
                .unwrap()
        );
        assert!(server_dir.starts_with(dir.path().canonicalize().unwrap()));

        let err = server
            .create_sessions(0, Duration::from_millis(10))
            .expect_err("zero clients");
        assert_eq!(err.code(), "TM-PEER-4001");
        let err = server
            .create_sessions(CLIENTS_MAX + 1, Duration::from_millis(10))
            .expect_err("too many clients");
        assert_eq!(err.code(), "TM-PEER-4001");
    }

    /// The measurement the acceptance report quotes, printed for the record. Short in debug
    /// builds; `TOKM_BENCH_REDIS_RUN_MS` lengthens it for a release run.
    #[test]
    fn redis_create_rates_for_1_and_64_clients() {
        let run_ms = std::env::var("TOKM_BENCH_REDIS_RUN_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(200);
        let dir = tempfile::tempdir().unwrap();
        for appendfsync in [AppendFsync::Always, AppendFsync::EverySec] {
            let Some(server) = start_or_skip(dir.path(), appendfsync) else {
                return;
            };
            for clients in [1, 64] {
                let run = server
                    .create_sessions(clients, Duration::from_millis(run_ms))
                    .unwrap();
                assert!(run.creates_per_sec > 0.0);
                assert!(!run.latencies.is_empty());
                println!(
                    "redis {} appendfsync {appendfsync:?}, {clients} clients, {run_ms} ms: \
                     {:.0} creates/s, p50 {:.0} us, p99 {:.0} us, {} samples",
                    server.version(),
                    run.creates_per_sec,
                    crate::percentile_us(&run.latencies, 50.0),
                    crate::percentile_us(&run.latencies, 99.0),
                    run.latencies.len()
                );
            }
        }
    }
}

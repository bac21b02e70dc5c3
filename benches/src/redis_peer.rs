//! Redis standalone as a peer: the session-create workload against a real `redis-server`.
//!
//! Is: a throwaway `redis-server` on 127.0.0.1 whose append-only file lives in a temporary
//! directory ([`RedisServer::start_in`]), and its [`Peer`] implementation: create only, one
//! connection per client, driven by [`crate::driver`] like every other peer.
//! Is not: a Redis session store, an installer, or a requirement. Without `redis-server` on
//! `PATH` (or with `TOKM_BENCH_REDIS=off`) [`RedisServer::start_in`] returns `Ok(None)` and the
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
//! that date and the server's start; the hash keeps the session's own timestamps.
//!
//! ```
//! use std::time::Duration;
//!
//! use tokm_benches::driver::{Load, Op, drive};
//! use tokm_benches::redis_peer::{AppendFsync, RedisServer};
//!
//! let dir = tempfile::tempdir()?;
//! let Some(server) = RedisServer::start_in(dir.path(), AppendFsync::EverySec)? else {
//!     return Ok(()); // not installed
//! };
//! let run = drive(&server, Op::Create { stream: 100 }, &Load::timed(2, Duration::from_millis(100)))?;
//! println!("Redis {}: {:.0} creates/s, P99 {:.0} us", server.version(), run.per_sec(), run.us(99.0));
//! // Dropping the server shuts it down and removes its directory.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt::Write as _;
use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use tempfile::TempDir;
use tokm_domain::NewSession;

use crate::WORKLOAD_START;
use crate::driver::{BenchError, Peer};

/// Environment variable that, set to `off`, makes [`RedisServer::start_in`] return `Ok(None)`.
const DISABLE_VAR: &str = "TOKM_BENCH_REDIS";
/// Launches tried before giving up: another process may take the free port between our probe
/// and the server's bind.
const START_ATTEMPTS_MAX: u32 = 3;
/// How long a freshly launched server has to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `Drop` waits for `SHUTDOWN NOSAVE` to end the process before killing it.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Read and write timeout on every connection, so a hung server fails a run instead of hanging
/// it; an fsync-bound create takes milliseconds.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Redis's `appendfsync` policy: when the append-only file is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFsync {
    /// Fsync after every write before replying: the peer of tokm's sync mode.
    Always,
    /// Fsync once per second in the background: the peer of tokm's batch mode.
    EverySec,
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
    /// Added to each session's expiry: see the module docs.
    expiry_shift_ms: u64,
    /// The server's `--dir`; `Some` until `Drop` removes it, after the process has stopped.
    temp_dir: Option<TempDir>,
}

impl RedisServer {
    /// Starts `redis-server` with its directory (and so its append-only file) in a new
    /// temporary directory inside `dir`, which is created if missing. Put `dir` on the disk
    /// the engine writes to, so both pay the same fsync.
    ///
    /// `Ok(None)` when `redis-server` is not on `PATH` or `TOKM_BENCH_REDIS=off`.
    pub fn start_in(
        dir: &Path,
        appendfsync: AppendFsync,
    ) -> Result<Option<RedisServer>, BenchError> {
        if std::env::var_os(DISABLE_VAR).is_some_and(|value| value == "off") {
            return Ok(None);
        }
        RedisServer::start_program("redis-server", dir, appendfsync)
    }

    /// [`RedisServer::start_in`] with the program named, so a test can name one that is absent.
    fn start_program(
        program: &str,
        dir: &Path,
        appendfsync: AppendFsync,
    ) -> Result<Option<RedisServer>, BenchError> {
        let Some(program) = find_on_path(program) else {
            return Ok(None);
        };
        std::fs::create_dir_all(dir)
            .map_err(BenchError::io(format!("create {}", dir.display())))?;
        let temp_dir = tempfile::Builder::new()
            .prefix("tokm-redis-")
            .tempdir_in(dir)
            .map_err(BenchError::io(format!(
                "create a directory in {}",
                dir.display()
            )))?;
        let mut attempt = 1;
        loop {
            match launch(&program, temp_dir.path(), appendfsync) {
                Ok((child, port, version)) => {
                    let now_ms = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |since| {
                            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
                        });
                    return Ok(Some(RedisServer {
                        child,
                        port,
                        version,
                        expiry_shift_ms: now_ms.saturating_sub(WORKLOAD_START.as_millis()),
                        temp_dir: Some(temp_dir),
                    }));
                }
                // A server that exited, or a foreign one that answered, may mean the port was
                // taken between our probe and the bind: try a fresh one.
                Err(BenchError::Server(_)) if attempt < START_ATTEMPTS_MAX => attempt += 1,
                Err(err) => return Err(err),
            }
        }
    }

    /// The server's version as it reports it, e.g. `7.0.15`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// A new connection with bounded timeouts.
    fn connect(&self) -> Result<redis::Connection, BenchError> {
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
        let asked = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) && asked.elapsed() < SHUTDOWN_TIMEOUT {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Errors here mean the process is already gone; there is nothing else to do.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(temp_dir) = self.temp_dir.take() {
            // A directory that cannot be removed is left for the OS's temp cleaner.
            let _ = temp_dir.close();
        }
    }
}

/// One client of [`RedisServer`]: its connection and a reused pipeline.
pub struct RedisClient {
    connection: redis::Connection,
    pipe: redis::Pipeline,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient").finish_non_exhaustive()
    }
}

impl Peer for RedisServer {
    type Client = RedisClient;

    fn name(&self) -> &'static str {
        "Redis standalone"
    }

    fn client(&self) -> Result<RedisClient, BenchError> {
        Ok(RedisClient {
            connection: self.connect()?,
            pipe: redis::pipe(),
        })
    }

    fn create(&self, client: &mut RedisClient, session: NewSession) -> Result<(), BenchError> {
        let fields = session.fields();
        let expiry_ms = fields
            .expires_at
            .as_millis()
            .saturating_add(self.expiry_shift_ms);
        let id = fields.id.to_string();
        let token_hex = fields
            .token_hash
            .as_bytes()
            .iter()
            .fold(String::new(), |mut hex, byte| {
                let _ = write!(hex, "{byte:02x}");
                hex
            });
        let session_key = format!("session:{id}");
        let pipe = &mut client.pipe;
        pipe.clear();
        pipe.atomic();
        pipe.cmd("HSET")
            .arg(&session_key)
            .arg("id")
            .arg(&id)
            .arg("user_id")
            .arg(fields.user_id.as_str())
            .arg("token_hash")
            .arg(&token_hex)
            .arg("created_at")
            .arg(fields.created_at.as_millis())
            .arg("last_active")
            .arg(fields.last_active.as_millis())
            .arg("expires_at")
            .arg(fields.expires_at.as_millis());
        if let Some(device_id) = &fields.device_id {
            pipe.arg("device_id").arg(device_id.as_str());
        }
        if let Some(ip_address) = &fields.ip_address {
            pipe.arg("ip_address").arg(ip_address.to_string());
        }
        if let Some(user_agent) = &fields.user_agent {
            pipe.arg("user_agent").arg(user_agent.as_str());
        }
        for (key, value) in fields.metadata.iter() {
            pipe.arg(format!("meta:{key}")).arg(value);
        }
        pipe.ignore();
        pipe.cmd("PEXPIREAT")
            .arg(&session_key)
            .arg(expiry_ms)
            .ignore();
        pipe.cmd("SADD")
            .arg(format!("user:{}:sessions", fields.user_id))
            .arg(&id)
            .ignore();
        pipe.cmd("SET")
            .arg(format!("token:{token_hex}"))
            .arg(&id)
            .arg("PXAT")
            .arg(expiry_ms)
            .ignore();
        pipe.exec(&mut client.connection)
            .map_err(BenchError::redis(format!(
                "MULTI/EXEC create on port {}",
                self.port
            )))
    }
}

/// `program` if it is a path, else the first executable file of that name in a `PATH` entry.
fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &Path| {
        std::fs::metadata(path)
            .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
    };
    if program.contains(std::path::MAIN_SEPARATOR) {
        let path = PathBuf::from(program);
        return executable(&path).then_some(path);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
}

/// Launches the server on a free port with its files in `dir` and waits until it answers `PING`
/// as our child; returns the child, its port and its version.
fn launch(
    program: &Path,
    dir: &Path,
    appendfsync: AppendFsync,
) -> Result<(Child, u16, String), BenchError> {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map_err(BenchError::io("find a free port"))?
        .port();
    let log_path = dir.join("redis-server.log");
    let log = File::create(&log_path)
        .map_err(BenchError::io(format!("create {}", log_path.display())))?;
    let log_err = log
        .try_clone()
        .map_err(BenchError::io("clone the log handle"))?;
    let appendfsync = match appendfsync {
        AppendFsync::Always => "always",
        AppendFsync::EverySec => "everysec",
    };
    let mut child = Command::new(program)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            appendfsync,
            "--save",
            "",
        ])
        .args([
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .spawn()
        .map_err(BenchError::io(format!("start {}", program.display())))?;
    let ready = wait_until_ready(&mut child, port).map_err(|err| match err {
        BenchError::Server(why) => {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail = &log[log.len().saturating_sub(2048)..];
            BenchError::Server(format!("{why}; log tail: {tail}"))
        }
        other => other,
    });
    match ready {
        Ok(version) => Ok((child, port, version)),
        Err(err) => {
            // Errors here mean the process is already gone.
            let _ = child.kill();
            let _ = child.wait();
            Err(err)
        }
    }
}

/// Polls until the server on `port` answers `PING` and is our `child`; returns its version.
/// Without the process id check a server that took the port first would be benchmarked, and
/// shut down.
fn wait_until_ready(child: &mut Child, port: u16) -> Result<String, BenchError> {
    let started = Instant::now();
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(BenchError::io("check the server"))?
        {
            return Err(BenchError::Server(format!(
                "redis-server on port {port} exited: {status}"
            )));
        }
        // Refused connections and `LOADING` replies both mean "not yet".
        let answering = connect(port).ok().and_then(|mut connection| {
            redis::cmd("INFO")
                .arg("server")
                .query::<String>(&mut connection)
                .ok()
        });
        if let Some(info) = answering {
            let field = |name: &str| {
                info.lines()
                    .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_owned()
            };
            if field("process_id") != child.id().to_string() {
                return Err(BenchError::Server(format!(
                    "port {port} is answered by process {}, not ours",
                    field("process_id")
                )));
            }
            return Ok(field("redis_version"));
        }
        if started.elapsed() >= READY_TIMEOUT {
            return Err(BenchError::Server(format!(
                "redis-server on port {port} did not answer within {READY_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A connection to 127.0.0.1:`port` with bounded connect, read and write timeouts.
fn connect(port: u16) -> Result<redis::Connection, BenchError> {
    let what = format!("connect to 127.0.0.1:{port}");
    let client = redis::Client::open(("127.0.0.1", port)).map_err(BenchError::redis(&what))?;
    let connection = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .map_err(BenchError::redis(&what))?;
    connection
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| connection.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(BenchError::redis(&what))?;
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;

    use redis::Commands as _;

    use super::*;
    use crate::driver::{Limit, Load, Op, drive};
    use crate::typical_session;

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
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_program_that_exits_at_once_is_reported_with_its_status() {
        // `false` is on PATH wherever this workspace builds, and exits 1 whatever it is given.
        let dir = tempfile::tempdir().unwrap();
        let err = RedisServer::start_program("false", dir.path(), AppendFsync::Always)
            .expect_err("`false` never answers");
        assert!(err.to_string().contains("exit status: 1"), "{err}");
    }

    #[test]
    fn creates_store_session_user_and_token_keys_and_drop_stops_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let Some(server) = RedisServer::start_in(dir.path(), AppendFsync::EverySec).unwrap() else {
            assert!(
                find_on_path("redis-server").is_none() || std::env::var_os(DISABLE_VAR).is_some()
            );
            return;
        };
        let load = Load {
            clients: 2,
            warmup: 0,
            limit: Limit::Ops(40),
        };
        let run = drive(&server, Op::Create { stream: 7 }, &load).unwrap();
        assert_eq!(run.ops, 40);
        let mut connection = server.connect().unwrap();
        let keys: u64 = redis::cmd("DBSIZE").query(&mut connection).unwrap();
        assert_eq!(keys, 40 + 40 + 2, "sessions, tokens and 2 users of 20");
        let session = typical_session(7, 39);
        let fields = session.fields();
        let key = format!("session:{}", fields.id);
        let region: String = connection.hget(&key, "meta:region").unwrap();
        assert_eq!(region, "eu-west-1");
        assert!(connection.pttl::<_, i64>(&key).unwrap() > 0);
        drop(connection);
        let port = server.port;
        let server_dir = server.temp_dir.as_ref().unwrap().path().to_path_buf();
        drop(server);
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
        assert!(!server_dir.exists(), "the server's directory is removed");
    }
}

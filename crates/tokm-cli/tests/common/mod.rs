//! Shared helpers: build real data directories with the engine and run the built binary.
#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use tokm_crypto_adaptive::Keyring;
use tokm_domain::testkit::SessionFactory;
use tokm_domain::{Clock, ManualClock, Session, SessionRepository, SystemClock};
use tokm_engine::{Engine, EngineConfig};

/// A data directory with sessions written over several engine runs (each run starts a new
/// log segment, so all but the last are sealed), and what was written.
pub struct DataDir {
    pub temp: tempfile::TempDir,
    pub sessions: Vec<Session>,
}

impl DataDir {
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    pub fn wal_dir(&self) -> PathBuf {
        self.path().join("wal")
    }

    pub fn snapshot_dir(&self) -> PathBuf {
        self.path().join("snapshots")
    }

    /// Segment file names, in log order.
    pub fn segments(&self) -> Vec<String> {
        names_with_suffix(&self.wal_dir(), ".wal")
    }

    pub fn snapshots(&self) -> Vec<String> {
        names_with_suffix(&self.snapshot_dir(), ".snap")
    }
}

pub fn names_with_suffix(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .filter(|name| name.ends_with(suffix))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn config(dir: &Path, keyring: Option<Arc<Keyring>>) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.keyring = keyring;
    // Sessions are created "now" so the tool's engine (system clock) does not expire them.
    config.clock = Arc::new(ManualClock::new(SystemClock.now()));
    config.snapshots.interval = None;
    config.snapshots.wal_bytes = None;
    config
}

/// `runs[i]` sessions are created in engine run `i`; a snapshot is taken at the end of the
/// runs listed in `snapshot_after`.
pub fn build(runs: &[usize], snapshot_after: &[usize]) -> DataDir {
    build_with(runs, snapshot_after, None)
}

/// [`build`] with every segment and snapshot encrypted under `keyring`.
pub fn build_with(
    runs: &[usize],
    snapshot_after: &[usize],
    keyring: Option<Arc<Keyring>>,
) -> DataDir {
    let temp = tempfile::tempdir().unwrap();
    let mut factory = SessionFactory::new(7, SystemClock.now());
    let mut sessions = Vec::new();
    for (run, count) in runs.iter().enumerate() {
        let (engine, _report) = Engine::open(config(temp.path(), keyring.clone())).unwrap();
        for index in 0..*count {
            let user = SessionFactory::user(u32::try_from(index % 3).unwrap());
            sessions.push(engine.create(factory.next_for(&user)).unwrap().session);
        }
        if snapshot_after.contains(&run) {
            engine.snapshot_now().unwrap();
        }
        engine.close().unwrap();
    }
    DataDir { temp, sessions }
}

/// Flips one byte of `path` at `offset`.
pub fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= 0x55;
    fs::write(path, bytes).unwrap();
}

/// Runs `tokm` with `args` and without `TOKM_KEY_HEX`.
pub fn tokm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokm"))
        .args(args)
        .env_remove("TOKM_KEY_HEX")
        .output()
        .unwrap()
}

pub fn stdout_json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not JSON ({error}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

pub fn stdout_json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every file under `dir` with its bytes, to prove a command changed nothing.
pub fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = fs::read(&path).unwrap();
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}

/// Runs `tokm` with `args` and `TOKM_KEY_HEX` set to `key_hex`.
pub fn tokm_with_key_hex(args: &[&str], key_hex: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokm"))
        .args(args)
        .env("TOKM_KEY_HEX", key_hex)
        .output()
        .unwrap()
}

//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokm_wal::testkit::SimStorage;
use tokm_wal::{Lsn, RecoveryMode, RecoveryReport, Wal, WalError, WalOptions};

/// The directory the simulated tests use.
pub fn sim_dir() -> PathBuf {
    PathBuf::from("/wal")
}

/// Options over `sim`, with the background flusher effectively off so tests decide every sync.
pub fn sim_options(sim: &SimStorage) -> WalOptions {
    WalOptions::default()
        .with_storage(Arc::new(sim.clone()))
        .with_sync_interval(Duration::from_secs(3600))
        .with_sync_bytes_max(u64::MAX)
}

/// Recovered records: LSN and payload.
pub type Records = Vec<(Lsn, Vec<u8>)>;

/// Opens `dir` and replays everything.
pub fn open_and_replay(
    dir: &Path,
    options: WalOptions,
) -> Result<(Wal, RecoveryReport, Records), WalError> {
    let (wal, report) = Wal::open(dir, options)?;
    let records = replay_all(&wal)?;
    Ok((wal, report, records))
}

/// Every recovered record of `wal`.
pub fn replay_all(wal: &Wal) -> Result<Records, WalError> {
    let mut records = Vec::new();
    wal.replay(Lsn::ZERO, |lsn, payload| {
        records.push((lsn, payload.to_vec()));
        ControlFlow::Continue(())
    })?;
    Ok(records)
}

/// Options with the given mode.
pub fn with_mode(options: WalOptions, mode: RecoveryMode) -> WalOptions {
    options.with_recovery_mode(mode)
}

/// A recognisable payload for record `index`.
pub fn payload(index: usize) -> Vec<u8> {
    format!("record-{index:04}-{}", "x".repeat(index % 7)).into_bytes()
}

/// Segment file names in `dir` of `sim`, sorted.
pub fn segment_names(sim: &SimStorage, dir: &Path) -> Vec<String> {
    use tokm_wal::Storage;
    let mut names: Vec<String> = sim
        .list(dir)
        .expect("list")
        .into_iter()
        .filter(|name| name.ends_with(".wal"))
        .collect();
    names.sort();
    names
}

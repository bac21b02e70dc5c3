//! Configuration of a log directory.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokm_crypto_adaptive::Keyring;
use tokm_domain::{Clock, SystemClock};

use crate::error::OpenError;
use crate::format::{FRAME_PAYLOAD_BYTES_MAX, SEGMENT_BYTES_CEILING};
use crate::recovery::RecoveryMode;
use tokm_storage::{FsStorage, Storage};

/// Options for [`Wal::open`](crate::Wal::open) and [`WalReader::open`](crate::WalReader::open).
///
/// Public fields with defaults: start from `WalOptions::default()` and set what differs,
/// `WalOptions { segment_records_max: 1_000, ..WalOptions::default() }`;
/// [`validate`](WalOptions::validate) (and every open) checks the limits. Defaults: real file
/// system, system clock, node id 0, `RecoveryMode::PointInTime`, no encryption, rotation at
/// 64 MiB / 100,000 records / 1 hour, background sync every second or once 4 MiB are
/// written but unsynced, group commit of at most 100 records or 1 MiB, records of at most
/// 1 MiB.
#[derive(Clone)]
pub struct WalOptions {
    /// Where the bytes go: `FsStorage` for real, `tokm_storage::testkit::SimStorage` in tests.
    pub storage: Arc<dyn Storage>,
    /// Source of wall-clock time (segment age, the batch flusher's interval).
    pub clock: Arc<dyn Clock>,
    /// When set, new segments are sealed with the keyring's active key and existing ones
    /// opened by their key id. Without one, new segments are plain and encrypted ones are
    /// refused.
    pub keyring: Option<Arc<Keyring>>,
    /// Node id written into segment headers.
    pub node_id: u64,
    /// How damage found while opening is handled.
    pub recovery_mode: RecoveryMode,
    /// Rotates once a segment would grow beyond this many bytes (a single larger record still
    /// gets a segment of its own). At most 1 GiB, so readers can bound what they load.
    pub segment_bytes_max: u64,
    /// Rotates once a segment holds this many records.
    pub segment_records_max: u64,
    /// Rotates before appending to a segment older than this (by the injected clock).
    pub segment_age_max: Duration,
    /// How often the background flusher writes and syncs `Durability::Batch` records: the
    /// bound on what a power cut may lose in batch mode.
    pub sync_interval: Duration,
    /// How many bytes may be written but not yet synced before the background flusher syncs
    /// without waiting for `sync_interval`.
    ///
    /// Appenders never wait for these syncs, but a rotation must sync its segment before the
    /// next one starts, and appenders do wait for a rotation: this bound keeps that sync short
    /// (under load, a second of `Durability::Batch` writes can be tens of MiB).
    pub sync_bytes_max: u64,
    /// Most records buffered before a write is forced (and so in one group commit).
    pub group_commit_records_max: usize,
    /// Most bytes buffered before a write is forced.
    pub group_commit_bytes_max: usize,
    /// Largest payload `append` accepts, in bytes.
    pub record_bytes_max: usize,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            storage: Arc::new(FsStorage),
            clock: Arc::new(SystemClock),
            keyring: None,
            node_id: 0,
            recovery_mode: RecoveryMode::default(),
            segment_bytes_max: 64 * 1024 * 1024,
            segment_records_max: 100_000,
            segment_age_max: Duration::from_secs(60 * 60),
            sync_interval: Duration::from_secs(1),
            sync_bytes_max: 4 * 1024 * 1024,
            group_commit_records_max: 100,
            group_commit_bytes_max: 1024 * 1024,
            record_bytes_max: 1024 * 1024,
        }
    }
}

impl fmt::Debug for WalOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalOptions")
            .field("storage", &self.storage)
            .field("clock", &self.clock)
            // The keyring's own Debug prints key ids only; still, say no more than "encrypted".
            .field("encrypted", &self.keyring.is_some())
            .field("node_id", &self.node_id)
            .field("recovery_mode", &self.recovery_mode)
            .field("segment_bytes_max", &self.segment_bytes_max)
            .field("segment_records_max", &self.segment_records_max)
            .field("segment_age_max", &self.segment_age_max)
            .field("sync_interval", &self.sync_interval)
            .field("sync_bytes_max", &self.sync_bytes_max)
            .field("group_commit_records_max", &self.group_commit_records_max)
            .field("group_commit_bytes_max", &self.group_commit_bytes_max)
            .field("record_bytes_max", &self.record_bytes_max)
            .finish()
    }
}

impl WalOptions {
    /// Checks the limits as [`Wal::open`](crate::Wal::open) does, for callers that validate
    /// their configuration before opening anything.
    ///
    /// # Errors
    /// [`OpenError::InvalidArgument`] (`TM-WAL-4001`) naming the limit out of range.
    pub fn validate(&self) -> Result<(), OpenError> {
        let reject = |reason| Err(OpenError::InvalidArgument { reason });
        if self.record_bytes_max == 0 || self.record_bytes_max > FRAME_PAYLOAD_BYTES_MAX / 2 {
            return reject("record_bytes_max must be between 1 byte and 32 MiB");
        }
        if self.segment_bytes_max == 0 || self.segment_records_max == 0 {
            return reject("segment limits must be positive");
        }
        if self.segment_bytes_max > SEGMENT_BYTES_CEILING {
            return reject("segment_bytes_max must be at most 1 GiB");
        }
        if self.group_commit_records_max == 0 || self.group_commit_bytes_max == 0 {
            return reject("group commit limits must be positive");
        }
        if self.sync_interval.is_zero() || self.sync_bytes_max == 0 {
            return reject("sync_interval and sync_bytes_max must be positive");
        }
        Ok(())
    }
}

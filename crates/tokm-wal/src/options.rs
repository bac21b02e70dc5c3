//! Configuration of a log directory.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokm_crypto_adaptive::Keyring;
use tokm_domain::{Clock, SystemClock};

use crate::error::OpenError;
use crate::format::{FRAME_PAYLOAD_BYTES_LIMIT, SEGMENT_BYTES_MAX_LIMIT};
use crate::recovery::RecoveryMode;
use tokm_storage::{FsStorage, Storage};

/// Options for [`Wal::open`](crate::Wal::open) and [`WalReader::open`](crate::WalReader::open).
///
/// Start from `WalOptions::default()` and adjust with the `with_*` methods. Defaults: real file
/// system, system clock, node id 0, `RecoveryMode::PointInTime`, no encryption, rotation at
/// 64 MiB / 100,000 records / 1 hour, background sync every second or once 4 MiB are
/// written but unsynced, group commit of at most 100 records or 1 MiB, records of at most
/// 1 MiB.
#[derive(Clone)]
pub struct WalOptions {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) keyring: Option<Arc<Keyring>>,
    pub(crate) node_id: u64,
    pub(crate) recovery_mode: RecoveryMode,
    pub(crate) segment_bytes_max: u64,
    pub(crate) segment_records_max: u64,
    pub(crate) segment_age_max: Duration,
    pub(crate) sync_interval: Duration,
    pub(crate) sync_bytes_max: u64,
    pub(crate) group_commit_records_max: usize,
    pub(crate) group_commit_bytes_max: usize,
    pub(crate) record_bytes_max: usize,
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
    /// Uses `storage` for all I/O (e.g. `tokm_storage::testkit::SimStorage` in tests).
    pub fn with_storage(mut self, storage: Arc<dyn Storage>) -> WalOptions {
        self.storage = storage;
        self
    }

    /// Reads wall-clock time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> WalOptions {
        self.clock = clock;
        self
    }

    /// Seals new segments with the keyring's active key and opens existing ones by their key
    /// id. Without a keyring, new segments are plain and encrypted ones are refused.
    pub fn with_keyring(mut self, keyring: Arc<Keyring>) -> WalOptions {
        self.keyring = Some(keyring);
        self
    }

    /// Node id written into segment headers.
    pub fn with_node_id(mut self, node_id: u64) -> WalOptions {
        self.node_id = node_id;
        self
    }

    /// How damage found while opening is handled.
    pub fn with_recovery_mode(mut self, recovery_mode: RecoveryMode) -> WalOptions {
        self.recovery_mode = recovery_mode;
        self
    }

    /// Rotates once a segment would grow beyond this many bytes (a single larger record still
    /// gets a segment of its own). At most 1 GiB, so readers can bound what they load.
    pub fn with_segment_bytes_max(mut self, segment_bytes_max: u64) -> WalOptions {
        self.segment_bytes_max = segment_bytes_max;
        self
    }

    /// Rotates once a segment holds this many records.
    pub fn with_segment_records_max(mut self, segment_records_max: u64) -> WalOptions {
        self.segment_records_max = segment_records_max;
        self
    }

    /// Rotates before appending to a segment older than this (by the injected clock).
    pub fn with_segment_age_max(mut self, segment_age_max: Duration) -> WalOptions {
        self.segment_age_max = segment_age_max;
        self
    }

    /// How often the background flusher writes and syncs `Durability::Batch` records: the
    /// bound on what a power cut may lose in batch mode.
    pub fn with_sync_interval(mut self, sync_interval: Duration) -> WalOptions {
        self.sync_interval = sync_interval;
        self
    }

    /// How many bytes may be written but not yet synced before the background flusher syncs
    /// without waiting for `sync_interval`.
    ///
    /// Appenders never wait for these syncs, but a rotation must sync its segment before the
    /// next one starts, and appenders do wait for a rotation: this bound keeps that sync short
    /// (under load, a second of `Durability::Batch` writes can be tens of MiB).
    pub fn with_sync_bytes_max(mut self, sync_bytes_max: u64) -> WalOptions {
        self.sync_bytes_max = sync_bytes_max;
        self
    }

    /// Most records buffered before a write is forced (and so in one group commit).
    pub fn with_group_commit_records_max(mut self, records_max: usize) -> WalOptions {
        self.group_commit_records_max = records_max;
        self
    }

    /// Most bytes buffered before a write is forced.
    pub fn with_group_commit_bytes_max(mut self, bytes_max: usize) -> WalOptions {
        self.group_commit_bytes_max = bytes_max;
        self
    }

    /// Largest payload `append` accepts, in bytes.
    pub fn with_record_bytes_max(mut self, record_bytes_max: usize) -> WalOptions {
        self.record_bytes_max = record_bytes_max;
        self
    }

    /// Checks the limits as [`Wal::open`](crate::Wal::open) does, for callers that validate
    /// their configuration before opening anything.
    ///
    /// # Errors
    /// [`OpenError::InvalidArgument`] (`TM-WAL-4001`) naming the limit out of range.
    pub fn validate(&self) -> Result<(), OpenError> {
        let reject = |reason| Err(OpenError::InvalidArgument { reason });
        if self.record_bytes_max == 0 || self.record_bytes_max > FRAME_PAYLOAD_BYTES_LIMIT / 2 {
            return reject("record_bytes_max must be between 1 byte and 32 MiB");
        }
        if self.segment_bytes_max == 0 || self.segment_records_max == 0 {
            return reject("segment limits must be positive");
        }
        if self.segment_bytes_max > SEGMENT_BYTES_MAX_LIMIT {
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

//! Read-only access to a snapshot directory.
//!
//! `SnapshotStore::open` removes `*.snap.tmp` files (which could be a running service's
//! snapshot in progress) and `load_newest` renames damaged files to `*.broken`; neither is
//! acceptable for `inspect`, `verify` or `dump`. `tokm-snapshot` has no read-only API, so the
//! tool links (or, across file systems, copies) the `*.snap` files into a private temp dir and
//! opens the store there: whatever the store changes, it changes in that copy.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use tokm_crypto_adaptive::Keyring;
use tokm_domain::SystemClock;
use tokm_snapshot::{LoadOutcome, SnapshotError, SnapshotInfo, SnapshotOptions, SnapshotStore};

use crate::error::CliError;

/// A private copy of some snapshot files, removed on drop.
#[derive(Debug)]
pub(crate) struct SnapshotView {
    /// Kept for its `Drop`, which removes the directory.
    _temp: tempfile::TempDir,
    store: SnapshotStore,
}

impl SnapshotView {
    /// A view of the given `*.snap` files of `snapshot_dir` (names, not paths).
    pub(crate) fn of_files(
        snapshot_dir: &Path,
        file_names: &[String],
        keyring: Option<Arc<Keyring>>,
    ) -> Result<SnapshotView, CliError> {
        let temp = tempfile::Builder::new()
            .prefix("tokm-snapshot-view")
            .tempdir()
            .map_err(CliError::io("create temp dir", &std::env::temp_dir()))?;
        for name in file_names {
            let source = snapshot_dir.join(name);
            let target = temp.path().join(name);
            // A hard link costs nothing; the store only reads it or renames the link.
            if fs::hard_link(&source, &target).is_err() {
                fs::copy(&source, &target).map_err(CliError::io("copy", &source))?;
            }
        }
        let options = SnapshotOptions {
            keyring,
            // Retention is never applied through a view; reads use the clock for nothing.
            clock: Arc::new(SystemClock),
            ..SnapshotOptions::default()
        };
        let store = SnapshotStore::open(temp.path(), options)?;
        Ok(SnapshotView { _temp: temp, store })
    }

    /// Every snapshot, newest first, header and footer checked.
    pub(crate) fn list(&self) -> Result<Vec<SnapshotInfo>, CliError> {
        Ok(self.store.list()?)
    }

    /// Loads the newest valid snapshot of the view, verifying every block.
    pub(crate) fn load_newest(&self) -> Result<LoadOutcome, SnapshotError> {
        self.store.load_newest()
    }
}

/// The `*.snap` file names in `snapshot_dir`, sorted (oldest first: names start with the
/// zero-padded covered LSN). A missing directory has none.
pub(crate) fn snapshot_file_names(snapshot_dir: &Path) -> Result<Vec<String>, CliError> {
    let mut names = Vec::new();
    for entry in read_dir_or_empty(snapshot_dir)? {
        if entry.ends_with(".snap") {
            names.push(entry);
        }
    }
    names.sort();
    Ok(names)
}

/// File names in `dir`, or none if it does not exist.
pub(crate) fn read_dir_or_empty(dir: &Path) -> Result<Vec<String>, CliError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(CliError::io("list", dir)(error)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(CliError::io("list", dir))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The size of `path` in bytes.
pub(crate) fn file_size_bytes(path: &Path) -> Result<u64, CliError> {
    Ok(fs::metadata(path)
        .map_err(CliError::io("stat", path))?
        .len())
}

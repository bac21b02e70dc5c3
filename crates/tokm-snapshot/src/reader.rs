//! [`SnapshotReader`]: read-only access to a snapshot directory.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokm_crypto_adaptive::Keyring;
use tokm_storage::Storage;

use crate::error::{ListFailure, LoadError};
use crate::format::SnapshotName;
use crate::meta::{LoadedSnapshot, SnapshotInfo, SnapshotMeta};
use crate::read;

/// Read-only access to a directory of snapshots: list, verify and load them without creating,
/// renaming or removing anything, so a caller can look first and decide before it changes the
/// directory (through [`SnapshotStore::set_aside`](crate::SnapshotStore::set_aside), say).
///
/// It calls nothing on its [`Storage`] but `list` and `open` (read-only); a directory that
/// does not exist holds no snapshots. Each call checks what it reads as
/// [`SnapshotStore::load_newest`](crate::SnapshotStore::load_newest) does, and its errors
/// tell damage ([`LoadError::is_damage`]) from a key problem, a foreign file or I/O.
///
/// `Send + Sync` and cheap to clone; it takes no lock. It never sees a half-written
/// snapshot: writers fill `*.snap.tmp` files, which it ignores, and rename them into place.
#[derive(Clone, Debug)]
pub struct SnapshotReader {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    keyring: Option<Arc<Keyring>>,
}

impl SnapshotReader {
    /// A reader of the snapshots in `dir`. Touches nothing until called; `keyring` opens
    /// sealed snapshots by the key id each names (plain ones load with or without it).
    pub fn new(
        dir: &Path,
        storage: Arc<dyn Storage>,
        keyring: Option<Arc<Keyring>>,
    ) -> SnapshotReader {
        SnapshotReader {
            dir: dir.to_path_buf(),
            storage,
            keyring,
        }
    }

    /// The snapshot directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every snapshot file (`*.snap`), newest first, with its header, footer and index checked
    /// (blocks are not read). Temp files, `*.broken` files and other names are not listed.
    ///
    /// # Errors
    /// [`LoadError::Io`] if the directory cannot be listed, for one thing because its
    /// path names something else than a directory; a directory that does not exist lists
    /// nothing. Problems with one file are in its [`SnapshotInfo::meta`].
    pub fn list(&self) -> Result<Vec<SnapshotInfo>, LoadError> {
        let mut names = match self.list_names() {
            Ok(names) => names,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(self.list_error(error)),
        };
        names.reverse();
        Ok(names
            .into_iter()
            .map(|name| {
                let file_name = name.file_name();
                let meta = read::read_meta(self.storage.as_ref(), &self.dir, &file_name);
                SnapshotInfo {
                    file_name,
                    covered_lsn: name.covered_lsn,
                    created_at: name.created_at,
                    meta,
                }
            })
            .collect())
    }

    /// Checks the structure and every checksum of snapshot `file_name`, without keys and
    /// without decoding sessions.
    ///
    /// # Errors
    /// [`LoadError::InvalidArgument`] if `file_name` is not a snapshot file name
    /// (`<20 digits>-<20 digits>.snap`); [`LoadError::NotASnapshot`] or
    /// [`LoadError::UnsupportedVersion`] for a file that is not ours or is newer;
    /// [`LoadError::Io`] if it cannot be read; else the damage found
    /// ([`LoadError::is_damage`]).
    pub fn verify(&self, file_name: &str) -> Result<SnapshotMeta, LoadError> {
        parse_file_name(file_name)?;
        read::verify(self.storage.as_ref(), &self.dir, file_name)
    }

    /// Reads snapshot `file_name` with every check, opens its blocks and decodes every session.
    ///
    /// # Errors
    /// As [`verify`](SnapshotReader::verify), and also [`LoadError::KeyringMissing`] for a
    /// sealed snapshot without a keyring, [`LoadError::WrongKey`] when the keyring lacks
    /// its key id or holds other bytes for it, [`LoadError::Crypto`] and
    /// [`LoadError::Decode`] for blocks that do not open or decode.
    pub fn load(&self, file_name: &str) -> Result<LoadedSnapshot, LoadError> {
        parse_file_name(file_name)?;
        read::load(
            self.storage.as_ref(),
            &self.dir,
            file_name,
            self.keyring.as_deref(),
        )
    }

    /// Names of the snapshot files, oldest first. Unlike [`list`](SnapshotReader::list), a
    /// missing directory is an error: a [`SnapshotStore`](crate::SnapshotStore) created it, so
    /// its absence is a fault to report, not a fresh start.
    pub(crate) fn snapshot_names(&self) -> Result<Vec<SnapshotName>, ListFailure> {
        self.list_names().map_err(|source| ListFailure {
            dir: self.dir.display().to_string(),
            source,
        })
    }

    fn list_names(&self) -> io::Result<Vec<SnapshotName>> {
        let mut names: Vec<SnapshotName> = self
            .storage
            .list(&self.dir)?
            .iter()
            .filter_map(|name| SnapshotName::parse(name))
            .collect();
        names.sort();
        Ok(names)
    }

    fn list_error(&self, source: io::Error) -> LoadError {
        LoadError::io("list", &self.dir.display().to_string(), source)
    }
}

/// What a snapshot file name says, or an `InvalidArgument` error for any other name: callers
/// name snapshots, never other files (and never paths).
pub(crate) fn parse_file_name(file_name: &str) -> Result<SnapshotName, LoadError> {
    SnapshotName::parse(file_name).ok_or_else(|| LoadError::InvalidArgument {
        reason: format!(
            "{file_name:?} is not a snapshot file name \
             (<covered LSN, 20 digits>-<created at ms, 20 digits>.snap)"
        ),
    })
}

//! Creating a file atomically: written under a temp name, synced, renamed into place, directory
//! synced.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::storage::{Storage, StorageFile};

/// The step of an atomic file creation that failed; see [`AtomicFile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AtomicStep {
    /// Creating the temp file (`create_new`, mode 0600).
    Create,
    /// Syncing the temp file's bytes (`sync_data`).
    Sync,
    /// Renaming the temp file to its final name.
    Rename,
    /// Syncing the directory, which makes the rename durable.
    SyncDir,
}

impl AtomicStep {
    /// The step's name in error messages: `create`, `sync`, `rename`, `sync directory`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            AtomicStep::Create => "create",
            AtomicStep::Sync => "sync",
            AtomicStep::Rename => "rename",
            AtomicStep::SyncDir => "sync directory",
        }
    }
}

impl fmt::Display for AtomicStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an [`AtomicFile`] could not be created or committed.
///
/// Names the file (the temp file's name for [`AtomicStep::Create`], [`AtomicStep::Sync`] and
/// [`AtomicStep::Rename`], the directory for [`AtomicStep::SyncDir`]), never its contents.
#[derive(Debug, thiserror::Error)]
#[error("i/o error during {step} on {file}")]
pub struct AtomicWriteError {
    /// The step that failed.
    pub step: AtomicStep,
    /// The file (or directory) the step acted on.
    pub file: String,
    /// The underlying error.
    #[source]
    pub source: io::Error,
}

/// A file being created atomically: it is written under a temp name and appears under its
/// final name only complete and synced.
///
/// [`AtomicFile::create`] makes the temp file; the caller writes it through
/// [`AtomicFile::file`]; [`AtomicFile::commit`] syncs it, renames it to the final name (replacing
/// any file there) and syncs the directory. A crash leaves either no final file or a complete
/// one (with whatever the caller writes to the returned handle afterwards following the usual
/// rules). Dropping an `AtomicFile` before `commit` removes the temp file, best effort; if that
/// fails too, the temp file stays for its owner to remove (the log and snapshot stores remove
/// stale temp files when they open a directory).
///
/// ```
/// use std::path::Path;
/// use tokm_storage::testkit::{CrashCut, SimStorage};
/// use tokm_storage::{AtomicFile, Storage};
///
/// # fn main() -> Result<(), tokm_storage::AtomicWriteError> {
/// let sim = SimStorage::new();
/// let dir = Path::new("/data");
/// sim.put_dir(dir);
/// let pending = AtomicFile::create(&sim, dir, "a.tmp", "a")?;
/// pending.file().write_all_at(0, b"whole").expect("write");
/// pending.commit()?;
/// sim.crash(CrashCut::DropUnsynced);
/// assert_eq!(sim.file_bytes(&dir.join("a")).as_deref(), Some(&b"whole"[..]));
/// assert_eq!(sim.list(dir).expect("list"), vec!["a".to_owned()]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AtomicFile<'a> {
    storage: &'a dyn Storage,
    dir: &'a Path,
    temp_name: String,
    temp_path: PathBuf,
    final_name: String,
    file: Arc<dyn StorageFile>,
    committed: bool,
}

impl<'a> AtomicFile<'a> {
    /// Creates `dir/temp_name` (mode 0600, failing if it exists) to be renamed to
    /// `dir/final_name` by [`commit`](AtomicFile::commit).
    ///
    /// # Errors
    /// [`AtomicStep::Create`] with the storage's error; `AlreadyExists` when the temp file
    /// exists (it is left alone).
    pub fn create(
        storage: &'a dyn Storage,
        dir: &'a Path,
        temp_name: &str,
        final_name: &str,
    ) -> Result<AtomicFile<'a>, AtomicWriteError> {
        let temp_path = dir.join(temp_name);
        let file = storage
            .create_new(&temp_path)
            .map_err(|source| AtomicWriteError {
                step: AtomicStep::Create,
                file: temp_name.to_owned(),
                source,
            })?;
        Ok(AtomicFile {
            storage,
            dir,
            temp_name: temp_name.to_owned(),
            temp_path,
            final_name: final_name.to_owned(),
            file,
            committed: false,
        })
    }

    /// The temp file, for writing.
    #[must_use]
    pub fn file(&self) -> &Arc<dyn StorageFile> {
        &self.file
    }

    /// The temp file's name inside the directory.
    #[must_use]
    pub fn temp_name(&self) -> &str {
        &self.temp_name
    }

    /// The name the file gets at [`commit`](AtomicFile::commit).
    #[must_use]
    pub fn final_name(&self) -> &str {
        &self.final_name
    }

    /// Syncs the file, renames it to its final name and syncs the directory. Returns the
    /// handle, still open for reading and writing under the final name.
    ///
    /// # Errors
    /// The step that failed. Before the rename the temp file is removed (best effort); after
    /// it ([`AtomicStep::SyncDir`]) the final file exists, complete and synced, but its name
    /// may not survive a power cut.
    pub fn commit(mut self) -> Result<Arc<dyn StorageFile>, AtomicWriteError> {
        self.file.sync_data().map_err(|source| AtomicWriteError {
            step: AtomicStep::Sync,
            file: self.temp_name.clone(),
            source,
        })?;
        self.storage
            .rename(&self.temp_path, &self.dir.join(&self.final_name))
            .map_err(|source| AtomicWriteError {
                step: AtomicStep::Rename,
                file: self.temp_name.clone(),
                source,
            })?;
        // From here the temp file no longer exists; there is nothing to remove on drop.
        self.committed = true;
        self.storage
            .sync_dir(self.dir)
            .map_err(|source| AtomicWriteError {
                step: AtomicStep::SyncDir,
                file: self.dir.display().to_string(),
                source,
            })?;
        Ok(Arc::clone(&self.file))
    }
}

impl Drop for AtomicFile<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Best effort: if removal fails too (the disk is failing), the owner's next open
        // removes the stale temp file; it is never mistaken for a finished file.
        let _ = self.storage.remove(&self.temp_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{CrashCut, Fault, SimStorage};

    fn setup() -> (SimStorage, PathBuf) {
        let sim = SimStorage::new();
        let dir = PathBuf::from("/d");
        sim.put_dir(&dir);
        (sim, dir)
    }

    #[test]
    fn a_committed_file_survives_a_power_cut_whole() {
        let (sim, dir) = setup();
        let pending = AtomicFile::create(&sim, &dir, "f.tmp", "f").expect("create");
        pending.file().write_all_at(0, b"abc").expect("write");
        let file = pending.commit().expect("commit");
        file.write_all_at(3, b"unsynced")
            .expect("write after commit");
        sim.crash(CrashCut::DropUnsynced);
        assert_eq!(sim.list(&dir).expect("list"), vec!["f".to_owned()]);
        assert_eq!(sim.file_bytes(&dir.join("f")).as_deref(), Some(&b"abc"[..]));
    }

    #[test]
    fn a_failed_sync_removes_the_temp_file_and_names_the_step() {
        let (sim, dir) = setup();
        let pending = AtomicFile::create(&sim, &dir, "f.tmp", "f").expect("create");
        pending.file().write_all_at(0, b"abc").expect("write");
        sim.fail_nth_sync(1, Fault::Eio);
        let error = pending.commit().expect_err("sync fails");
        assert_eq!(error.step, AtomicStep::Sync);
        assert_eq!(error.file, "f.tmp");
        assert_eq!(error.to_string(), "i/o error during sync on f.tmp");
        assert!(sim.list(&dir).expect("list").is_empty());
    }

    #[test]
    fn dropping_before_commit_removes_only_the_temp_file() {
        let (sim, dir) = setup();
        sim.put_file(&dir.join("f"), b"older");
        drop(AtomicFile::create(&sim, &dir, "f.tmp", "f").expect("create"));
        assert_eq!(sim.list(&dir).expect("list"), vec!["f".to_owned()]);
        assert_eq!(
            sim.file_bytes(&dir.join("f")).as_deref(),
            Some(&b"older"[..])
        );
    }

    #[test]
    fn an_existing_temp_file_is_refused_and_left_alone() {
        let (sim, dir) = setup();
        sim.put_file(&dir.join("f.tmp"), b"someone else's");
        let error = AtomicFile::create(&sim, &dir, "f.tmp", "f").expect_err("exists");
        assert_eq!(error.step, AtomicStep::Create);
        assert_eq!(error.source.kind(), io::ErrorKind::AlreadyExists);
        assert!(sim.file_bytes(&dir.join("f.tmp")).is_some());
    }
}

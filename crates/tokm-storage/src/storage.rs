//! The I/O seam: everything the log and the snapshots do to disk goes through [`Storage`] and
//! [`StorageFile`].
//!
//! [`FsStorage`] is the real file system. `testkit::SimStorage` (feature `testkit`) holds real
//! bytes in memory, can fail chosen calls and can simulate a power cut, so tests reach states a
//! real disk rarely shows.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

/// Permission bits of every file [`FsStorage`] creates: owner read/write only.
pub const FILE_MODE: u32 = 0o600;
/// Permission bits of every directory [`FsStorage`] creates: owner only.
pub const DIR_MODE: u32 = 0o700;

/// Whether an opened file may be changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads only.
    ReadOnly,
    /// Reads, writes and `set_len`.
    ReadWrite,
}

/// An open file. Positioned I/O only, so one handle may be shared between threads.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Fills `buf` from `offset`; an `UnexpectedEof` error when the file is shorter.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes all of `bytes` at `offset`.
    fn write_all_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Makes written data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Truncates or extends the file.
    fn set_len(&self, len_bytes: u64) -> io::Result<()>;
    /// Current length in bytes.
    fn len_bytes(&self) -> io::Result<u64>;
}

/// A directory of files. Paths are a data directory (the log's, the snapshots') joined with a
/// file name.
///
/// Durability follows POSIX: a file's bytes are durable after [`StorageFile::sync_data`]; a
/// directory entry (a file or directory created, renamed or removed) only after its directory
/// is synced with [`Storage::sync_dir`]. Create directories with [`create_dir_all_durable`],
/// which syncs each parent top-down.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Creates the directory `dir` with mode 0700; its parent must exist. Fails with
    /// `AlreadyExists` if `dir` is a directory already and `NotADirectory` if it is something
    /// else. The new entry is not durable until the parent is synced.
    fn create_dir(&self, dir: &Path) -> io::Result<()>;
    /// Names of the regular files directly inside `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a new file (mode 0600) for reading and writing; fails if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>>;
    /// Opens an existing file.
    fn open(&self, path: &Path, access: Access) -> io::Result<Arc<dyn StorageFile>>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes creations, renames and removals in `dir` durable (fsync of the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// Creates `dir` and every missing parent, top-down, syncing each parent after creating a
/// directory in it, so that nothing written inside later can vanish with an unsynced directory
/// entry at a power cut. Also syncs the parent of `dir` when `dir` already existed: a crash may
/// have come between its creation and that sync.
///
/// # Errors
/// The first failing `create_dir` or `sync_dir`; `NotADirectory` when a component exists but is
/// not a directory.
pub fn create_dir_all_durable(storage: &dyn Storage, dir: &Path) -> io::Result<()> {
    // Outermost first; an empty ancestor ("" of a relative path) is the working directory.
    let ancestors: Vec<&Path> = dir
        .ancestors()
        .filter(|ancestor| !ancestor.as_os_str().is_empty())
        .collect();
    for component in ancestors.into_iter().rev() {
        let created = match storage.create_dir(component) {
            Ok(()) => true,
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => false,
            Err(error) => return Err(error),
        };
        if created || component == dir {
            storage.sync_dir(parent_dir(component))?;
        }
    }
    Ok(())
}

/// The directory holding `path`: its parent, or the working directory for a bare name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        Some(_) => Path::new("."),
        // The root has no parent; syncing it is the best we can do.
        None => path,
    }
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct FsStorage;

#[derive(Debug)]
struct FsFile(File);

impl StorageFile for FsFile {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        FileExt::read_exact_at(&self.0, buf, offset)
    }

    fn write_all_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        FileExt::write_all_at(&self.0, bytes, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.0.set_len(len_bytes)
    }

    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl Storage for FsStorage {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && !dir.is_dir() => {
                Err(io::Error::from(io::ErrorKind::NotADirectory))
            }
            other => other,
        }
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            // A name that is not UTF-8 cannot be one of ours; it is unrelated and skipped.
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(path)?;
        Ok(Arc::new(FsFile(file)))
    }

    fn open(&self, path: &Path, access: Access) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(access == Access::ReadWrite)
            .open(path)?;
        Ok(Arc::new(FsFile(file)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn fs_storage_creates_private_files_and_directories() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("data").join("wal");
        create_dir_all_durable(&FsStorage, &dir).expect("mkdir");
        assert_eq!(
            FsStorage.create_dir(&dir).expect_err("exists").kind(),
            io::ErrorKind::AlreadyExists
        );
        let file = FsStorage.create_new(&dir.join("a")).expect("create");
        file.write_all_at(0, b"abc").expect("write");
        file.sync_data().expect("sync");
        FsStorage.sync_dir(&dir).expect("sync dir");
        let dir_mode = fs::metadata(&dir).expect("meta").permissions().mode() & 0o777;
        let file_mode = fs::metadata(dir.join("a"))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, DIR_MODE);
        assert_eq!(file_mode, FILE_MODE);
        assert_eq!(FsStorage.list(&dir).expect("list"), vec!["a".to_owned()]);
        let mut buf = [0u8; 3];
        let reopened = FsStorage
            .open(&dir.join("a"), Access::ReadOnly)
            .expect("open");
        reopened.read_exact_at(0, &mut buf).expect("read");
        assert_eq!(&buf, b"abc");
        assert!(
            FsStorage.create_new(&dir.join("a")).is_err(),
            "create_new must not clobber"
        );
        assert_eq!(
            FsStorage
                .create_dir(&dir.join("a"))
                .expect_err("a file")
                .kind(),
            io::ErrorKind::NotADirectory
        );
        assert_eq!(
            create_dir_all_durable(&FsStorage, &dir.join("a").join("b"))
                .expect_err("below a file")
                .kind(),
            io::ErrorKind::NotADirectory
        );
    }
}

//! Storage for tests: real bytes in memory, injected faults and simulated power cuts.
//!
//! Behind the `testkit` feature, for the crash tests of the crates above (`tokm-wal`,
//! `tokm-snapshot`, the engine): turn it on in their `[dev-dependencies]`. It is not a mock: files hold the bytes written, reads return them, and
//! a crash keeps exactly what a disk may keep.
//!
//! Durability model:
//! - A file's bytes become durable at `sync_data`; changes since the last sync are *unsynced*.
//! - A directory entry (a file or directory created, renamed or removed) becomes durable at
//!   `sync_dir` of the directory holding it.
//! - [`SimStorage::crash`] is a power cut: handles opened before it fail with EIO from then on,
//!   and the namespace and bytes become what [`CrashCut`] says survives. A directory whose
//!   entry was not durable vanishes with everything inside it, however well synced that was.
//! - The root (`/`) always exists.
//!
//! ```
//! use std::path::Path;
//! use tokm_storage::testkit::{CrashCut, Fault, SimStorage};
//! use tokm_storage::{Storage, create_dir_all_durable};
//!
//! let sim = SimStorage::new();
//! let dir = Path::new("/wal");
//! create_dir_all_durable(&sim, dir).unwrap();
//! let file = sim.create_new(&dir.join("a")).unwrap();
//! file.write_all_at(0, b"durable").unwrap();
//! file.sync_data().unwrap();
//! sim.sync_dir(dir).unwrap();
//! file.write_all_at(7, b" lost").unwrap();
//! sim.fail_nth_sync(1, Fault::Eio);
//! assert!(file.sync_data().is_err());
//! sim.crash(CrashCut::DropUnsynced);
//! assert_eq!(sim.file_bytes(&dir.join("a")).unwrap(), b"durable");
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::storage::{Access, Storage, StorageFile};

/// The error an injected fault returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `EIO`: the device reported an error.
    Eio,
    /// `ENOSPC`: the device is full.
    Enospc,
}

impl Fault {
    fn to_error(self) -> io::Error {
        match self {
            Fault::Eio => io::Error::from_raw_os_error(libc::EIO),
            Fault::Enospc => io::Error::from_raw_os_error(libc::ENOSPC),
        }
    }
}

/// What survives a simulated crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashCut {
    /// The process died but the machine did not (SIGKILL): every completed write and every
    /// namespace change survives.
    KeepUnsynced,
    /// Power cut that loses everything not synced: file bytes as of their last `sync_data`,
    /// names as of their directory's last `sync_dir`.
    DropUnsynced,
    /// Power cut where each file keeps a random prefix of its unsynced changes, the last kept
    /// write possibly torn at any byte; names as of the last `sync_dir`. Deterministic per seed.
    Torn {
        /// Seed for the choice of prefix and tear point.
        seed: u64,
    },
}

#[derive(Debug, Clone)]
enum Change {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Default)]
struct SimFile {
    data: Vec<u8>,
    durable: Vec<u8>,
    unsynced: Vec<Change>,
}

impl std::fmt::Debug for SimFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Lengths only: contents would drown test failure output.
        f.debug_struct("SimFile")
            .field("len", &self.data.len())
            .field("durable_len", &self.durable.len())
            .field("unsynced_changes", &self.unsynced.len())
            .finish()
    }
}

impl SimFile {
    fn apply(data: &mut Vec<u8>, change: &Change) {
        match change {
            Change::Write { offset, bytes } => {
                let start = usize::try_from(*offset).unwrap_or(usize::MAX);
                let end = start.saturating_add(bytes.len());
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[start..end].copy_from_slice(bytes);
            }
            Change::SetLen(len) => data.resize(usize::try_from(*len).unwrap_or(usize::MAX), 0),
        }
    }
}

type FileRef = Arc<Mutex<SimFile>>;

#[derive(Debug, Default)]
struct SimState {
    epoch: u64,
    /// Directories that exist now (the root is implied).
    dirs: BTreeSet<PathBuf>,
    /// Directories whose entry in their parent was synced.
    durable_dirs: BTreeSet<PathBuf>,
    files: BTreeMap<PathBuf, FileRef>,
    durable_files: BTreeMap<PathBuf, FileRef>,
    write_calls: u64,
    sync_calls: u64,
    write_fault: Option<(u64, Fault)>,
    sync_fault: Option<(u64, Fault)>,
}

/// In-memory [`Storage`] with fault injection and crash simulation; see the module docs.
///
/// Cheap to clone: clones share the same simulated disk.
#[derive(Clone, Debug, Default)]
pub struct SimStorage {
    state: Arc<Mutex<SimState>>,
}

struct SimHandle {
    state: Arc<Mutex<SimState>>,
    file: FileRef,
    epoch: u64,
    access: Access,
}

fn stale_handle() -> io::Error {
    io::Error::other("simulated crash: handle opened before the power cut")
}

fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

fn read_only() -> io::Error {
    io::Error::from_raw_os_error(libc::EBADF)
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("epoch", &self.epoch)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    fn check(&self, state: &SimState) -> io::Result<()> {
        if state.epoch != self.epoch {
            return Err(stale_handle());
        }
        Ok(())
    }

    fn check_writable(&self, state: &SimState) -> io::Result<()> {
        self.check(state)?;
        if self.access == Access::ReadOnly {
            return Err(read_only());
        }
        Ok(())
    }
}

impl StorageFile for SimHandle {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let state = self.state.lock();
        self.check(&state)?;
        let file = self.file.lock();
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let Some(bytes) = file.data.get(start..start.saturating_add(buf.len())) else {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        };
        buf.copy_from_slice(bytes);
        Ok(())
    }

    fn write_all_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock();
        self.check_writable(&state)?;
        state.write_calls += 1;
        if let Some((nth, fault)) = state.write_fault
            && nth == state.write_calls
        {
            state.write_fault = None;
            return Err(fault.to_error());
        }
        let mut file = self.file.lock();
        let change = Change::Write {
            offset,
            bytes: bytes.to_vec(),
        };
        SimFile::apply(&mut file.data, &change);
        file.unsynced.push(change);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.state.lock();
        self.check(&state)?;
        state.sync_calls += 1;
        if let Some((nth, fault)) = state.sync_fault
            && nth == state.sync_calls
        {
            state.sync_fault = None;
            return Err(fault.to_error());
        }
        let mut file = self.file.lock();
        file.durable = file.data.clone();
        file.unsynced.clear();
        Ok(())
    }

    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        let state = self.state.lock();
        self.check_writable(&state)?;
        let mut file = self.file.lock();
        let change = Change::SetLen(len_bytes);
        SimFile::apply(&mut file.data, &change);
        file.unsynced.push(change);
        Ok(())
    }

    fn len_bytes(&self) -> io::Result<u64> {
        let state = self.state.lock();
        self.check(&state)?;
        Ok(self.file.lock().data.len() as u64)
    }
}

impl SimState {
    fn is_dir(&self, path: &Path) -> bool {
        path.parent().is_none() || self.dirs.contains(path)
    }

    /// `Ok` when `path` names an existing directory; the error a file system gives otherwise.
    fn check_dir(&self, path: &Path) -> io::Result<()> {
        if self.is_dir(path) {
            Ok(())
        } else if self.files.contains_key(path) {
            Err(io::Error::from(io::ErrorKind::NotADirectory))
        } else {
            Err(not_found())
        }
    }
}

impl Storage for SimStorage {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        if state.is_dir(dir) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        if state.files.contains_key(dir) {
            return Err(io::Error::from(io::ErrorKind::NotADirectory));
        }
        state.check_dir(dir.parent().unwrap_or(dir))?;
        state.dirs.insert(dir.to_path_buf());
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.state.lock();
        state.check_dir(dir)?;
        Ok(state
            .files
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let mut state = self.state.lock();
        state.check_dir(path.parent().unwrap_or(path))?;
        if state.files.contains_key(path) || state.is_dir(path) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        let file = FileRef::default();
        state.files.insert(path.to_path_buf(), Arc::clone(&file));
        Ok(Arc::new(SimHandle {
            state: Arc::clone(&self.state),
            file,
            epoch: state.epoch,
            access: Access::ReadWrite,
        }))
    }

    fn open(&self, path: &Path, access: Access) -> io::Result<Arc<dyn StorageFile>> {
        let state = self.state.lock();
        let file = state.files.get(path).ok_or_else(not_found)?;
        Ok(Arc::new(SimHandle {
            state: Arc::clone(&self.state),
            file: Arc::clone(file),
            epoch: state.epoch,
            access,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        let file = state.files.remove(from).ok_or_else(not_found)?;
        state.files.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.files.remove(path).map(drop).ok_or_else(not_found)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.check_dir(dir)?;
        let children: Vec<PathBuf> = state
            .dirs
            .iter()
            .filter(|path| path.parent() == Some(dir))
            .cloned()
            .collect();
        state.durable_dirs.retain(|path| path.parent() != Some(dir));
        state.durable_dirs.extend(children);
        state
            .durable_files
            .retain(|path, _| path.parent() != Some(dir));
        let current: Vec<(PathBuf, FileRef)> = state
            .files
            .iter()
            .filter(|(path, _)| path.parent() == Some(dir))
            .map(|(path, file)| (path.clone(), Arc::clone(file)))
            .collect();
        state.durable_files.extend(current);
        Ok(())
    }
}

impl SimStorage {
    /// An empty simulated disk.
    pub fn new() -> SimStorage {
        SimStorage::default()
    }

    /// Makes the `nth` `write_all_at` from now (1 = the next one) fail with `fault`, writing
    /// nothing. One-shot: later writes succeed again.
    pub fn fail_nth_write(&self, nth: u64, fault: Fault) {
        let mut state = self.state.lock();
        state.write_fault = Some((state.write_calls + nth.max(1), fault));
    }

    /// Makes the `nth` `sync_data` from now (1 = the next one) fail with `fault`, making nothing
    /// durable. One-shot.
    pub fn fail_nth_sync(&self, nth: u64, fault: Fault) {
        let mut state = self.state.lock();
        state.sync_fault = Some((state.sync_calls + nth.max(1), fault));
    }

    /// Number of `write_all_at` calls so far (failed ones included).
    pub fn write_calls(&self) -> u64 {
        self.state.lock().write_calls
    }

    /// Number of `sync_data` calls so far (failed ones included).
    pub fn sync_calls(&self) -> u64 {
        self.state.lock().sync_calls
    }

    /// Current bytes of the file at `path`, or `None` if there is no such file.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state.lock();
        let file = state.files.get(path)?;
        let bytes = file.lock().data.clone();
        Some(bytes)
    }

    /// Creates `dir` and its parents, durable at once; for setting up tests.
    pub fn put_dir(&self, dir: &Path) {
        let mut state = self.state.lock();
        for ancestor in dir.ancestors().filter(|path| path.parent().is_some()) {
            state.dirs.insert(ancestor.to_path_buf());
            state.durable_dirs.insert(ancestor.to_path_buf());
        }
    }

    /// Whether `dir` exists as a directory now.
    pub fn dir_exists(&self, dir: &Path) -> bool {
        self.state.lock().is_dir(dir)
    }

    /// Replaces the file at `path` with `bytes`, created and durable at once (its directory
    /// too); for building damaged or foreign files in tests.
    pub fn put_file(&self, path: &Path, bytes: &[u8]) {
        if let Some(parent) = path.parent() {
            self.put_dir(parent);
        }
        let mut state = self.state.lock();
        let file = Arc::new(Mutex::new(SimFile {
            data: bytes.to_vec(),
            durable: bytes.to_vec(),
            unsynced: Vec::new(),
        }));
        state.files.insert(path.to_path_buf(), Arc::clone(&file));
        state.durable_files.insert(path.to_path_buf(), file);
    }

    /// Simulates a crash; see [`CrashCut`]. Handles opened before it fail from now on.
    pub fn crash(&self, cut: CrashCut) {
        let mut state = self.state.lock();
        let (dirs, survivors) = match cut {
            CrashCut::KeepUnsynced => (state.dirs.clone(), state.files.clone()),
            CrashCut::DropUnsynced | CrashCut::Torn { .. } => {
                // A directory survives when its entry and those of all its parents were synced.
                let durable = &state.durable_dirs;
                let dirs: BTreeSet<PathBuf> = durable
                    .iter()
                    .filter(|dir| {
                        dir.ancestors().skip(1).all(|ancestor| {
                            ancestor.parent().is_none() || durable.contains(ancestor)
                        })
                    })
                    .cloned()
                    .collect();
                let files = state
                    .durable_files
                    .iter()
                    .filter(|(path, _)| {
                        path.parent().is_some_and(|parent| {
                            parent.parent().is_none() || dirs.contains(parent)
                        })
                    })
                    .map(|(path, file)| (path.clone(), Arc::clone(file)))
                    .collect();
                (dirs, files)
            }
        };
        let mut rng = SplitMix64(match cut {
            CrashCut::Torn { seed } => seed,
            CrashCut::KeepUnsynced | CrashCut::DropUnsynced => 0,
        });
        // Fresh file objects, so stale handles cannot touch the post-crash disk even if the
        // epoch check were bypassed; a file reachable under two names maps to one new object.
        let mut renewed: HashMap<*const Mutex<SimFile>, FileRef> = HashMap::new();
        let mut files = BTreeMap::new();
        for (path, file) in survivors {
            let new_file = renewed
                .entry(Arc::as_ptr(&file))
                .or_insert_with(|| {
                    let old = file.lock();
                    let data = match cut {
                        CrashCut::KeepUnsynced => old.data.clone(),
                        CrashCut::DropUnsynced => old.durable.clone(),
                        CrashCut::Torn { .. } => torn_image(&old, &mut rng),
                    };
                    Arc::new(Mutex::new(SimFile {
                        durable: data.clone(),
                        data,
                        unsynced: Vec::new(),
                    }))
                })
                .clone();
            files.insert(path, new_file);
        }
        state.durable_files = files.clone();
        state.files = files;
        state.durable_dirs = dirs.clone();
        state.dirs = dirs;
        state.epoch += 1;
        state.write_fault = None;
        state.sync_fault = None;
    }
}

/// Durable bytes plus a random prefix of the unsynced changes, the next write torn.
fn torn_image(file: &SimFile, rng: &mut SplitMix64) -> Vec<u8> {
    let mut data = file.durable.clone();
    let change_count = file.unsynced.len() as u64;
    let kept = usize::try_from(rng.below(change_count + 1)).unwrap_or(0);
    for change in &file.unsynced[..kept] {
        SimFile::apply(&mut data, change);
    }
    if let Some(Change::Write { offset, bytes }) = file.unsynced.get(kept) {
        let torn_len = usize::try_from(rng.below(bytes.len() as u64)).unwrap_or(0);
        let torn = Change::Write {
            offset: *offset,
            bytes: bytes[..torn_len].to_vec(),
        };
        SimFile::apply(&mut data, &torn);
    }
    data
}

/// A tiny deterministic generator; tests need reproducibility, not quality.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough value in `0..bound`; 0 when `bound` is 0.
    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 { 0 } else { self.next() % bound }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (SimStorage, PathBuf) {
        let sim = SimStorage::new();
        let dir = PathBuf::from("/d");
        sim.put_dir(&dir);
        (sim, dir)
    }

    #[test]
    fn unsynced_names_vanish_at_power_cut_but_survive_process_kill() {
        for (cut, survives) in [
            (CrashCut::KeepUnsynced, true),
            (CrashCut::DropUnsynced, false),
        ] {
            let (sim, dir) = setup();
            let file = sim.create_new(&dir.join("a")).expect("create");
            file.write_all_at(0, b"x").expect("write");
            file.sync_data().expect("sync");
            sim.crash(cut);
            assert_eq!(
                sim.file_bytes(&dir.join("a")).is_some(),
                survives,
                "{cut:?}"
            );
        }
    }

    #[test]
    fn stale_handles_fail_after_crash() {
        let (sim, dir) = setup();
        let file = sim.create_new(&dir.join("a")).expect("create");
        sim.crash(CrashCut::KeepUnsynced);
        assert!(file.write_all_at(0, b"x").is_err());
        assert!(file.sync_data().is_err());
    }

    #[test]
    fn faults_fire_once_on_the_chosen_call() {
        let (sim, dir) = setup();
        let file = sim.create_new(&dir.join("a")).expect("create");
        sim.fail_nth_write(2, Fault::Enospc);
        file.write_all_at(0, b"1").expect("first write");
        let err = file.write_all_at(1, b"2").expect_err("second write fails");
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        file.write_all_at(1, b"3").expect("third write");
        assert_eq!(sim.file_bytes(&dir.join("a")).as_deref(), Some(&b"13"[..]));
        sim.fail_nth_sync(1, Fault::Eio);
        assert_eq!(
            file.sync_data().expect_err("sync").raw_os_error(),
            Some(libc::EIO)
        );
    }

    #[test]
    fn torn_crash_keeps_a_prefix_of_unsynced_writes() {
        for seed in 0..64 {
            let (sim, dir) = setup();
            let file = sim.create_new(&dir.join("a")).expect("create");
            file.write_all_at(0, b"base").expect("write");
            file.sync_data().expect("sync");
            sim.sync_dir(&dir).expect("sync dir");
            file.write_all_at(4, b"-one").expect("write");
            file.write_all_at(8, b"-two").expect("write");
            sim.crash(CrashCut::Torn { seed });
            let bytes = sim.file_bytes(&dir.join("a")).expect("file survives");
            assert!(
                b"base-one-two".starts_with(&bytes),
                "seed {seed}: {bytes:?}"
            );
            assert!(bytes.starts_with(b"base"), "seed {seed}");
        }
    }

    #[test]
    fn a_directory_survives_a_power_cut_only_once_its_parent_was_synced() {
        let sim = SimStorage::new();
        let top = Path::new("/data");
        let wal = top.join("wal");
        sim.create_dir(top).expect("mkdir");
        sim.create_dir(&wal).expect("mkdir");
        let file = sim.create_new(&wal.join("a")).expect("create");
        file.write_all_at(0, b"x").expect("write");
        file.sync_data().expect("sync");
        sim.sync_dir(&wal).expect("sync wal");
        sim.sync_dir(top)
            .expect("sync data: wal's entry is durable, data's is not");
        sim.crash(CrashCut::DropUnsynced);
        assert!(!sim.dir_exists(top), "the root was never synced");
        assert!(sim.file_bytes(&wal.join("a")).is_none());

        crate::storage::create_dir_all_durable(&sim, &wal).expect("mkdir durably");
        let file = sim.create_new(&wal.join("a")).expect("create");
        file.sync_data().expect("sync");
        sim.sync_dir(&wal).expect("sync wal");
        sim.crash(CrashCut::Torn { seed: 3 });
        assert!(sim.dir_exists(&wal));
        assert!(sim.file_bytes(&wal.join("a")).is_some());
    }

    #[test]
    fn directories_refuse_what_a_file_system_refuses() {
        let (sim, dir) = setup();
        sim.put_file(&dir.join("f"), b"x");
        let kind = |result: io::Result<()>| result.expect_err("refused").kind();
        assert_eq!(kind(sim.create_dir(&dir)), io::ErrorKind::AlreadyExists);
        assert_eq!(
            kind(sim.create_dir(&dir.join("f"))),
            io::ErrorKind::NotADirectory
        );
        assert_eq!(
            kind(sim.create_dir(Path::new("/x/y"))),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            sim.list(&dir.join("f")).expect_err("a file").kind(),
            io::ErrorKind::NotADirectory
        );
    }

    #[test]
    fn renames_and_removals_need_a_directory_sync() {
        let (sim, dir) = setup();
        sim.put_file(&dir.join("a"), b"1");
        sim.rename(&dir.join("a"), &dir.join("b")).expect("rename");
        sim.crash(CrashCut::DropUnsynced);
        assert!(sim.file_bytes(&dir.join("a")).is_some());
        sim.rename(&dir.join("a"), &dir.join("b")).expect("rename");
        sim.sync_dir(&dir).expect("sync dir");
        sim.remove(&dir.join("b")).expect("remove");
        sim.crash(CrashCut::Torn { seed: 1 });
        assert_eq!(sim.list(&dir).expect("list"), vec!["b".to_owned()]);
    }
}

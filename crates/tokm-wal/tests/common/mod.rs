//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokm_storage::Lsn;
use tokm_storage::testkit::SimStorage;
use tokm_wal::{RecoveryMode, RecoveryReport, Wal, WalError, WalOptions};

/// The directory the simulated tests use.
pub fn sim_dir() -> PathBuf {
    PathBuf::from("/wal")
}

/// Options over `sim`, with the background flusher effectively off so tests decide every sync.
pub fn sim_options(sim: &SimStorage) -> WalOptions {
    WalOptions {
        storage: Arc::new(sim.clone()),
        sync_interval: Duration::from_secs(3600),
        sync_bytes_max: u64::MAX,
        ..WalOptions::default()
    }
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
    WalOptions {
        recovery_mode: mode,
        ..options
    }
}

/// A recognisable payload for record `index`.
pub fn payload(index: usize) -> Vec<u8> {
    format!("record-{index:04}-{}", "x".repeat(index % 7)).into_bytes()
}

/// Segment file names in `dir` of `sim`, sorted.
pub fn segment_names(sim: &SimStorage, dir: &Path) -> Vec<String> {
    use tokm_storage::Storage;
    let mut names: Vec<String> = sim
        .list(dir)
        .expect("list")
        .into_iter()
        .filter(|name| name.ends_with(".wal"))
        .collect();
    names.sort();
    names
}

/// What an [`Interposed`] storage tells a test about before passing a file call on.
pub trait FileHook: Send + Sync + std::fmt::Debug {
    /// Before a read of `len` bytes.
    fn before_read(&self, _len: usize) {}
    /// Before a `sync_data`; may block (e.g. to hold a sync in flight).
    fn before_sync(&self) {}
}

/// A storage that passes every call to a simulated disk, telling `hook` about file reads and
/// syncs first.
#[derive(Debug)]
pub struct Interposed {
    pub inner: SimStorage,
    pub hook: Arc<dyn FileHook>,
}

#[derive(Debug)]
struct InterposedFile {
    inner: Arc<dyn tokm_storage::StorageFile>,
    hook: Arc<dyn FileHook>,
}

impl tokm_storage::StorageFile for InterposedFile {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.hook.before_read(buf.len());
        self.inner.read_exact_at(offset, buf)
    }
    fn write_all_at(&self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.inner.write_all_at(offset, bytes)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.hook.before_sync();
        self.inner.sync_data()
    }
    fn set_len(&self, len_bytes: u64) -> std::io::Result<()> {
        self.inner.set_len(len_bytes)
    }
    fn len_bytes(&self) -> std::io::Result<u64> {
        self.inner.len_bytes()
    }
}

impl Interposed {
    fn wrap(
        &self,
        inner: Arc<dyn tokm_storage::StorageFile>,
    ) -> Arc<dyn tokm_storage::StorageFile> {
        Arc::new(InterposedFile {
            inner,
            hook: Arc::clone(&self.hook),
        })
    }
}

impl tokm_storage::Storage for Interposed {
    fn create_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.create_dir(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Arc<dyn tokm_storage::StorageFile>> {
        Ok(self.wrap(self.inner.create_new(path)?))
    }
    fn open(
        &self,
        path: &Path,
        access: tokm_storage::Access,
    ) -> std::io::Result<Arc<dyn tokm_storage::StorageFile>> {
        Ok(self.wrap(self.inner.open(path, access)?))
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(dir)
    }
}

/// A [`FileHook`] that holds every `sync_data` while closed, counting the callers it holds.
#[derive(Debug, Default)]
pub struct SyncGate {
    state: parking_lot::Mutex<(bool, usize)>,
    changed: parking_lot::Condvar,
}

impl SyncGate {
    /// Closed: later syncs wait until it opens. Open: held syncs go on.
    pub fn set_closed(&self, closed: bool) {
        self.state.lock().0 = closed;
        self.changed.notify_all();
    }

    /// Blocks until at least `count` syncs are held.
    pub fn wait_for_held(&self, count: usize) {
        let mut state = self.state.lock();
        while state.1 < count {
            self.changed.wait(&mut state);
        }
    }

    /// How many syncs are held now.
    pub fn held(&self) -> usize {
        self.state.lock().1
    }

    fn pass(&self) {
        let mut state = self.state.lock();
        state.1 += 1;
        self.changed.notify_all();
        while state.0 {
            self.changed.wait(&mut state);
        }
        state.1 -= 1;
    }
}

impl FileHook for SyncGate {
    fn before_sync(&self) {
        self.pass();
    }
}

/// A storage over a simulated disk that cuts the power at its `cut_at`-th mutating call
/// (write, sync, set_len, create, rename, remove, directory sync; 1 = the first): the disk
/// crashes with `cut` just before that call, which fails, and so does every later call, as if
/// the process died with the machine. Calls running when the power goes are ordered before or
/// after the cut, never across it.
#[derive(Debug)]
pub struct PowerCut {
    inner: SimStorage,
    cut: tokm_storage::testkit::CrashCut,
    cut_at: u64,
    calls: std::sync::atomic::AtomicU64,
    /// `true` once the power is off. Calls hold it shared across the call; the cut exclusive.
    off: parking_lot::RwLock<bool>,
}

impl PowerCut {
    /// Cuts the power over `inner` at mutating call `cut_at`.
    pub fn new(
        inner: SimStorage,
        cut: tokm_storage::testkit::CrashCut,
        cut_at: u64,
    ) -> Arc<PowerCut> {
        Arc::new(PowerCut {
            inner,
            cut,
            cut_at,
            calls: std::sync::atomic::AtomicU64::new(0),
            off: parking_lot::RwLock::new(false),
        })
    }

    /// Mutating calls seen so far (the failed ones included).
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether the power was cut.
    pub fn is_off(&self) -> bool {
        *self.off.read()
    }

    /// Cuts the power now, unless it is already off.
    pub fn cut_now(&self) {
        let mut off = self.off.write();
        if !*off {
            self.inner.crash(self.cut);
            *off = true;
        }
    }

    /// Runs a call unless the power is off; cuts it first when this call is the chosen one.
    fn call<T>(
        &self,
        mutating: bool,
        run: impl FnOnce() -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        if mutating {
            let index = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if index == self.cut_at {
                self.cut_now();
            }
        }
        let off = self.off.read();
        if *off {
            return Err(std::io::Error::other("power is off"));
        }
        let result = run();
        drop(off);
        result
    }

    fn wrap(
        self: &Arc<Self>,
        inner: Arc<dyn tokm_storage::StorageFile>,
    ) -> Arc<dyn tokm_storage::StorageFile> {
        Arc::new(PowerCutFile {
            inner,
            power: Arc::clone(self),
        })
    }
}

#[derive(Debug)]
struct PowerCutFile {
    inner: Arc<dyn tokm_storage::StorageFile>,
    power: Arc<PowerCut>,
}

impl tokm_storage::StorageFile for PowerCutFile {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.power
            .call(false, || self.inner.read_exact_at(offset, buf))
    }
    fn write_all_at(&self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.power
            .call(true, || self.inner.write_all_at(offset, bytes))
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.power.call(true, || self.inner.sync_data())
    }
    fn set_len(&self, len_bytes: u64) -> std::io::Result<()> {
        self.power.call(true, || self.inner.set_len(len_bytes))
    }
    fn len_bytes(&self) -> std::io::Result<u64> {
        self.power.call(false, || self.inner.len_bytes())
    }
}

/// The storage a [`PowerCut`] hands to the log (a newtype, so the `Arc` can wrap handles).
#[derive(Debug)]
pub struct PowerCutStorage(pub Arc<PowerCut>);

impl tokm_storage::Storage for PowerCutStorage {
    fn create_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.0.call(true, || self.0.inner.create_dir(dir))
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.0.call(false, || self.0.inner.list(dir))
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Arc<dyn tokm_storage::StorageFile>> {
        let file = self.0.call(true, || self.0.inner.create_new(path))?;
        Ok(self.0.wrap(file))
    }
    fn open(
        &self,
        path: &Path,
        access: tokm_storage::Access,
    ) -> std::io::Result<Arc<dyn tokm_storage::StorageFile>> {
        let file = self.0.call(false, || self.0.inner.open(path, access))?;
        Ok(self.0.wrap(file))
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.0.call(true, || self.0.inner.rename(from, to))
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.0.call(true, || self.0.inner.remove(path))
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.0.call(true, || self.0.inner.sync_dir(dir))
    }
}

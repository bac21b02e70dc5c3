//! Appenders that arrive while an fsync is in flight have their records written meanwhile and
//! then share a single fsync.
mod common;

use std::io;
use std::path::Path;
use std::sync::Arc;

use common::sim_dir;
use parking_lot::{Condvar, Mutex};
use tokm_wal::testkit::SimStorage;
use tokm_wal::{Access, Durability, Lsn, Storage, StorageFile, Wal, WalOptions};

/// Holds every `sync_data` while closed, counting the callers held.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<(bool, usize)>,
    changed: Condvar,
}

impl Gate {
    fn set_closed(&self, closed: bool) {
        self.state.lock().0 = closed;
        self.changed.notify_all();
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

    fn wait_for_held(&self, count: usize) {
        let mut state = self.state.lock();
        while state.1 < count {
            self.changed.wait(&mut state);
        }
    }
}

#[derive(Debug)]
struct GatedStorage {
    inner: SimStorage,
    gate: Arc<Gate>,
}

#[derive(Debug)]
struct GatedFile {
    inner: Arc<dyn StorageFile>,
    gate: Arc<Gate>,
}

impl StorageFile for GatedFile {
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact_at(offset, buf)
    }
    fn write_all_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_all_at(offset, bytes)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.gate.pass();
        self.inner.sync_data()
    }
    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.inner.set_len(len_bytes)
    }
    fn len_bytes(&self) -> io::Result<u64> {
        self.inner.len_bytes()
    }
}

impl GatedStorage {
    fn wrap(&self, inner: Arc<dyn StorageFile>) -> Arc<dyn StorageFile> {
        Arc::new(GatedFile {
            inner,
            gate: Arc::clone(&self.gate),
        })
    }
}

impl Storage for GatedStorage {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        Ok(self.wrap(self.inner.create_new(path)?))
    }
    fn open(&self, path: &Path, access: Access) -> io::Result<Arc<dyn StorageFile>> {
        Ok(self.wrap(self.inner.open(path, access)?))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
}

#[test]
fn appenders_arriving_during_an_fsync_share_the_next_one() {
    const FOLLOWERS: u64 = 6;
    let sim = SimStorage::new();
    let gate = Arc::new(Gate::default());
    let storage = GatedStorage {
        inner: sim.clone(),
        gate: Arc::clone(&gate),
    };
    let options = WalOptions::default()
        .with_storage(Arc::new(storage))
        .with_sync_interval(std::time::Duration::from_secs(3600));
    let (wal, _) = Wal::open(&sim_dir(), options).expect("open");
    let wal = Arc::new(wal);

    gate.set_closed(true);
    let leader = {
        let wal = Arc::clone(&wal);
        std::thread::spawn(move || {
            wal.append(b"leader", Durability::Sync)
                .expect("leader append")
        })
    };
    gate.wait_for_held(1);
    let followers: Vec<_> = (0..FOLLOWERS)
        .map(|_| {
            let wal = Arc::clone(&wal);
            std::thread::spawn(move || wal.append(b"follower", Durability::Sync).expect("append"))
        })
        .collect();
    // Followers' records are written while the leader's fsync is held; spin (yielding) until
    // the file holds all of them. Header 120 bytes, frames 20 bytes plus payload.
    let segment = sim_dir().join("00000000000000000001.wal");
    let full_len = 120 + (20 + 6) + FOLLOWERS as usize * (20 + 8);
    while sim.file_bytes(&segment).map_or(0, |bytes| bytes.len()) < full_len {
        std::thread::yield_now();
    }
    let syncs_before = sim.sync_calls();
    gate.set_closed(false);
    assert_eq!(leader.join().expect("leader"), Lsn::new(1));
    for follower in followers {
        follower.join().expect("follower");
    }
    assert_eq!(
        sim.sync_calls() - syncs_before,
        2,
        "the leader's fsync plus one fsync shared by all followers"
    );
    assert_eq!(wal.durable_lsn(), Lsn::new(1 + FOLLOWERS));
}

//! Recovery holds a bounded window of each segment, never a whole one: a log many times longer
//! than the window, and a sealed segment followed by tens of MiB of zeros, recover with no
//! read larger than the window (measured through the storage seam), every record intact.
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{FileHook, Interposed, payload, replay_all, segment_names, sim_dir, sim_options};
use tokm_storage::testkit::SimStorage;
use tokm_wal::{Durability, Wal, WalOptions};

/// The read window of `tokm-wal` recovery (1 MiB), which no read may exceed.
const WINDOW_BYTES: usize = 1 << 20;

/// Remembers the largest single read.
#[derive(Debug, Default)]
struct LargestRead(AtomicUsize);

impl FileHook for LargestRead {
    fn before_read(&self, len: usize) {
        self.0.fetch_max(len, Ordering::Relaxed);
    }
}

/// Writes `count` records of about 4 KiB into segments of at most 4 MiB.
fn write_log(sim: &SimStorage, count: usize) -> Vec<Vec<u8>> {
    let options = WalOptions {
        segment_bytes_max: 4 << 20,
        ..sim_options(sim)
    };
    let (wal, _) = Wal::open(&sim_dir(), options).expect("open");
    let payloads: Vec<Vec<u8>> = (0..count)
        .map(|index| {
            let mut bytes = payload(index);
            bytes.resize(4096, b'.');
            bytes
        })
        .collect();
    for chunk in payloads.chunks(64) {
        let slices: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        wal.append_batch(&slices, Durability::Batch)
            .expect("append");
    }
    wal.close().expect("close");
    payloads
}

fn measured(sim: &SimStorage) -> (Interposed, Arc<LargestRead>) {
    let largest_read = Arc::new(LargestRead::default());
    let storage = Interposed {
        inner: sim.clone(),
        hook: Arc::clone(&largest_read) as Arc<dyn FileHook>,
    };
    (storage, largest_read)
}

#[test]
fn a_log_many_windows_long_recovers_with_no_read_above_the_window() {
    let sim = SimStorage::new();
    let payloads = write_log(&sim, 5_000);
    assert!(
        segment_names(&sim, &sim_dir()).len() >= 4,
        "about 20 MiB of log"
    );
    let (storage, largest_read) = measured(&sim);
    let options = WalOptions {
        storage: Arc::new(storage),
        ..sim_options(&sim)
    };
    let (wal, report) = Wal::open(&sim_dir(), options).expect("open");
    assert_eq!(report.records_count, 5_000);
    let records = replay_all(&wal).expect("replay");
    assert_eq!(records.len(), payloads.len());
    assert!(
        records
            .iter()
            .zip(&payloads)
            .all(|((_, read), written)| read == written)
    );
    let largest = largest_read.0.load(Ordering::Relaxed);
    assert!(largest <= WINDOW_BYTES, "largest read {largest} bytes");
}

#[test]
fn zeros_after_a_sealed_segment_are_scanned_through_the_window_and_lose_nothing() {
    let sim = SimStorage::new();
    let payloads = write_log(&sim, 2_000);
    let names = segment_names(&sim, &sim_dir());
    let sealed = sim_dir().join(&names[0]);
    let mut bytes = sim.file_bytes(&sealed).expect("segment");
    let records_end = bytes.len() as u64;
    bytes.resize(bytes.len() + (48 << 20), 0);
    sim.put_file(&sealed, &bytes);

    let (storage, largest_read) = measured(&sim);
    let options = WalOptions {
        storage: Arc::new(storage),
        ..sim_options(&sim)
    };
    let (wal, report) = Wal::open(&sim_dir(), options).expect("nothing is lost");
    assert_eq!(report.loss, None);
    assert_eq!(report.damaged.len(), 1);
    assert_eq!(report.damaged[0].offset, records_end);
    assert_eq!(report.damaged[0].len_bytes, 48 << 20);
    assert_eq!(replay_all(&wal).expect("replay").len(), payloads.len());
    let largest = largest_read.0.load(Ordering::Relaxed);
    assert!(largest <= WINDOW_BYTES, "largest read {largest} bytes");
}

//! `tokm-wal` append throughput for 300-byte records, beside a raw `write` + `fdatasync` loop
//! on the same disk in the same run.
//!
//! Groups (throughput in records per second):
//! - `wal_sync_300B`: `raw-fdatasync` (one 300-byte positioned write and one `fdatasync` per
//!   record, appending to a file: the floor for a durable record without batching), then
//!   `Durability::Sync` appends from 1, 4, 16 and 64 threads (group commit shares fsyncs).
//! - `wal_batch_300B`: `Durability::Batch` from 1 and 64 threads (buffered; the background
//!   flusher syncs every second, and a full group-commit buffer is written inline).
//! - `wal_encryption_300B`: plain vs encrypted (`Algorithm::detect()`), in batch mode where the
//!   CPU cost shows, and in sync mode from 16 threads.
//!
//! Data lives in a temp dir under `TMPDIR` (default `/tmp`); check with `df` that it is the
//! disk a real data dir would use and not tmpfs. `TOKM_BENCH_QUICK=1` shortens the run.

mod common;

use std::fs::OpenOptions;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, measurement::WallTime};
use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};
use tokm_wal::{Durability, Wal, WalOptions};

use crate::common::RunTimes;

const RECORD_BYTES: usize = 300;

fn record() -> Vec<u8> {
    (0..RECORD_BYTES).map(|i| (i % 251) as u8).collect()
}

fn keyring() -> Arc<Keyring> {
    let key = Key::from_bytes(&[0x5a; 32]).expect("32 bytes make a key");
    Arc::new(Keyring::new(KeyId::new(1), key, Algorithm::detect()))
}

/// Runs `iterations` appends spread over `threads` threads; returns the time scaled to exactly
/// `iterations`.
fn timed_appends(wal: &Wal, threads: usize, iterations: u64, durability: Durability) -> Duration {
    let per_thread = iterations.div_ceil(threads as u64).max(1);
    let payload = record();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..per_thread {
                    black_box(wal.append(&payload, durability).expect("append"));
                }
            });
        }
    });
    let elapsed = start.elapsed();
    elapsed.mul_f64(iterations as f64 / (per_thread * threads as u64) as f64)
}

fn bench_wal(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    options: WalOptions,
    threads: usize,
    durability: Durability,
) {
    let temp = tempfile::tempdir().expect("temp dir");
    let (wal, _) = Wal::open(&temp.path().join("wal"), options).expect("open");
    group.bench_function(name, |b| {
        b.iter_custom(|iterations| timed_appends(&wal, threads, iterations, durability));
    });
    wal.close().expect("close");
}

fn raw_fdatasync(group: &mut BenchmarkGroup<'_, WallTime>, dir: &Path) {
    let path = dir.join("raw.log");
    let file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("raw file");
    let payload = record();
    let mut offset = 0u64;
    group.bench_function("raw-fdatasync", |b| {
        b.iter(|| {
            file.write_all_at(&payload, offset).expect("write");
            file.sync_data().expect("fdatasync");
            offset += RECORD_BYTES as u64;
        });
    });
}

fn bench_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_sync_300B");
    group.throughput(Throughput::Elements(1));
    let temp = tempfile::tempdir().expect("temp dir");
    raw_fdatasync(&mut group, temp.path());
    for threads in [1, 4, 16, 64] {
        bench_wal(
            &mut group,
            &format!("tokm-wal/{threads}_threads"),
            WalOptions::default(),
            threads,
            Durability::Sync,
        );
    }
    group.finish();
}

fn bench_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_batch_300B");
    group.throughput(Throughput::Elements(1));
    for threads in [1, 64] {
        bench_wal(
            &mut group,
            &format!("tokm-wal/{threads}_threads"),
            WalOptions::default(),
            threads,
            Durability::Batch,
        );
    }
    group.finish();
}

fn bench_encryption(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_encryption_300B");
    group.throughput(Throughput::Elements(1));
    let encrypted = || WalOptions {
        keyring: Some(keyring()),
        ..WalOptions::default()
    };
    bench_wal(
        &mut group,
        "batch_1_thread/plain",
        WalOptions::default(),
        1,
        Durability::Batch,
    );
    bench_wal(
        &mut group,
        "batch_1_thread/encrypted",
        encrypted(),
        1,
        Durability::Batch,
    );
    bench_wal(
        &mut group,
        "sync_16_threads/plain",
        WalOptions::default(),
        16,
        Durability::Sync,
    );
    bench_wal(
        &mut group,
        "sync_16_threads/encrypted",
        encrypted(),
        16,
        Durability::Sync,
    );
    group.finish();
}

fn config() -> Criterion {
    // 13 benchmarks; these settings keep the whole run near 2 minutes.
    common::criterion(
        20,
        RunTimes {
            warm_up: Duration::from_secs(1),
            measurement: Duration::from_secs(4),
        },
        RunTimes {
            warm_up: Duration::from_millis(200),
            measurement: Duration::from_millis(500),
        },
    )
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_sync, bench_batch, bench_encryption
}

fn main() {
    println!(
        "tokm-wal bench: 300-byte records in {} (cipher {})",
        std::env::temp_dir().display(),
        Algorithm::detect()
    );
    benches();
    Criterion::default().configure_from_args().final_summary();
}

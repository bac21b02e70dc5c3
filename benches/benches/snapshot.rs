//! `tokm-snapshot` write and load of 100,000 sessions on the real file system, plain and
//! encrypted (`Algorithm::detect()`).
//!
//! Groups (throughput in sessions per second):
//! - `snapshot_write_100k`: stream, fsync, rename and directory fsync of one snapshot.
//! - `snapshot_load_100k`: read, verify every checksum, open (when sealed) and decode all
//!   sessions of the newest snapshot.
//!
//! Data lives in a temp dir under `TMPDIR` (default `/tmp`); check with `df` that it is the
//! disk a real data dir would use and not tmpfs. `TOKM_BENCH_QUICK=1` shortens the run.

mod common;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};
use tokm_domain::{
    DeviceId, ManualClock, Metadata, NewSession, Session, SessionFields, SessionId, Timestamp,
    TokenHash, UserAgent, UserId,
};
use tokm_snapshot::{SnapshotOptions, SnapshotStore};

use crate::common::RunTimes;

const SESSIONS: usize = 100_000;
const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// Sessions shaped like real ones: every optional field set, one metadata entry.
fn sessions() -> Vec<Arc<Session>> {
    (0..SESSIONS)
        .map(|index| {
            let created_at = START
                .checked_add(Duration::from_millis(index as u64))
                .expect("in range");
            let mut fields = SessionFields::new(
                SessionId::from_parts(created_at, index as u128 + 1).expect("valid id"),
                UserId::new(&format!("user-{}", index % 10_007)).expect("valid user"),
                TokenHash::of_token(&format!("token-{index}")).expect("valid token"),
                created_at,
                created_at
                    .checked_add(Duration::from_secs(3_600))
                    .expect("in range"),
            );
            fields.device_id = Some(DeviceId::new(&format!("device-{}", index % 3)).expect("ok"));
            fields.ip_address = Some(IpAddr::V4(Ipv4Addr::new(10, 0, (index % 250) as u8, 1)));
            fields.user_agent =
                Some(UserAgent::new("Mozilla/5.0 (X11; Linux x86_64)").expect("ok"));
            let mut metadata = Metadata::new();
            metadata.insert("region", "eu-west").expect("ok");
            fields.metadata = metadata;
            let body = NewSession::new(fields).expect("valid session");
            Arc::new(Session::new(body, Session::VERSION_FIRST).expect("valid version"))
        })
        .collect()
}

fn keyring() -> Arc<Keyring> {
    let key = Key::from_bytes(&[0x5a; 32]).expect("32 bytes make a key");
    Arc::new(Keyring::new(KeyId::new(1), key, Algorithm::detect()))
}

/// A store in a fresh temp dir; the clock moves a millisecond per write so names never clash.
fn store(keyring: Option<Arc<Keyring>>) -> (tempfile::TempDir, SnapshotStore, Arc<ManualClock>) {
    let temp = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(ManualClock::new(START));
    let options = SnapshotOptions {
        keyring,
        clock: clock.clone(),
        retention_count: 1,
        retention_age: Duration::ZERO,
        ..SnapshotOptions::default()
    };
    let store = SnapshotStore::open(temp.path(), options).expect("open store");
    (temp, store, clock)
}

fn bench_write(c: &mut Criterion) {
    let sessions = sessions();
    let mut group = c.benchmark_group("snapshot_write_100k");
    group.throughput(Throughput::Elements(SESSIONS as u64));
    for (name, ring) in [("plain", None), ("encrypted", Some(keyring()))] {
        let (_temp, store, clock) = store(ring);
        group.bench_function(name, |b| {
            b.iter(|| {
                clock.advance(Duration::from_millis(1));
                let meta = store
                    .write(1.into(), sessions.iter().map(Arc::as_ref))
                    .expect("write");
                // Keep one snapshot so the directory does not fill the disk.
                store.apply_retention().expect("retention");
                black_box(meta)
            });
        });
    }
    group.finish();
}

fn bench_load(c: &mut Criterion) {
    let sessions = sessions();
    let mut group = c.benchmark_group("snapshot_load_100k");
    group.throughput(Throughput::Elements(SESSIONS as u64));
    for (name, ring) in [("plain", None), ("encrypted", Some(keyring()))] {
        let (_temp, store, _clock) = store(ring);
        store
            .write(1.into(), sessions.iter().map(Arc::as_ref))
            .expect("write");
        group.bench_function(name, |b| {
            b.iter(|| {
                let outcome = store.load_newest().expect("load");
                black_box(outcome.snapshot.expect("written").records.len())
            });
        });
    }
    group.finish();
}

fn config() -> Criterion {
    // 4 benchmarks of about 0.1-0.5 s per iteration; these settings keep the run near a minute.
    common::criterion(
        10,
        RunTimes {
            warm_up: Duration::from_secs(1),
            measurement: Duration::from_secs(8),
        },
        RunTimes {
            warm_up: Duration::from_millis(200),
            measurement: Duration::from_secs(1),
        },
    )
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_write, bench_load
}

fn main() {
    println!(
        "tokm-snapshot bench: {SESSIONS} sessions in {} (cipher {})",
        std::env::temp_dir().display(),
        Algorithm::detect()
    );
    benches();
    Criterion::default().configure_from_args().final_summary();
}

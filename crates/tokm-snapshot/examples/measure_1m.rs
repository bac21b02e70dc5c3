//! Times writing and loading one large snapshot on the real file system.
//!
//! `cargo run --release -p tokm-snapshot --example measure_1m -- [sessions] [runs] [--encrypt]`
//! (defaults: 1_000_000 sessions, 5 runs). Prints each run, then the median and the spread
//! (max - min) of write and load times. Uses a temp directory, removed at exit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};
use tokm_domain::testkit::SessionFactory;
use tokm_domain::{ManualClock, Session, Timestamp};
use tokm_snapshot::{SnapshotOptions, SnapshotStore};
use tokm_storage::Lsn;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count: usize = args.first().map_or(Ok(1_000_000), |a| a.parse())?;
    let runs: usize = args.get(1).map_or(Ok(5), |a| a.parse())?;
    let keyring = if args.iter().any(|a| a == "--encrypt") {
        Some(Arc::new(Keyring::new(
            KeyId::new(1),
            Key::generate()?,
            Algorithm::detect(),
        )))
    } else {
        None
    };

    let start = Timestamp::from_millis(1_700_000_000_000);
    let mut factory = SessionFactory::new(1, start);
    let sessions: Vec<Arc<Session>> = (0..count)
        .map(|index| {
            let body = factory.next_for(&SessionFactory::user((index % 10_007) as u32));
            Session::new(body, 1).map(Arc::new)
        })
        .collect::<Result<_, _>>()?;

    let temp = tempfile::tempdir()?;
    let clock = Arc::new(ManualClock::new(start));
    let options = SnapshotOptions {
        clock: clock.clone(),
        keyring: keyring.clone(),
        ..SnapshotOptions::default()
    };
    let store = SnapshotStore::open(temp.path(), options)?;
    let (mut writes, mut loads) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let began = Instant::now();
        let meta = store.write(Lsn::new(run as u64 + 1), sessions.iter().map(Arc::as_ref))?;
        let wrote = began.elapsed();
        let began = Instant::now();
        let loaded = store.load_newest()?.snapshot.ok_or("no snapshot")?;
        let load = began.elapsed();
        assert_eq!(loaded.records.len(), count);
        println!(
            "run {run}: {} sessions, {} bytes, write {wrote:?}, load {load:?}",
            count, meta.size_bytes
        );
        writes.push(wrote);
        loads.push(load);
        clock.advance(Duration::from_secs(1));
    }
    println!("write: {}", summary(&mut writes));
    println!("load:  {}", summary(&mut loads));
    Ok(())
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let median = times[times.len() / 2];
    let spread = times[times.len() - 1] - times[0];
    format!(
        "median {median:?}, spread {spread:?} over {} runs",
        times.len()
    )
}

//! Threads incrementing counters through compare-and-swap retry loops lose no update.

use std::sync::Barrier;

use crossbeam::thread;
use tokm_cmap::{CasError, INITIAL_VERSION, MapOptions, ShardedMap, Versioned};

const THREAD_COUNT: usize = 4;
const INCREMENTS_PER_THREAD: u64 = 20_000;
/// A compare-and-swap fails only because another thread's succeeded in between, so one
/// increment can fail at most once per increment of all other threads: this bound cannot be hit
/// unless increments are lost or versions move without a successful swap.
const CAS_RETRIES_MAX: u64 = THREAD_COUNT as u64 * INCREMENTS_PER_THREAD;

type Counters = ShardedMap<u32, Versioned<u64>>;

fn counters(keys: &[u32]) -> Counters {
    // Few shards, so the counters also share shard locks with each other.
    let map = ShardedMap::with_options(MapOptions {
        shard_count: Some(2),
        capacity: 0,
    })
    .expect("valid options");
    for key in keys {
        map.insert_new(*key, 0).expect("fresh key");
    }
    map
}

/// Adds one to `key` with a read / compare-and-swap retry loop; returns the retries it needed.
fn increment(map: &Counters, key: u32) -> Result<u64, String> {
    for retry_count in 0..=CAS_RETRIES_MAX {
        let Some(current) = map.get(&key) else {
            return Err(format!("counter {key} vanished"));
        };
        match map.compare_and_swap(&key, current.version(), current.value() + 1) {
            Ok(_) => return Ok(retry_count),
            Err(CasError::VersionMismatch { .. }) => continue,
            Err(other) => return Err(format!("counter {key}: {other} ({})", other.code())),
        }
    }
    Err(format!(
        "counter {key}: gave up after {CAS_RETRIES_MAX} retries"
    ))
}

fn run(keys: &[u32]) -> Counters {
    let map = counters(keys);
    // Released together, so the threads overlap instead of running one after another.
    let start = Barrier::new(THREAD_COUNT);
    thread::scope(|scope| {
        let workers: Vec<_> = (0..THREAD_COUNT)
            .map(|thread_index| {
                let (map, start) = (&map, &start);
                scope.spawn(move |_| -> Result<u64, String> {
                    start.wait();
                    let mut retry_total = 0;
                    for step in 0..INCREMENTS_PER_THREAD {
                        // Each thread walks the keys from a different starting point.
                        let key_index = (step as usize + thread_index) % keys.len();
                        retry_total += increment(map, keys[key_index])?;
                    }
                    Ok(retry_total)
                })
            })
            .collect();
        let retry_total: u64 = workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .expect("worker panicked")
                    .expect("increment failed")
            })
            .sum();
        // Shown with `--nocapture`: how much contention this run saw.
        println!(
            "{} keys: {retry_total} compare-and-swap retries",
            keys.len()
        );
    })
    .expect("scope panicked");
    map
}

#[test]
fn one_hot_counter_loses_no_increment() {
    let map = run(&[7]);
    let total = THREAD_COUNT as u64 * INCREMENTS_PER_THREAD;
    let counter = map.get(&7).expect("counter present");
    assert_eq!(*counter.value(), total);
    assert_eq!(counter.version(), INITIAL_VERSION + total);
}

#[test]
fn several_counters_lose_no_increment() {
    let keys = [1, 2, 3, 4, 5];
    let map = run(&keys);
    let mut value_sum = 0;
    for key in keys {
        let counter = map.get(&key).expect("counter present");
        // Every successful swap adds one to the value and one to the version.
        assert_eq!(
            counter.version(),
            INITIAL_VERSION + counter.value(),
            "counter {key}"
        );
        value_sum += counter.value();
    }
    assert_eq!(value_sum, THREAD_COUNT as u64 * INCREMENTS_PER_THREAD);
}

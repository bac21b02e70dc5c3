//! `tokm-cmap` beside `dashmap::DashMap` and `parking_lot::RwLock<std::collections::HashMap>`.
//!
//! Every group runs one operation mix at one thread count on all three maps, with the same
//! hasher (foldhash, `tokm_cmap::DefaultHashBuilder`), the same 1Mi pre-populated keys and the
//! same pre-generated operation sequence; no random numbers are drawn in the timed loop.
//!
//! Each sample builds a fresh map outside the timed region, so every sample starts from the same
//! state (rapid-grow really grows: its inserts add keys from a range twice the pre-populated
//! size). Throughput is operations per second summed over all threads.
//!
//! `TOKM_BENCH_QUICK=1` shortens warm-up and measurement for a smoke run.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dashmap::DashMap;
use parking_lot::RwLock;
use tokm_cmap::{DefaultHashBuilder, ShardedMap};

/// Keys in every map before a sample starts.
const PREPOPULATED_KEY_COUNT: usize = 1 << 20;
/// Inserts draw from twice the pre-populated range, so some insert new keys.
const INSERT_KEY_RANGE: usize = 2 * PREPOPULATED_KEY_COUNT;
/// Length of the pre-generated operation sequence; a power of two so indexing is a mask.
const OP_SEQUENCE_LEN: usize = 1 << 20;
/// Operations each thread runs per criterion iteration. Large, so that one iteration (a few
/// milliseconds) dwarfs starting the threads, and criterion's per-sample map rebuild (outside the
/// timed region but inside its wall-clock budget) does not starve the sample of iterations.
const OPS_PER_ITER_PER_THREAD: u64 = 1 << 15;
const THREAD_COUNTS: [usize; 2] = [1, 2];

#[derive(Clone, Copy)]
enum OpKind {
    Get,
    Insert,
    Remove,
    Update,
}

#[derive(Clone, Copy)]
struct Op {
    kind: OpKind,
    key: u64,
}

/// Percentages of get, insert, remove and update; they sum to 100.
struct Mix {
    name: &'static str,
    get_percent: u64,
    insert_percent: u64,
    remove_percent: u64,
    update_percent: u64,
}

const MIXES: [Mix; 3] = [
    Mix {
        name: "read_heavy",
        get_percent: 98,
        insert_percent: 1,
        remove_percent: 1,
        update_percent: 0,
    },
    Mix {
        name: "exchange",
        get_percent: 10,
        insert_percent: 40,
        remove_percent: 40,
        update_percent: 10,
    },
    Mix {
        name: "rapid_grow",
        get_percent: 5,
        insert_percent: 80,
        remove_percent: 5,
        update_percent: 10,
    },
];

/// splitmix64: a fixed-seed generator, so every run and every map sees the same inputs.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

/// Distinct, scattered keys; index `i` always maps to the same key.
fn key_at(index: usize) -> u64 {
    SplitMix64(index as u64).next_u64()
}

fn operation_sequence(mix: &Mix) -> Vec<Op> {
    assert_eq!(
        mix.get_percent + mix.insert_percent + mix.remove_percent + mix.update_percent,
        100
    );
    let mut random = SplitMix64(0x746F_6B6D);
    (0..OP_SEQUENCE_LEN)
        .map(|_| {
            let roll = random.next_u64() % 100;
            let kind = if roll < mix.get_percent {
                OpKind::Get
            } else if roll < mix.get_percent + mix.insert_percent {
                OpKind::Insert
            } else if roll < mix.get_percent + mix.insert_percent + mix.remove_percent {
                OpKind::Remove
            } else {
                OpKind::Update
            };
            let key_range = match kind {
                OpKind::Insert => INSERT_KEY_RANGE,
                OpKind::Get | OpKind::Remove | OpKind::Update => PREPOPULATED_KEY_COUNT,
            };
            Op {
                kind,
                key: key_at(random.below(key_range)),
            }
        })
        .collect()
}

/// The operations measured, implemented by each map in its idiomatic way.
trait BenchMap: Sync {
    fn empty() -> Self;
    fn get(&self, key: u64) -> Option<u64>;
    fn insert(&self, key: u64, value: u64) -> Option<u64>;
    fn remove(&self, key: u64) -> Option<u64>;
    fn update(&self, key: u64) -> Option<()>;
}

impl BenchMap for ShardedMap<u64, u64> {
    fn empty() -> Self {
        ShardedMap::new()
    }
    fn get(&self, key: u64) -> Option<u64> {
        ShardedMap::get(self, &key)
    }
    fn insert(&self, key: u64, value: u64) -> Option<u64> {
        ShardedMap::insert(self, key, value)
    }
    fn remove(&self, key: u64) -> Option<u64> {
        ShardedMap::remove(self, &key)
    }
    fn update(&self, key: u64) -> Option<()> {
        ShardedMap::update(self, &key, |value| *value = value.wrapping_add(1))
    }
}

impl BenchMap for DashMap<u64, u64, DefaultHashBuilder> {
    fn empty() -> Self {
        // Default shard count: next power of two of 4 x cores, as tokm-cmap's.
        DashMap::with_hasher(DefaultHashBuilder::default())
    }
    fn get(&self, key: u64) -> Option<u64> {
        DashMap::get(self, &key).map(|value| *value)
    }
    fn insert(&self, key: u64, value: u64) -> Option<u64> {
        DashMap::insert(self, key, value)
    }
    fn remove(&self, key: u64) -> Option<u64> {
        DashMap::remove(self, &key).map(|(_, value)| value)
    }
    fn update(&self, key: u64) -> Option<()> {
        DashMap::get_mut(self, &key).map(|mut value| *value = value.wrapping_add(1))
    }
}

impl BenchMap for RwLock<HashMap<u64, u64, DefaultHashBuilder>> {
    fn empty() -> Self {
        RwLock::new(HashMap::with_hasher(DefaultHashBuilder::default()))
    }
    fn get(&self, key: u64) -> Option<u64> {
        self.read().get(&key).copied()
    }
    fn insert(&self, key: u64, value: u64) -> Option<u64> {
        self.write().insert(key, value)
    }
    fn remove(&self, key: u64) -> Option<u64> {
        self.write().remove(&key)
    }
    fn update(&self, key: u64) -> Option<()> {
        self.write()
            .get_mut(&key)
            .map(|value| *value = value.wrapping_add(1))
    }
}

fn prepopulated<M: BenchMap>() -> M {
    let map = M::empty();
    for index in 0..PREPOPULATED_KEY_COUNT {
        let key = key_at(index);
        map.insert(key, key);
    }
    map
}

fn run_ops<M: BenchMap>(map: &M, ops: &[Op], first_index: usize, op_count: u64) {
    let mask = ops.len() - 1;
    let mut index = first_index;
    for _ in 0..op_count {
        let op = ops[index & mask];
        index = index.wrapping_add(1);
        match op.kind {
            OpKind::Get => black_box(map.get(op.key)),
            OpKind::Insert => black_box(map.insert(op.key, op.key)),
            OpKind::Remove => black_box(map.remove(op.key)),
            OpKind::Update => black_box(map.update(op.key).map(|()| op.key)),
        };
    }
}

/// One criterion sample of `iters` iterations: a fresh map, then `iters` batches of operations on
/// each thread, timed from the moment all threads are ready until the last one is done.
fn timed_sample<M: BenchMap>(
    ops: &[Op],
    thread_count: usize,
    iters: u64,
    cursor: &AtomicUsize,
) -> Duration {
    let op_count_per_thread = iters * OPS_PER_ITER_PER_THREAD;
    let map = prepopulated::<M>();
    // Each sample continues where the previous stopped, so samples see different operations;
    // threads start evenly spaced in the sequence. Relaxed: only this thread touches `cursor`.
    let first_index = cursor.fetch_add(op_count_per_thread as usize, Ordering::Relaxed);
    let ready = Barrier::new(thread_count + 1);
    let done = Barrier::new(thread_count + 1);
    std::thread::scope(|scope| {
        for thread_index in 0..thread_count {
            let (map, ready, done) = (&map, &ready, &done);
            let start = first_index.wrapping_add(thread_index * ops.len() / thread_count);
            scope.spawn(move || {
                ready.wait();
                run_ops(map, ops, start, op_count_per_thread);
                done.wait();
            });
        }
        ready.wait();
        let started = Instant::now();
        done.wait();
        started.elapsed()
    })
}

fn bench_map<M: BenchMap>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    ops: &[Op],
    thread_count: usize,
) {
    let cursor = AtomicUsize::new(0);
    group.bench_function(name, |bencher| {
        bencher.iter_custom(|iters| timed_sample::<M>(ops, thread_count, iters, &cursor));
    });
}

fn cmap_mixes(c: &mut Criterion) {
    for mix in &MIXES {
        let ops = operation_sequence(mix);
        for thread_count in THREAD_COUNTS {
            let suffix = if thread_count == 1 {
                "thread"
            } else {
                "threads"
            };
            let mut group = c.benchmark_group(format!("cmap/{}/{thread_count}_{suffix}", mix.name));
            group.throughput(Throughput::Elements(
                OPS_PER_ITER_PER_THREAD * thread_count as u64,
            ));
            bench_map::<ShardedMap<u64, u64>>(&mut group, "tokm-cmap", &ops, thread_count);
            bench_map::<DashMap<u64, u64, DefaultHashBuilder>>(
                &mut group,
                "dashmap",
                &ops,
                thread_count,
            );
            bench_map::<RwLock<HashMap<u64, u64, DefaultHashBuilder>>>(
                &mut group,
                "rwlock-hashmap",
                &ops,
                thread_count,
            );
            group.finish();
        }
    }
}

fn config() -> Criterion {
    let quick = tokm_benches::quick();
    let (warm_up, measurement) = if quick {
        (Duration::from_millis(300), Duration::from_secs(1))
    } else {
        (Duration::from_millis(500), Duration::from_secs(2))
    };
    Criterion::default()
        .warm_up_time(warm_up)
        .measurement_time(measurement)
        .sample_size(10)
}

criterion_group! {
    name = benches;
    config = config();
    targets = cmap_mixes
}
criterion_main!(benches);

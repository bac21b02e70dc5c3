//! `tokm-cmap` beside `dashmap::DashMap` and `parking_lot::RwLock<std::collections::HashMap>`.
//!
//! Every group runs one operation mix at one thread count on all three maps, with the same
//! hasher (foldhash, `tokm_cmap::DefaultHashBuilder`), the same 1Mi pre-populated keys and the
//! same pre-generated operation sequence; no random numbers are drawn in the timed loop. The
//! mixes, sequences, maps and the timed run live in `tokm_benches::mixes`, which the acceptance
//! run (`cargo xtask bench`) also uses.
//!
//! Each sample builds a fresh map outside the timed region, so every sample starts from the same
//! state (rapid-grow really grows: its inserts add keys from a range twice the pre-populated
//! size). Throughput is operations per second summed over all threads.
//!
//! `TOKM_BENCH_QUICK=1` shortens warm-up and measurement for a smoke run.

mod common;

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use tokm_benches::mixes::{
    DashMapPeer, Mix, MixMap, PREPOPULATED_KEY_COUNT, RwLockHashMapPeer, TokmMap, Workload,
};

use crate::common::RunTimes;

/// Operations each thread runs per criterion iteration. Large, so that one iteration (a few
/// milliseconds) dwarfs starting the threads, and criterion's per-sample map rebuild (outside the
/// timed region but inside its wall-clock budget) does not starve the sample of iterations.
const OPS_PER_ITER_PER_THREAD: u64 = 1 << 15;
const THREAD_COUNTS: [usize; 2] = [1, 2];

fn bench_map<M: MixMap>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    workload: &Workload,
    thread_count: usize,
) {
    // Each sample continues where the previous stopped, so samples see different operations.
    let mut first_index = 0_usize;
    group.bench_function(M::NAME, |bencher| {
        bencher.iter_custom(|iters| {
            let ops_per_thread = iters * OPS_PER_ITER_PER_THREAD;
            let elapsed = workload
                .time_on_fresh_map::<M>(thread_count, first_index, ops_per_thread)
                .expect("1 or 2 threads start");
            first_index = first_index.wrapping_add(ops_per_thread as usize);
            elapsed
        });
    });
}

fn cmap_mixes(c: &mut Criterion) {
    for mix in Mix::ALL {
        let workload =
            Workload::new(mix, PREPOPULATED_KEY_COUNT).expect("1Mi keys is a valid workload");
        for thread_count in THREAD_COUNTS {
            let suffix = if thread_count == 1 {
                "thread"
            } else {
                "threads"
            };
            let mut group =
                c.benchmark_group(format!("cmap/{}/{thread_count}_{suffix}", mix.name()));
            group.throughput(Throughput::Elements(
                OPS_PER_ITER_PER_THREAD * thread_count as u64,
            ));
            bench_map::<TokmMap>(&mut group, &workload, thread_count);
            bench_map::<DashMapPeer>(&mut group, &workload, thread_count);
            bench_map::<RwLockHashMapPeer>(&mut group, &workload, thread_count);
            group.finish();
        }
    }
}

fn config() -> Criterion {
    common::criterion(
        10,
        RunTimes {
            warm_up: Duration::from_millis(500),
            measurement: Duration::from_secs(2),
        },
        RunTimes {
            warm_up: Duration::from_millis(300),
            measurement: Duration::from_secs(1),
        },
    )
}

criterion_group! {
    name = benches;
    config = config();
    targets = cmap_mixes
}
criterion_main!(benches);

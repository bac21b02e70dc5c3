//! `update` and `get_or_insert_with` are atomic per key: concurrent increments lose nothing and
//! concurrent first inserts agree on one value.

use std::sync::Barrier;

use crossbeam::thread;
use tokm_cmap::{MapOptions, ShardedMap};

const THREAD_COUNT: usize = 4;
const INCREMENTS_PER_THREAD: u64 = 5_000;

#[test]
fn concurrent_update_closures_lose_no_increment() {
    let map: ShardedMap<u8, u64> = ShardedMap::with_options(MapOptions {
        shard_count: Some(4),
        capacity: 0,
    })
    .expect("valid options");
    map.insert(0, 0);
    map.insert(1, 0);
    let start = Barrier::new(THREAD_COUNT);
    thread::scope(|scope| {
        for _ in 0..THREAD_COUNT {
            scope.spawn(|_| {
                start.wait();
                for step in 0..INCREMENTS_PER_THREAD {
                    let key = u8::from(step % 2 == 0);
                    map.update(&key, |value| *value += 1).expect("key present");
                }
            });
        }
    })
    .expect("no worker panicked");
    let per_key = THREAD_COUNT as u64 * INCREMENTS_PER_THREAD / 2;
    assert_eq!(map.get(&0), Some(per_key));
    assert_eq!(map.get(&1), Some(per_key));
}

#[test]
fn concurrent_get_or_insert_with_agree_on_one_value() {
    let map: ShardedMap<u32, usize> = ShardedMap::new();
    let start = Barrier::new(THREAD_COUNT);
    let seen = thread::scope(|scope| {
        let workers: Vec<_> = (0..THREAD_COUNT)
            .map(|thread_index| {
                let (map, start) = (&map, &start);
                scope.spawn(move |_| {
                    start.wait();
                    (0..100)
                        .map(|key| map.get_or_insert_with(key, || thread_index))
                        .collect()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("worker"))
            .collect::<Vec<Vec<_>>>()
    })
    .expect("no worker panicked");
    for key in 0..100 {
        let stored = map.get(&key).expect("inserted");
        for per_thread in &seen {
            assert_eq!(per_thread[key as usize], stored, "key {key}");
        }
    }
}

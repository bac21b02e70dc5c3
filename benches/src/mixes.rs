//! Operation mixes on `tokm-cmap` beside `dashmap` and `RwLock<HashMap>`, shared by the criterion
//! bench (`benches/cmap.rs`) and the acceptance run (`src/bin/acceptance.rs`).
//!
//! Is: three fixed mixes of get, insert, remove and update ([`Mix::ALL`], with the `tokm-cmap`
//! issue's goals against `dashmap`); a [`Workload`] that pre-generates a mix's operation sequence
//! over `u64` keys; map preparation; a timed run of that sequence on 1 to [`THREAD_COUNT_MAX`]
//! threads; and [`compare_with_dashmap`], the plain timing entry point for the acceptance table.
//!
//! Is not: a statistics package (criterion does that for the bench; the acceptance run keeps the
//! best of a few interleaved rounds), nor a test of map correctness beyond the model check in its
//! unit tests.
//!
//! Every map gets the same hasher (foldhash, [`tokm_cmap::DefaultHashBuilder`]), the same
//! pre-populated keys and the same pre-generated operations; no random number is drawn while the
//! clock runs. Inserts draw keys from twice the pre-populated range, so about half of them add a
//! key; gets, removes and updates draw from the pre-populated range.
//!
//! ```
//! use tokm_benches::mixes::compare_with_dashmap;
//!
//! // A tiny run; the acceptance run uses 1Mi keys (`1 << 20`).
//! let results = compare_with_dashmap(1 << 10, &[1, 2], 1 << 10, 1)?;
//! assert_eq!(results.len(), 3 * 2); // every mix at every thread count
//! for result in &results {
//!     assert!(result.tokm_ops_per_sec > 0.0 && result.dashmap_ops_per_sec.is_finite());
//! }
//! # Ok::<(), tokm_benches::mixes::MixError>(())
//! ```
//!
//! API: [`Mix`], [`Workload`] (with [`Workload::time_on_fresh_map`] for criterion's
//! `iter_custom`), the [`MixMap`] trait and its three maps [`TokmMap`], [`DashMapPeer`] and
//! [`RwLockHashMapPeer`], [`compare_with_dashmap`] returning [`MixResult`]s, and [`MixError`].

use std::collections::HashMap;
use std::fmt;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::RwLock;
use serde::Serialize;
use tokm_cmap::{DefaultHashBuilder, ShardedMap};

/// Keys the criterion bench pre-populates every map with, and the acceptance run's full size.
pub const PREPOPULATED_KEY_COUNT: usize = 1 << 20;
/// Most keys a [`Workload`] accepts: beyond this the maps alone would not fit a bench machine's
/// memory, and twice the count (the insert range) must not overflow.
pub const KEY_COUNT_MAX: usize = 1 << 28;
/// Most threads a timed run starts; far above the cores of any machine this runs on.
pub const THREAD_COUNT_MAX: usize = 64;
/// Length of every pre-generated operation sequence; a power of two so indexing is a mask. Runs
/// longer than this wrap around; threads start evenly spaced in it.
pub const OP_SEQUENCE_LEN: usize = 1 << 20;
/// Seed of the operation sequences: every run, every map and every machine sees the same ones.
const OP_SEQUENCE_SEED: u64 = 0x746F_6B6D;

/// One operation mix: the percentages of get, insert, remove and update, summing to 100.
///
/// Only the three mixes below exist. Their goals against `dashmap` ([`Mix::goal_vs_dashmap`])
/// are the project's own: the original targets the acceptance table quotes set none for the
/// map alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    name: &'static str,
    get_percent: u64,
    insert_percent: u64,
    remove_percent: u64,
    update_percent: u64,
    /// Least `tokm-cmap` throughput the issue asks for, in percent of `dashmap`'s; `None` where
    /// it asks for none. A percentage rather than an `f64` so `Mix` stays `Eq`.
    goal_percent_of_dashmap: Option<u64>,
}

impl Mix {
    /// 98% get, 1% insert, 1% remove: a session store serving reads.
    pub const READ_HEAVY: Mix = Mix {
        name: "read_heavy",
        get_percent: 98,
        insert_percent: 1,
        remove_percent: 1,
        update_percent: 0,
        goal_percent_of_dashmap: Some(100),
    };
    /// 10% get, 40% insert, 40% remove, 10% update: churn at a roughly constant size.
    pub const EXCHANGE: Mix = Mix {
        name: "exchange",
        get_percent: 10,
        insert_percent: 40,
        remove_percent: 40,
        update_percent: 10,
        goal_percent_of_dashmap: Some(80),
    };
    /// 5% get, 80% insert, 5% remove, 10% update: the map grows while it is used.
    pub const RAPID_GROW: Mix = Mix {
        name: "rapid_grow",
        get_percent: 5,
        insert_percent: 80,
        remove_percent: 5,
        update_percent: 10,
        goal_percent_of_dashmap: None,
    };
    /// Every mix, in the order benches and the acceptance table list them.
    pub const ALL: [Mix; 3] = [Mix::READ_HEAVY, Mix::EXCHANGE, Mix::RAPID_GROW];

    /// The mix's name as it appears in criterion group names (`cmap/<name>/1_thread`) and in the
    /// acceptance table, e.g. `"read_heavy"`.
    pub fn name(self) -> &'static str {
        self.name
    }

    /// The mix called `name` (see [`name`](Self::name)), if there is one.
    pub fn named(name: &str) -> Option<Mix> {
        Mix::ALL.into_iter().find(|mix| mix.name == name)
    }

    /// The least ratio of `tokm-cmap`'s throughput to `dashmap`'s that the `tokm-cmap` issue
    /// asks for on this mix: 1.0 on read-heavy, 0.8 on exchange, none on rapid-grow.
    pub fn goal_vs_dashmap(self) -> Option<f64> {
        self.goal_percent_of_dashmap
            .map(|percent| percent as f64 / 100.0)
    }

    /// The kind of operation a roll in `0..100` stands for.
    fn kind_of_roll(self, roll: u64) -> OpKind {
        if roll < self.get_percent {
            OpKind::Get
        } else if roll < self.get_percent + self.insert_percent {
            OpKind::Insert
        } else if roll < self.get_percent + self.insert_percent + self.remove_percent {
            OpKind::Remove
        } else {
            OpKind::Update
        }
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}% get, {}% insert, {}% remove, {}% update)",
            self.name,
            self.get_percent,
            self.insert_percent,
            self.remove_percent,
            self.update_percent
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Get,
    Insert,
    Remove,
    Update,
}

#[derive(Debug, Clone, Copy)]
struct Op {
    kind: OpKind,
    key: u64,
}

/// splitmix64 as a stream: a fixed-seed generator, cheap enough to pre-generate a million ops.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`; `bound` is at least 1 (a [`Workload`] has at least one key).
    fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

/// Distinct, scattered keys (splitmix64's output function is a bijection); index `i` always maps
/// to the same key.
fn key_at(index: usize) -> u64 {
    SplitMix64(index as u64).next_u64()
}

/// The operations measured, implemented by each map in its idiomatic way.
pub trait MixMap: Sync {
    /// Name of the map in criterion function names and reports, e.g. `"tokm-cmap"`.
    const NAME: &'static str;
    /// An empty map with the map's default shard count and the shared foldhash hasher.
    fn empty() -> Self;
    /// The value for `key`, copied out.
    fn get(&self, key: u64) -> Option<u64>;
    /// Inserts or replaces; returns the old value.
    fn insert(&self, key: u64, value: u64) -> Option<u64>;
    /// Removes `key`; returns its value.
    fn remove(&self, key: u64) -> Option<u64>;
    /// Adds one to the value of `key` in place; `None` if absent.
    fn update(&self, key: u64) -> Option<()>;
    /// Number of keys.
    fn len(&self) -> usize;
    /// Whether the map has no keys.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `tokm-cmap`'s map as the mixes use it.
pub type TokmMap = ShardedMap<u64, u64>;
/// `dashmap` with the same hasher as [`TokmMap`].
pub type DashMapPeer = DashMap<u64, u64, DefaultHashBuilder>;
/// One `parking_lot::RwLock` around a std `HashMap`, with the same hasher: the baseline.
pub type RwLockHashMapPeer = RwLock<HashMap<u64, u64, DefaultHashBuilder>>;

impl MixMap for TokmMap {
    const NAME: &'static str = "tokm-cmap";
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
    fn len(&self) -> usize {
        ShardedMap::len(self)
    }
}

impl MixMap for DashMapPeer {
    const NAME: &'static str = "dashmap";
    fn empty() -> Self {
        // Default shard count: the next power of two of 4 x cores, as tokm-cmap's.
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
    fn len(&self) -> usize {
        DashMap::len(self)
    }
}

impl MixMap for RwLockHashMapPeer {
    const NAME: &'static str = "rwlock-hashmap";
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
    fn len(&self) -> usize {
        self.read().len()
    }
}

/// One mix over `key_count` keys, with its operation sequence generated up front.
pub struct Workload {
    mix: Mix,
    key_count: usize,
    /// `OP_SEQUENCE_LEN` operations; inserts use keys `key_at(0..2 * key_count)`, the others
    /// `key_at(0..key_count)`.
    ops: Vec<Op>,
}

impl fmt::Debug for Workload {
    // The sequence is a million entries: show its length, not its contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workload")
            .field("mix", &self.mix.name)
            .field("key_count", &self.key_count)
            .field("op_count", &self.ops.len())
            .finish()
    }
}

impl Workload {
    /// Generates the operation sequence of `mix` over maps pre-populated with `key_count` keys.
    ///
    /// # Errors
    /// [`MixError::NoKeys`] if `key_count` is 0, [`MixError::TooManyKeys`] above
    /// [`KEY_COUNT_MAX`].
    pub fn new(mix: Mix, key_count: usize) -> Result<Self, MixError> {
        if key_count == 0 {
            return Err(MixError::NoKeys);
        }
        if key_count > KEY_COUNT_MAX {
            return Err(MixError::TooManyKeys { key_count });
        }
        assert_eq!(
            mix.get_percent + mix.insert_percent + mix.remove_percent + mix.update_percent,
            100,
            "mix {} does not sum to 100%",
            mix.name
        );
        let insert_key_range = 2 * key_count;
        let mut random = SplitMix64(OP_SEQUENCE_SEED);
        let ops = (0..OP_SEQUENCE_LEN)
            .map(|_| {
                let kind = mix.kind_of_roll(random.next_u64() % 100);
                let key_range = match kind {
                    OpKind::Insert => insert_key_range,
                    OpKind::Get | OpKind::Remove | OpKind::Update => key_count,
                };
                Op {
                    kind,
                    key: key_at(random.below(key_range)),
                }
            })
            .collect();
        Ok(Self {
            mix,
            key_count,
            ops,
        })
    }

    /// A fresh map holding the workload's `key_count` keys (each key's value is the key).
    pub fn prepopulated<M: MixMap>(&self) -> M {
        let map = M::empty();
        for index in 0..self.key_count {
            let key = key_at(index);
            map.insert(key, key);
        }
        map
    }

    /// Runs `ops_per_thread` operations on each of `thread_count` threads against `map` and
    /// returns the time from the moment every thread is started and waiting until the last one
    /// is done (starting and stopping threads is not timed).
    ///
    /// Thread `t` starts at position `first_index + t * OP_SEQUENCE_LEN / thread_count` of the
    /// sequence and wraps around its end, so threads work on different parts of it; passing a
    /// different `first_index` per sample lets successive samples see different operations.
    ///
    /// # Errors
    /// [`MixError::ThreadCount`] if `thread_count` is 0 or above [`THREAD_COUNT_MAX`];
    /// [`MixError::Spawn`] if the OS refuses a thread (threads already started are released
    /// without running).
    pub fn run<M: MixMap>(
        &self,
        map: &M,
        thread_count: usize,
        first_index: usize,
        ops_per_thread: u64,
    ) -> Result<Duration, MixError> {
        check_thread_count(thread_count)?;
        let (ready_sender, ready_receiver) = crossbeam::channel::bounded::<()>(thread_count);
        let (done_sender, done_receiver) = crossbeam::channel::bounded::<()>(thread_count);
        // Nothing is ever sent on `go`: dropping its sender wakes every waiting thread at once.
        let (go_sender, go_receiver) = crossbeam::channel::bounded::<()>(0);
        let aborted = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for thread_index in 0..thread_count {
                let start = first_index.wrapping_add(thread_index * self.ops.len() / thread_count);
                let (ready, done, go, aborted) = (
                    ready_sender.clone(),
                    done_sender.clone(),
                    go_receiver.clone(),
                    &aborted,
                );
                let spawned = std::thread::Builder::new()
                    .name(format!("mix-{}-{thread_index}", self.mix.name))
                    .spawn_scoped(scope, move || {
                        // A failed send or a finished recv only means the main thread has given
                        // up or released us; `aborted` tells which.
                        let _ = ready.send(());
                        let _ = go.recv();
                        if aborted.load(Ordering::SeqCst) {
                            return;
                        }
                        run_ops(map, &self.ops, start, ops_per_thread);
                        let _ = done.send(());
                    });
                if let Err(source) = spawned {
                    aborted.store(true, Ordering::SeqCst);
                    drop(go_sender);
                    return Err(MixError::Spawn { source });
                }
            }
            // Only workers hold senders now, so a receive loop ends when they are all gone.
            drop((ready_sender, done_sender));
            ready_receiver.iter().take(thread_count).for_each(drop);
            let started = Instant::now();
            drop(go_sender);
            done_receiver.iter().take(thread_count).for_each(drop);
            Ok(started.elapsed())
        })
    }

    /// [`run`](Self::run) on a freshly [`prepopulated`](Self::prepopulated) map of type `M`, so
    /// every sample starts from the same state (rapid-grow really grows). Building and dropping
    /// the map are not timed.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn time_on_fresh_map<M: MixMap>(
        &self,
        thread_count: usize,
        first_index: usize,
        ops_per_thread: u64,
    ) -> Result<Duration, MixError> {
        check_thread_count(thread_count)?;
        let map = self.prepopulated::<M>();
        self.run(&map, thread_count, first_index, ops_per_thread)
    }
}

fn check_thread_count(thread_count: usize) -> Result<(), MixError> {
    if thread_count == 0 || thread_count > THREAD_COUNT_MAX {
        return Err(MixError::ThreadCount { thread_count });
    }
    Ok(())
}

/// The per-thread loop: `op_count` operations from position `first_index` of `ops`, wrapping.
fn run_ops<M: MixMap>(map: &M, ops: &[Op], first_index: usize, op_count: u64) {
    debug_assert!(ops.len().is_power_of_two());
    let mask = ops.len() - 1;
    let mut index = first_index;
    for _ in 0..op_count {
        let op = ops[index & mask];
        index = index.wrapping_add(1);
        // black_box keeps the optimiser from dropping reads whose results are unused.
        match op.kind {
            OpKind::Get => black_box(map.get(op.key)),
            OpKind::Insert => black_box(map.insert(op.key, op.key)),
            OpKind::Remove => black_box(map.remove(op.key)),
            OpKind::Update => black_box(map.update(op.key).map(|()| op.key)),
        };
    }
}

/// One mix at one thread count: throughput of `tokm-cmap` and `dashmap`, operations per second
/// summed over all threads, each the best of the rounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MixResult {
    /// [`Mix::name`], e.g. `"read_heavy"`.
    pub mix: &'static str,
    /// Threads running the mix at once.
    pub threads: usize,
    /// `tokm-cmap`'s operations per second, all threads together.
    pub tokm_ops_per_sec: f64,
    /// `dashmap`'s operations per second, all threads together.
    pub dashmap_ops_per_sec: f64,
}

impl MixResult {
    /// `tokm_ops_per_sec / dashmap_ops_per_sec`: above 1 means tokm-cmap is faster.
    pub fn ratio(&self) -> f64 {
        self.tokm_ops_per_sec / self.dashmap_ops_per_sec
    }

    /// The mix's goal for [`ratio`](Self::ratio) ([`Mix::goal_vs_dashmap`]), if it has one.
    pub fn goal_vs_dashmap(&self) -> Option<f64> {
        Mix::named(self.mix).and_then(Mix::goal_vs_dashmap)
    }

    /// Whether [`ratio`](Self::ratio) reaches the mix's goal; `None` for a mix without one.
    pub fn goal_met(&self) -> Option<bool> {
        self.goal_vs_dashmap().map(|goal| self.ratio() >= goal)
    }
}

/// Runs every mix at every thread count in `threads` on `tokm-cmap` and `dashmap`, each map
/// pre-populated with `keys` keys and running `ops_per_thread` operations per thread per round.
///
/// The two maps alternate (tokm, dashmap, tokm, dashmap, ... for `rounds` rounds), each round on
/// a fresh map and both maps of a round on the same operations, so drift in machine load hits
/// both alike. Each figure is the **best** of its rounds: on a shared machine interference only
/// ever slows a round down, so the fastest round is the closest to the map's own cost, whereas a
/// median would still carry how busy the machine was; both maps get the same number of rounds,
/// so taking the best favours neither.
///
/// Cost: at `keys = 1 << 20` building each fresh map dominates (about 130 ms per map in a
/// release build, against about 35 ms for 2^18 operations), so `ops_per_thread = 1 << 18` with
/// `rounds = 3` took 6.0 to 6.7 s on the 2-core development machine; at `keys = 1 << 14`,
/// `ops_per_thread = 1 << 16` and `rounds = 3` it took about 0.2 s.
///
/// # Errors
/// [`MixError::NoKeys`] or [`MixError::TooManyKeys`] for `keys`, [`MixError::NoThreadCounts`]
/// for an empty `threads`, [`MixError::ThreadCount`] for an entry of 0 or above
/// [`THREAD_COUNT_MAX`], [`MixError::NoOps`] and [`MixError::NoRounds`] for zeros, and
/// [`MixError::Spawn`] if a thread cannot be started. Arguments are checked before any work.
pub fn compare_with_dashmap(
    keys: usize,
    threads: &[usize],
    ops_per_thread: u64,
    rounds: usize,
) -> Result<Vec<MixResult>, MixError> {
    if keys == 0 {
        return Err(MixError::NoKeys);
    }
    if keys > KEY_COUNT_MAX {
        return Err(MixError::TooManyKeys { key_count: keys });
    }
    if threads.is_empty() {
        return Err(MixError::NoThreadCounts);
    }
    threads.iter().copied().try_for_each(check_thread_count)?;
    if ops_per_thread == 0 {
        return Err(MixError::NoOps);
    }
    if rounds == 0 {
        return Err(MixError::NoRounds);
    }
    let mut results = Vec::with_capacity(Mix::ALL.len() * threads.len());
    for mix in Mix::ALL {
        let workload = Workload::new(mix, keys)?;
        for &thread_count in threads {
            let mut tokm_best = Duration::MAX;
            let mut dashmap_best = Duration::MAX;
            for round in 0..rounds {
                // Each round continues where the previous one stopped in the sequence.
                let first_index = (round as u64).wrapping_mul(ops_per_thread) as usize;
                let tokm = workload.time_on_fresh_map::<TokmMap>(
                    thread_count,
                    first_index,
                    ops_per_thread,
                )?;
                let dashmap = workload.time_on_fresh_map::<DashMapPeer>(
                    thread_count,
                    first_index,
                    ops_per_thread,
                )?;
                tokm_best = tokm_best.min(tokm);
                dashmap_best = dashmap_best.min(dashmap);
            }
            let op_count = ops_per_thread as f64 * thread_count as f64;
            results.push(MixResult {
                mix: mix.name,
                threads: thread_count,
                tokm_ops_per_sec: ops_per_sec(op_count, tokm_best),
                dashmap_ops_per_sec: ops_per_sec(op_count, dashmap_best),
            });
        }
    }
    Ok(results)
}

/// `op_count / elapsed`, with `elapsed` at least a nanosecond so the rate stays finite.
fn ops_per_sec(op_count: f64, elapsed: Duration) -> f64 {
    op_count / elapsed.max(Duration::from_nanos(1)).as_secs_f64()
}

/// Why a mix could not be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MixError {
    /// A workload needs at least one pre-populated key.
    #[error("TM-BENCH-4001: a mix needs at least one pre-populated key")]
    NoKeys,
    /// More keys than [`KEY_COUNT_MAX`].
    #[error("TM-BENCH-4131: {key_count} keys is above the limit of {KEY_COUNT_MAX}")]
    TooManyKeys {
        /// The key count asked for.
        key_count: usize,
    },
    /// A thread count of 0 or above [`THREAD_COUNT_MAX`].
    #[error("TM-BENCH-4002: thread count {thread_count} is outside 1..={THREAD_COUNT_MAX}")]
    ThreadCount {
        /// The thread count asked for.
        thread_count: usize,
    },
    /// [`compare_with_dashmap`] was given no thread counts.
    #[error("TM-BENCH-4003: no thread counts to run the mixes at")]
    NoThreadCounts,
    /// Zero operations per thread would time nothing.
    #[error("TM-BENCH-4004: operations per thread must be at least 1")]
    NoOps,
    /// Zero rounds would measure nothing.
    #[error("TM-BENCH-4005: rounds must be at least 1")]
    NoRounds,
    /// The OS refused to start a benchmark thread.
    #[error("TM-BENCH-5001: could not start a benchmark thread")]
    Spawn {
        /// The OS error.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::*;

    /// Small enough for debug builds; the sequences are still `OP_SEQUENCE_LEN` long.
    const TEST_KEY_COUNT: usize = 1 << 12;

    fn share_of(workload: &Workload, kind: OpKind) -> f64 {
        let count = workload.ops.iter().filter(|op| op.kind == kind).count();
        count as f64 * 100.0 / workload.ops.len() as f64
    }

    #[test]
    fn op_sequences_have_the_mix_percentages() {
        for mix in Mix::ALL {
            let workload = Workload::new(mix, TEST_KEY_COUNT).expect("valid workload");
            assert_eq!(workload.ops.len(), OP_SEQUENCE_LEN);
            // A million draws put each share within ~0.05 points (one standard deviation) of its
            // percentage; 0.5 points is ten of them.
            for (kind, percent) in [
                (OpKind::Get, mix.get_percent),
                (OpKind::Insert, mix.insert_percent),
                (OpKind::Remove, mix.remove_percent),
                (OpKind::Update, mix.update_percent),
            ] {
                let share = share_of(&workload, kind);
                assert!(
                    (share - percent as f64).abs() < 0.5,
                    "{mix}: {kind:?} is {share:.2}%"
                );
            }
        }
    }

    #[test]
    fn only_inserts_reach_beyond_the_prepopulated_keys() {
        let prepopulated: HashSet<u64> = (0..TEST_KEY_COUNT).map(key_at).collect();
        let insert_range: HashSet<u64> = (0..2 * TEST_KEY_COUNT).map(key_at).collect();
        assert_eq!(insert_range.len(), 2 * TEST_KEY_COUNT, "keys are distinct");
        let workload = Workload::new(Mix::EXCHANGE, TEST_KEY_COUNT).expect("valid workload");
        let mut new_key_inserts = 0_usize;
        for op in &workload.ops {
            if op.kind == OpKind::Insert {
                assert!(insert_range.contains(&op.key));
                new_key_inserts += usize::from(!prepopulated.contains(&op.key));
            } else {
                assert!(prepopulated.contains(&op.key), "{op:?}");
            }
        }
        assert!(new_key_inserts > 0, "some inserts add keys");
    }

    #[test]
    fn sequences_are_the_same_on_every_generation() {
        let first = Workload::new(Mix::RAPID_GROW, TEST_KEY_COUNT).expect("valid workload");
        let second = Workload::new(Mix::RAPID_GROW, TEST_KEY_COUNT).expect("valid workload");
        assert!(
            first
                .ops
                .iter()
                .zip(&second.ops)
                .all(|(a, b)| a.kind == b.kind && a.key == b.key)
        );
    }

    /// Every entry of a map, sorted, by the map's own iteration.
    fn tokm_entries(map: &TokmMap) -> BTreeMap<u64, u64> {
        map.items().into_iter().collect()
    }

    fn dashmap_entries(map: &DashMapPeer) -> BTreeMap<u64, u64> {
        map.iter()
            .map(|entry| (*entry.key(), *entry.value()))
            .collect()
    }

    fn rwlock_entries(map: &RwLockHashMapPeer) -> BTreeMap<u64, u64> {
        map.read()
            .iter()
            .map(|(&key, &value)| (key, value))
            .collect()
    }

    #[test]
    fn every_map_ends_a_single_thread_run_in_the_same_state() {
        // 1 thread runs the sequence in order, so all three maps must agree entry for entry:
        // the std HashMap behind one lock is the model for the two concurrent maps.
        let ops_per_thread = 20_000;
        for mix in Mix::ALL {
            let workload = Workload::new(mix, TEST_KEY_COUNT).expect("valid workload");
            let tokm = workload.prepopulated::<TokmMap>();
            let dashmap = workload.prepopulated::<DashMapPeer>();
            let model = workload.prepopulated::<RwLockHashMapPeer>();
            assert_eq!(MixMap::len(&tokm), TEST_KEY_COUNT);
            for map_run in [
                workload.run(&tokm, 1, 7, ops_per_thread),
                workload.run(&dashmap, 1, 7, ops_per_thread),
                workload.run(&model, 1, 7, ops_per_thread),
            ] {
                map_run.expect("threads start");
            }
            let expected = rwlock_entries(&model);
            assert_ne!(
                expected.len(),
                TEST_KEY_COUNT,
                "{mix} changed the key count"
            );
            assert_eq!(MixMap::len(&tokm), expected.len(), "{mix}");
            assert_eq!(MixMap::len(&dashmap), expected.len(), "{mix}");
            assert_eq!(tokm_entries(&tokm), expected, "{mix}");
            assert_eq!(dashmap_entries(&dashmap), expected, "{mix}");
        }
    }

    #[test]
    fn a_two_thread_run_grows_the_map_within_the_insert_range() {
        // Rapid-grow at 2 threads: the key count grows but stays within the insert range, and
        // values start at their key and updates only add one, so no value is below its key (the
        // keys are fixed and none lies near u64::MAX, where adding could wrap).
        let workload = Workload::new(Mix::RAPID_GROW, TEST_KEY_COUNT).expect("valid workload");
        let map = workload.prepopulated::<TokmMap>();
        workload.run(&map, 2, 0, 10_000).expect("threads start");
        let len = MixMap::len(&map);
        assert!(len > TEST_KEY_COUNT && len <= 2 * TEST_KEY_COUNT, "{len}");
        assert!(map.items().into_iter().all(|(key, value)| value >= key));
    }

    #[test]
    fn comparison_results_are_positive_and_finite() {
        let threads = [1, 2];
        let results = compare_with_dashmap(TEST_KEY_COUNT, &threads, 2_000, 2).expect("runs");
        assert_eq!(results.len(), Mix::ALL.len() * threads.len());
        for (result, (mix, thread_count)) in results.iter().zip(
            Mix::ALL
                .iter()
                .flat_map(|mix| threads.iter().map(move |&count| (mix, count))),
        ) {
            assert_eq!((result.mix, result.threads), (mix.name(), thread_count));
            for rate in [result.tokm_ops_per_sec, result.dashmap_ops_per_sec] {
                assert!(rate.is_finite() && rate > 0.0, "{result:?}");
            }
            assert!(result.ratio().is_finite() && result.ratio() > 0.0);
        }
    }

    #[test]
    fn bad_arguments_are_refused_before_any_work() {
        let cases = [
            (compare_with_dashmap(0, &[1], 1, 1), "TM-BENCH-4001"),
            (
                compare_with_dashmap(KEY_COUNT_MAX + 1, &[1], 1, 1),
                "TM-BENCH-4131",
            ),
            (compare_with_dashmap(1, &[], 1, 1), "TM-BENCH-4003"),
            (compare_with_dashmap(1, &[1, 0], 1, 1), "TM-BENCH-4002"),
            (
                compare_with_dashmap(1, &[THREAD_COUNT_MAX + 1], 1, 1),
                "TM-BENCH-4002",
            ),
            (compare_with_dashmap(1, &[1], 0, 1), "TM-BENCH-4004"),
            (compare_with_dashmap(1, &[1], 1, 0), "TM-BENCH-4005"),
        ];
        for (outcome, code) in cases {
            let error = outcome.expect_err(code);
            assert!(error.to_string().starts_with(code), "{error}");
        }
        let workload = Workload::new(Mix::READ_HEAVY, 1).expect("one key is enough");
        let map = workload.prepopulated::<TokmMap>();
        let error = workload.run(&map, 0, 0, 1).expect_err("no threads");
        assert!(error.to_string().starts_with("TM-BENCH-4002"), "{error}");
        let error = Workload::new(Mix::READ_HEAVY, 0).expect_err("no keys");
        assert!(error.to_string().starts_with("TM-BENCH-4001"), "{error}");
    }

    #[test]
    fn mixes_sum_to_one_hundred_and_have_distinct_names() {
        let names: HashSet<&str> = Mix::ALL.iter().map(|mix| mix.name()).collect();
        assert_eq!(names.len(), Mix::ALL.len());
        for mix in Mix::ALL {
            let total =
                mix.get_percent + mix.insert_percent + mix.remove_percent + mix.update_percent;
            assert_eq!(total, 100, "{mix}");
        }
        assert_eq!(
            Mix::READ_HEAVY.to_string(),
            "read_heavy (98% get, 1% insert, 1% remove, 0% update)"
        );
    }

    #[test]
    fn goals_follow_the_cmap_issue_and_results_find_them_by_name() {
        let goals: Vec<Option<f64>> = Mix::ALL.iter().map(|mix| mix.goal_vs_dashmap()).collect();
        assert_eq!(goals, [Some(1.0), Some(0.8), None]);
        assert_eq!(Mix::named("exchange"), Some(Mix::EXCHANGE));
        assert_eq!(Mix::named("read-heavy"), None, "names use underscores");
        let result = |mix, tokm_ops_per_sec| MixResult {
            mix,
            threads: 1,
            tokm_ops_per_sec,
            dashmap_ops_per_sec: 100.0,
        };
        assert_eq!(result("read_heavy", 100.0).goal_met(), Some(true));
        assert_eq!(result("read_heavy", 99.0).goal_met(), Some(false));
        assert_eq!(result("exchange", 80.0).goal_met(), Some(true));
        assert_eq!(result("exchange", 79.0).goal_met(), Some(false));
        assert_eq!(result("rapid_grow", 1.0).goal_met(), None);
    }
}

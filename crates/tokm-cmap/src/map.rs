//! [`ShardedMap`]: the shards, the options that size them, and the plain (unversioned) operations.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::num::NonZero;
use std::ops::ControlFlow;

use crossbeam_utils::CachePadded;
use parking_lot::RwLock;

use crate::error::CmapError;

/// The default `BuildHasher`: foldhash's fast hasher, randomly seeded per map.
///
/// Re-exported so that code comparing against other maps (benchmarks) or building its own tables
/// can hash exactly as [`ShardedMap`] does.
pub type DefaultHashBuilder = foldhash::fast::RandomState;

/// The largest shard count [`ShardedMap::with_options`] accepts.
///
/// The shard index is taken from 16 hash bits (40..56) that the shard tables do not use, and
/// beyond this many shards the per-shard overhead (a cache-padded lock
/// and an empty table, 128 bytes each) outweighs any reduction in contention.
pub const SHARD_COUNT_MAX: usize = 1 << 16;

/// Where the shard index starts in the 64-bit hash.
///
/// The shard tables (std `HashMap`, i.e. hashbrown) hash with a clone of the map's `BuildHasher`,
/// so they see the same 64-bit hash; they pick the bucket from its low bits and a 7-bit tag from
/// its top bits (57..64). Taking the shard from bits 40..56 keeps it independent of both: had it
/// come from the low bits, every key in one shard would share them and crowd into a fraction of
/// that shard's buckets.
const SHARD_HASH_SHIFT: u32 = 40;

/// One shard: a lock around a table, padded to its own cache lines so that threads working on
/// neighbouring shards do not invalidate each other's lock word.
type Shard<K, V, S> = CachePadded<RwLock<HashMap<K, V, S>>>;

/// How to build a [`ShardedMap`]. `MapOptions::default()` gives the default shard count and no
/// reserved capacity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapOptions {
    /// Number of shards: a power of two from 1 to [`SHARD_COUNT_MAX`]. `None` picks
    /// [`default_shard_count`].
    pub shard_count: Option<usize>,
    /// Entries to reserve room for up front, spread evenly over the shards; 0 reserves nothing.
    pub capacity: usize,
}

/// Size of one shard at the moment it was read (see [`ShardedMap::shard_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardStats {
    /// Entries in the shard.
    pub len: usize,
    /// Entries the shard can hold before its table grows.
    pub capacity: usize,
}

/// Shard count used when [`MapOptions::shard_count`] is `None`: the next power of two of four
/// times the available parallelism (8 on a 2-core machine), capped at [`SHARD_COUNT_MAX`].
///
/// Four shards per core keep the chance that two running threads want the same shard low without
/// spreading small maps over many half-empty tables.
#[must_use]
pub fn default_shard_count() -> usize {
    let parallelism = std::thread::available_parallelism().map_or(1, NonZero::get);
    parallelism
        .saturating_mul(4)
        .checked_next_power_of_two()
        .map_or(SHARD_COUNT_MAX, |count| count.min(SHARD_COUNT_MAX))
}

/// A concurrent hash map split into independently locked shards.
///
/// Bits of the key's hash pick the shard; the shard's std `HashMap`, built with a clone of the
/// same `BuildHasher`, hashes the key again for its buckets. Operations on one key take only that key's shard lock: reads
/// share it, writes hold it exclusively, so every single-key operation (including the closure of
/// [`update`](Self::update)) is atomic with respect to every other operation on that key.
///
/// Values are returned by clone ([`get`](Self::get)) or read in place under the shard's read lock
/// ([`get_with`](Self::get_with)); no guard escapes a call, so a caller can never hold a lock by
/// accident.
///
/// # Closures run under a shard lock
///
/// Every closure a method takes runs while that method holds a shard lock. The closure must not
/// call any method of the same map: if it touches the shard it is running under, the thread
/// waits for a lock it holds itself and deadlocks (`parking_lot` locks are not re-entrant, and a
/// read lock may block behind a queued writer, so even read-inside-read can deadlock). Touching
/// another shard is no safer, since two threads doing so in opposite orders deadlock each other.
/// Keep closures short: other operations on the shard wait for them. A closure that panics
/// releases the lock (locks are not poisoned); [`update`](Self::update) may then leave the value
/// half modified.
///
/// # Iteration is per shard
///
/// [`range`](Self::range), [`range_with_limit`](Self::range_with_limit), [`keys`](Self::keys),
/// [`values`](Self::values), [`items`](Self::items) and [`len`](Self::len) hold one shard's read
/// lock at a time. Each shard is seen consistently, but the map as a whole is **not** a
/// point-in-time snapshot: writes to shards not yet visited are seen, writes to shards already
/// visited are not, and a key moved (removed and re-inserted) during iteration may be seen twice
/// or not at all.
///
/// # Why each operation hashes twice
///
/// The std `HashMap` API cannot take a precomputed hash. A variant that hashed once and stored the
/// hash beside each key (the tables then read it back through a pass-through hasher) was measured
/// against this one with 1Mi `u64` keys, single-threaded, by thread CPU time, medians of nine, in
/// four runs of three mixes (read-heavy, exchange, rapid-grow): hashing twice was as fast or
/// faster in 11 of 12 (by 0-17%, typically 5%) and 2% slower in one, and it saves 8 bytes per
/// entry. The stored hash costs more cache misses than the second foldhash (nanoseconds) saves.
pub struct ShardedMap<K, V, S = DefaultHashBuilder> {
    /// Lock order: no method holds more than one shard lock at a time, so shard locks need no
    /// order among themselves. Always `shards.len() == shard_mask + 1`, a power of two.
    shards: Box<[Shard<K, V, S>]>,
    shard_mask: usize,
    hash_builder: S,
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    /// An empty map with [`default_shard_count`] shards and the default hasher.
    #[must_use]
    pub fn new() -> Self {
        Self::from_parts(default_shard_count(), DefaultHashBuilder::default())
    }

    /// An empty map sized by `options`, with the default hasher.
    ///
    /// # Errors
    /// [`CmapError`] if the shard count is 0, not a power of two or above [`SHARD_COUNT_MAX`], or
    /// if room for `capacity` entries cannot be reserved.
    pub fn with_options(options: MapOptions) -> Result<Self, CmapError> {
        Self::with_options_and_hasher(options, DefaultHashBuilder::default())
    }
}

impl<K: Hash + Eq, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, S> ShardedMap<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher + Clone,
{
    /// An empty map sized by `options` that hashes keys with `hash_builder` (cloned into every
    /// shard).
    ///
    /// # Errors
    /// As [`with_options`](ShardedMap::with_options).
    pub fn with_options_and_hasher(
        options: MapOptions,
        hash_builder: S,
    ) -> Result<Self, CmapError> {
        let shard_count = match options.shard_count {
            None => default_shard_count(),
            Some(0) => return Err(CmapError::ShardCountZero),
            Some(count) if !count.is_power_of_two() => {
                return Err(CmapError::ShardCountNotPowerOfTwo { shard_count: count });
            }
            Some(count) if count > SHARD_COUNT_MAX => {
                return Err(CmapError::ShardCountTooLarge {
                    shard_count: count,
                    shard_count_max: SHARD_COUNT_MAX,
                });
            }
            Some(count) => count,
        };
        let map = Self::from_parts(shard_count, hash_builder);
        if options.capacity > 0 {
            let per_shard = options.capacity.div_ceil(shard_count);
            for shard in &map.shards {
                shard.write().try_reserve(per_shard).map_err(|source| {
                    CmapError::CapacityUnavailable {
                        capacity: options.capacity,
                        source,
                    }
                })?;
            }
        }
        Ok(map)
    }

    /// Builds the shards; `shard_count` was validated by the caller.
    fn from_parts(shard_count: usize, hash_builder: S) -> Self {
        assert!(shard_count.is_power_of_two() && shard_count <= SHARD_COUNT_MAX);
        let shards = (0..shard_count)
            .map(|_| CachePadded::new(RwLock::new(HashMap::with_hasher(hash_builder.clone()))))
            .collect();
        Self {
            shards,
            shard_mask: shard_count - 1,
            hash_builder,
        }
    }

    /// The shard that holds `key`.
    #[inline]
    pub(crate) fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &Shard<K, V, S> {
        let hash = self.hash_builder.hash_one(key);
        // Truncating to a 32-bit usize is fine: the mask keeps at most 16 bits.
        let index = (hash >> SHARD_HASH_SHIFT) as usize & self.shard_mask;
        // Cannot go out of bounds: `index <= shard_mask == shards.len() - 1`.
        &self.shards[index]
    }

    /// A clone of the value for `key`, if present.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        V: Clone,
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_with(key, V::clone)
    }

    /// Runs `read` on the value for `key`, if present, and returns its result; avoids cloning
    /// the whole value when only part of it is needed.
    ///
    /// `read` runs under the shard's read lock: it must not call any method of this map (see
    /// [Closures run under a shard lock](ShardedMap#closures-run-under-a-shard-lock)), and while it
    /// runs, writers to the shard wait.
    pub fn get_with<Q, R>(&self, key: &Q, read: impl FnOnce(&V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key);
        shard.read().get(key).map(read)
    }

    /// Whether `key` is present.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key);
        shard.read().contains_key(key)
    }

    /// Stores `value` under `key` and returns the value it replaced, if any. When the key was
    /// present, the stored key is kept and `key` is dropped.
    pub fn insert(&self, key: K, value: V) -> Option<V> {
        let shard = self.shard(&key);
        shard.write().insert(key, value)
    }

    /// Removes `key` and returns its value, if it was present.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key);
        shard.write().remove(key)
    }

    /// Removes `key` and returns its value if it is present and `predicate` returns true for its
    /// value; the test and the removal are one atomic step.
    ///
    /// `predicate` runs under the shard's write lock: it must not call any method of this map
    /// (see [Closures run under a shard lock](ShardedMap#closures-run-under-a-shard-lock)).
    pub fn remove_if<Q>(&self, key: &Q, predicate: impl FnOnce(&V) -> bool) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key);
        let mut table = shard.write();
        // Two probes of one table under one lock: std's `HashMap` has no entry API for borrowed
        // keys. The second probe finds the bucket the first one just brought into cache.
        if !table.get(key).is_some_and(predicate) {
            return None;
        }
        table.remove(key)
    }

    /// A clone of the value for `key`, inserting `make()` first if `key` is absent. Lookup and
    /// insertion are one atomic step: concurrent callers for one key all get the same value and
    /// `make` runs at most once per insertion.
    ///
    /// `make` runs under the shard's write lock: it must not call any method of this map (see
    /// [Closures run under a shard lock](ShardedMap#closures-run-under-a-shard-lock)). If it panics,
    /// nothing is inserted.
    pub fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> V
    where
        V: Clone,
    {
        let shard = self.shard(&key);
        shard.write().entry(key).or_insert_with(make).clone()
    }

    /// Runs `change` on the value for `key`, if present, and returns its result. The whole
    /// read-modify-write is atomic with respect to every other operation on `key`.
    ///
    /// `change` runs under the shard's write lock: it must not call any method of this map (see
    /// [Closures run under a shard lock](ShardedMap#closures-run-under-a-shard-lock)). If it panics,
    /// the value keeps whatever changes were made before the panic.
    pub fn update<Q, R>(&self, key: &Q, change: impl FnOnce(&mut V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key);
        shard.write().get_mut(key).map(change)
    }

    /// Calls `visit` on every entry, shard by shard, until it returns `ControlFlow::Break`.
    ///
    /// Holds one shard's read lock at a time, so this is not a point-in-time snapshot of the
    /// whole map (see [Iteration is per shard](ShardedMap#iteration-is-per-shard)). `visit` runs
    /// under that read lock: it must not call any method of this map (see
    /// [Closures run under a shard lock](ShardedMap#closures-run-under-a-shard-lock)); collect
    /// what you want to change and change it after `range` returns.
    pub fn range(&self, mut visit: impl FnMut(&K, &V) -> ControlFlow<()>) {
        for shard in &self.shards {
            let table = shard.read();
            for (key, value) in table.iter() {
                if visit(key, value).is_break() {
                    return;
                }
            }
        }
    }

    /// Calls `visit` on at most `limit` entries, shard by shard, and returns how many it
    /// visited. With `limit == 0` no lock is taken.
    ///
    /// Holds one shard's read lock at a time (not a point-in-time snapshot, see
    /// [Iteration is per shard](ShardedMap#iteration-is-per-shard)). `visit` runs under that read
    /// lock: it must not call any method of this map, or it may deadlock (see
    /// [Closures run under a shard lock](ShardedMap#closures-run-under-a-shard-lock)).
    pub fn range_with_limit(&self, limit: usize, mut visit: impl FnMut(&K, &V)) -> usize {
        let mut visited_count = 0;
        if limit == 0 {
            return visited_count;
        }
        self.range(|key, value| {
            visit(key, value);
            visited_count += 1;
            if visited_count == limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        visited_count
    }

    /// Clones of all keys, gathered shard by shard (not a point-in-time snapshot; see
    /// [Iteration is per shard](ShardedMap#iteration-is-per-shard)).
    pub fn keys(&self) -> Vec<K>
    where
        K: Clone,
    {
        self.collect(|key, _| key.clone())
    }

    /// Clones of all values, gathered shard by shard (not a point-in-time snapshot).
    pub fn values(&self) -> Vec<V>
    where
        V: Clone,
    {
        self.collect(|_, value| value.clone())
    }

    /// Clones of all entries, gathered shard by shard (not a point-in-time snapshot).
    pub fn items(&self) -> Vec<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        self.collect(|key, value| (key.clone(), value.clone()))
    }

    fn collect<T>(&self, mut copy: impl FnMut(&K, &V) -> T) -> Vec<T> {
        // The length may change before the shards are read; it is a size hint only.
        let mut collected = Vec::with_capacity(self.len());
        for shard in &self.shards {
            let table = shard.read();
            collected.extend(table.iter().map(|(key, value)| copy(key, value)));
        }
        collected
    }

    /// Number of entries, summed shard by shard (exact only if no writer runs concurrently).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().len()).sum()
    }

    /// Whether every shard is empty, checked shard by shard.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|shard| shard.read().is_empty())
    }

    /// Removes every entry, shard by shard; keeps the allocated capacity. Entries inserted into
    /// an already cleared shard while this runs survive.
    pub fn clear(&self) {
        for shard in &self.shards {
            shard.write().clear();
        }
    }

    /// Number of shards; fixed for the map's lifetime.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Length and capacity of every shard, in shard order, each read under its own lock.
    pub fn shard_stats(&self) -> Vec<ShardStats> {
        self.shards
            .iter()
            .map(|shard| {
                let table = shard.read();
                ShardStats {
                    len: table.len(),
                    capacity: table.capacity(),
                }
            })
            .collect()
    }
}

impl<K, V, S> fmt::Debug for ShardedMap<K, V, S> {
    /// Shows the shard count only: printing keys or values could leak secrets, and reading
    /// lengths would take shard locks, which deadlocks if the map is formatted from inside one of
    /// its own closures.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardedMap")
            .field("shard_count", &self.shards.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn map_with_shards(shard_count: usize) -> ShardedMap<u64, u64> {
        ShardedMap::with_options(MapOptions {
            shard_count: Some(shard_count),
            capacity: 0,
        })
        .expect("valid options")
    }

    #[test]
    fn default_shard_count_is_a_valid_power_of_two() {
        let count = default_shard_count();
        assert!(
            count.is_power_of_two() && (4..=SHARD_COUNT_MAX).contains(&count),
            "{count}"
        );
        assert_eq!(ShardedMap::<u64, u64>::new().shard_count(), count);
    }

    #[test]
    fn insert_get_remove_round_trip() {
        let map = ShardedMap::new();
        assert_eq!(map.insert(1_u64, "one"), None);
        assert_eq!(map.insert(1, "uno"), Some("one"));
        assert_eq!(map.get(&1), Some("uno"));
        assert!(map.contains_key(&1));
        assert_eq!(map.remove(&1), Some("uno"));
        assert_eq!(map.get(&1), None);
        assert!(!map.contains_key(&1));
        assert_eq!(map.remove(&1), None);
    }

    #[test]
    fn borrowed_keys_find_owned_keys() {
        let map: ShardedMap<String, u32> = ShardedMap::new();
        map.insert(String::from("alpha"), 1);
        assert_eq!(map.get("alpha"), Some(1));
        assert_eq!(map.get_with("alpha", |value| value * 10), Some(10));
        assert_eq!(map.remove("alpha"), Some(1));
    }

    #[test]
    fn remove_if_removes_only_when_predicate_holds() {
        let map = map_with_shards(2);
        map.insert(5_u64, 50_u64);
        assert_eq!(map.remove_if(&5, |value| *value > 100), None);
        assert_eq!(map.get(&5), Some(50));
        assert_eq!(map.remove_if(&5, |value| *value == 50), Some(50));
        assert_eq!(map.remove_if(&5, |_| true), None);
    }

    #[test]
    fn get_or_insert_with_calls_make_only_when_absent() {
        let map = map_with_shards(4);
        let mut make_calls = 0;
        assert_eq!(
            map.get_or_insert_with(9_u64, || {
                make_calls += 1;
                90_u64
            }),
            90
        );
        assert_eq!(
            map.get_or_insert_with(9, || {
                make_calls += 1;
                91
            }),
            90
        );
        assert_eq!(make_calls, 1);
    }

    #[test]
    fn update_changes_in_place_and_skips_absent_keys() {
        let map = map_with_shards(1);
        map.insert(3_u64, 30_u64);
        assert_eq!(
            map.update(&3, |value| std::mem::replace(value, 31)),
            Some(30)
        );
        assert_eq!(map.get(&3), Some(31));
        assert_eq!(map.update(&4, |value| *value += 1), None);
    }

    #[test]
    fn range_stops_at_break() {
        let map = map_with_shards(8);
        for key in 0..100_u64 {
            map.insert(key, key);
        }
        let mut seen = 0;
        map.range(|_, _| {
            seen += 1;
            if seen == 7 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(seen, 7);
    }

    #[test]
    fn range_with_limit_visits_at_most_limit_distinct_entries() {
        let map = map_with_shards(8);
        for key in 0..50_u64 {
            map.insert(key, key * 2);
        }
        for limit in [0, 1, 49, 50, 51, usize::MAX] {
            let mut seen = HashSet::new();
            let visited = map.range_with_limit(limit, |key, value| {
                assert_eq!(*value, key * 2);
                assert!(seen.insert(*key), "key {key} visited twice");
            });
            assert_eq!(visited, limit.min(50));
            assert_eq!(seen.len(), visited);
        }
    }

    #[test]
    fn keys_values_items_agree() {
        let map = map_with_shards(4);
        for key in 0..20_u64 {
            map.insert(key, key + 100);
        }
        let mut keys = map.keys();
        keys.sort_unstable();
        assert_eq!(keys, (0..20).collect::<Vec<_>>());
        let mut values = map.values();
        values.sort_unstable();
        assert_eq!(values, (100..120).collect::<Vec<_>>());
        let mut items = map.items();
        items.sort_unstable();
        assert_eq!(
            items,
            (0..20).map(|key| (key, key + 100)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn len_is_empty_and_clear() {
        let map = map_with_shards(16);
        assert!(map.is_empty());
        for key in 0..1000_u64 {
            map.insert(key, key);
        }
        assert_eq!(map.len(), 1000);
        assert!(!map.is_empty());
        map.clear();
        assert_eq!(map.len(), 0);
        assert!(map.is_empty());
        assert!(map.shard_stats().iter().all(|stats| stats.len == 0));
    }

    #[test]
    fn keys_spread_over_all_shards() {
        let shard_count = 16;
        let map = map_with_shards(shard_count);
        let key_count = 64 * 1024_usize;
        for key in 0..key_count as u64 {
            map.insert(key, key);
        }
        let stats = map.shard_stats();
        assert_eq!(stats.len(), shard_count);
        assert_eq!(
            stats.iter().map(|stats| stats.len).sum::<usize>(),
            key_count
        );
        // Mean 4096 per shard, standard deviation about 62: a shard outside [mean/2, 2*mean]
        // means the shard bits are not mixed, not bad luck.
        let mean = key_count / shard_count;
        for shard in &stats {
            assert!(
                shard.len > mean / 2 && shard.len < mean * 2,
                "skewed shards: {stats:?}"
            );
            assert!(shard.capacity >= shard.len);
        }
    }

    #[test]
    fn capacity_is_reserved_across_shards() {
        let map: ShardedMap<u64, u64> = ShardedMap::with_options(MapOptions {
            shard_count: Some(4),
            capacity: 1000,
        })
        .expect("valid options");
        for stats in map.shard_stats() {
            assert!(stats.capacity >= 250, "{stats:?}");
        }
    }

    #[test]
    fn custom_hasher_is_used() {
        let map: ShardedMap<u64, u64, std::hash::RandomState> =
            ShardedMap::with_options_and_hasher(
                MapOptions {
                    shard_count: Some(2),
                    capacity: 0,
                },
                std::hash::RandomState::new(),
            )
            .expect("valid options");
        map.insert(1, 2);
        assert_eq!(map.get(&1), Some(2));
    }

    #[test]
    fn debug_shows_no_entries() {
        let map = map_with_shards(2);
        map.insert(123_456_789, 987_654_321);
        let debug = format!("{map:?}");
        assert_eq!(debug, "ShardedMap { shard_count: 2, .. }");
    }
}

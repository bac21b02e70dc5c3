//! Independently locked shards chosen by hash, and how many of them a table gets.
//!
//! A `hashbrown` table has a power-of-two number of buckets and grows at 7/8 full, so a
//! million entries spread over a power-of-two number of shards lands just past a doubling:
//! every shard holds 2²¹⁄shards buckets for 10⁶⁄shards entries, 48% full. Choosing the shard
//! count from the expected size instead ([`TableLayout::for_capacity`]) puts each shard at about
//! 84% of a power of two, which is where most of this crate's memory saving comes from.

use parking_lot::RwLock;

/// Fewest shards of a hash table: enough that 64 writers rarely meet on one lock.
pub(crate) const TABLE_SHARD_COUNT_MIN: usize = 64;
/// Most shards of a hash table (a capture copies one shard per lock hold, so more shards mean
/// shorter holds, but each shard costs a lock and a padded cache line pair).
const TABLE_SHARD_COUNT_MAX: usize = 128;
/// Standard deviations of headroom left in each shard above its expected share: shard sizes are
/// binomial, and a shard that passes its 7/8 mark doubles.
const HEADROOM_DEVIATIONS: f64 = 5.0;

/// `#[repr(align(128))]` keeps each shard lock on its own cache lines (two, for CPUs that fetch
/// lines in pairs), so threads working on neighbouring shards do not slow each other down.
#[repr(align(128))]
#[derive(Debug, Default)]
pub(crate) struct Padded<T>(pub(crate) T);

/// How many shards a hash table has and how many entries each reserves room for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TableLayout {
    pub(crate) shard_count: usize,
    /// Entries each shard reserves room for up front (0: none, they grow as needed).
    pub(crate) shard_capacity: usize,
}

impl TableLayout {
    /// The layout for about `capacity` entries: the shard count in
    /// `TABLE_SHARD_COUNT_MIN..=TABLE_SHARD_COUNT_MAX` that puts each shard's expected share
    /// (plus headroom) just under 7/8 of a power-of-two bucket count.
    pub(crate) fn for_capacity(capacity: usize) -> TableLayout {
        let per_shard_min = capacity.div_ceil(TABLE_SHARD_COUNT_MIN);
        if per_shard_min < 64 {
            return TableLayout {
                shard_count: TABLE_SHARD_COUNT_MIN,
                shard_capacity: per_shard_min,
            };
        }
        // Bounded: `buckets` doubles each round and passes any `usize` capacity within 64.
        let mut buckets: usize = 64;
        for _ in 0..64 {
            let full = buckets / 8 * 7;
            let usable = full as f64 - HEADROOM_DEVIATIONS * (full as f64).sqrt();
            let shard_count = (capacity as f64 / usable).ceil() as usize;
            if shard_count <= TABLE_SHARD_COUNT_MAX {
                let shard_count = shard_count.max(TABLE_SHARD_COUNT_MIN);
                return TableLayout {
                    shard_count,
                    shard_capacity: capacity.div_ceil(shard_count),
                };
            }
            buckets = buckets.saturating_mul(2);
        }
        TableLayout {
            shard_count: TABLE_SHARD_COUNT_MAX,
            shard_capacity: capacity.div_ceil(TABLE_SHARD_COUNT_MAX),
        }
    }
}

/// A fixed number of independently locked `T`s, chosen by hash.
#[derive(Debug)]
pub(crate) struct Shards<T> {
    /// Lock order: a writer holds at most one shard of one structure at a time; see the crate
    /// docs for the exceptions (walks, captures).
    shards: Box<[Padded<RwLock<T>>]>,
}

impl<T> Shards<T> {
    pub(crate) fn new(count: usize, mut make: impl FnMut() -> T) -> Shards<T> {
        assert!(count > 0, "at least one shard");
        Shards {
            shards: (0..count).map(|_| Padded(RwLock::new(make()))).collect(),
        }
    }

    pub(crate) fn from_vec(shards: Vec<T>) -> Shards<T> {
        assert!(!shards.is_empty(), "at least one shard");
        Shards {
            shards: shards
                .into_iter()
                .map(|shard| Padded(RwLock::new(shard)))
                .collect(),
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.shards.len()
    }

    pub(crate) fn index_for_hash(&self, hash: u64) -> usize {
        shard_index(hash, self.shards.len())
    }

    pub(crate) fn for_hash(&self, hash: u64) -> &RwLock<T> {
        &self.shards[self.index_for_hash(hash)].0
    }

    pub(crate) fn get(&self, index: usize) -> Option<&RwLock<T>> {
        self.shards.get(index).map(|padded| &padded.0)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &RwLock<T>> {
        self.shards.iter().map(|padded| &padded.0)
    }
}

/// The shard of `hash` among `count`: bits 16..48 scaled to `0..count` (multiply and shift,
/// so `count` need not be a power of two). `hashbrown` takes bucket positions from the low bits
/// and its control byte from the top 7, so the shard stays independent of both.
pub(crate) fn shard_index(hash: u64, count: usize) -> usize {
    let middle = u64::from((hash >> 16) as u32);
    // Fits: the product of a u32 and a count below 2³² shifted down by 32 is below `count`.
    ((middle * count as u64) >> 32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_fills_each_shard_to_most_of_a_power_of_two() {
        let layout = TableLayout::for_capacity(1_000_000);
        assert!((64..=128).contains(&layout.shard_count), "{layout:?}");
        let buckets = (layout.shard_capacity * 8 / 7).next_power_of_two();
        let fill = 1_000_000.0 / (buckets * layout.shard_count) as f64;
        assert!(fill > 0.75, "{layout:?} fills {fill}");
    }

    #[test]
    fn small_and_huge_capacities_get_a_layout() {
        for capacity in [0, 1, 63, 64 * 64, 100_000, 1 << 40, usize::MAX] {
            let layout = TableLayout::for_capacity(capacity);
            assert!(
                (TABLE_SHARD_COUNT_MIN..=TABLE_SHARD_COUNT_MAX).contains(&layout.shard_count),
                "{capacity}: {layout:?}"
            );
            assert!(layout.shard_capacity.saturating_mul(layout.shard_count) >= capacity);
        }
    }

    #[test]
    fn shard_index_stays_in_range_and_spreads() {
        let mut seen = vec![0_u32; 73];
        for value in 0..73_000_u64 {
            let hash = value.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            seen[shard_index(hash, 73)] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        assert_eq!(shard_index(u64::MAX, 73), 72);
    }
}

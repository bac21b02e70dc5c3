//! The secondary indexes: compact ids, multi-value hash indexes and time-ordered indexes.
//!
//! Every index here is a *hint*: readers confirm each id they get from one against the primary
//! map (see the crate docs, "Consistency"), so an index may briefly hold an entry for a session
//! that is not stored yet or no longer, but never lacks one for a stored session's current keys
//! (entries are added before the primary record is stored and removed after it is gone). The
//! one reader that trusts an index alone is [`OrderedIndex::count`], for `list` totals; its
//! guarantee is spelled out at `TotalSource::IndexCount` in `query.rs`.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hash};
use std::ops::Bound;

use parking_lot::RwLock;
use tokm_cmap::DefaultHashBuilder;
use tokm_domain::{SessionId, Timestamp};

/// A session id as its 16 big-endian ULID bytes.
///
/// Same order as [`SessionId`] (big-endian bytes compare like the number), but 1-byte aligned:
/// `SessionId` wraps a `u128`, whose 16-byte alignment would pad every `(Timestamp, id)` index
/// key from 24 to 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PackedId([u8; 16]);

impl PackedId {
    pub(crate) const MIN: PackedId = PackedId([0; 16]);
    pub(crate) const MAX: PackedId = PackedId([0xff; 16]);

    pub(crate) fn of(id: SessionId) -> PackedId {
        PackedId(id.to_bytes())
    }
}

/// The ids under one key of a [`MultiIndex`]. Most keys (a device, an address) hold one
/// session, so that case needs no allocation.
#[derive(Clone, Debug)]
enum IdSet {
    One(PackedId),
    /// Unordered, without duplicates; empty only transiently inside [`MultiIndex::remove`].
    Many(Vec<PackedId>),
}

impl IdSet {
    fn insert(&mut self, id: PackedId) {
        match self {
            IdSet::One(held) if *held == id => {}
            IdSet::One(held) => *self = IdSet::Many(vec![*held, id]),
            IdSet::Many(ids) if ids.contains(&id) => {}
            IdSet::Many(ids) => ids.push(id),
        }
    }

    /// Removes `id`; returns whether the set is now empty.
    fn remove(&mut self, id: PackedId) -> bool {
        match self {
            IdSet::One(held) => *held == id,
            IdSet::Many(ids) => {
                if let Some(position) = ids.iter().position(|held| *held == id) {
                    ids.swap_remove(position);
                }
                match ids.as_slice() {
                    [] => true,
                    [only] => {
                        *self = IdSet::One(*only);
                        false
                    }
                    _ => false,
                }
            }
        }
    }

    fn as_slice(&self) -> &[PackedId] {
        match self {
            IdSet::One(held) => std::slice::from_ref(held),
            IdSet::Many(ids) => ids,
        }
    }
}

/// `#[repr(align(128))]` keeps each shard lock on its own cache lines (two, for CPUs that fetch
/// lines in pairs), so threads working on neighbouring shards do not slow each other down.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Padded<T>(T);

/// A fixed, power-of-two number of independently locked `T`s, chosen by hash.
#[derive(Debug)]
struct Shards<T> {
    /// Lock order: writers hold at most one shard of one index at a time.
    shards: Box<[Padded<RwLock<T>>]>,
    mask: usize,
}

impl<T: Default> Shards<T> {
    fn new(count: usize) -> Shards<T> {
        assert!(count.is_power_of_two(), "shard count is a power of two");
        Shards {
            shards: (0..count).map(|_| Padded::default()).collect(),
            mask: count - 1,
        }
    }

    fn for_hash(&self, hash: u64) -> &RwLock<T> {
        // The high bits: std's HashMap inside a shard uses the low bits of its own hash of the
        // same key, so taking the shard from the high bits keeps the two independent.
        let index = (hash >> 48) as usize & self.mask;
        &self.shards[index].0
    }

    fn iter(&self) -> impl Iterator<Item = &RwLock<T>> {
        self.shards.iter().map(|padded| &padded.0)
    }
}

/// Key → set of session ids (user, device, API key, address), sharded by key.
///
/// Built here rather than on `tokm_cmap::ShardedMap` because adding an id must create the set
/// when the key is absent and removing the last id must drop it, each atomically with respect to
/// the other: that needs an entry API, which `ShardedMap` does not offer.
#[derive(Debug)]
pub(crate) struct MultiIndex<K> {
    hasher: DefaultHashBuilder,
    shards: Shards<HashMap<K, IdSet, DefaultHashBuilder>>,
}

impl<K: Hash + Eq> MultiIndex<K> {
    pub(crate) fn new(shard_count: usize) -> MultiIndex<K> {
        MultiIndex {
            hasher: DefaultHashBuilder::default(),
            shards: Shards::new(shard_count),
        }
    }

    fn shard(&self, key: &K) -> &RwLock<HashMap<K, IdSet, DefaultHashBuilder>> {
        self.shards.for_hash(self.hasher.hash_one(key))
    }

    pub(crate) fn insert(&self, key: K, id: PackedId) {
        let mut table = self.shard(&key).write();
        table
            .entry(key)
            .and_modify(|set| set.insert(id))
            .or_insert(IdSet::One(id));
    }

    pub(crate) fn remove(&self, key: &K, id: PackedId) {
        let mut table = self.shard(key).write();
        if table.get_mut(key).is_some_and(|set| set.remove(id)) {
            table.remove(key);
        }
    }

    /// The ids under `key`, appended to `out`.
    pub(crate) fn ids_into(&self, key: &K, out: &mut Vec<PackedId>) {
        if let Some(set) = self.shard(key).read().get(key) {
            out.extend_from_slice(set.as_slice());
        }
    }

    /// How many ids `key` holds.
    pub(crate) fn count(&self, key: &K) -> usize {
        self.shard(key)
            .read()
            .get(key)
            .map_or(0, |set| set.as_slice().len())
    }
}

/// A position in a time-ordered index: the time, then the id to break ties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct IndexKey {
    pub(crate) at: Timestamp,
    pub(crate) id: PackedId,
}

impl IndexKey {
    pub(crate) fn new(at: Timestamp, id: SessionId) -> IndexKey {
        IndexKey {
            at,
            id: PackedId::of(id),
        }
    }

    /// Below every key at `at`.
    pub(crate) fn first_at(at: Timestamp) -> IndexKey {
        IndexKey {
            at,
            id: PackedId::MIN,
        }
    }

    /// Above every key at `at`.
    pub(crate) fn last_at(at: Timestamp) -> IndexKey {
        IndexKey {
            at,
            id: PackedId::MAX,
        }
    }
}

/// A range of [`IndexKey`]s; [`KeyRange::is_empty`] must be checked before walking, because
/// `BTreeSet::range` panics on an inverted range and the bounds come from callers' filters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyRange {
    pub(crate) lower: Bound<IndexKey>,
    pub(crate) upper: Bound<IndexKey>,
}

impl KeyRange {
    pub(crate) const ALL: KeyRange = KeyRange {
        lower: Bound::Unbounded,
        upper: Bound::Unbounded,
    };

    /// The tighter of the current lower bound and `bound`.
    pub(crate) fn raise_lower(&mut self, bound: Bound<IndexKey>) {
        self.lower = match (self.lower, bound) {
            (Bound::Unbounded, new) | (new, Bound::Unbounded) => new,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b))
                if a != b =>
            {
                if a > b {
                    self.lower
                } else {
                    bound
                }
            }
            // Same key: excluding it is the tighter bound.
            (Bound::Excluded(a), _) | (_, Bound::Excluded(a)) => Bound::Excluded(a),
            (Bound::Included(a), Bound::Included(_)) => Bound::Included(a),
        };
    }

    /// The tighter of the current upper bound and `bound`.
    pub(crate) fn lower_upper(&mut self, bound: Bound<IndexKey>) {
        self.upper = match (self.upper, bound) {
            (Bound::Unbounded, new) | (new, Bound::Unbounded) => new,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b))
                if a != b =>
            {
                if a < b {
                    self.upper
                } else {
                    bound
                }
            }
            (Bound::Excluded(a), _) | (_, Bound::Excluded(a)) => Bound::Excluded(a),
            (Bound::Included(a), Bound::Included(_)) => Bound::Included(a),
        };
    }

    /// Whether no key can lie in the range (including the inverted ranges `BTreeSet` rejects).
    pub(crate) fn is_empty(&self) -> bool {
        match (self.lower, self.upper) {
            (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
            (Bound::Included(low), Bound::Included(high)) => low > high,
            (Bound::Included(low) | Bound::Excluded(low), Bound::Excluded(high))
            | (Bound::Excluded(low), Bound::Included(high)) => low >= high,
        }
    }
}

/// Which way to walk an [`OrderedIndex`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Ascending,
    Descending,
}

/// `(time, id)` keys in order, sharded by id so that all of one session's entries live in one
/// shard: moving a session's key is then one atomic step under one shard lock, and a reader
/// walking a shard sees every session of that shard exactly once.
#[derive(Debug)]
pub(crate) struct OrderedIndex {
    hasher: DefaultHashBuilder,
    shards: Shards<BTreeSet<IndexKey>>,
}

impl OrderedIndex {
    pub(crate) fn new(shard_count: usize) -> OrderedIndex {
        OrderedIndex {
            hasher: DefaultHashBuilder::default(),
            shards: Shards::new(shard_count),
        }
    }

    fn shard(&self, id: PackedId) -> &RwLock<BTreeSet<IndexKey>> {
        self.shards.for_hash(self.hasher.hash_one(id))
    }

    pub(crate) fn insert(&self, key: IndexKey) {
        self.shard(key.id).write().insert(key);
    }

    pub(crate) fn remove(&self, key: IndexKey) {
        self.shard(key.id).write().remove(&key);
    }

    /// Replaces `old` by `new` (same id) in one step.
    pub(crate) fn relocate(&self, old: IndexKey, new: IndexKey) {
        debug_assert_eq!(old.id, new.id, "an entry moves only in time");
        if old == new {
            return;
        }
        let mut shard = self.shard(old.id).write();
        shard.remove(&old);
        shard.insert(new);
    }

    /// How many keys lie in `range`, reading only the index (no primary-map lookups).
    ///
    /// Shard by shard, each under its read lock, like [`OrderedIndex::walk_shards`]: a
    /// session's entries all live in one shard and [`OrderedIndex::relocate`] moves one under
    /// that shard's write lock, so the count sees every entry exactly once, by its key before or
    /// after a concurrent move, never twice and never not at all. Costs about twice the smaller
    /// of the range and its complement per shard, so a range holding nearly every key is cheap.
    pub(crate) fn count(&self, range: KeyRange) -> u64 {
        if range.is_empty() {
            return 0;
        }
        let mut count = 0;
        for shard in self.shards.iter() {
            count += count_in_shard(&shard.read(), range) as u64;
        }
        count
    }

    /// Calls `visit` on the keys in `range`, one shard at a time and in `direction` within each
    /// shard, while holding that shard's read lock; `visit` returns `false` to stop the shard
    /// early. `visit` may read the primary map (lock order: index shard, then primary shard)
    /// but must not write any index.
    pub(crate) fn walk_shards(
        &self,
        range: KeyRange,
        direction: Direction,
        mut start_shard: impl FnMut(),
        mut visit: impl FnMut(IndexKey) -> bool,
    ) {
        if range.is_empty() {
            return;
        }
        for shard in self.shards.iter() {
            start_shard();
            let shard = shard.read();
            let keys = shard.range((range.lower, range.upper));
            match direction {
                Direction::Ascending => {
                    for key in keys {
                        if !visit(*key) {
                            break;
                        }
                    }
                }
                Direction::Descending => {
                    for key in keys.rev() {
                        if !visit(*key) {
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// How many keys of `shard` lie in `range` (not empty): walks the range and its complement side
/// by side and stops when the shorter ends, since `len - outside` is as exact as `inside`.
fn count_in_shard(shard: &BTreeSet<IndexKey>, range: KeyRange) -> usize {
    let mut inside = shard.range((range.lower, range.upper));
    let below = match range.lower {
        Bound::Unbounded => None,
        Bound::Included(key) => Some(shard.range(..key)),
        Bound::Excluded(key) => Some(shard.range(..=key)),
    };
    let above = match range.upper {
        Bound::Unbounded => None,
        Bound::Included(key) => Some(shard.range((Bound::Excluded(key), Bound::Unbounded))),
        Bound::Excluded(key) => Some(shard.range(key..)),
    };
    let mut outside = below
        .into_iter()
        .flatten()
        .chain(above.into_iter().flatten());
    // Bounded by the shard's size: each round consumes a key from both iterators.
    let mut both_had = 0;
    loop {
        match (inside.next(), outside.next()) {
            (Some(_), Some(_)) => both_had += 1,
            (None, _) => return both_had,
            (Some(_), None) => return shard.len() - both_had,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(at: u64, last_byte: u8) -> IndexKey {
        let mut bytes = [0; 16];
        bytes[15] = last_byte;
        IndexKey {
            at: Timestamp::from_millis(at),
            id: PackedId(bytes),
        }
    }

    #[test]
    fn packed_ids_order_like_session_ids() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let ids = [
            SessionId::from_parts(now, 1).unwrap(),
            SessionId::from_parts(now, 1 << 70).unwrap(),
            SessionId::from_parts(Timestamp::from_millis(1), u128::from(u64::MAX)).unwrap(),
        ];
        for a in ids {
            for b in ids {
                assert_eq!(a.cmp(&b), PackedId::of(a).cmp(&PackedId::of(b)));
            }
        }
    }

    #[test]
    fn id_set_keeps_each_id_once_and_reports_emptiness() {
        let (a, b) = (key(0, 1).id, key(0, 2).id);
        let mut set = IdSet::One(a);
        set.insert(a);
        assert_eq!(set.as_slice(), &[a]);
        set.insert(b);
        set.insert(b);
        assert_eq!(set.as_slice().len(), 2);
        assert!(!set.remove(a), "b remains");
        assert!(
            matches!(set, IdSet::One(held) if held == b),
            "shrinks back to One"
        );
        assert!(!set.remove(a), "removing an absent id changes nothing");
        assert!(set.remove(b), "now empty");
    }

    #[test]
    fn multi_index_drops_a_key_with_its_last_id() {
        let index = MultiIndex::new(4);
        let (a, b) = (key(0, 1).id, key(0, 2).id);
        index.insert(7_u64, a);
        index.insert(7, b);
        index.remove(&7, a);
        assert_eq!(index.count(&7), 1);
        index.remove(&7, b);
        assert_eq!(index.count(&7), 0);
        let shard = index.shard(&7).read();
        assert!(shard.is_empty(), "no empty set is left behind");
    }

    #[test]
    fn inverted_and_degenerate_ranges_are_empty_not_panics() {
        let index = OrderedIndex::new(4);
        index.insert(key(5, 1));
        let cases = [
            (Bound::Included(key(6, 0)), Bound::Included(key(5, 0)), true),
            (Bound::Excluded(key(5, 1)), Bound::Excluded(key(5, 1)), true),
            (Bound::Included(key(5, 1)), Bound::Excluded(key(5, 1)), true),
            (
                Bound::Included(key(5, 1)),
                Bound::Included(key(5, 1)),
                false,
            ),
            (Bound::Unbounded, Bound::Excluded(key(0, 0)), false),
        ];
        for (lower, upper, empty) in cases {
            let range = KeyRange { lower, upper };
            assert_eq!(range.is_empty(), empty, "{range:?}");
            let mut seen = 0;
            index.walk_shards(
                range,
                Direction::Ascending,
                || {},
                |_| {
                    seen += 1;
                    true
                },
            );
            assert!(seen <= 1);
        }
    }

    #[test]
    fn tightening_keeps_the_narrower_bound() {
        let mut range = KeyRange::ALL;
        range.raise_lower(Bound::Included(key(3, 0)));
        range.raise_lower(Bound::Excluded(key(2, 0)));
        assert_eq!(range.lower, Bound::Included(key(3, 0)));
        range.raise_lower(Bound::Excluded(key(3, 0)));
        assert_eq!(range.lower, Bound::Excluded(key(3, 0)));
        range.lower_upper(Bound::Included(key(9, 0)));
        range.lower_upper(Bound::Excluded(key(9, 0)));
        assert_eq!(range.upper, Bound::Excluded(key(9, 0)));
        range.lower_upper(Bound::Included(key(10, 0)));
        assert_eq!(range.upper, Bound::Excluded(key(9, 0)));
    }

    #[test]
    fn count_agrees_with_a_walk_for_bounded_unbounded_and_empty_ranges() {
        let index = OrderedIndex::new(4);
        for at in 0..40 {
            index.insert(key(at, at as u8));
        }
        index.relocate(key(7, 7), key(70, 7));
        let ranges = [
            KeyRange::ALL,
            KeyRange {
                lower: Bound::Excluded(key(5, 0xff)),
                upper: Bound::Unbounded,
            },
            KeyRange {
                lower: Bound::Unbounded,
                upper: Bound::Included(key(9, 9)),
            },
            KeyRange {
                lower: Bound::Included(key(3, 3)),
                upper: Bound::Excluded(key(12, 0)),
            },
            KeyRange {
                lower: Bound::Included(key(12, 0)),
                upper: Bound::Excluded(key(3, 3)),
            },
        ];
        let expected = [40, 34, 9, 8, 0];
        for (range, expected) in ranges.into_iter().zip(expected) {
            let mut walked = 0;
            index.walk_shards(
                range,
                Direction::Ascending,
                || {},
                |_| {
                    walked += 1;
                    true
                },
            );
            assert_eq!(walked, expected, "{range:?}");
            assert_eq!(index.count(range), expected, "{range:?}");
        }
    }

    #[test]
    fn walk_visits_each_key_once_in_direction_within_a_shard() {
        let index = OrderedIndex::new(2);
        for at in 0..20 {
            index.insert(key(at, at as u8));
        }
        index.relocate(key(3, 3), key(30, 3));
        let seen = std::cell::RefCell::new(Vec::new());
        let mut shard_starts = Vec::new();
        index.walk_shards(
            KeyRange::ALL,
            Direction::Descending,
            || shard_starts.push(seen.borrow().len()),
            |k| {
                seen.borrow_mut().push(k);
                true
            },
        );
        let seen = seen.into_inner();
        assert_eq!(seen.len(), 20);
        assert!(seen.contains(&key(30, 3)) && !seen.contains(&key(3, 3)));
        shard_starts.push(seen.len());
        for window in shard_starts.windows(2) {
            let part = &seen[window[0]..window[1]];
            assert!(part.windows(2).all(|pair| pair[0] > pair[1]), "descending");
        }
    }
}

//! The secondary indexes: compact ids, multi-value hash indexes and time-ordered indexes.
//!
//! Every index here is a *hint*: readers confirm each id they get from one against the primary
//! map (see the crate docs, "Consistency"), so an index may briefly hold an entry for a session
//! that is not stored yet or no longer, but never lacks one for a stored session's current keys
//! (entries are added before the primary record is stored and removed after it is gone). The
//! one reader that trusts an index alone is [`OrderedIndex::count`], for `list` totals; its
//! guarantee is spelled out at `TotalSource::IndexCount` in `query.rs`.
//!
//! Entries are small on purpose, since each index holds one per session: a multi-value entry is
//! a 4-byte key fingerprint and a 16-byte id (20 bytes, no per-key allocation), a time-ordered
//! entry is a 24-byte `(time, id)` key in a sorted chunk of 64.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::ops::Bound;

use hashbrown::HashTable;
use parking_lot::RwLock;
use tokm_cmap::DefaultHashBuilder;
use tokm_domain::{SessionId, Timestamp};

use crate::shards::{Shards, TableLayout, shard_index};

/// A session id as its 16 big-endian ULID bytes.
///
/// Same order as [`SessionId`] (big-endian bytes compare like the number), but 1-byte aligned:
/// `SessionId` wraps a `u128`, whose 16-byte alignment would pad every `(Timestamp, id)` index
/// key from 24 to 32 bytes and every `(fingerprint, id)` entry from 20 to 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PackedId([u8; 16]);

impl PackedId {
    pub(crate) const MIN: PackedId = PackedId([0; 16]);
    pub(crate) const MAX: PackedId = PackedId([0xff; 16]);

    pub(crate) fn of(id: SessionId) -> PackedId {
        PackedId(id.to_bytes())
    }

    /// The id back (`None` only for bytes no `SessionId` has, which `of` never makes).
    pub(crate) fn to_session_id(self) -> Option<SessionId> {
        SessionId::from_bytes(self.0).ok()
    }
}

/// A seeded 32-bit fingerprint of an index key: a user id, device id, API key id, address or
/// token hash. Two keys may share one; readers confirm every hit against the record, so a
/// collision costs a wasted lookup (about one per 4·10⁹ entries), never a wrong answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Fingerprint(u32);

impl Fingerprint {
    /// The high half of a seeded 64-bit hash of the key.
    pub(crate) fn from_hash(hash: u64) -> Fingerprint {
        Fingerprint((hash >> 32) as u32)
    }

    /// The hash a table files this fingerprint's entries under, recomputable from the entry
    /// alone (a table rehashes its entries when it grows): murmur3's 64-bit finalizer, which
    /// spreads the 32 bits over all 64 so the shard, bucket and control byte are independent.
    fn table_hash(self) -> u64 {
        let mut hash = u64::from(self.0);
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        hash ^ (hash >> 33)
    }
}

/// One `(key, id)` entry of a [`MultiIndex`]: 20 bytes, 4-byte aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pair {
    key: Fingerprint,
    id: PackedId,
}

/// Ids one key may hold as separate pairs before they move to one list. A user holds up to its
/// quota (50 by default) as pairs; an address shared by thousands (a NAT) or a kiosk device
/// moves to a list, so that no probe sequence in the pair table grows past a few groups.
const PAIRS_PER_KEY_MAX: usize = 64;

/// One shard of a [`MultiIndex`]: most keys' ids as pairs in one table that allows duplicate
/// keys (a key's pairs share a hash and are found by iterating it), crowded keys' ids in a list.
/// A key's ids are all in one of the two places.
#[derive(Debug, Default)]
pub(crate) struct MultiShard {
    pairs: HashTable<Pair>,
    crowded: HashMap<Fingerprint, Vec<PackedId>, DefaultHashBuilder>,
}

impl MultiShard {
    fn with_capacity(capacity: usize) -> Result<MultiShard, hashbrown::TryReserveError> {
        let mut pairs = HashTable::new();
        pairs.try_reserve(capacity, |pair: &Pair| pair.key.table_hash())?;
        Ok(MultiShard {
            pairs,
            crowded: HashMap::default(),
        })
    }

    /// A shard holding `entries` (each `(key, id)` at most once), with room for `capacity`.
    pub(crate) fn build(
        mut entries: Vec<(Fingerprint, PackedId)>,
        capacity: usize,
    ) -> Result<MultiShard, hashbrown::TryReserveError> {
        let mut shard = MultiShard::with_capacity(capacity.max(entries.len()))?;
        entries.sort_unstable_by_key(|(key, _)| *key);
        for group in entries.chunk_by(|a, b| a.0 == b.0) {
            let key = group[0].0;
            if group.len() > PAIRS_PER_KEY_MAX {
                shard
                    .crowded
                    .insert(key, group.iter().map(|(_, id)| *id).collect());
                continue;
            }
            let hash = key.table_hash();
            for (_, id) in group {
                shard
                    .pairs
                    .insert_unique(hash, Pair { key, id: *id }, |pair| pair.key.table_hash());
            }
        }
        Ok(shard)
    }

    fn insert(&mut self, key: Fingerprint, id: PackedId) {
        if let Some(ids) = self.crowded.get_mut(&key) {
            if !ids.contains(&id) {
                ids.push(id);
            }
            return;
        }
        let hash = key.table_hash();
        let mut same_key = 0;
        for pair in self.pairs.iter_hash(hash) {
            if pair.key == key {
                if pair.id == id {
                    return;
                }
                same_key += 1;
            }
        }
        if same_key < PAIRS_PER_KEY_MAX {
            self.pairs
                .insert_unique(hash, Pair { key, id }, |pair| pair.key.table_hash());
            return;
        }
        let mut ids = Vec::with_capacity(same_key + 1);
        // Bounded: each round removes one of the key's `same_key` pairs.
        while let Ok(entry) = self.pairs.find_entry(hash, |pair| pair.key == key) {
            ids.push(entry.remove().0.id);
        }
        ids.push(id);
        self.crowded.insert(key, ids);
    }

    fn remove(&mut self, key: Fingerprint, id: PackedId) {
        if let Some(ids) = self.crowded.get_mut(&key) {
            if let Some(position) = ids.iter().position(|held| *held == id) {
                ids.swap_remove(position);
            }
            if ids.is_empty() {
                self.crowded.remove(&key);
            } else if ids.capacity() > 4 * ids.len() {
                ids.shrink_to(2 * ids.len());
            }
            return;
        }
        if let Ok(entry) = self
            .pairs
            .find_entry(key.table_hash(), |pair| *pair == Pair { key, id })
        {
            entry.remove();
        }
    }

    fn ids_into(&self, key: Fingerprint, out: &mut Vec<PackedId>) {
        if let Some(ids) = self.crowded.get(&key) {
            out.extend_from_slice(ids);
            return;
        }
        out.extend(
            self.pairs
                .iter_hash(key.table_hash())
                .filter(|pair| pair.key == key)
                .map(|pair| pair.id),
        );
    }

    fn count(&self, key: Fingerprint) -> usize {
        if let Some(ids) = self.crowded.get(&key) {
            return ids.len();
        }
        self.pairs
            .iter_hash(key.table_hash())
            .filter(|pair| pair.key == key)
            .count()
    }

    #[cfg(test)]
    fn entry_count(&self) -> usize {
        self.pairs.len() + self.crowded.values().map(Vec::len).sum::<usize>()
    }

    /// Heap bytes: the pair table's allocation, the crowded map's and its lists'.
    fn memory_bytes(&self) -> usize {
        let crowded_table =
            self.crowded.capacity() * (size_of::<(Fingerprint, Vec<PackedId>)>() + 1);
        let crowded_lists: usize = self
            .crowded
            .values()
            .map(|ids| ids.capacity() * size_of::<PackedId>())
            .sum();
        self.pairs.allocation_size() + crowded_table + crowded_lists
    }
}

/// Key fingerprint → session ids (user, device, API key, address, token), sharded by key.
#[derive(Debug)]
pub(crate) struct MultiIndex {
    shards: Shards<MultiShard>,
}

impl MultiIndex {
    /// An empty index laid out as `layout`, each shard with room for its share.
    pub(crate) fn new(layout: TableLayout) -> Result<MultiIndex, hashbrown::TryReserveError> {
        let shards = (0..layout.shard_count)
            .map(|_| MultiShard::with_capacity(layout.shard_capacity))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MultiIndex {
            shards: Shards::from_vec(shards),
        })
    }

    /// An empty index whose shards grow as needed.
    pub(crate) fn unreserved(shard_count: usize) -> MultiIndex {
        MultiIndex {
            shards: Shards::new(shard_count, MultiShard::default),
        }
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.count()
    }

    /// The shard that holds `key`'s entries.
    pub(crate) fn shard_of(&self, key: Fingerprint) -> usize {
        shard_index(key.table_hash(), self.shards.count())
    }

    /// Replaces shard `index` (bulk loading, before the store is shared).
    pub(crate) fn install(&self, index: usize, shard: MultiShard) {
        if let Some(slot) = self.shards.get(index) {
            *slot.write() = shard;
        }
    }

    fn shard(&self, key: Fingerprint) -> &RwLock<MultiShard> {
        self.shards.for_hash(key.table_hash())
    }

    pub(crate) fn insert(&self, key: Fingerprint, id: PackedId) {
        self.shard(key).write().insert(key, id);
    }

    pub(crate) fn remove(&self, key: Fingerprint, id: PackedId) {
        self.shard(key).write().remove(key, id);
    }

    /// The ids under `key` (and under any key sharing its fingerprint), appended to `out`.
    pub(crate) fn ids_into(&self, key: Fingerprint, out: &mut Vec<PackedId>) {
        self.shard(key).read().ids_into(key, out);
    }

    /// How many ids `key` holds (counting any key sharing its fingerprint).
    pub(crate) fn count(&self, key: Fingerprint) -> usize {
        self.shard(key).read().count(key)
    }

    /// Entries in the whole index.
    #[cfg(test)]
    pub(crate) fn entry_count(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.read().entry_count())
            .sum()
    }

    /// Heap bytes held by the index (shard by shard, so an estimate under writers).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.read().memory_bytes())
            .sum()
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

/// A range of [`IndexKey`]s, built from callers' filters and so possibly inverted;
/// [`KeyRange::is_empty`] says so, and walks and counts of an empty range visit nothing.
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

    /// Whether no key can lie in the range (including inverted ranges).
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

/// Keys per chunk of an [`OrderedShard`]: 1.5 KiB, so an insert moves at most that much, and
/// the chunk directory is 1/64 of the keys.
const CHUNK_KEYS_MAX: usize = 64;

/// A run of consecutive keys of an [`OrderedShard`], never empty; its vector always has room
/// for [`CHUNK_KEYS_MAX`] keys, so an insert never reallocates. `first` duplicates `keys[0]`
/// so that finding a chunk reads only the directory.
#[derive(Debug)]
struct Chunk {
    first: IndexKey,
    keys: Vec<IndexKey>,
}

impl Chunk {
    fn of(keys: &[IndexKey]) -> Chunk {
        debug_assert!(!keys.is_empty() && keys.len() <= CHUNK_KEYS_MAX);
        let mut chunk = Vec::with_capacity(CHUNK_KEYS_MAX);
        chunk.extend_from_slice(keys);
        Chunk {
            first: keys[0],
            keys: chunk,
        }
    }
}

/// A position in an [`OrderedShard`]: chunk and offset, with `offset < chunk's length` or
/// `(chunk count, 0)` for the end, so positions compare like the keys they stand before.
type Position = (usize, usize);

/// One shard of an [`OrderedIndex`]: its keys in ascending order, in chunks of at most
/// [`CHUNK_KEYS_MAX`] with every key of a chunk below every key of the next.
///
/// Denser than a `BTreeSet` (about 24.5 bytes per key when chunks are full, against ~40): an
/// insert past the last key of a full chunk starts a new chunk rather than splitting, so keys
/// arriving in time order (creations, touches) and bulk loads fill chunks completely; an insert
/// inside a full chunk splits it in halves; a removal that leaves a chunk under a quarter full
/// merges it into a neighbour with room.
#[derive(Debug, Default)]
pub(crate) struct OrderedShard {
    chunks: Vec<Chunk>,
    len: usize,
}

impl OrderedShard {
    /// A shard holding `keys`, which must be sorted and unique.
    pub(crate) fn from_sorted(keys: &[IndexKey]) -> OrderedShard {
        debug_assert!(
            keys.windows(2).all(|pair| pair[0] < pair[1]),
            "sorted, unique"
        );
        OrderedShard {
            chunks: keys.chunks(CHUNK_KEYS_MAX).map(Chunk::of).collect(),
            len: keys.len(),
        }
    }

    /// The chunk whose key range would hold `key`: the last whose first key is not above it,
    /// or the first chunk. `None` when empty.
    fn chunk_for(&self, key: IndexKey) -> Option<usize> {
        if self.chunks.is_empty() {
            return None;
        }
        Some(
            self.chunks
                .partition_point(|chunk| chunk.first <= key)
                .saturating_sub(1),
        )
    }

    fn insert(&mut self, key: IndexKey) {
        let Some(at) = self.chunk_for(key) else {
            self.chunks.push(Chunk::of(&[key]));
            self.len += 1;
            return;
        };
        let chunk = &mut self.chunks[at];
        let Err(offset) = chunk.keys.binary_search(&key) else {
            return;
        };
        self.len += 1;
        if chunk.keys.len() < CHUNK_KEYS_MAX {
            chunk.keys.insert(offset, key);
            chunk.first = chunk.keys[0];
            return;
        }
        if offset == CHUNK_KEYS_MAX {
            // Past a full chunk's last key: the front of the next chunk if it has room, else a
            // chunk of its own, leaving this one full.
            match self.chunks.get_mut(at + 1) {
                Some(next) if next.keys.len() < CHUNK_KEYS_MAX => {
                    next.keys.insert(0, key);
                    next.first = key;
                }
                _ => self.chunks.insert(at + 1, Chunk::of(&[key])),
            }
            return;
        }
        let half = CHUNK_KEYS_MAX / 2;
        let mut right = Chunk::of(&chunk.keys[half..]);
        chunk.keys.truncate(half);
        if offset <= half {
            chunk.keys.insert(offset, key);
            chunk.first = chunk.keys[0];
        } else {
            right.keys.insert(offset - half, key);
        }
        self.chunks.insert(at + 1, right);
    }

    fn remove(&mut self, key: IndexKey) {
        let Some(at) = self.chunk_for(key) else {
            return;
        };
        let chunk = &mut self.chunks[at];
        let Ok(offset) = chunk.keys.binary_search(&key) else {
            return;
        };
        chunk.keys.remove(offset);
        self.len -= 1;
        let Some(&first) = chunk.keys.first() else {
            self.chunks.remove(at);
            return;
        };
        chunk.first = first;
        let len = chunk.keys.len();
        if len >= CHUNK_KEYS_MAX / 4 {
            return;
        }
        // Merge into a neighbour only up to 3/4 full, so an insert does not split it at once.
        let room = |neighbour: &Chunk| neighbour.keys.len() + len <= CHUNK_KEYS_MAX * 3 / 4;
        if self.chunks.get(at + 1).is_some_and(room) {
            let next = self.chunks.remove(at + 1);
            self.chunks[at].keys.extend_from_slice(&next.keys);
        } else if at > 0 && room(&self.chunks[at - 1]) {
            let merged = self.chunks.remove(at);
            self.chunks[at - 1].keys.extend_from_slice(&merged.keys);
        }
    }

    /// The position of the first key for which `before` is false (`before` holds on a prefix).
    fn position(&self, before: impl Fn(&IndexKey) -> bool) -> Position {
        let after_first = self.chunks.partition_point(|chunk| before(&chunk.first));
        let Some(at) = after_first.checked_sub(1) else {
            return (0, 0);
        };
        let keys = &self.chunks[at].keys;
        let offset = keys.partition_point(|key| before(key));
        if offset < keys.len() {
            (at, offset)
        } else {
            (after_first, 0)
        }
    }

    fn start_of(&self, lower: Bound<IndexKey>) -> Position {
        match lower {
            Bound::Unbounded => (0, 0),
            Bound::Included(bound) => self.position(|key| *key < bound),
            Bound::Excluded(bound) => self.position(|key| *key <= bound),
        }
    }

    fn end_of(&self, upper: Bound<IndexKey>) -> Position {
        match upper {
            Bound::Unbounded => (self.chunks.len(), 0),
            Bound::Included(bound) => self.position(|key| *key <= bound),
            Bound::Excluded(bound) => self.position(|key| *key < bound),
        }
    }

    /// The keys in `range`, as one slice per chunk in ascending order.
    fn slices(&self, range: KeyRange) -> impl DoubleEndedIterator<Item = &[IndexKey]> {
        let (start, end) = (self.start_of(range.lower), self.end_of(range.upper));
        let chunks = if start < end {
            start.0..end.0 + usize::from(end.1 > 0)
        } else {
            0..0
        };
        chunks.map(move |at| {
            let keys = &self.chunks[at].keys;
            let low = if at == start.0 { start.1 } else { 0 };
            let high = if at == end.0 { end.1 } else { keys.len() };
            &keys[low..high]
        })
    }

    /// Keys in `range`: summed over the chunks inside it, or over those outside it when fewer.
    fn count(&self, range: KeyRange) -> usize {
        let (start, end) = (self.start_of(range.lower), self.end_of(range.upper));
        if start >= end {
            return 0;
        }
        let spanned = end.0 + usize::from(end.1 > 0) - start.0;
        if spanned <= self.chunks.len() / 2 {
            return self.slices(range).map(<[IndexKey]>::len).sum();
        }
        let chunk_len = |at: usize| self.chunks.get(at).map_or(0, |chunk| chunk.keys.len());
        let before: usize = (0..start.0).map(chunk_len).sum::<usize>() + start.1;
        let after: usize = (end.0..self.chunks.len()).map(chunk_len).sum::<usize>() - end.1;
        self.len - before - after
    }

    fn memory_bytes(&self) -> usize {
        self.chunks.capacity() * size_of::<Chunk>()
            + self
                .chunks
                .iter()
                .map(|chunk| chunk.keys.capacity() * size_of::<IndexKey>())
                .sum::<usize>()
    }
}

/// `(time, id)` keys in order, sharded by id so that all of one session's entries live in one
/// shard: moving a session's key is then one atomic step under one shard lock, and a reader
/// walking a shard sees every session of that shard exactly once.
#[derive(Debug)]
pub(crate) struct OrderedIndex {
    hasher: DefaultHashBuilder,
    shards: Shards<OrderedShard>,
}

impl OrderedIndex {
    pub(crate) fn new(shard_count: usize) -> OrderedIndex {
        OrderedIndex {
            hasher: DefaultHashBuilder::default(),
            shards: Shards::new(shard_count, OrderedShard::default),
        }
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.count()
    }

    /// The shard that holds `id`'s key.
    pub(crate) fn shard_of(&self, id: PackedId) -> usize {
        self.shards.index_for_hash(self.hasher.hash_one(id))
    }

    /// Replaces shard `index` (bulk loading, before the store is shared).
    pub(crate) fn install(&self, index: usize, shard: OrderedShard) {
        if let Some(slot) = self.shards.get(index) {
            *slot.write() = shard;
        }
    }

    fn shard(&self, id: PackedId) -> &RwLock<OrderedShard> {
        self.shards.for_hash(self.hasher.hash_one(id))
    }

    pub(crate) fn insert(&self, key: IndexKey) {
        self.shard(key.id).write().insert(key);
    }

    pub(crate) fn remove(&self, key: IndexKey) {
        self.shard(key.id).write().remove(key);
    }

    /// Replaces `old` by `new` (same id) in one step.
    pub(crate) fn relocate(&self, old: IndexKey, new: IndexKey) {
        debug_assert_eq!(old.id, new.id, "an entry moves only in time");
        if old == new {
            return;
        }
        let mut shard = self.shard(old.id).write();
        shard.remove(old);
        shard.insert(new);
    }

    /// How many keys lie in `range`, reading only the index (no primary-map lookups).
    ///
    /// Shard by shard, each under its read lock, like [`OrderedIndex::walk_shards`]: a
    /// session's entries all live in one shard and [`OrderedIndex::relocate`] moves one under
    /// that shard's write lock, so the count sees every entry exactly once, by its key before or
    /// after a concurrent move, never twice and never not at all. Costs the smaller of the
    /// chunks inside and outside the range (a chunk holds up to 64 keys).
    pub(crate) fn count(&self, range: KeyRange) -> u64 {
        if range.is_empty() {
            return 0;
        }
        self.shards
            .iter()
            .map(|shard| shard.read().count(range) as u64)
            .sum()
    }

    /// Keys in the whole index.
    #[cfg(test)]
    pub(crate) fn entry_count(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().len).sum()
    }

    /// Heap bytes held by the index (shard by shard, so an estimate under writers).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.read().memory_bytes())
            .sum()
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
            let slices = shard.slices(range);
            match direction {
                Direction::Ascending => {
                    for key in slices.flatten() {
                        if !visit(*key) {
                            break;
                        }
                    }
                }
                Direction::Descending => {
                    for key in slices.rev().flat_map(|keys| keys.iter().rev()) {
                        if !visit(*key) {
                            break;
                        }
                    }
                }
            }
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

    fn fingerprint(value: u32) -> Fingerprint {
        Fingerprint(value)
    }

    #[test]
    fn multi_index_keeps_each_id_once_and_drops_a_key_with_its_last_id() {
        let index = MultiIndex::unreserved(4);
        let (a, b) = (key(0, 1).id, key(0, 2).id);
        index.insert(fingerprint(7), a);
        index.insert(fingerprint(7), a);
        index.insert(fingerprint(7), b);
        assert_eq!(index.count(fingerprint(7)), 2);
        index.remove(fingerprint(7), a);
        assert_eq!(index.count(fingerprint(7)), 1);
        index.remove(fingerprint(7), a);
        index.remove(fingerprint(7), b);
        assert_eq!(index.count(fingerprint(7)), 0);
        assert_eq!(index.entry_count(), 0, "nothing is left behind");
    }

    fn numbered_id(n: u32) -> PackedId {
        let mut bytes = [0; 16];
        bytes[..4].copy_from_slice(&n.to_le_bytes());
        PackedId(bytes)
    }

    #[test]
    fn a_crowded_key_moves_to_a_list_and_keeps_every_id() {
        let index = MultiIndex::unreserved(2);
        let ids: Vec<PackedId> = (0..200).map(numbered_id).collect();
        for id in &ids {
            index.insert(fingerprint(9), *id);
            index.insert(fingerprint(10), *id);
        }
        index.insert(fingerprint(9), ids[0]);
        assert_eq!(index.count(fingerprint(9)), 200);
        let shard = index.shard(fingerprint(9)).read();
        assert!(shard.crowded.contains_key(&fingerprint(9)));
        assert!(shard.pairs.iter().all(|pair| pair.key != fingerprint(9)));
        drop(shard);
        for id in &ids[..199] {
            index.remove(fingerprint(9), *id);
        }
        let mut left = Vec::new();
        index.ids_into(fingerprint(9), &mut left);
        assert_eq!(left, [ids[199]]);
        index.remove(fingerprint(9), ids[199]);
        assert_eq!(index.entry_count(), 200, "only key 10 is left");
    }

    #[test]
    fn a_built_shard_equals_one_filled_by_inserts() {
        let entries: Vec<(Fingerprint, PackedId)> = (0..500_u32)
            .map(|n| {
                (
                    fingerprint(if n < 300 { n % 7 } else { 100 }),
                    numbered_id(n),
                )
            })
            .collect();
        let built = MultiShard::build(entries.clone(), 0).unwrap();
        let mut inserted = MultiShard::default();
        for (k, id) in &entries {
            inserted.insert(*k, *id);
        }
        assert!(built.crowded.contains_key(&fingerprint(100)));
        for (k, _) in &entries {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            built.ids_into(*k, &mut a);
            inserted.ids_into(*k, &mut b);
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b);
        }
        assert_eq!(built.entry_count(), inserted.entry_count());
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

    proptest::proptest! {
        #[test]
        fn an_ordered_shard_walks_and_counts_like_a_btree_set(
            ops in proptest::collection::vec((proptest::bool::weighted(0.7), 0_u64..400), 0..1500),
            bounds in proptest::collection::vec((0_u64..420, 0_u64..420, 0_u8..3, 0_u8..3), 1..8),
            bulk in 0_usize..300,
        ) {
            let initial: Vec<IndexKey> = (0..bulk as u64).map(|at| key(at * 2, 1)).collect();
            let mut shard = OrderedShard::from_sorted(&initial);
            let mut model: std::collections::BTreeSet<IndexKey> = initial.into_iter().collect();
            for (insert, at) in ops {
                let k = key(at, (at % 3) as u8);
                if insert {
                    shard.insert(k);
                    model.insert(k);
                } else {
                    shard.remove(k);
                    model.remove(&k);
                }
            }
            proptest::prop_assert_eq!(shard.len, model.len());
            for chunk in &shard.chunks {
                proptest::prop_assert!(!chunk.keys.is_empty() && chunk.keys.len() <= CHUNK_KEYS_MAX);
                proptest::prop_assert_eq!(chunk.first, chunk.keys[0]);
                proptest::prop_assert_eq!(chunk.keys.capacity(), CHUNK_KEYS_MAX);
            }
            let bound = |at: u64, kind: u8| match kind {
                0 => Bound::Unbounded,
                1 => Bound::Included(key(at, 1)),
                _ => Bound::Excluded(key(at, 1)),
            };
            for (low, high, low_kind, high_kind) in bounds {
                let range = KeyRange { lower: bound(low, low_kind), upper: bound(high, high_kind) };
                if range.is_empty() {
                    continue;
                }
                let expected: Vec<IndexKey> = model.range((range.lower, range.upper)).copied().collect();
                let walked: Vec<IndexKey> = shard.slices(range).flatten().copied().collect();
                proptest::prop_assert_eq!(&walked, &expected);
                let mut backwards: Vec<IndexKey> =
                    shard.slices(range).rev().flat_map(|keys| keys.iter().rev()).copied().collect();
                backwards.reverse();
                proptest::prop_assert_eq!(&backwards, &expected);
                proptest::prop_assert_eq!(shard.count(range), expected.len());
            }
        }
    }
}

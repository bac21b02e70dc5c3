//! The primary map: session records sharded by id, each shard one `HashTable` of records keyed
//! by the id inside the record, with copy-on-write support for [`crate::Capture`].

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use parking_lot::RwLockWriteGuard;
use tokm_cmap::DefaultHashBuilder;
use tokm_domain::{SessionId, SessionRecord};

use crate::index::PackedId;
use crate::shards::{Shards, TableLayout};

/// The value each key had when a capture began, recorded by the first write to the key since
/// (`None`: the key was absent).
type Preserved = HashMap<PackedId, Option<SessionRecord>, DefaultHashBuilder>;

/// One shard of the primary map.
#[derive(Default)]
pub(crate) struct PrimaryShard {
    /// Records keyed by their own id: no separate key is stored, the table hashes
    /// `record.id()` (16 bytes per slot plus a control byte).
    table: HashTable<SessionRecord>,
    /// Estimated heap bytes of the records in `table` (see [`record_allocation_bytes`]).
    record_bytes: usize,
    /// `Some` while a capture runs that has not copied this shard yet: every write first
    /// preserves the old value of the key it changes, once per key.
    preserved: Option<Preserved>,
}

impl fmt::Debug for PrimaryShard {
    /// Sizes only: records hold metadata and addresses, which do not belong in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrimaryShard")
            .field("len", &self.table.len())
            .field("capturing", &self.preserved.is_some())
            .finish()
    }
}

/// Heap bytes of one record, as glibc's malloc would hand them out: the `Arc`'s two counters
/// and the bytes, plus an 8-byte chunk header, rounded up to 16.
pub(crate) fn record_allocation_bytes(record: &SessionRecord) -> usize {
    (record.as_bytes().len() + 16 + 8).next_multiple_of(16)
}

/// Why [`Primary::build_shard`] failed.
#[derive(Debug)]
pub(crate) enum BuildError {
    /// Two records have this id.
    DuplicateId(SessionId),
    /// The table could not reserve room.
    Reserve,
}

/// `SessionRecord`s by id, sharded.
#[derive(Debug)]
pub(crate) struct Primary {
    hasher: DefaultHashBuilder,
    /// Lock order: a writer holds one shard at a time; [`Primary::begin_capture`] takes all, in
    /// ascending order, holding nothing else.
    shards: Shards<PrimaryShard>,
}

impl Primary {
    pub(crate) fn new(layout: TableLayout) -> Result<Primary, hashbrown::TryReserveError> {
        let hasher = DefaultHashBuilder::default();
        let shards = (0..layout.shard_count)
            .map(|_| {
                let mut table = HashTable::new();
                table.try_reserve(layout.shard_capacity, |record: &SessionRecord| {
                    hasher.hash_one(PackedId::of(record.id()))
                })?;
                Ok(PrimaryShard {
                    table,
                    ..PrimaryShard::default()
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Primary {
            hasher,
            shards: Shards::from_vec(shards),
        })
    }

    fn hash(&self, id: PackedId) -> u64 {
        self.hasher.hash_one(id)
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.count()
    }

    /// The shard that holds `id`.
    pub(crate) fn shard_of(&self, id: PackedId) -> usize {
        self.shards.index_for_hash(self.hash(id))
    }

    /// A shard holding `records`, with room for `capacity`; refuses two records with one id.
    pub(crate) fn build_shard(
        &self,
        records: Vec<SessionRecord>,
        capacity: usize,
    ) -> Result<PrimaryShard, BuildError> {
        let rehash = |record: &SessionRecord| self.hash(PackedId::of(record.id()));
        let mut table = HashTable::new();
        table
            .try_reserve(capacity.max(records.len()), rehash)
            .map_err(|_| BuildError::Reserve)?;
        let mut record_bytes = 0;
        for record in records {
            let id = record.id();
            let hash = self.hash(PackedId::of(id));
            if table.find(hash, |held| held.id() == id).is_some() {
                return Err(BuildError::DuplicateId(id));
            }
            record_bytes += record_allocation_bytes(&record);
            table.insert_unique(hash, record, rehash);
        }
        Ok(PrimaryShard {
            table,
            record_bytes,
            preserved: None,
        })
    }

    /// Replaces shard `index` (bulk loading, before the store is shared).
    pub(crate) fn install(&self, index: usize, shard: PrimaryShard) {
        if let Some(slot) = self.shards.get(index) {
            *slot.write() = shard;
        }
    }

    /// Calls `read` on the record of `id`, under its shard's read lock.
    pub(crate) fn get_with<R>(
        &self,
        id: PackedId,
        read: impl FnOnce(&SessionRecord) -> R,
    ) -> Option<R> {
        let hash = self.hash(id);
        let shard = self.shards.for_hash(hash).read();
        shard
            .table
            .find(hash, |record| PackedId::of(record.id()) == id)
            .map(read)
    }

    /// The record of `id` (a reference-count increment, no copy).
    pub(crate) fn get(&self, id: PackedId) -> Option<SessionRecord> {
        self.get_with(id, SessionRecord::clone)
    }

    pub(crate) fn contains(&self, id: PackedId) -> bool {
        self.get_with(id, |_| ()).is_some()
    }

    /// Stores `record` under its id, replacing any record there: the commit point of a create
    /// or a change.
    pub(crate) fn insert(&self, record: SessionRecord) {
        let id = PackedId::of(record.id());
        let hash = self.hash(id);
        let mut shard = self.shards.for_hash(hash).write();
        let shard = &mut *shard;
        let added = record_allocation_bytes(&record);
        match shard
            .table
            .find_mut(hash, |held| PackedId::of(held.id()) == id)
        {
            Some(held) => {
                if let Some(preserved) = &mut shard.preserved {
                    preserved.entry(id).or_insert_with(|| Some(held.clone()));
                }
                shard.record_bytes -= record_allocation_bytes(held);
                *held = record;
            }
            None => {
                if let Some(preserved) = &mut shard.preserved {
                    preserved.entry(id).or_insert(None);
                }
                shard
                    .table
                    .insert_unique(hash, record, |held| self.hash(PackedId::of(held.id())));
            }
        }
        shard.record_bytes += added;
    }

    /// Removes the record of `id`: the commit point of a delete.
    pub(crate) fn remove(&self, id: PackedId) -> Option<SessionRecord> {
        let hash = self.hash(id);
        let mut shard = self.shards.for_hash(hash).write();
        let shard = &mut *shard;
        let entry = shard
            .table
            .find_entry(hash, |held| PackedId::of(held.id()) == id)
            .ok()?;
        let (removed, _) = entry.remove();
        shard.record_bytes -= record_allocation_bytes(&removed);
        if let Some(preserved) = &mut shard.preserved {
            preserved.entry(id).or_insert_with(|| Some(removed.clone()));
        }
        Some(removed)
    }

    /// Records stored, summed shard by shard (exact when no writer runs).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.read().table.len())
            .sum()
    }

    /// Calls `visit` on every record, shard by shard, holding each shard's read lock only while
    /// visiting that shard.
    pub(crate) fn for_each(&self, visit: &mut dyn FnMut(&SessionRecord)) {
        for shard in self.shards.iter() {
            let shard = shard.read();
            for record in shard.table.iter() {
                visit(record);
            }
        }
    }

    /// Starts a capture: with every shard write-locked at once (the capture's instant), marks
    /// each shard as not yet copied and counts the records. O(shards): no record is touched.
    pub(crate) fn begin_capture(&self) -> u64 {
        let mut held: Vec<RwLockWriteGuard<'_, PrimaryShard>> =
            self.shards.iter().map(|shard| shard.write()).collect();
        let mut count = 0;
        for shard in &mut held {
            debug_assert!(shard.preserved.is_none(), "one capture at a time");
            shard.preserved = Some(Preserved::default());
            count += shard.table.len() as u64;
        }
        count
    }

    /// Shard `index`'s records as of the capture's instant: the current records whose keys
    /// were not written since, plus the preserved old values. Ends copy-on-write for the shard.
    /// Holds the shard's write lock to take the preserved values, then only its read lock while
    /// cloning (readers proceed, writers of this shard wait for the copy).
    pub(crate) fn copy_captured_shard(&self, index: usize) -> Option<Vec<SessionRecord>> {
        let mut shard = self.shards.get(index)?.write();
        let preserved = shard.preserved.take().unwrap_or_default();
        let shard = RwLockWriteGuard::downgrade(shard);
        let mut records = Vec::with_capacity(shard.table.len() + preserved.len());
        records.extend(
            shard
                .table
                .iter()
                .filter(|record| {
                    preserved.is_empty() || !preserved.contains_key(&PackedId::of(record.id()))
                })
                .cloned(),
        );
        drop(shard);
        records.extend(preserved.into_values().flatten());
        Some(records)
    }

    /// Ends copy-on-write in every shard (a capture was dropped).
    pub(crate) fn end_capture(&self) {
        for shard in self.shards.iter() {
            shard.write().preserved = None;
        }
    }

    /// Heap bytes of the tables (slots and control bytes) and, separately, of the records.
    pub(crate) fn memory_bytes(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(tables, records), shard| {
            let shard = shard.read();
            (
                tables + shard.table.allocation_size(),
                records + shard.record_bytes,
            )
        })
    }
}

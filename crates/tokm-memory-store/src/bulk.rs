//! [`MemoryStore::bulk_load`]: a whole store built from a snapshot's records on every core.
//!
//! Two passes, each spread over `available_parallelism` threads: first every thread splits its
//! share of the records by destination shard of every structure (primary map, each index);
//! then the threads take whole shards one at a time and build each in one go: hash tables
//! sized up front, ordered indexes sorted and cut into full chunks. No shard lock is contended
//! and no entry is inserted twice.

use std::num::NonZero;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokm_domain::{Clock, SessionRecord, TokenHash};

use crate::error::MemoryStoreError;
use crate::index::{
    Fingerprint, IndexKey, MultiIndex, MultiShard, OrderedIndex, OrderedShard, PackedId,
};
use crate::primary::BuildError;
use crate::shards::TableLayout;
use crate::store::{MemoryStore, StoreOptions};

/// Most threads a bulk load starts, whatever the core count.
const BULK_THREADS_MAX: usize = 64;

/// The multi-value indexes, in the order [`MemoryStore::multi_indexes`] lists them.
const MULTI_INDEX_NAMES: [&str; 4] = [
    "user index",
    "device index",
    "API key index",
    "address index",
];

/// One thread's share of the input, split by destination shard of every structure.
struct Partitions {
    primary: Vec<Vec<SessionRecord>>,
    token: Vec<Vec<(TokenHash, PackedId)>>,
    multi: [Vec<Vec<(Fingerprint, PackedId)>>; 4],
    ordered: [Vec<Vec<IndexKey>>; 3],
}

/// One shard of one structure to build, with every thread's share of its entries.
enum Job {
    Primary {
        shard: usize,
        parts: Vec<Vec<SessionRecord>>,
    },
    Token {
        shard: usize,
        parts: Vec<Vec<(TokenHash, PackedId)>>,
    },
    Multi {
        which: usize,
        shard: usize,
        parts: Vec<Vec<(Fingerprint, PackedId)>>,
    },
    Ordered {
        which: usize,
        shard: usize,
        parts: Vec<Vec<IndexKey>>,
    },
}

fn empty_lists<T>(count: usize) -> Vec<Vec<T>> {
    (0..count).map(|_| Vec::new()).collect()
}

/// Every thread's list `shard` of the structure `lists` picks, taken out of `partitions`.
fn take_shard<T>(
    partitions: &mut [Partitions],
    shard: usize,
    lists: impl Fn(&mut Partitions) -> &mut Vec<Vec<T>>,
) -> Vec<Vec<T>> {
    partitions
        .iter_mut()
        .map(|partition| std::mem::take(&mut lists(partition)[shard]))
        .collect()
}

impl MemoryStore {
    /// A store holding exactly `records` (from a snapshot), built on every core: the records
    /// are split by shard, and each shard of the primary map and of every index is built in
    /// one go, sized up front (ordered indexes from sorted runs), instead of one indexed insert
    /// at a time. Like [`MemoryStore::apply_replayed`], no quota is checked: the snapshot
    /// already decided. Tables are sized for the larger of `options.capacity` and
    /// `records.len()`.
    ///
    /// # Errors
    /// [`MemoryStoreError::DuplicateSessionId`] or [`MemoryStoreError::DuplicateTokenHash`]
    /// (one of them, if there are several) when two records share an id or a token hash, which
    /// a store never holds, so the snapshot is damaged or forged; otherwise as
    /// [`MemoryStore::new`].
    pub fn bulk_load(
        clock: Arc<dyn Clock>,
        options: StoreOptions,
        records: Vec<SessionRecord>,
    ) -> Result<MemoryStore, MemoryStoreError> {
        let capacity = options.capacity.max(records.len());
        let layout = TableLayout::for_capacity(capacity);
        // The tables are built below, sized then; reserve nothing now.
        let store = MemoryStore::with_layout(
            clock,
            options,
            TableLayout {
                shard_capacity: 0,
                ..layout
            },
        )?;
        let threads = std::thread::available_parallelism()
            .map_or(1, NonZero::get)
            .clamp(1, BULK_THREADS_MAX);
        let partitions = store.partition(records, threads);
        let jobs = store.jobs(partitions);
        store.run_jobs(&jobs, threads, capacity, layout.shard_capacity)?;
        Ok(store)
    }

    fn multi_indexes(&self) -> [&MultiIndex; 4] {
        [
            &self.by_user,
            &self.by_device,
            &self.by_creator,
            &self.by_ip,
        ]
    }

    fn ordered_indexes(&self) -> [&OrderedIndex; 3] {
        [&self.by_created, &self.by_active, &self.by_expiry]
    }

    /// Splits `records` into `threads` runs and each run, on its own thread, by destination.
    fn partition(&self, records: Vec<SessionRecord>, threads: usize) -> Vec<Partitions> {
        let per_thread = records.len().div_ceil(threads).max(1);
        let mut input = records.into_iter();
        let runs: Vec<Vec<SessionRecord>> = (0..threads)
            .map(|_| input.by_ref().take(per_thread).collect())
            .collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = runs
                .into_iter()
                .map(|run| scope.spawn(move || self.partition_run(run)))
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        })
    }

    fn partition_run(&self, run: Vec<SessionRecord>) -> Partitions {
        let multi = self.multi_indexes();
        let ordered = self.ordered_indexes();
        let mut partitions = Partitions {
            primary: empty_lists(self.records.shard_count()),
            token: empty_lists(self.by_token.shard_count()),
            multi: multi.map(|index| empty_lists(index.shard_count())),
            ordered: ordered.map(|index| empty_lists(index.shard_count())),
        };
        for record in run {
            let keys = self.keys_of(&record);
            let id = PackedId::of(record.id());
            partitions.token[self.by_token.shard_of(keys.token)].push((record.token_hash(), id));
            let multi_keys: [&[Option<Fingerprint>]; 4] =
                [&keys.user, &keys.device, &keys.creator, &keys.ips];
            for (which, list) in multi_keys.into_iter().enumerate() {
                for key in list.iter().flatten() {
                    partitions.multi[which][multi[which].shard_of(*key)].push((*key, id));
                }
            }
            for (which, key) in [keys.created, keys.active, keys.expiry]
                .into_iter()
                .enumerate()
            {
                partitions.ordered[which][ordered[which].shard_of(id)].push(key);
            }
            partitions.primary[self.records.shard_of(id)].push(record);
        }
        partitions
    }

    /// One job per shard of every structure; primary and token shards first, since they are
    /// the ones that can refuse the input.
    fn jobs(&self, mut partitions: Vec<Partitions>) -> Vec<Mutex<Option<Job>>> {
        let mut jobs = Vec::new();
        for shard in 0..self.records.shard_count() {
            let parts = take_shard(&mut partitions, shard, |p| &mut p.primary);
            jobs.push(Job::Primary { shard, parts });
        }
        for shard in 0..self.by_token.shard_count() {
            let parts = take_shard(&mut partitions, shard, |p| &mut p.token);
            jobs.push(Job::Token { shard, parts });
        }
        for (which, index) in self.multi_indexes().into_iter().enumerate() {
            for shard in 0..index.shard_count() {
                let parts = take_shard(&mut partitions, shard, |p| &mut p.multi[which]);
                jobs.push(Job::Multi {
                    which,
                    shard,
                    parts,
                });
            }
        }
        for (which, index) in self.ordered_indexes().into_iter().enumerate() {
            for shard in 0..index.shard_count() {
                let parts = take_shard(&mut partitions, shard, |p| &mut p.ordered[which]);
                jobs.push(Job::Ordered {
                    which,
                    shard,
                    parts,
                });
            }
        }
        jobs.into_iter().map(|job| Mutex::new(Some(job))).collect()
    }

    /// Runs every job on `threads` threads, each taking the next job not yet taken; stops
    /// taking jobs after the first failure and returns it.
    fn run_jobs(
        &self,
        jobs: &[Mutex<Option<Job>>],
        threads: usize,
        capacity: usize,
        shard_capacity: usize,
    ) -> Result<(), MemoryStoreError> {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let failure = Mutex::new(None);
        // Relaxed: `next` only hands out distinct indexes and `failed` is a hint to stop early;
        // the jobs' results are published by the shard locks and the scope's join.
        let work = || {
            // Bounded by the number of jobs: each round takes a new index.
            while !failed.load(Ordering::Relaxed) {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(slot) = jobs.get(index) else {
                    return;
                };
                let Some(job) = slot.lock().take() else {
                    continue;
                };
                if let Err(error) = self.run_job(job, capacity, shard_capacity) {
                    failed.store(true, Ordering::Relaxed);
                    failure.lock().get_or_insert(error);
                }
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(work);
            }
            work();
        });
        match failure.into_inner() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// One shard of the token index from its `(token hash, id)` entries; a token hash given
    /// to two ids is [`MemoryStoreError::DuplicateTokenHash`].
    fn build_token_shard(
        &self,
        mut tokens: Vec<(TokenHash, PackedId)>,
        capacity: usize,
        shard_capacity: usize,
    ) -> Result<MultiShard, MemoryStoreError> {
        tokens.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(&b.1)));
        // Two entries of one id are one record given twice: the primary map's job reports that
        // as a duplicate id.
        if let Some(pair) = tokens
            .windows(2)
            .find(|pair| pair[0].0 == pair[1].0 && pair[0].1 != pair[1].1)
            && let (Some(first), Some(second)) =
                (pair[0].1.to_session_id(), pair[1].1.to_session_id())
        {
            return Err(MemoryStoreError::DuplicateTokenHash { first, second });
        }
        let entries = tokens
            .iter()
            .map(|(token, id)| (self.token_fingerprint(token), *id))
            .collect();
        MultiShard::build(entries, shard_capacity).map_err(|_| {
            MemoryStoreError::CapacityUnavailable {
                capacity,
                structure: "token index",
            }
        })
    }

    fn run_job(
        &self,
        job: Job,
        capacity: usize,
        shard_capacity: usize,
    ) -> Result<(), MemoryStoreError> {
        let unavailable = |structure: &'static str| {
            move |_| MemoryStoreError::CapacityUnavailable {
                capacity,
                structure,
            }
        };
        match job {
            Job::Primary { shard, parts } => {
                let records = parts.concat();
                let built = self
                    .records
                    .build_shard(records, shard_capacity)
                    .map_err(|error| match error {
                        BuildError::DuplicateId(id) => MemoryStoreError::DuplicateSessionId { id },
                        BuildError::Reserve => MemoryStoreError::CapacityUnavailable {
                            capacity,
                            structure: "primary map",
                        },
                    })?;
                self.records.install(shard, built);
            }
            Job::Token { shard, parts } => {
                let built = self.build_token_shard(parts.concat(), capacity, shard_capacity)?;
                self.by_token.install(shard, built);
            }
            Job::Multi {
                which,
                shard,
                parts,
            } => {
                let index = self.multi_indexes()[which];
                // The API key index is not reserved (see `MemoryStore::with_layout`).
                let reserve = if std::ptr::eq(index, &self.by_creator) {
                    0
                } else {
                    shard_capacity
                };
                let built = MultiShard::build(parts.concat(), reserve)
                    .map_err(unavailable(MULTI_INDEX_NAMES[which]))?;
                index.install(shard, built);
            }
            Job::Ordered {
                which,
                shard,
                parts,
            } => {
                let mut keys = parts.concat();
                keys.sort_unstable();
                // Equal keys come only from a record given twice, refused by its primary job.
                keys.dedup();
                self.ordered_indexes()[which].install(shard, OrderedShard::from_sorted(&keys));
            }
        }
        Ok(())
    }
}

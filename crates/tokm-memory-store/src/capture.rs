//! [`Capture`]: every stored session as of one instant, handed out shard by shard.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokm_domain::SessionRecord;

use crate::store::MemoryStore;

/// A copy of every session stored at one instant, taken by [`MemoryStore::capture`] while
/// writes continue, for a snapshot encoder.
///
/// The instant is the moment every primary-map shard was locked at once; a write is in the
/// capture exactly when its primary record (its commit point) was stored before it. One
/// operation that commits several records (a create that evicts, `delete_by_user`,
/// `cleanup_expired`) commits them one by one, so a caller that needs whole operations pauses
/// writers around [`MemoryStore::capture`] (the engine's write gate does: it is held exclusively
/// only for the O(shards) start, not for the copy).
///
/// [`Capture::next_shard`] hands each shard's records to whichever thread asks first, so
/// several encoder threads can pull in parallel. Until the capture is dropped, the store keeps
/// the old record of each session written in a shard not yet handed out; dropping it ends
/// that, and lets the next [`MemoryStore::capture`] begin.
pub struct Capture<'a> {
    store: &'a MemoryStore,
    session_count: u64,
    /// The next shard to hand out; past the last, every call returns `None`.
    next_shard: AtomicUsize,
}

impl<'a> Capture<'a> {
    pub(crate) fn new(
        store: &'a MemoryStore,
        session_count: u64,
        next_shard: AtomicUsize,
    ) -> Capture<'a> {
        Capture {
            store,
            session_count,
            next_shard,
        }
    }

    /// Sessions stored at the capture's instant, live or expired: exactly how many records
    /// all calls of [`Capture::next_shard`] together return.
    pub fn session_count(&self) -> u64 {
        self.session_count
    }

    /// Shards to be handed out in all.
    pub fn shard_count(&self) -> usize {
        self.store.records.shard_count()
    }

    /// The records of the next shard not yet handed out, as of the capture's instant and in no
    /// particular order, or `None` when every shard has been. Holds that shard's lock while
    /// copying its record pointers (readers proceed once its old values are taken).
    pub fn next_shard(&self) -> Option<Vec<SessionRecord>> {
        // Relaxed suffices: the counter only has to give each caller a distinct index (every
        // read-modify-write of one atomic sees a distinct value); the records are read under
        // the shard's lock, which orders them with the writes.
        let index = self.next_shard.fetch_add(1, Ordering::Relaxed);
        self.store.records.copy_captured_shard(index)
    }
}

impl Drop for Capture<'_> {
    fn drop(&mut self) {
        self.store.end_capture();
    }
}

impl fmt::Debug for Capture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("session_count", &self.session_count)
            .field("next_shard", &self.next_shard.load(Ordering::Relaxed))
            .field("shard_count", &self.shard_count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_can_be_shared_and_sent_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Capture<'static>>();
    }
}

//! Key rotation in the writer: moving new records to the keyring's active key at once, and
//! which keys the segments in the log are sealed under.
//!
//! The keyring is shared ([`Keyring::rotate`](tokm_crypto_adaptive::Keyring::rotate) changes
//! its active key through `&self`), and a segment's key is fixed when the segment is decided:
//! [`prepare_segment`] takes the active key at that moment, under the state lock. So after a
//! rotation every later segment is sealed under the new key by itself; what
//! [`Wal::adopt_active_key`] adds is not waiting for the open segment to fill up.

use std::collections::BTreeSet;

use parking_lot::MutexGuard;
use tokm_crypto_adaptive::KeyId;

use super::{Goal, SegmentDisk, Shared, State, Wal, create_segment_file, prepare_segment};
use crate::error::{AppendError, IoFailure};

impl Wal {
    /// Seals every record appended from now on under the keyring's active key: call it after
    /// [`Keyring::rotate`](tokm_crypto_adaptive::Keyring::rotate) on the keyring this log was
    /// opened with.
    ///
    /// If the open segment is sealed under another key, it is finished as if full and the
    /// next segment starts at once, under the active key; this returns once that segment's
    /// file exists (the full one synced first, as at every rotation). An open segment that
    /// holds no record yet is replaced instead (a new file of the same name, then the
    /// directory synced), since a successor would take its name; appenders wait for that one
    /// file creation. Segments sealed under older keys stay in the log, readable with a
    /// keyring that keeps their keys, until [`Wal::compact`] removes them. Without a keyring,
    /// or with the open segment already under the active key, nothing happens.
    ///
    /// Safe with concurrent appenders and the background flusher: the switch happens under
    /// the writer's lock, and a record is sealed under the key of the segment it is encoded
    /// for, so none is lost or sealed twice.
    ///
    /// # Errors
    /// [`AppendError::WriterFailed`] if the writer failed before, or if finishing the segment
    /// or creating the new one fails (the writer then fails closed, as for any write error);
    /// [`AppendError::Crypto`].
    pub fn adopt_active_key(&self) -> Result<(), AppendError> {
        self.shared.adopt_active_key()
    }

    /// The ids of the keys the log's segments are sealed under, ascending: every segment still
    /// in the directory, the open one included. Plain segments name none. Segments leave the
    /// set when [`Wal::compact`] removes them, so a key missing from it seals no record here.
    pub fn segment_key_ids(&self) -> BTreeSet<KeyId> {
        self.shared
            .segments
            .lock()
            .iter()
            .filter_map(|segment| segment.key_id)
            .collect()
    }
}

impl Shared {
    fn adopt_active_key(&self) -> Result<(), AppendError> {
        let Some(keyring) = self.options.keyring.as_ref() else {
            return Ok(());
        };
        let mut state = self.state.lock();
        // Each pass either returns, or waits for a round that makes progress, or switches to a
        // segment under the active key; only further rotations meanwhile make it go round again.
        loop {
            // The open segment's file must exist: a segment awaiting its seal round was decided
            // (key included) before this call.
            self.advance(&mut state, Goal::Created)?;
            if state.segment.seal.key_id() == Some(keyring.active_key_id()) {
                return Ok(());
            }
            if state.segment.records_count > 0 {
                state.switch_segment(&self.options)?;
                // Full means a request is already queued; either way the flusher seals soon,
                // and the next pass runs the seal round itself if it is free.
                let _ = self.sync_requests.try_send(());
                continue;
            }
            // Empty: replace it, once no round holds its file.
            if state.writing {
                self.write_done.wait(&mut state);
                continue;
            }
            if state.syncing {
                let generation = state.sync_generation;
                self.sync_done[(generation % 2) as usize].wait(&mut state);
                continue;
            }
            return self.replace_empty_segment(&mut state);
        }
    }

    /// Replaces the open segment, created but holding no record, by one of the same name,
    /// id and previous LSN under the active key. Holds the state lock across the I/O so no
    /// record can be encoded for the old one meanwhile; only an empty segment gets here, so
    /// no record is in flight for it.
    ///
    /// The old file is removed before the new one is renamed into place (the rename would
    /// otherwise be refused as a collision), and the directory synced after. A crash between
    /// the two leaves the log without its empty newest segment, which recovery treats like
    /// any log that ends there: nothing was in it.
    fn replace_empty_segment(&self, state: &mut MutexGuard<'_, State>) -> Result<(), AppendError> {
        let segment = &state.segment;
        debug_assert!(segment.records_count == 0 && !state.writing && !state.syncing);
        let next = prepare_segment(
            &self.options,
            state.next_lsn,
            segment.previous_lsn,
            segment.id,
        )?;
        let name = segment.name.clone();
        debug_assert_eq!(
            next.name, name,
            "an empty segment's first LSN is the next one"
        );
        let created = self
            .options
            .storage
            .remove(&self.dir.join(&name))
            .map_err(|source| IoFailure::new("remove", &name, source))
            .and_then(|()| create_segment_file(&self.options, &self.dir, &next.header, &[]));
        match created {
            Ok(file) => {
                let key_id = next.seal.key_id();
                state.segment = next.open(SegmentDisk::Created(file));
                state.unsynced_bytes = 0;
                if let Some(newest) = self.segments.lock().last_mut() {
                    newest.key_id = key_id;
                }
                Ok(())
            }
            Err(error) => {
                state.fail(&error, &name);
                self.write_done.notify_all();
                self.notify_all_sync_waiters();
                Err(state.failed_error().unwrap_or(AppendError::WriterFailed {
                    cause: error.source.kind(),
                    durable_lsn: state.durable_lsn,
                }))
            }
        }
    }
}

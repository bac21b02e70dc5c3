//! Online key rotation ([`Engine::rotate_key`]) and which keys the files on disk still need
//! ([`KeyUsage`], reported as [`EngineStatus::keys`](crate::EngineStatus::keys)).
//!
//! The engine's keyring is one `Arc<Keyring>` shared by the log and the snapshot store, and
//! [`Keyring::rotate`] changes its active key through `&self`; both take the active key when
//! they start a file. So rotation is: wait for a snapshot in flight, rotate the keyring, and
//! have the log start a segment under the new key at once ([`tokm_wal::Wal::adopt_active_key`]).
//! No writer is paused beyond the one segment switch.

use std::collections::BTreeSet;
use std::io;
use std::sync::atomic::Ordering;

use tokm_crypto_adaptive::{Key, KeyId, Keyring};
use tokm_domain::ErrorChain;
use tokm_snapshot::{Encryption, LoadError};

use crate::engine::{Engine, Shared};
use crate::error::EngineError;

/// Which keys the engine's files are sealed under, so an operator knows when an old key can
/// leave the keyring: [`EngineStatus::keys`](crate::EngineStatus::keys).
///
/// Counted are the files a restart reads: the log's segments and every snapshot (`*.snap`) in
/// the snapshot directory. Files set aside as damaged (`*.broken`, quarantined segments) are
/// not: recovery never reads them. After [`Engine::rotate_key`], the old key stays in use
/// until retention has dropped every snapshot sealed under it and compaction every segment;
/// with the default retention (five snapshots, and any younger than seven days) that takes
/// a while, and [`KeyUsage::can_retire`] says when it is done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyUsage {
    /// The key new log segments and snapshots are sealed under; `None` without a keyring.
    pub active: Option<KeyId>,
    /// Every key the keyring holds, ascending.
    pub held: Vec<KeyId>,
    /// The keys the log's segments and the snapshots on disk are sealed under, ascending.
    pub in_use: Vec<KeyId>,
    /// Snapshot files whose header could not be read to learn their key (damage, or an I/O
    /// error), or the snapshot directory when it could not be listed. While this is not empty
    /// `in_use` may be incomplete, and [`KeyUsage::can_retire`] says no.
    pub unchecked: Vec<String>,
}

impl KeyUsage {
    /// Whether the keyring can lose `key_id` at the next open: it is not the active key, no
    /// file on disk is sealed under it, and every file could be checked.
    pub fn can_retire(&self, key_id: KeyId) -> bool {
        self.active != Some(key_id) && !self.in_use.contains(&key_id) && self.unchecked.is_empty()
    }

    /// The held keys [`can_retire`](KeyUsage::can_retire) says yes to, ascending.
    pub fn retirable(&self) -> Vec<KeyId> {
        self.held
            .iter()
            .copied()
            .filter(|key_id| self.can_retire(*key_id))
            .collect()
    }
}

impl Engine {
    /// Rotates the encryption key online: adds `key` to the engine's keyring under `key_id`
    /// and makes it the active key. When this returns, every record written from then on is
    /// in a log segment sealed under `key`, and every snapshot taken from then on is sealed
    /// under it; files sealed under older keys stay readable, because the keyring keeps every
    /// key it held.
    ///
    /// The log starts a new segment at once rather than when the open one fills up (an open
    /// segment that holds no record is replaced instead). A snapshot in progress finishes
    /// first, so none completes under the old key after this returns. Writers are not paused
    /// beyond the segment switch, and none of their records is lost: each is sealed under the
    /// key of the segment it lands in. The keyring is the `Arc` passed in
    /// [`EngineConfig::keyring`](crate::EngineConfig::keyring), so its other holders see the
    /// new key too.
    ///
    /// To reopen the directory later, the keyring must hold every key still in use: see
    /// [`EngineStatus::keys`](crate::EngineStatus::keys), which says when the old key can go
    /// (after a snapshot under the new key, retention and the compaction behind it).
    ///
    /// # Errors
    /// [`EngineError::NoKeyring`] for an engine opened without a keyring (rotation does not
    /// turn encryption on); [`EngineError::KeyRejected`] if the keyring already holds
    /// `key_id` (nothing changed); [`EngineError::ReadOnly`] after an earlier log failure;
    /// [`EngineError::Wal`] if starting the new segment fails: the engine then turns
    /// read-only like after any log failure, and the keyring already holds the new key.
    pub fn rotate_key(&self, key_id: KeyId, key: Key) -> Result<(), EngineError> {
        self.shared.rotate_key(key_id, key)
    }
}

impl Shared {
    fn rotate_key(&self, key_id: KeyId, key: Key) -> Result<(), EngineError> {
        let Some(keyring) = &self.config.keyring else {
            return Err(EngineError::NoKeyring);
        };
        if self.read_only.load(Ordering::Acquire) {
            return Err(EngineError::ReadOnly);
        }
        // Snapshots take their key when they start a file, under this lock; holding it here
        // means none in flight can finish under the old key after we return.
        let _no_snapshot_in_flight = self.snapshot_state.lock();
        keyring
            .rotate(key_id, key)
            .map_err(|source| EngineError::KeyRejected { source })?;
        if let Err(error) = self.wal.adopt_active_key() {
            self.read_only.store(true, Ordering::Release);
            self.record_error(error.code(), ErrorChain(&error).to_string());
            tracing::error!(
                code = error.code(),
                error = %ErrorChain(&error),
                "starting a log segment under the new key failed; engine is read-only"
            );
            return Err(error.into());
        }
        tracing::info!(
            key_id = key_id.get(),
            "key rotated: new log segments and snapshots are sealed under it"
        );
        Ok(())
    }

    /// What [`EngineStatus::keys`](crate::EngineStatus::keys) reports: the log's keys from
    /// memory, the snapshots' from their headers (one directory listing and a header and
    /// footer read per snapshot; no block is read).
    pub(crate) fn key_usage(&self) -> KeyUsage {
        let Some(keyring) = &self.config.keyring else {
            // Without a keyring no file the engine can open is sealed: an open would have
            // refused a sealed one.
            return KeyUsage::default();
        };
        let mut in_use: BTreeSet<KeyId> = self.wal.segment_key_ids();
        let mut unchecked = Vec::new();
        match self.snapshots.list() {
            Ok(snapshots) => {
                for snapshot in snapshots {
                    match snapshot.meta {
                        Ok(meta) => {
                            if let Encryption::Sealed { key_id, .. } = meta.encryption {
                                in_use.insert(key_id);
                            }
                        }
                        // Removed by retention since the listing: no longer on disk.
                        Err(LoadError::Io { source, .. })
                            if source.kind() == io::ErrorKind::NotFound => {}
                        Err(_) => unchecked.push(snapshot.file_name),
                    }
                }
            }
            Err(_) => unchecked.push(self.snapshots.dir().display().to_string()),
        }
        usage(keyring, in_use, unchecked)
    }
}

fn usage(keyring: &Keyring, in_use: BTreeSet<KeyId>, unchecked: Vec<String>) -> KeyUsage {
    KeyUsage {
        active: Some(keyring.active_key_id()),
        held: keyring.key_ids(),
        in_use: in_use.into_iter().collect(),
        unchecked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(in_use: &[u32], unchecked: &[&str]) -> KeyUsage {
        KeyUsage {
            active: Some(KeyId::new(2)),
            held: vec![KeyId::new(1), KeyId::new(2), KeyId::new(3)],
            in_use: in_use.iter().copied().map(KeyId::new).collect(),
            unchecked: unchecked.iter().map(|name| (*name).to_owned()).collect(),
        }
    }

    #[test]
    fn a_key_no_file_needs_can_retire_but_never_the_active_one() {
        let usage = usage(&[1, 2], &[]);
        assert!(!usage.can_retire(KeyId::new(1)));
        assert!(!usage.can_retire(KeyId::new(2)));
        assert!(usage.can_retire(KeyId::new(3)));
        assert_eq!(usage.retirable(), [KeyId::new(3)]);
    }

    #[test]
    fn an_unchecked_file_means_no_key_can_retire() {
        let usage = usage(&[2], &["00000000000000000007-00000000000000000001.snap"]);
        assert!(usage.retirable().is_empty());
    }
}

//! [`Versioned`] values and the compare-and-swap operations on maps of them.

use std::borrow::Borrow;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hash};

use crate::error::CasError;
use crate::map::ShardedMap;

/// The version [`Versioned::new`] and [`ShardedMap::insert_new`] start at.
pub const INITIAL_VERSION: u64 = 1;

/// A value with a version number for optimistic concurrency: read the value and its version,
/// compute a new value, and [`compare_and_swap`](ShardedMap::compare_and_swap) it in only if
/// nobody changed the version meanwhile.
///
/// The version changes only through the compare-and-swap operations, which add exactly one and
/// refuse to wrap past `u64::MAX`. There is deliberately no `value_mut`: changing a value without
/// changing its version would let a stale compare-and-swap succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<V> {
    version: u64,
    value: V,
}

impl<V> Versioned<V> {
    /// `value` at [`INITIAL_VERSION`].
    #[must_use]
    pub fn new(value: V) -> Self {
        Self {
            version: INITIAL_VERSION,
            value,
        }
    }

    /// `value` at a given `version`, for restoring state that was versioned elsewhere (a
    /// snapshot, a log replay).
    #[must_use]
    pub fn with_version(value: V, version: u64) -> Self {
        Self { version, value }
    }

    /// The version of this value.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The value.
    #[must_use]
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The value, dropping the version.
    #[must_use]
    pub fn into_value(self) -> V {
        self.value
    }
}

impl<K, V, S> ShardedMap<K, Versioned<V>, S>
where
    K: Hash + Eq,
    S: BuildHasher + Clone,
{
    /// Inserts `value` at [`INITIAL_VERSION`] if `key` is absent and returns that version.
    ///
    /// # Errors
    /// [`CasError::AlreadyExists`] (with the stored version) if `key` is present; the stored
    /// value is left as it was.
    pub fn insert_new(&self, key: K, value: V) -> Result<u64, CasError> {
        let shard = self.shard(&key);
        match shard.write().entry(key) {
            Entry::Occupied(stored) => Err(CasError::AlreadyExists {
                version: stored.get().version,
            }),
            Entry::Vacant(slot) => {
                slot.insert(Versioned::new(value));
                Ok(INITIAL_VERSION)
            }
        }
    }

    /// Replaces the value for `key` with `new_value` if its version is `expected_version`, and
    /// returns the new version (`expected_version + 1`). Check and swap are one atomic step.
    ///
    /// # Errors
    /// [`CasError::NotFound`] if `key` is absent, [`CasError::VersionMismatch`] if the stored
    /// version differs, [`CasError::VersionOverflow`] if it is `u64::MAX`. The map is unchanged
    /// on error.
    pub fn compare_and_swap<Q>(
        &self,
        key: &Q,
        expected_version: u64,
        new_value: V,
    ) -> Result<u64, CasError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key);
        let mut table = shard.write();
        let stored = table.get_mut(key).ok_or(CasError::NotFound)?;
        let next_version = next_version(stored.version, expected_version)?;
        *stored = Versioned {
            version: next_version,
            value: new_value,
        };
        Ok(next_version)
    }

    /// Removes `key` and returns its value if its version is `expected_version`. Check and
    /// removal are one atomic step.
    ///
    /// # Errors
    /// [`CasError::NotFound`] if `key` is absent, [`CasError::VersionMismatch`] if the stored
    /// version differs. The map is unchanged on error.
    pub fn compare_and_delete<Q>(&self, key: &Q, expected_version: u64) -> Result<V, CasError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key);
        let mut table = shard.write();
        let actual = table.get(key).ok_or(CasError::NotFound)?.version;
        if actual != expected_version {
            return Err(CasError::VersionMismatch {
                expected: expected_version,
                actual,
            });
        }
        // Present: found just above under the same write lock.
        table
            .remove(key)
            .map(Versioned::into_value)
            .ok_or(CasError::NotFound)
    }
}

/// The version after `actual`, provided the caller expected `actual`.
fn next_version(actual: u64, expected: u64) -> Result<u64, CasError> {
    if actual != expected {
        return Err(CasError::VersionMismatch { expected, actual });
    }
    actual
        .checked_add(1)
        .ok_or(CasError::VersionOverflow { version: actual })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::MapOptions;

    fn versioned_map() -> ShardedMap<&'static str, Versioned<u32>> {
        ShardedMap::with_options(MapOptions {
            shard_count: Some(4),
            capacity: 0,
        })
        .expect("valid options")
    }

    #[test]
    fn new_starts_at_initial_version() {
        let value = Versioned::new("v");
        assert_eq!(value.version(), INITIAL_VERSION);
        assert_eq!(*value.value(), "v");
        assert_eq!(value.into_value(), "v");
    }

    #[test]
    fn insert_new_refuses_present_keys() {
        let map = versioned_map();
        assert_eq!(map.insert_new("a", 1), Ok(INITIAL_VERSION));
        let err = map.insert_new("a", 2).expect_err("present");
        assert_eq!(
            err,
            CasError::AlreadyExists {
                version: INITIAL_VERSION
            }
        );
        assert_eq!(err.code(), "TM-CMAP-4092");
        assert_eq!(map.get("a"), Some(Versioned::new(1)));
    }

    #[test]
    fn compare_and_swap_bumps_version_once_per_success() {
        let map = versioned_map();
        map.insert_new("a", 1).expect("absent");
        assert_eq!(map.compare_and_swap("a", 1, 2), Ok(2));
        assert_eq!(map.compare_and_swap("a", 2, 3), Ok(3));
        assert_eq!(map.get("a"), Some(Versioned::with_version(3, 3)));
    }

    #[test]
    fn compare_and_swap_with_stale_version_changes_nothing() {
        let map = versioned_map();
        map.insert("a", Versioned::with_version(10, 5));
        let err = map.compare_and_swap("a", 4, 11).expect_err("stale");
        assert_eq!(
            err,
            CasError::VersionMismatch {
                expected: 4,
                actual: 5
            }
        );
        assert_eq!(err.code(), "TM-CMAP-4091");
        assert_eq!(map.get("a"), Some(Versioned::with_version(10, 5)));
    }

    #[test]
    fn compare_and_swap_on_absent_key_is_not_found() {
        let map = versioned_map();
        let err = map.compare_and_swap("missing", 1, 0).expect_err("absent");
        assert_eq!(err, CasError::NotFound);
        assert_eq!(err.code(), "TM-CMAP-4041");
        assert!(map.is_empty());
    }

    #[test]
    fn compare_and_swap_at_max_version_is_an_error_not_a_wrap() {
        let map = versioned_map();
        map.insert("a", Versioned::with_version(1, u64::MAX));
        let err = map
            .compare_and_swap("a", u64::MAX, 2)
            .expect_err("overflow");
        assert_eq!(err, CasError::VersionOverflow { version: u64::MAX });
        assert_eq!(err.code(), "TM-CMAP-4093");
        assert_eq!(map.get("a"), Some(Versioned::with_version(1, u64::MAX)));
    }

    #[test]
    fn compare_and_delete_checks_version() {
        let map = versioned_map();
        map.insert("a", Versioned::with_version(7, 3));
        assert_eq!(
            map.compare_and_delete("a", 2),
            Err(CasError::VersionMismatch {
                expected: 2,
                actual: 3
            })
        );
        assert!(map.contains_key("a"));
        assert_eq!(map.compare_and_delete("a", 3), Ok(7));
        assert_eq!(map.compare_and_delete("a", 3), Err(CasError::NotFound));
    }

    #[test]
    fn compare_and_delete_works_at_max_version() {
        let map = versioned_map();
        map.insert("a", Versioned::with_version(7, u64::MAX));
        assert_eq!(map.compare_and_delete("a", u64::MAX), Ok(7));
    }
}

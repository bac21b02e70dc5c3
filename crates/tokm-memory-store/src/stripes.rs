//! Striped mutexes that serialize conflicting mutations.

use std::hash::{BuildHasher, Hash};

use parking_lot::{Mutex, MutexGuard};
use tokm_cmap::DefaultHashBuilder;

/// Number of stripes in each [`Stripes`] array: with 64 writers each holding up to three
/// stripes, two unrelated writers share one with probability well under 1%.
pub(crate) const STRIPE_COUNT: usize = 1024;

/// Mutexes chosen by hashing a key; holding a key's stripe excludes every other holder of it.
#[derive(Debug)]
pub(crate) struct Stripes {
    hasher: DefaultHashBuilder,
    /// Lock order: several stripes of one array are taken in ascending index order (see
    /// [`Stripes::lock`]); see the crate docs for the order between arrays.
    locks: Box<[Padded]>,
}

/// One stripe on its own cache lines: stripes are hot, and neighbours belong to unrelated keys.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Padded(Mutex<()>);

/// The index of a stripe in its array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct StripeIndex(usize);

/// Held stripes; dropping it releases them.
#[derive(Debug)]
#[must_use = "the stripes are released when the guard is dropped"]
pub(crate) struct StripeGuard<'a> {
    _held: Vec<MutexGuard<'a, ()>>,
}

impl Stripes {
    pub(crate) fn new() -> Stripes {
        Stripes {
            hasher: DefaultHashBuilder::default(),
            locks: (0..STRIPE_COUNT).map(|_| Padded::default()).collect(),
        }
    }

    /// The stripe that guards `key`.
    pub(crate) fn index_of<K: Hash + ?Sized>(&self, key: &K) -> StripeIndex {
        // Truncation is intended: only the low bits select a stripe.
        StripeIndex(self.hasher.hash_one(key) as usize % STRIPE_COUNT)
    }

    /// Locks the given stripes, each once, in ascending index order, which is what makes two
    /// callers with overlapping sets unable to deadlock.
    pub(crate) fn lock(&self, indexes: &mut Vec<StripeIndex>) -> StripeGuard<'_> {
        indexes.sort_unstable();
        indexes.dedup();
        StripeGuard {
            _held: indexes
                .iter()
                .map(|index| self.locks[index.0].0.lock())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stripe_listed_twice_is_locked_once() {
        let stripes = Stripes::new();
        let index = stripes.index_of("alice");
        let mut indexes = vec![index, index, stripes.index_of("bob")];
        let guard = stripes.lock(&mut indexes);
        assert!(indexes.len() <= 2);
        drop(guard);
        assert!(
            stripes.locks[index.0].0.try_lock().is_some(),
            "released on drop"
        );
    }
}

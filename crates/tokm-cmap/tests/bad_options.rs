//! Bad `MapOptions` come back as typed errors with stable codes, never as a panic.

use tokm_cmap::{CmapError, MapOptions, SHARD_COUNT_MAX, ShardedMap};

fn build(shard_count: Option<usize>, capacity: usize) -> Result<ShardedMap<u64, u64>, CmapError> {
    ShardedMap::with_options(MapOptions {
        shard_count,
        capacity,
    })
}

#[test]
fn zero_shards_are_refused() {
    let err = build(Some(0), 0).expect_err("zero shards");
    assert!(matches!(err, CmapError::ShardCountZero), "{err:?}");
    assert_eq!(err.code(), "TM-CMAP-4001");
}

#[test]
fn shard_counts_that_are_not_powers_of_two_are_refused() {
    for shard_count in [3, 6, 12, 100, SHARD_COUNT_MAX - 1, usize::MAX] {
        let err = build(Some(shard_count), 0).expect_err("not a power of two");
        assert!(
            matches!(err, CmapError::ShardCountNotPowerOfTwo { shard_count: got } if got == shard_count),
            "{err:?}"
        );
        assert_eq!(err.code(), "TM-CMAP-4002");
    }
}

#[test]
fn shard_counts_above_the_maximum_are_refused() {
    for shard_count in [SHARD_COUNT_MAX * 2, 1 << 40] {
        let err = build(Some(shard_count), 0).expect_err("too many shards");
        assert!(
            matches!(
                err,
                CmapError::ShardCountTooLarge { shard_count: got, shard_count_max: SHARD_COUNT_MAX }
                    if got == shard_count
            ),
            "{err:?}"
        );
        assert_eq!(err.code(), "TM-CMAP-4003");
    }
}

#[test]
fn impossible_capacity_is_refused() {
    let err = build(Some(1), usize::MAX).expect_err("capacity overflows");
    assert!(
        matches!(
            err,
            CmapError::CapacityUnavailable {
                capacity: usize::MAX,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), "TM-CMAP-5071");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the allocator's reason is kept"
    );
}

#[test]
fn boundary_shard_counts_are_accepted() {
    for shard_count in [1, 2, SHARD_COUNT_MAX] {
        let map = build(Some(shard_count), 0).expect("valid shard count");
        assert_eq!(map.shard_count(), shard_count);
        map.insert(1, 2);
        assert_eq!(map.get(&1), Some(2));
    }
}

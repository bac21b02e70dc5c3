//! Random operation sequences give the same results on `ShardedMap` as on a `HashMap` model that
//! keeps versions itself.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use tokm_cmap::{CasError, INITIAL_VERSION, MapOptions, ShardedMap, Versioned};

/// Few keys, so operations keep hitting present keys and each other.
const KEY_COUNT: u8 = 12;

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, u32),
    Remove(u8),
    RemoveIfEven(u8),
    Get(u8),
    /// Adds to the value in place, keeping the version.
    Update(u8, u32),
    InsertNew(u8, u32),
    /// Expected version = the model's version (or 1 if absent) plus the offset.
    CompareAndSwap(u8, i8, u32),
    CompareAndDelete(u8, i8),
    GetOrInsertWith(u8, u32),
    RangeWithLimit(usize),
    Len,
    Clear,
}

fn version_offset() -> impl Strategy<Value = i8> {
    prop_oneof![4 => Just(0), 1 => Just(1), 1 => Just(-1)]
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEY_COUNT;
    prop_oneof![
        4 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => key.clone().prop_map(Op::Remove),
        1 => key.clone().prop_map(Op::RemoveIfEven),
        3 => key.clone().prop_map(Op::Get),
        2 => (key.clone(), 0..1000_u32).prop_map(|(k, d)| Op::Update(k, d)),
        3 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::InsertNew(k, v)),
        4 => (key.clone(), version_offset(), any::<u32>()).prop_map(|(k, o, v)| Op::CompareAndSwap(k, o, v)),
        2 => (key.clone(), version_offset()).prop_map(|(k, o)| Op::CompareAndDelete(k, o)),
        2 => (key, any::<u32>()).prop_map(|(k, v)| Op::GetOrInsertWith(k, v)),
        1 => (0..(KEY_COUNT as usize + 2)).prop_map(Op::RangeWithLimit),
        1 => Just(Op::Len),
        1 => Just(Op::Clear),
    ]
}

type Model = HashMap<u8, Versioned<u32>>;

fn expected_version(model: &Model, key: u8, offset: i8) -> u64 {
    model
        .get(&key)
        .map_or(INITIAL_VERSION, Versioned::version)
        .wrapping_add_signed(offset.into())
}

/// What the model says a compare-and-swap returns, applying it to the model on success.
fn model_compare_and_swap(
    model: &mut Model,
    key: u8,
    expected: u64,
    value: u32,
) -> Result<u64, CasError> {
    let Some(stored) = model.get_mut(&key) else {
        return Err(CasError::NotFound);
    };
    if stored.version() != expected {
        return Err(CasError::VersionMismatch {
            expected,
            actual: stored.version(),
        });
    }
    *stored = Versioned::with_version(value, expected + 1);
    Ok(expected + 1)
}

fn model_compare_and_delete(model: &mut Model, key: u8, expected: u64) -> Result<u32, CasError> {
    let Some(stored) = model.get(&key) else {
        return Err(CasError::NotFound);
    };
    if stored.version() != expected {
        return Err(CasError::VersionMismatch {
            expected,
            actual: stored.version(),
        });
    }
    Ok(model
        .remove(&key)
        .map(Versioned::into_value)
        .expect("checked above"))
}

fn apply(map: &ShardedMap<u8, Versioned<u32>>, model: &mut Model, op: &Op) {
    match *op {
        Op::Insert(key, value) => {
            assert_eq!(
                map.insert(key, Versioned::new(value)),
                model.insert(key, Versioned::new(value))
            );
        }
        Op::Remove(key) => assert_eq!(map.remove(&key), model.remove(&key)),
        Op::RemoveIfEven(key) => {
            let is_even = |stored: &Versioned<u32>| stored.value().is_multiple_of(2);
            let expected = if model.get(&key).is_some_and(is_even) {
                model.remove(&key)
            } else {
                None
            };
            assert_eq!(map.remove_if(&key, is_even), expected);
        }
        Op::Get(key) => {
            assert_eq!(map.get(&key), model.get(&key).cloned());
            assert_eq!(map.contains_key(&key), model.contains_key(&key));
        }
        Op::Update(key, delta) => {
            let bump = |stored: &mut Versioned<u32>| {
                *stored =
                    Versioned::with_version(stored.value().wrapping_add(delta), stored.version());
                *stored.value()
            };
            assert_eq!(map.update(&key, bump), model.get_mut(&key).map(bump));
        }
        Op::InsertNew(key, value) => {
            let expected = match model.get(&key) {
                Some(stored) => Err(CasError::AlreadyExists {
                    version: stored.version(),
                }),
                None => {
                    model.insert(key, Versioned::new(value));
                    Ok(INITIAL_VERSION)
                }
            };
            assert_eq!(map.insert_new(key, value), expected);
        }
        Op::CompareAndSwap(key, offset, value) => {
            let expected_version = expected_version(model, key, offset);
            let expected = model_compare_and_swap(model, key, expected_version, value);
            assert_eq!(
                map.compare_and_swap(&key, expected_version, value),
                expected
            );
        }
        Op::CompareAndDelete(key, offset) => {
            let expected_version = expected_version(model, key, offset);
            let expected = model_compare_and_delete(model, key, expected_version);
            assert_eq!(map.compare_and_delete(&key, expected_version), expected);
        }
        Op::GetOrInsertWith(key, value) => {
            let expected = model
                .entry(key)
                .or_insert_with(|| Versioned::new(value))
                .clone();
            assert_eq!(
                map.get_or_insert_with(key, || Versioned::new(value)),
                expected
            );
        }
        Op::RangeWithLimit(limit) => {
            let mut seen = HashSet::new();
            let visited_count = map.range_with_limit(limit, |key, stored| {
                assert_eq!(
                    model.get(key),
                    Some(stored),
                    "range saw a value the model lacks"
                );
                assert!(seen.insert(*key), "range visited key {key} twice");
            });
            assert_eq!(visited_count, limit.min(model.len()));
            assert_eq!(seen.len(), visited_count);
        }
        Op::Len => {
            assert_eq!(map.len(), model.len());
            assert_eq!(map.is_empty(), model.is_empty());
        }
        Op::Clear => {
            map.clear();
            model.clear();
        }
    }
}

fn sorted_items(map: &ShardedMap<u8, Versioned<u32>>) -> Vec<(u8, Versioned<u32>)> {
    let mut items = map.items();
    items.sort_unstable_by_key(|(key, _)| *key);
    items
}

fn sorted_model(model: &Model) -> Vec<(u8, Versioned<u32>)> {
    let mut items: Vec<_> = model
        .iter()
        .map(|(key, stored)| (*key, stored.clone()))
        .collect();
    items.sort_unstable_by_key(|(key, _)| *key);
    items
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_operations_match_the_model(
        shard_bits in 0..4_u32,
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let map = ShardedMap::with_options(MapOptions { shard_count: Some(1 << shard_bits), capacity: 0 })
            .expect("valid options");
        let mut model = Model::new();
        for op in &ops {
            apply(&map, &mut model, op);
            prop_assert_eq!(sorted_items(&map), sorted_model(&model), "after {:?}", op);
        }
        let shard_len_sum: usize = map.shard_stats().iter().map(|stats| stats.len).sum();
        prop_assert_eq!(shard_len_sum, model.len());
    }
}

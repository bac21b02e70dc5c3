//! A snapshot never holds two records with one id or one token hash; `bulk_load` refuses such
//! input with a typed error instead of building a store that breaks its own invariants.

mod common;

use std::sync::Arc;

use tokm_domain::testkit::SUITE_START;
use tokm_domain::{ManualClock, SessionFields, SessionRecord};
use tokm_memory_store::{MemoryStore, StoreOptions};

use crate::common::{Spec, fields, record, token};

fn spec(user: u8) -> Spec {
    Spec {
        user,
        device: None,
        creator: None,
        ip: None,
        last_ip: None,
        created_s: 1,
        lifetime_s: 100,
        idle_s: None,
        active_s: 0,
        version: 1,
    }
}

fn load(records: Vec<SessionRecord>) -> Result<MemoryStore, tokm_memory_store::MemoryStoreError> {
    let clock = Arc::new(ManualClock::new(SUITE_START));
    MemoryStore::bulk_load(clock, StoreOptions::default(), records)
}

#[test]
fn a_repeated_session_id_is_refused() {
    let mut records: Vec<SessionRecord> = (0..500).map(|n| record(n, &spec(n as u8 % 7))).collect();
    let mut other: SessionFields = fields(3, &spec(1));
    other.token_hash = token(10_000);
    records.push(SessionRecord::from_session(
        &tokm_domain::Session::from_fields(other, 2).unwrap(),
    ));
    let err = load(records).unwrap_err();
    assert_eq!(err.code(), "TM-MEMS-5201", "{err}");
}

#[test]
fn the_same_record_twice_is_a_repeated_id() {
    let mut records: Vec<SessionRecord> = (0..100).map(|n| record(n, &spec(1))).collect();
    records.push(records[42].clone());
    let err = load(records).unwrap_err();
    assert_eq!(err.code(), "TM-MEMS-5201", "{err}");
}

#[test]
fn a_repeated_token_hash_is_refused_without_showing_it() {
    let mut records: Vec<SessionRecord> = (0..500).map(|n| record(n, &spec(2))).collect();
    let mut thief: SessionFields = fields(900, &spec(3));
    thief.token_hash = token(17);
    records.push(SessionRecord::from_session(
        &tokm_domain::Session::from_fields(thief, 1).unwrap(),
    ));
    let err = load(records).unwrap_err();
    assert_eq!(err.code(), "TM-MEMS-5202", "{err}");
    let text = err.to_string();
    assert!(!text.contains(&format!("{:?}", token(17))), "{text}");
}

#[test]
fn no_records_make_an_empty_store() {
    let store = load(Vec::new()).unwrap();
    assert!(store.is_empty());
}

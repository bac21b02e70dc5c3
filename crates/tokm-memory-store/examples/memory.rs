//! Resident memory per session at 1,000,000 typical sessions.
//!
//! `cargo run --release -p tokm-memory-store --example memory [session_count] [create|bulk]`
//!
//! `create` (the default) fills the store with `create`, one indexed insert at a time; `bulk`
//! builds the records first and hands them to `MemoryStore::bulk_load`, as recovery from a
//! snapshot does. Each run prints RSS per session and `MemoryStore::memory_usage`'s estimate
//! per structure.
//!
//! The session has the shape of `tokm_benches::typical_session` (copied here so this crate does
//! not depend on the bench crate): a 12-character user id with 20 sessions per user, a unique
//! 16-character device id, a random IPv4 address, a 70-character user agent and one metadata
//! entry. RSS is read from `/proc/self/statm` before the store is built and after it is full.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokm_domain::{
    DeviceId, ManualClock, NewSession, Quota, QuotaPolicy, SessionFields, SessionId, SessionRecord,
    SessionRepository, Timestamp, TokenHash, TokenRepository, UserAgent, UserId,
};
use tokm_memory_store::{MemoryStore, StoreOptions};

const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);
const SESSIONS_PER_USER: u64 = 20;
const USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0";

/// SplitMix64, as in `tokm_benches::mix`.
fn mix(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Session `index`, shaped like `tokm_benches::typical_session(0, index)`.
fn typical_session(index: u64) -> NewSession {
    let created_at = Timestamp::from_millis(START.as_millis() + index);
    let random = u128::from(mix(index)) << 64 | u128::from(mix(index ^ 0x5555));
    let id = SessionId::from_parts(created_at, random | 1).expect("workload times fit a ULID");
    let mut token = [0_u8; 32];
    token[..16].copy_from_slice(&id.to_bytes());
    let mut fields = SessionFields::new(
        id,
        UserId::new(&format!("u{:011}", index / SESSIONS_PER_USER)).expect("12 chars"),
        TokenHash::from_bytes(token),
        created_at,
        created_at
            .checked_add(Duration::from_secs(86_400))
            .expect("in range"),
    );
    fields.device_id =
        Some(DeviceId::new(&format!("d{:015}", mix(index) % 1_000_000_000)).expect("16 chars"));
    fields.ip_address = Some(IpAddr::V4(Ipv4Addr::from(
        (mix(index) as u32).to_le_bytes(),
    )));
    fields.user_agent = Some(UserAgent::new(USER_AGENT).expect("70 chars"));
    fields
        .metadata
        .insert("region", "eu-west-1")
        .expect("small pair");
    NewSession::new(fields).expect("the typical session is valid")
}

/// Mean latency of `get` and `get_by_token_hash` over 200,000 pseudo-random sessions, one
/// thread (a rough figure; the criterion bench is the reference).
fn print_read_latency(store: &MemoryStore, session_count: u64) {
    let picks: Vec<NewSession> = (0..200_000_u64)
        .map(|draw| typical_session(mix(draw ^ 0xdead_beef) % session_count))
        .collect();
    let started = Instant::now();
    for session in &picks {
        std::hint::black_box(store.get(session.id()).expect("stored"));
    }
    let get = started.elapsed() / picks.len() as u32;
    let started = Instant::now();
    for session in &picks {
        std::hint::black_box(
            store
                .get_by_token_hash(&session.fields().token_hash)
                .expect("stored"),
        );
    }
    let by_token = started.elapsed() / picks.len() as u32;
    println!("mean latency: get {get:?}, get_by_token_hash {by_token:?}");
}

/// Resident set size of this process (0 where `/proc` is unavailable).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let mut args = std::env::args().skip(1);
    let session_count: u64 = args
        .next()
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(1_000_000);
    let bulk = args.next().is_some_and(|mode| mode == "bulk");
    let clock = Arc::new(ManualClock::new(START));
    let options = StoreOptions {
        quota: Quota {
            sessions_per_user_max: SESSIONS_PER_USER as u32,
            policy: QuotaPolicy::Reject,
        },
        capacity: session_count as usize,
    };
    let rss_empty = rss_bytes();
    let started = Instant::now();
    let (how, store) = if bulk {
        let records: Vec<SessionRecord> = (0..session_count)
            .map(|index| {
                SessionRecord::new(&typical_session(index), 1).expect("version 1 is valid")
            })
            .collect();
        let generated = started.elapsed();
        let loading = Instant::now();
        let store = MemoryStore::bulk_load(clock, options, records).expect("unique records");
        println!(
            "records generated in {generated:.2?}, bulk-loaded in {:.2?}",
            loading.elapsed()
        );
        ("bulk_load", store)
    } else {
        let store = MemoryStore::new(clock, options).expect("valid options");
        for index in 0..session_count {
            store.create(typical_session(index)).expect("create");
        }
        ("create", store)
    };
    let elapsed = started.elapsed();
    let rss_full = rss_bytes();
    let per_session = |bytes: u64| bytes as f64 / session_count as f64;
    println!(
        "built by {how}: {session_count} sessions in {elapsed:.2?}; RSS per session {:.0} B",
        per_session(rss_full - rss_empty)
    );
    print_read_latency(&store, session_count);
    let usage = store.memory_usage();
    println!("estimated by memory_usage(), bytes per session:");
    for (name, bytes) in usage.parts() {
        println!("  {name:<18} {:>6.1}", per_session(bytes));
    }
    println!(
        "  {:<18} {:>6.1}",
        "total",
        per_session(usage.total_bytes())
    );
}

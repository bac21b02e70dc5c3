//! `tokm-memory-store` at 1M sessions (20k with `TOKM_BENCH_QUICK=1`).
//!
//! A typical session: 12-char user id, 16-char device id, IPv4, 70-char user agent, one
//! metadata pair; about 20 sessions per user, 4 devices per user, plus 1% of sessions on 100
//! shared devices (kiosks) so that "list 100 by device" has 100 to return at 1M. Sessions are
//! created 1 ms apart, so a 100 ms `created_*` window holds 100 of them. 10% expire after an
//! hour, the rest after a day.
//!
//! Printed besides criterion's means: RSS per session (from `/proc/self/statm`, split into
//! bodies and store overhead), get latency percentiles from a manual loop over 100k random gets,
//! and a one-shot `cleanup_expired` of the 10% (destructive, so not a criterion sample).
//! Inputs are generated before timing; no random numbers are drawn in timed loops.

mod common;

use std::cell::Cell;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use tokm_benches::{mix, rss_bytes};
use tokm_domain::{
    Clock, DeviceId, ManualClock, Metadata, Mutation, NewSession, Page, PageSize, Quota, Session,
    SessionFields, SessionFilter, SessionId, SessionRepository, Sort, SortBy, SortOrder, Timestamp,
    TokenHash, TokenRepository, UserAgent, UserId,
};
use tokm_memory_store::{MemoryStore, StoreOptions};

use crate::common::RunTimes;

const START: Timestamp = Timestamp::from_millis(1_700_000_000_000);
const SESSIONS_PER_USER: u64 = 20;
const DEVICES_PER_USER: u64 = 4;
const SHARED_DEVICE_COUNT: u64 = 100;
const GET_SAMPLE_COUNT: usize = 100_000;
const USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0";

fn user_id(user: u64) -> UserId {
    UserId::new(&format!("u{user:011}")).expect("12 chars")
}

/// Session `index`, created at `START + index` ms.
fn session_body(index: u64, user_agent: &UserAgent) -> NewSession {
    let created_at = Timestamp::from_millis(START.as_millis() + index);
    let user = index / SESSIONS_PER_USER;
    let lifetime = if index.is_multiple_of(10) {
        Duration::from_secs(3600)
    } else {
        Duration::from_secs(86_400)
    };
    let mut token = [0_u8; 32];
    for (chunk, salt) in token.chunks_exact_mut(8).zip(0_u64..) {
        chunk.copy_from_slice(&mix(index ^ (salt << 56)).to_le_bytes());
    }
    let mut fields = SessionFields::new(
        SessionId::from_parts(created_at, u128::from(mix(index))).expect("valid id"),
        user_id(user),
        TokenHash::from_bytes(token),
        created_at,
        created_at.checked_add(lifetime).expect("small"),
    );
    let device = if index.is_multiple_of(100) {
        format!("kiosk-{:010}", index / 100 % SHARED_DEVICE_COUNT)
    } else {
        format!(
            "d{:015}",
            user * DEVICES_PER_USER + index % DEVICES_PER_USER
        )
    };
    fields.device_id = Some(DeviceId::new(&device).expect("16 chars"));
    let [a, b, c, d] = (mix(index) as u32).to_le_bytes();
    fields.ip_address = Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)));
    fields.user_agent = Some(user_agent.clone());
    let mut metadata = Metadata::new();
    metadata.insert("region", "eu-west").expect("valid");
    fields.metadata = metadata;
    NewSession::new(fields).expect("valid session")
}

struct Fixture {
    clock: Arc<ManualClock>,
    store: MemoryStore,
    /// Every stored session as created, in creation order.
    sessions: Vec<Arc<Session>>,
    /// Indexes into `sessions`, pre-drawn at random.
    picks: Vec<usize>,
}

fn fill(session_count: u64) -> Fixture {
    let user_agent = UserAgent::new(USER_AGENT).expect("valid");
    let rss_start = rss_bytes();
    let sessions: Vec<Arc<Session>> = (0..session_count)
        .map(|index| {
            Arc::new(Session::new(session_body(index, &user_agent), 1).expect("version 1"))
        })
        .collect();
    let rss_bodies = rss_bytes();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(
        START.as_millis() + session_count,
    )));
    let options = StoreOptions {
        quota: Quota::default(),
        capacity: session_count as usize,
    };
    let store = MemoryStore::new(clock.clone(), options).expect("store");
    let started = Instant::now();
    // Replay shares the bodies already built, so the RSS growth below is the store's own.
    for session in &sessions {
        store
            .apply_replayed(&Mutation::Create(Arc::clone(session)))
            .expect("fill");
    }
    let fill_time = started.elapsed();
    let rss_filled = rss_bytes();
    let per = |bytes: u64| bytes as f64 / session_count as f64;
    println!(
        "memory_store: {session_count} sessions filled in {fill_time:.2?} ({:.0} ns/session); \
         RSS per session: {:.0} B total = {:.0} B bodies (Arc<Session>, size_of::<Session>() = {} B) \
         + {:.0} B primary map and indexes",
        fill_time.as_nanos() as f64 / session_count as f64,
        per(rss_filled - rss_start),
        per(rss_bodies - rss_start),
        size_of::<Session>(),
        per(rss_filled - rss_bodies),
    );
    let picks = (0..GET_SAMPLE_COUNT as u64)
        .map(|draw| (mix(draw ^ 0xdead_beef) % session_count) as usize)
        .collect();
    Fixture {
        clock,
        store,
        sessions,
        picks,
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

fn print_get_percentiles(fixture: &Fixture) {
    let mut samples = Vec::with_capacity(fixture.picks.len());
    for &pick in &fixture.picks {
        let id = fixture.sessions[pick].id();
        let started = Instant::now();
        let found = fixture.store.get(black_box(id));
        samples.push(started.elapsed());
        black_box(found.expect("stored and live"));
    }
    samples.sort_unstable();
    println!(
        "memory_store: get over {} random ids: P50 {:?}, P99 {:?}, P99.9 {:?}, max {:?} \
         (each includes ~20-30 ns of Instant::now)",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        percentile(&samples, 0.999),
        samples[samples.len() - 1],
    );
}

fn bench_reads(c: &mut Criterion, fixture: &Fixture, label: &str) {
    let mut group = c.benchmark_group(format!("memory_store/{label}"));
    let mut next = 0;
    group.bench_function("get", |b| {
        b.iter(|| {
            next = (next + 1) % fixture.picks.len();
            let id = fixture.sessions[fixture.picks[next]].id();
            black_box(fixture.store.get(id).expect("live"))
        });
    });
    group.bench_function("get_by_token_hash", |b| {
        b.iter(|| {
            next = (next + 1) % fixture.picks.len();
            let token = fixture.sessions[fixture.picks[next]].fields().token_hash;
            black_box(fixture.store.get_by_token_hash(&token).expect("live"))
        });
    });
    group.bench_function("list_by_user", |b| {
        b.iter(|| {
            next = (next + 1) % fixture.picks.len();
            let user = &fixture.sessions[fixture.picks[next]].fields().user_id;
            black_box(fixture.store.list_by_user(user).expect("list"))
        });
    });
    let page_of_100 = Page::new(1, 100).expect("valid");
    let newest = Sort::new(SortBy::CreatedAt, SortOrder::Desc);
    group.bench_function("list_100_by_device", |b| {
        let mut kiosk = 0;
        b.iter(|| {
            kiosk = (kiosk + 1) % SHARED_DEVICE_COUNT;
            let filter = SessionFilter {
                device_id: Some(DeviceId::new(&format!("kiosk-{kiosk:010}")).expect("valid")),
                ..SessionFilter::default()
            };
            black_box(
                fixture
                    .store
                    .list(&filter, newest, page_of_100)
                    .expect("list"),
            )
        });
    });
    group.bench_function("list_100_by_created_range", |b| {
        b.iter(|| {
            next = (next + 1) % fixture.picks.len();
            let from = fixture.sessions[fixture.picks[next]].fields().created_at;
            let filter = SessionFilter {
                created_after: Some(from),
                created_before: from.checked_add(Duration::from_millis(101)),
                ..SessionFilter::default()
            };
            black_box(
                fixture
                    .store
                    .list(&filter, newest, page_of_100)
                    .expect("list"),
            )
        });
    });
    group.bench_function("list_100_of_a_range_holding_every_session", |b| {
        // The acceptance run's "range over 1M": bounds just outside the first and last
        // `created_at`, so the filter is a range yet every session is in it.
        let first = fixture
            .sessions
            .first()
            .expect("filled")
            .fields()
            .created_at;
        let last = fixture.sessions.last().expect("filled").fields().created_at;
        let filter = SessionFilter {
            created_after: first.checked_sub(Duration::from_millis(1)),
            created_before: last.checked_add(Duration::from_millis(1)),
            ..SessionFilter::default()
        };
        b.iter(|| {
            black_box(
                fixture
                    .store
                    .list(&filter, newest, page_of_100)
                    .expect("list"),
            )
        });
    });
    group.bench_function("list_after_100_unfiltered_by_last_active", |b| {
        let sort = Sort::new(SortBy::LastActive, SortOrder::Desc);
        b.iter(|| {
            black_box(
                fixture
                    .store
                    .list_after(&SessionFilter::default(), sort, None, PageSize::MAX)
                    .expect("list"),
            )
        });
    });
    group.finish();
}

fn bench_writes(c: &mut Criterion, fixture: &Fixture, label: &str) {
    let mut group = c.benchmark_group(format!("memory_store/{label}"));
    let user_agent = UserAgent::new(USER_AGENT).expect("valid");
    // New sessions for new users, numbered after the stored ones.
    let mut next_index = fixture.sessions.len() as u64 * 2;
    group.bench_function("create", |b| {
        b.iter_batched(
            || {
                next_index += 1;
                session_body(next_index, &user_agent)
            },
            |body| black_box(fixture.store.create(body).expect("room")),
            BatchSize::SmallInput,
        );
    });
    let mut next = 0;
    let (store, sessions, picks) = (&fixture.store, &fixture.sessions, &fixture.picks);
    // The version each session is stored at; shared by the setup and timed closures.
    let versions: Vec<Cell<u64>> = sessions
        .iter()
        .map(|session| Cell::new(session.version()))
        .collect();
    group.bench_function("update_cas", |b| {
        b.iter_batched(
            || {
                next = (next + 1) % picks.len();
                let index = picks[next];
                (index, sessions[index].to_new())
            },
            |(index, body)| {
                // Read here, not in the setup: a batch may hold one session twice.
                let version = versions[index].get();
                let updated = store.update(body, version).expect("current version");
                versions[index].set(updated.version());
                updated
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("touch", |b| {
        b.iter(|| {
            next = (next + 1) % picks.len();
            let id = sessions[picks[next]].id();
            black_box(store.touch(id, fixture.clock.now(), None).expect("live"))
        });
    });
    group.finish();
}

fn print_cleanup(fixture: &Fixture) {
    fixture.clock.advance(Duration::from_secs(3600));
    let started = Instant::now();
    let removed = fixture.store.cleanup_expired().expect("cleanup");
    let elapsed = started.elapsed();
    println!(
        "memory_store: cleanup_expired removed {removed} of {} sessions in {elapsed:.2?} \
         ({:.0} ns per removed session)",
        fixture.sessions.len(),
        elapsed.as_nanos() as f64 / removed.max(1) as f64,
    );
}

fn main() {
    let (session_count, label) = if tokm_benches::quick() {
        (20_000, "20k")
    } else {
        (1_000_000, "1M")
    };
    let mut criterion = common::criterion(
        30,
        RunTimes {
            warm_up: Duration::from_millis(500),
            measurement: Duration::from_secs(2),
        },
        RunTimes {
            warm_up: Duration::from_millis(100),
            measurement: Duration::from_millis(300),
        },
    )
    .configure_from_args();
    let fixture = fill(session_count);
    print_get_percentiles(&fixture);
    bench_reads(&mut criterion, &fixture, label);
    bench_writes(&mut criterion, &fixture, label);
    print_cleanup(&fixture);
    criterion.final_summary();
}

//! The end-to-end acceptance run of tokm, behind `cargo xtask bench`.
//!
//! Fills a real engine (files on the same disk as `target/`) with typical sessions and
//! measures the SPEC's targets: get and create latency, list by user, snapshot time and the
//! longest write stall while it runs, cold start, durable creates/s in `Sync` mode with 1 and
//! 64 writers beside the disk's raw write+fdatasync rate, and RSS per session. Prints one
//! table and writes `target/tokm-bench/report.md`.
//!
//! `--quick` (used by `cargo xtask ci`) runs 20,000 sessions in seconds so the harness cannot
//! rot; the default is 1,000,000 sessions.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokm_benches::{SESSIONS_PER_USER, percentile_us, rss_bytes, typical_session, user_id};
use tokm_domain::{ManualClock, SessionRepository, TokenRepository};
use tokm_engine::{Durability, Engine, EngineConfig, SnapshotPolicy};

/// One row of the acceptance table.
struct Row {
    metric: &'static str,
    seed_target: &'static str,
    goal: &'static str,
    measured: String,
    met: Option<bool>,
}

struct Settings {
    sessions: u64,
    wal_tail_records: u64,
    sample_count: usize,
    sync_run: Duration,
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let settings = if quick {
        Settings {
            sessions: 20_000,
            wal_tail_records: 2_000,
            sample_count: 10_000,
            sync_run: Duration::from_millis(300),
        }
    } else {
        Settings {
            sessions: 1_000_000,
            wal_tail_records: 100_000,
            sample_count: 200_000,
            sync_run: Duration::from_secs(3),
        }
    };
    let root = report_dir();
    let data = root.join("data");
    // A previous run's data would be recovered instead of measured.
    let _ = fs::remove_dir_all(&data);
    fs::create_dir_all(&data).expect("create the bench data directory");
    println!(
        "tokm acceptance run: {} sessions, data in {} ({} cores){}",
        settings.sessions,
        data.display(),
        std::thread::available_parallelism().map_or(0, usize::from),
        if quick {
            ", quick"
        } else {
            "; takes a few minutes"
        }
    );

    let mut rows = Vec::new();
    let started = Instant::now();
    fill_and_measure(&data.join("batch"), &settings, &mut rows);
    durable_rates(&data, &settings, &mut rows);
    let _ = fs::remove_dir_all(&data);

    let table = render(&rows);
    println!("\n{table}");
    println!("total time: {:.1} s", started.elapsed().as_secs_f64());
    let report = format!(
        "# tokm acceptance report\n\n{} sessions, {} cores, {:.1} s.\n\n{table}",
        settings.sessions,
        std::thread::available_parallelism().map_or(0, usize::from),
        started.elapsed().as_secs_f64()
    );
    let report_path = root.join("report.md");
    fs::write(&report_path, report).expect("write report.md");
    println!("report: {}", report_path.display());
}

/// `target/tokm-bench`, next to the build output (so on the disk the engine would use).
fn report_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest_dir.parent().unwrap_or(manifest_dir).join("target")
        });
    target.join("tokm-bench")
}

fn config(dir: &Path, durability: Durability) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.durability = durability;
    // Time stands still at the workload's start, so nothing expires mid-run.
    config.clock = Arc::new(ManualClock::new(tokm_benches::WORKLOAD_START));
    config.snapshots = SnapshotPolicy {
        interval: None,
        wal_bytes: None,
        after_replay_records: None,
        ..SnapshotPolicy::default()
    };
    config
}

fn sorted(mut samples: Vec<Duration>) -> Vec<Duration> {
    samples.sort_unstable();
    samples
}

fn fill_and_measure(dir: &Path, settings: &Settings, rows: &mut Vec<Row>) {
    let rss_before = rss_bytes();
    let (engine, _) = Engine::open(config(dir, Durability::Batch)).expect("open engine");
    let sample_every = (settings.sessions / settings.sample_count as u64).max(1);
    let mut create_samples = Vec::with_capacity(settings.sample_count);
    let fill_started = Instant::now();
    for index in 0..settings.sessions {
        let body = typical_session(0, index);
        if index % sample_every == 0 {
            let began = Instant::now();
            engine.create(body).expect("create");
            create_samples.push(began.elapsed());
        } else {
            engine.create(body).expect("create");
        }
        if index % 100_000 == 99_999 {
            println!("  filled {} sessions", index + 1);
        }
    }
    let fill_secs = fill_started.elapsed().as_secs_f64();
    let rss_per_session =
        (rss_bytes().saturating_sub(rss_before)) as f64 / settings.sessions as f64;
    let creates = sorted(create_samples);
    let create_p99 = percentile_us(&creates, 99.0);
    rows.push(Row {
        metric: "create P99 (Batch mode)",
        seed_target: "< 5 ms",
        goal: "<= 50 us",
        measured: format!(
            "{create_p99:.1} us (P50 {:.1} us; {:.0}/s single writer)",
            percentile_us(&creates, 50.0),
            settings.sessions as f64 / fill_secs
        ),
        met: Some(create_p99 <= 50.0),
    });

    let ids: Vec<_> = (0..settings.sample_count as u64)
        .map(|n| typical_session(0, tokm_benches::mix(n) % settings.sessions).id())
        .collect();
    let mut get_samples = Vec::with_capacity(ids.len());
    for id in &ids {
        let began = Instant::now();
        let session = engine.get(*id).expect("get");
        get_samples.push(began.elapsed());
        std::hint::black_box(session);
    }
    let gets = sorted(get_samples);
    let get_p99 = percentile_us(&gets, 99.0);
    rows.push(Row {
        metric: "get P99",
        seed_target: "< 1 ms",
        goal: "<= 10 us",
        measured: format!("{get_p99:.2} us (P50 {:.2} us)", percentile_us(&gets, 50.0)),
        met: Some(get_p99 <= 10.0),
    });

    let users = settings.sessions / SESSIONS_PER_USER;
    let mut list_samples = Vec::new();
    for n in 0..(settings.sample_count / 10) as u64 {
        let user = user_id(tokm_benches::mix(n) % users);
        let began = Instant::now();
        let listed = engine.list_by_user(&user).expect("list");
        list_samples.push(began.elapsed());
        std::hint::black_box(listed);
    }
    let lists = sorted(list_samples);
    let list_p99 = percentile_us(&lists, 99.0);
    rows.push(Row {
        metric: "list by user (20 sessions) P99",
        seed_target: "< 10 ms",
        goal: "<= 50 us",
        measured: format!("{list_p99:.1} us"),
        met: Some(list_p99 <= 50.0),
    });

    rows.push(Row {
        metric: "RSS per session",
        seed_target: "measured",
        goal: "<= 500 B",
        measured: format!("{rss_per_session:.0} B"),
        met: Some(rss_per_session <= 500.0),
    });

    // Snapshot while a writer keeps updating existing sessions: the longest update is the
    // stall the snapshot caused. Updates keep the session count at `settings.sessions`.
    let stop = AtomicBool::new(false);
    let longest_ns = AtomicU64::new(0);
    let (snapshot_secs, writes_during) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut index = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = typical_session(0, index % settings.sessions).id();
                let began = Instant::now();
                let stored = engine.get(id).expect("get during snapshot");
                let mut fields = stored.fields().clone();
                fields.metadata.insert("seen", "1").expect("small pair");
                let body = tokm_domain::NewSession::new(fields).expect("valid");
                engine
                    .update(body, stored.version())
                    .expect("update during snapshot");
                let took = began.elapsed().as_nanos() as u64;
                longest_ns.fetch_max(took, Ordering::Relaxed);
                index += 1;
            }
            index
        });
        let began = Instant::now();
        engine.snapshot_now().expect("snapshot");
        let took = began.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        (took, writer.join().expect("writer thread"))
    });
    let stall_ms = longest_ns.load(Ordering::Relaxed) as f64 / 1e6;
    let pause_ms = engine
        .status()
        .last_snapshot_pause
        .map_or(0.0, |pause| pause.as_secs_f64() * 1e3);
    rows.push(Row {
        metric: "snapshot create",
        seed_target: "< 10 s",
        goal: "<= 1.5 s",
        measured: format!("{snapshot_secs:.2} s"),
        met: Some(snapshot_secs <= 1.5),
    });
    rows.push(Row {
        metric: "longest write stall during snapshot",
        seed_target: "-",
        goal: "<= 50 ms",
        measured: format!(
            "{stall_ms:.1} ms longest update ({writes_during} updates during it; writes paused {pause_ms:.1} ms)"
        ),
        met: Some(stall_ms <= 50.0),
    });

    // A quiet snapshot of exactly `sessions`, a log tail after it, then a cold start from both.
    engine.snapshot_now().expect("quiet snapshot");
    for index in 0..settings.wal_tail_records {
        engine
            .create(typical_session(2, index))
            .expect("create tail");
    }
    engine.close().expect("close");
    let began = Instant::now();
    let (engine, report) = Engine::open(config(dir, Durability::Batch)).expect("cold start");
    let cold_secs = began.elapsed().as_secs_f64();
    rows.push(Row {
        metric: "cold start (snapshot + log tail)",
        seed_target: "< 5 s",
        goal: "<= 2 s",
        measured: format!(
            "{cold_secs:.2} s ({} sessions; snapshot load {:.2} s, replay of {} records {:.2} s)",
            report.sessions,
            report.snapshot_load.as_secs_f64(),
            report.replayed_records,
            report.wal_replay.as_secs_f64()
        ),
        met: Some(cold_secs <= 2.0),
    });
    let token = typical_session(0, 0).fields().token_hash;
    engine.get_by_token_hash(&token).expect("recovered session");
    engine.close().expect("close");
}

/// Durable creates per second in `Sync` mode, beside the disk's raw write+fdatasync rate.
fn durable_rates(data: &Path, settings: &Settings, rows: &mut Vec<Row>) {
    let raw = raw_fdatasync_rate(&data.join("raw.bin"), settings.sync_run);
    rows.push(Row {
        metric: "raw write+fdatasync, 300 B (disk limit, peer)",
        seed_target: "-",
        goal: "-",
        measured: format!("{raw:.0}/s"),
        met: None,
    });
    for (writers, goal, goal_rate) in [
        (1_u64, ">= 6,500/s", 6_500.0),
        (64, ">= 100,000/s", 100_000.0),
    ] {
        let dir = data.join(format!("sync-{writers}"));
        let (engine, _) = Engine::open(config(&dir, Durability::Sync)).expect("open sync engine");
        let stop = AtomicBool::new(false);
        let done = AtomicU64::new(0);
        let began = Instant::now();
        std::thread::scope(|scope| {
            for writer in 0..writers {
                let (engine, stop, done) = (&engine, &stop, &done);
                scope.spawn(move || {
                    let mut index = 0;
                    while !stop.load(Ordering::Relaxed) {
                        engine
                            .create(typical_session(10 + writer, index))
                            .expect("durable create");
                        done.fetch_add(1, Ordering::Relaxed);
                        index += 1;
                    }
                });
            }
            std::thread::sleep(settings.sync_run);
            stop.store(true, Ordering::Relaxed);
        });
        let rate = done.load(Ordering::Relaxed) as f64 / began.elapsed().as_secs_f64();
        rows.push(Row {
            metric: if writers == 1 {
                "durable creates/s, Sync, 1 writer"
            } else {
                "durable creates/s, Sync, 64 writers"
            },
            seed_target: ">= 5,000/s",
            goal,
            measured: format!(
                "{rate:.0}/s ({:.0}% of raw fdatasync)",
                100.0 * rate / raw.max(1.0)
            ),
            met: Some(rate >= goal_rate),
        });
        engine.close().expect("close");
    }
}

fn raw_fdatasync_rate(path: &Path, run: Duration) -> f64 {
    let mut file = File::create(path).expect("create raw file");
    let record = [0x5a_u8; 300];
    let began = Instant::now();
    let mut count = 0_u64;
    while began.elapsed() < run {
        file.write_all(&record).expect("write");
        file.sync_data().expect("fdatasync");
        count += 1;
    }
    count as f64 / began.elapsed().as_secs_f64()
}

fn render(rows: &[Row]) -> String {
    let mut table = String::from(
        "| metric | seed target | goal | measured | goal met |\n|---|---|---|---|---|\n",
    );
    for row in rows {
        let verdict = match row.met {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {verdict} |",
            row.metric, row.seed_target, row.goal, row.measured
        );
    }
    table
}

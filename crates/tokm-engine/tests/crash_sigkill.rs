//! Real crashes: a child process runs the engine in `Sync` mode under concurrent writers while
//! snapshots (and so compactions) run, and reports every acknowledged write on stdout; the
//! parent SIGKILLs it at a random moment, reopens the directory, and checks that every
//! acknowledged create and update is there and intact.
//!
//! 20 cycles by default; `TOKM_SOAK_CYCLES=N` (or `cargo xtask soak engine --cycles N`) for
//! more. The seed is printed; `TOKM_CRASH_SEED` replays one.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use tokm_domain::Clock;
use tokm_domain::testkit::SessionFactory;
use tokm_domain::{NewSession, SessionId, SessionRepository};
use tokm_engine::{Durability, Engine};

const CHILD_DIR_ENV: &str = "TOKM_ENGINE_CRASH_CHILD_DIR";
const CHILD_CYCLE_ENV: &str = "TOKM_ENGINE_CRASH_CHILD_CYCLE";
const WRITER_THREADS: u64 = 4;
/// Writes per thread per cycle at most; the parent kills long before.
const WRITES_PER_THREAD_MAX: u64 = 400;

/// splitmix64: a tiny deterministic generator, so a printed seed replays a run.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn every_acknowledged_write_survives_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_DIR_ENV) {
        let cycle: u64 = std::env::var(CHILD_CYCLE_ENV)
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(0);
        run_child(Path::new(&dir), cycle);
        return;
    }
    let cycles: u64 = std::env::var("TOKM_SOAK_CYCLES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("TOKM_CRASH_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()) ^ 0x5eed);
    println!("engine crash test: {cycles} cycles, seed {seed} (TOKM_CRASH_SEED to replay)");

    let dir = tempfile::tempdir().expect("temp dir");
    let mut random = seed;
    // Acknowledged state across all cycles: id -> highest acknowledged version.
    let mut acked: HashMap<SessionId, u64> = HashMap::new();
    for cycle in 0..cycles {
        let kill_after = 10 + next_random(&mut random) % 150;
        let child_acks = run_cycle(dir.path(), cycle, kill_after);
        for (id, version) in child_acks {
            let entry = acked.entry(id).or_insert(version);
            *entry = (*entry).max(version);
        }
        verify(dir.path(), &acked, cycle, seed);
    }
}

/// Starts a child, reads its acknowledgements until `kill_after` of them, SIGKILLs it.
fn run_cycle(dir: &Path, cycle: u64, kill_after: u64) -> Vec<(SessionId, u64)> {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "every_acknowledged_write_survives_sigkill",
            "--nocapture",
        ])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_CYCLE_ENV, cycle.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut acks = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        let (Some("ACK"), Some(id), Some(version)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let id = SessionId::parse(id).expect("child prints valid ids");
        let version: u64 = version.parse().expect("child prints versions");
        acks.push((id, version));
        if acks.len() as u64 >= kill_after {
            break;
        }
    }
    // SIGKILL: no destructor, no final sync runs in the child.
    child.kill().expect("kill child");
    child.wait().expect("reap child");
    acks
}

fn verify(dir: &Path, acked: &HashMap<SessionId, u64>, cycle: u64, seed: u64) {
    let clock = common::clock();
    let (engine, report) = Engine::open(common::config(dir, &clock))
        .unwrap_or_else(|err| panic!("cycle {cycle} (seed {seed}): recovery failed: {err}"));
    for (id, version) in acked {
        let session = engine
            .get(*id)
            .unwrap_or_else(|err| panic!("cycle {cycle} (seed {seed}): acked {id} lost: {err}"));
        assert!(
            session.version() >= *version,
            "cycle {cycle} (seed {seed}): {id} at version {} < acknowledged {version}",
            session.version()
        );
    }
    assert!(
        report.wal.damaged.is_empty(),
        "cycle {cycle}: {:?}",
        report.wal.damaged
    );
    engine.close().expect("close");
}

/// The child: writers create and update sessions and print `ACK <id> <version>` after each
/// acknowledged write; writer 0 snapshots (and compacts) every 25 writes.
fn run_child(dir: &Path, cycle: u64) {
    let clock = common::clock();
    let mut config = common::config(dir, &clock);
    config.durability = Durability::Sync;
    config.snapshots.retention_count = 2;
    config.snapshots.retention_age = std::time::Duration::ZERO;
    config.snapshots.wal_segments_kept = 1;
    let (engine, _) = Engine::open(config).expect("child open");
    let engine = Arc::new(engine);
    let out = Arc::new(parking_lot::Mutex::new(std::io::stdout()));
    std::thread::scope(|scope| {
        for thread in 0..WRITER_THREADS {
            let (engine, out, clock) = (Arc::clone(&engine), Arc::clone(&out), Arc::clone(&clock));
            scope.spawn(move || {
                let mut factory = SessionFactory::new(cycle * 1_000 + thread, clock.now());
                for index in 0..WRITES_PER_THREAD_MAX {
                    // 20 sessions per user keeps every user under the default quota of 50.
                    let user = SessionFactory::user(
                        u32::try_from((cycle * WRITER_THREADS + thread) * 100 + index / 20)
                            .expect("small"),
                    );
                    let created = engine
                        .create(factory.next_for(&user))
                        .expect("create")
                        .session;
                    report_ack(&out, created.id(), created.version());
                    if index % 3 == 0 {
                        let mut fields = created.fields().clone();
                        fields
                            .metadata
                            .insert("i", &index.to_string())
                            .expect("metadata");
                        let body = NewSession::new(fields).expect("valid");
                        let updated = engine.update(body, created.version()).expect("update");
                        report_ack(&out, updated.id(), updated.version());
                    }
                    // Writer 0 also snapshots (and so compacts) while the others keep writing.
                    if thread == 0 && index % 25 == 24 {
                        engine.snapshot_now().expect("snapshot");
                    }
                }
            });
        }
    });
}

fn report_ack(out: &parking_lot::Mutex<std::io::Stdout>, id: SessionId, version: u64) {
    let mut out = out.lock();
    writeln!(out, "ACK {id} {version}").expect("stdout");
    out.flush().expect("flush");
}

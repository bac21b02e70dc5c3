//! Real crash test: a child process (this test binary, re-run with `TOKM_WAL_CRASH_CHILD` set)
//! appends in `Sync` mode from several threads and prints each acknowledged LSN with a digest
//! of its payload; the parent SIGKILLs it after a random number of acknowledgements, reopens the
//! directory and checks every acknowledged record is present and intact.
//!
//! Cycles: 20, or `TOKM_SOAK_CYCLES`. The seed is printed; set `TOKM_CRASH_SEED` to replay one.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokm_storage::Lsn;
use tokm_wal::{Durability, Wal, WalOptions};

const CHILD_ENV: &str = "TOKM_WAL_CRASH_CHILD";
const CHILD_THREADS: usize = 4;
/// Each child thread stops after this many appends if it was not killed (keeps a run bounded).
const CHILD_APPENDS_MAX: usize = 5_000;

/// Payload for (thread, sequence): self-describing, so the parent can recompute the digest.
fn payload(thread: usize, sequence: usize) -> Vec<u8> {
    let mut bytes = format!("thread {thread} record {sequence} ").into_bytes();
    bytes.resize(64 + (sequence * 7 + thread) % 200, b'.');
    bytes
}

fn digest(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..16].to_owned()
}

fn options() -> WalOptions {
    // Small segments so kills also land around rotations.
    WalOptions {
        segment_records_max: 64,
        ..WalOptions::default()
    }
}

fn child(dir: &Path) {
    let (wal, _) = Wal::open(dir, options()).expect("child open");
    let wal = Arc::new(wal);
    let stdout = Arc::new(parking_lot::Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..CHILD_THREADS)
        .map(|thread| {
            let wal = Arc::clone(&wal);
            let stdout = Arc::clone(&stdout);
            std::thread::spawn(move || {
                for sequence in 0..CHILD_APPENDS_MAX {
                    let bytes = payload(thread, sequence);
                    let lsn = wal.append(&bytes, Durability::Sync).expect("child append");
                    let mut out = stdout.lock();
                    writeln!(out, "{} {}", lsn.get(), digest(&bytes)).expect("stdout");
                    out.flush().expect("flush");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("child thread");
    }
}

/// xorshift64*, enough to pick kill points.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[test]
fn acknowledged_records_survive_sigkill() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let cycles: usize = std::env::var("TOKM_SOAK_CYCLES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("TOKM_CRASH_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |elapsed| elapsed.as_nanos() as u64)
                | 1
        });
    println!("crash_sigkill seed {seed} (TOKM_CRASH_SEED={seed} replays it), {cycles} cycles");
    let mut rng = seed;
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("wal");
    let exe = std::env::current_exe().expect("test binary");
    let mut acknowledged: HashMap<u64, String> = HashMap::new();
    for cycle in 0..cycles {
        let kill_after = 1 + (next_random(&mut rng) % 300) as usize;
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "acknowledged_records_survive_sigkill",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read child output");
            // The harness prints its own lines; ours are "<lsn> <digest>".
            let mut parts = line.split(' ');
            let (Some(lsn), Some(hex), None) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let Ok(lsn) = lsn.parse::<u64>() else {
                continue;
            };
            acknowledged.insert(lsn, hex.to_owned());
            seen += 1;
            if seen >= kill_after {
                break;
            }
        }
        assert_eq!(
            seen, kill_after,
            "cycle {cycle} seed {seed}: the child stopped acknowledging early"
        );
        child.kill().expect("SIGKILL");
        child.wait().expect("reap child");

        let (wal, report) = Wal::open(&dir, options()).expect("reopen after kill");
        assert!(
            report.damaged.is_empty(),
            "cycle {cycle} seed {seed}: {report:?}"
        );
        let mut recovered: HashMap<u64, String> = HashMap::new();
        let mut previous = Lsn::ZERO;
        wal.replay(Lsn::ZERO, |lsn, bytes| {
            assert!(lsn > previous, "LSNs increase");
            previous = lsn;
            recovered.insert(lsn.get(), digest(bytes));
            ControlFlow::Continue(())
        })
        .expect("replay");
        for (lsn, hex) in &acknowledged {
            assert_eq!(
                recovered.get(lsn),
                Some(hex),
                "cycle {cycle} seed {seed}: acknowledged LSN {lsn} missing or altered"
            );
        }
        wal.close().expect("close");
    }
    println!(
        "crash_sigkill: {} acknowledged records checked after {cycles} kills",
        acknowledged.len()
    );
}

//! Prepares a data directory and times (or profiles) a cold start of it on its own.
//!
//! ```text
//! cargo run --release -p tokm-engine --example cold_start -- fill DIR SESSIONS TAIL
//! cargo run --release -p tokm-engine --example cold_start -- open DIR
//! perf record -g target/release/examples/cold_start open DIR
//! ```
//!
//! `fill` creates `SESSIONS` sessions shaped like the acceptance run's typical session (20 per
//! user, a device id each, an IPv4 address, a 70-byte user agent, one metadata pair), takes a
//! snapshot, then logs `TAIL` more creates after it, in `Batch` mode. `open` cold-starts the directory once and prints the
//! recovery report's timings and the process's peak RSS, so a profile of it holds nothing but
//! the cold start.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use tokm_domain::{
    DeviceId, NewSession, SessionFields, SessionId, SessionRepository, Timestamp, TokenHash,
    UserAgent, UserId,
};
use tokm_engine::{Durability, Engine, EngineConfig, SnapshotPolicy};

fn config(dir: &Path) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.durability = Durability::Batch;
    config.snapshots = SnapshotPolicy {
        interval: None,
        wal_bytes: None,
        after_replay_records: None,
        ..SnapshotPolicy::default()
    };
    config
}

const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) 1";

/// Session `index`, created at `start + index` ms and valid for a day.
fn session(start: u64, index: u64) -> Result<NewSession, Box<dyn std::error::Error>> {
    let created_at = Timestamp::from_millis(start + index);
    let random = u128::from(index.wrapping_mul(0x9e37_79b9_7f4a_7c15)) << 32 | u128::from(index);
    let mut token = [0_u8; 32];
    token[..8].copy_from_slice(&index.to_le_bytes());
    let mut fields = SessionFields::new(
        SessionId::from_parts(created_at, random | 1)?,
        UserId::new(&format!("user-{:08}", index / 20))?,
        TokenHash::from_bytes(token),
        created_at,
        created_at
            .checked_add(Duration::from_secs(86_400))
            .ok_or("time out of range")?,
    );
    fields.device_id = Some(DeviceId::new(&format!("d{index:015}"))?);
    let octets = (index.wrapping_mul(0x2545_f491) as u32).to_le_bytes();
    fields.ip_address = Some(IpAddr::V4(Ipv4Addr::from(octets)));
    fields.user_agent = Some(UserAgent::new(USER_AGENT)?);
    fields.metadata.insert("region", "eu-west-1")?;
    Ok(NewSession::new(fields)?)
}

fn fill(dir: &Path, sessions: u64, tail: u64) -> Result<(), Box<dyn std::error::Error>> {
    let (engine, _) = Engine::open(config(dir))?;
    // Sessions start now, so none has expired when `open` runs.
    let start = unix_now_ms();
    for index in 0..sessions + tail {
        if index == sessions {
            engine.snapshot_now()?;
        }
        engine.create(session(start, index)?)?;
    }
    engine.close()?;
    Ok(())
}

fn open(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let began = Instant::now();
    let (engine, report) = Engine::open(config(dir))?;
    let secs = began.elapsed().as_secs_f64();
    println!(
        "cold start {secs:.2} s: {} sessions, snapshot load {:.2} s, replay of {} records {:.2} s, peak RSS {} MB",
        report.session_count,
        report.snapshot_load.as_secs_f64(),
        report.replayed_count,
        report.wal_replay.as_secs_f64(),
        peak_rss_kib() / 1024,
    );
    engine.close()?;
    Ok(())
}

fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// `VmHWM` from `/proc/self/status` (0 where unavailable).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [mode, dir, sessions, tail] if mode == "fill" => {
            fill(Path::new(dir), sessions.parse()?, tail.parse()?)
        }
        [mode, dir] if mode == "open" => open(Path::new(dir)),
        _ => Err("usage: cold_start fill DIR SESSIONS TAIL | cold_start open DIR".into()),
    }
}

//! tokm's benchmarks: the typical session, the closed-loop driver and its peers, and the
//! acceptance report.
//!
//! Is: the inputs every bench draws from (so every figure is measured on the same kind of
//! session), [`driver`] (one closed-loop driver over a `Peer` trait, implemented by the
//! embedded engine, Redis standalone in [`redis_peer`] and `RedisClusterStore` in
//! [`cluster_store`]), the tokm-cmap mixes in [`mixes`], and the rendering of the acceptance
//! table in [`report`]. The criterion benches in `benches/` and the end-to-end acceptance
//! program (`src/bin/acceptance.rs`, run by `cargo xtask bench`) build on it.
//! Is not: a library for tokm's users, nor a test of correctness: the figures are what it is for.

pub mod cluster_store;
pub mod driver;
pub mod mixes;
pub mod redis_peer;
pub mod report;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tokm_domain::{
    DeviceId, NewSession, SessionFields, SessionId, Timestamp, TokenHash, UserAgent, UserId,
};

/// Creation time of session 0; session `n` is created `n` ms later.
pub const WORKLOAD_START: Timestamp = Timestamp::from_millis(1_700_000_000_000);
/// Sessions per user in the typical workload.
pub const SESSIONS_PER_USER: u64 = 20;
/// A 70-character browser user agent.
pub const USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0";

/// SplitMix64: reproducible inputs from an index.
pub fn mix(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The 12-character id of user `user`.
pub fn user_id(user: u64) -> UserId {
    UserId::new(&format!("u{user:011}")).expect("12 ASCII characters are a valid user id")
}

/// Typical session number `index` (of the stream `stream`): 12-char user id, 16-char device
/// id, IPv4, 70-char user agent, one metadata pair, one day to live.
pub fn typical_session(stream: u64, index: u64) -> NewSession {
    let created_at = Timestamp::from_millis(WORKLOAD_START.as_millis() + index);
    let random = u128::from(mix(stream << 40 ^ index)) << 64 | u128::from(mix(index ^ stream));
    let id = SessionId::from_parts(created_at, random | 1).expect("workload times fit a ULID");
    let mut token = [0_u8; 32];
    token[..16].copy_from_slice(&id.to_bytes());
    token[16..24].copy_from_slice(&stream.to_le_bytes());
    let user = index / SESSIONS_PER_USER + stream * 1_000_000_000;
    let mut fields = SessionFields::new(
        id,
        user_id(user),
        TokenHash::from_bytes(token),
        created_at,
        created_at
            .checked_add(Duration::from_secs(86_400))
            .expect("a day after 2023 is in range"),
    );
    fields.device_id =
        Some(DeviceId::new(&format!("d{:015}", mix(index) % 1_000_000_000)).expect("16 chars"));
    let octets = (mix(index) as u32).to_le_bytes();
    fields.ip_address = Some(IpAddr::V4(Ipv4Addr::from(octets)));
    fields.user_agent = Some(UserAgent::new(USER_AGENT).expect("70 chars"));
    fields
        .metadata
        .insert("region", "eu-west-1")
        .expect("small pair");
    NewSession::new(fields).expect("the typical session is valid")
}

/// Resident set size of this process, from `/proc/self/statm` (0 where unavailable).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let resident_pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse().ok())
        .unwrap_or(0);
    resident_pages * 4096
}

/// Peak resident set size of this process, the kernel's high-water mark `VmHWM` from
/// `/proc/self/status` (0 where unavailable).
///
/// The mark only rises for the life of a process, so it describes one step only in a process
/// that did nothing else: the acceptance run reads it in a child it starts for the cold start,
/// rather than resetting it through `/proc/self/clear_refs`, because memory the allocator kept
/// from earlier steps would be reused by the next one without showing in RSS.
pub fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Whether `TOKM_BENCH_QUICK=1` asks for a smoke run (`cargo xtask bench criterion --quick`):
/// benches shrink data sets and measurement times to seconds.
pub fn quick() -> bool {
    std::env::var_os("TOKM_BENCH_QUICK").is_some_and(|value| value == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_is_never_below_the_rss_before_it() {
        let rss = rss_bytes();
        assert!(rss > 0, "/proc/self/statm is readable on Linux");
        assert!(peak_rss_bytes() >= rss);
    }
}

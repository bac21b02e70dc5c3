//! `cargo xtask bench`: the project's main job, and the per-crate criterion benchmarks.
//!
//! - `cargo xtask bench [--quick] [--sessions N]`: builds in release and runs the end-to-end
//!   acceptance program (`benches/src/bin/acceptance.rs`): a real engine at 1M sessions,
//!   printing the table of SPEC targets beside the peers measured in the same run (raw
//!   fdatasync, dashmap, Redis when `redis-server` is on `PATH`) and writing `report.md`,
//!   `report.json`, `latency.svg` and `writers.svg` into `target/tokm-bench/`. `--quick` runs
//!   20,000 sessions in seconds; `cargo xtask ci` runs it so the harness cannot rot.
//!   `--sessions N` fills N sessions instead (N >= 1,000; the cold start's log tail is N/10).
//!   When `redis-server` is installed (and `TOKM_BENCH_REDIS` is not `off`) it first starts a
//!   3-master + 3-replica Redis Cluster under `target/tokm-bench/redis-cluster/` (see
//!   `cargo xtask cluster`), passes its addresses in `TOKM_BENCH_REDIS_CLUSTER` for the
//!   `RedisClusterStore` rows, and stops it afterwards.
//! - `cargo xtask bench --scale [--sessions N] [--quick]`: the scaling run instead of the
//!   table: fill, snapshot and cold start at N, 2N and 4N sessions (1M, 2M and 4M by default,
//!   which needs about 10 GB of memory; 20k, 40k and 80k with `--quick`), each count in a
//!   fresh process. Prints RSS per session, snapshot time, cold start and the cold start's peak
//!   RSS with the slope per million sessions, and writes `scaling.md`, `scaling.json` and
//!   `scaling.svg` into `target/tokm-bench/`.
//! - `cargo xtask bench criterion [NAME] [--quick]`: the criterion benches in `benches/benches/`
//!   (all, or one file: `cmap`, `memory_store`, `crypto`, `wal`, `snapshot`), peers in the same
//!   groups. `--quick` sets `TOKM_BENCH_QUICK=1`, which shrinks data sets and times. Reports land
//!   in `target/criterion/`.

use crate::shell::{cargo, run_checked};

const USAGE: &str = "\
usage: cargo xtask bench [--quick] [--sessions N] [--scale]
       cargo xtask bench criterion [NAME] [--quick]

  --quick         smoke run: 20,000 sessions, seconds in all (CI runs it)
  --sessions N    fill N sessions, N >= 1,000 (default 1,000,000; 20,000 with --quick)
  --scale         the scaling run instead of the table: N, 2N and 4N sessions
  criterion       criterion benches (NAME: cmap, memory_store, crypto, wal, snapshot)";

/// Fewest sessions `--sessions` takes; the acceptance program enforces the same bound.
const SESSIONS_MIN: u64 = 1_000;

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    match args.split_first() {
        Some((first, rest)) if first == "criterion" => criterion(rest),
        _ => acceptance(args),
    }
}

fn acceptance(args: &[String]) -> Result<(), String> {
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let flags = acceptance_flags(args)?;
    let mut command = cargo(&[
        "run",
        "--release",
        "--locked",
        "--package",
        "tokm-benches",
        "--bin",
        "acceptance",
        "--",
    ]);
    let scale = flags.iter().any(|flag| flag == "--scale");
    command.args(flags);
    // The table's RedisClusterStore rows need a cluster; the scaling run has none.
    let redis_off = std::env::var_os("TOKM_BENCH_REDIS").is_some_and(|value| value == "off");
    if scale || redis_off || !crate::cluster::redis_installed() {
        return run_checked(&mut command);
    }
    let dir = crate::shell::workspace_root().join("target/tokm-bench/redis-cluster");
    let cluster = crate::cluster::Cluster::start_fresh(&dir)?;
    command
        .env(CLUSTER_VAR, cluster.addresses())
        .env(CLUSTER_DIR_VAR, cluster.dir());
    let ran = run_checked(&mut command);
    let stopped = cluster.stop();
    ran?;
    stopped
}

/// The cluster's addresses, for the acceptance program's RedisClusterStore rows.
const CLUSTER_VAR: &str = "TOKM_BENCH_REDIS_CLUSTER";
/// The cluster's directory (its nodes' configurations).
const CLUSTER_DIR_VAR: &str = "TOKM_BENCH_REDIS_CLUSTER_DIR";

/// Checks the acceptance flags before the release build, which takes minutes, so a typo fails
/// at once; returns them as the acceptance program takes them.
fn acceptance_flags(args: &[String]) -> Result<Vec<String>, String> {
    let mut flags = Vec::with_capacity(args.len());
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--quick" | "--scale" => flags.push(arg.clone()),
            "--sessions" => {
                let count = rest
                    .next()
                    .ok_or_else(|| format!("`--sessions` needs a count\n\n{USAGE}"))?;
                let digits: String = count.chars().filter(|c| !matches!(c, '_' | ',')).collect();
                if !digits.parse::<u64>().is_ok_and(|n| n >= SESSIONS_MIN) {
                    return Err(format!(
                        "`--sessions {count}`: expected a count of at least 1,000\n\n{USAGE}"
                    ));
                }
                flags.extend(["--sessions".to_owned(), digits]);
            }
            other => return Err(format!("unknown argument `{other}`\n\n{USAGE}")),
        }
    }
    Ok(flags)
}

fn criterion(args: &[String]) -> Result<(), String> {
    let names: Vec<&String> = args.iter().filter(|arg| *arg != "--quick").collect();
    let quick = names.len() < args.len();
    if let Some(flag) = names.iter().find(|arg| arg.starts_with('-')) {
        return Err(format!("unknown flag `{flag}`\n\n{USAGE}"));
    }
    if names.len() > 1 {
        return Err(USAGE.to_owned());
    }
    let mut command = cargo(&["bench", "--locked", "--package", "tokm-benches"]);
    if let Some(bench) = names.first() {
        command.args(["--bench", bench.as_str()]);
    }
    if quick {
        command.env("TOKM_BENCH_QUICK", "1");
    }
    run_checked(&mut command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Result<Vec<String>, String> {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        acceptance_flags(&args)
    }

    #[test]
    fn acceptance_flags_pass_through_and_normalise_the_count() {
        assert_eq!(flags(&[]), Ok(Vec::new()));
        assert_eq!(flags(&["--quick"]), Ok(vec!["--quick".to_owned()]));
        assert_eq!(
            flags(&["--scale", "--sessions", "2_000_000"]),
            Ok(["--scale", "--sessions", "2000000"]
                .map(str::to_owned)
                .to_vec())
        );
        assert_eq!(
            flags(&["--sessions", "1,000"]),
            Ok(["--sessions", "1000"].map(str::to_owned).to_vec())
        );
    }

    #[test]
    fn acceptance_flag_errors_list_every_flag() {
        for bad in [
            &["--sessions"][..],
            &["--sessions", "999"],
            &["--sessions", "many"],
            &["--fast"],
        ] {
            let error = flags(bad).expect_err("refused");
            for flag in ["--quick", "--sessions N", "--scale", "criterion"] {
                assert!(error.contains(flag), "{bad:?}: {error}");
            }
        }
    }
}

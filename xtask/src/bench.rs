//! `cargo xtask bench`: the project's main job, and the per-crate criterion benchmarks.
//!
//! - `cargo xtask bench [--quick]`: builds in release and runs the end-to-end acceptance
//!   program (`benches/src/bin/acceptance.rs`): a real engine at 1M sessions, printing the
//!   table of SPEC targets beside the peers measured in the same run (raw fdatasync, dashmap,
//!   Redis when `redis-server` is on `PATH`) and writing `report.md`, `report.json`,
//!   `latency.svg` and `writers.svg` into `target/tokm-bench/`. `--quick` runs 20,000
//!   sessions in seconds; `cargo xtask ci` runs it so the harness cannot rot.
//! - `cargo xtask bench criterion [NAME] [--quick]`: the criterion benches in `benches/benches/`
//!   (all, or one file: `cmap`, `memory_store`, `crypto`, `wal`, `snapshot`), peers in the same
//!   groups. `--quick` sets `TOKM_BENCH_QUICK=1`, which shrinks data sets and times. Reports land
//!   in `target/criterion/`.

use crate::shell::{cargo, run_checked};

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    match args.split_first() {
        Some((first, rest)) if first == "criterion" => criterion(rest),
        _ => acceptance(args),
    }
}

fn acceptance(args: &[String]) -> Result<(), String> {
    let quick = parse_quick(args)?;
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
    if quick {
        command.arg("--quick");
    }
    run_checked(&mut command)
}

fn criterion(args: &[String]) -> Result<(), String> {
    let names: Vec<&String> = args.iter().filter(|arg| *arg != "--quick").collect();
    let quick = names.len() < args.len();
    if let Some(flag) = names.iter().find(|arg| arg.starts_with('-')) {
        return Err(format!("unknown flag `{flag}`"));
    }
    if names.len() > 1 {
        return Err("usage: cargo xtask bench criterion [NAME] [--quick]".to_owned());
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

fn parse_quick(args: &[String]) -> Result<bool, String> {
    match args {
        [] => Ok(false),
        [flag] if flag == "--quick" => Ok(true),
        _ => Err(
            "usage: cargo xtask bench [--quick] | cargo xtask bench criterion [NAME] [--quick]"
                .to_owned(),
        ),
    }
}

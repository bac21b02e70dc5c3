//! `cargo xtask bench [NAME] [--quick]`: the criterion benchmarks in `benches/`.
//!
//! Without NAME every bench file runs (`cmap`, `memory_store`, `crypto`, `wal`); `--quick` sets
//! `TOKM_BENCH_QUICK=1`, which the bench files read to shrink data sets and measurement times to
//! a smoke run of seconds. Criterion's reports land in `target/criterion/`.

use crate::shell::{cargo, run_checked};

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let mut quick = false;
    let mut name = None;
    for arg in args {
        match arg.as_str() {
            "--quick" => quick = true,
            flag if flag.starts_with('-') => return Err(format!("unknown flag `{flag}`")),
            bench if name.is_none() => name = Some(bench.to_owned()),
            extra => return Err(format!("unexpected argument `{extra}`")),
        }
    }

    let mut command = cargo(&["bench", "--locked", "--package", "tokm-benches"]);
    if let Some(bench) = &name {
        command.args(["--bench", bench]);
    }
    if quick {
        command.env("TOKM_BENCH_QUICK", "1");
    }
    run_checked(&mut command)
}

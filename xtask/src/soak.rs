//! `cargo xtask soak wal|engine --cycles N`: long crash-and-recover loops that CI runs only briefly.
//!
//! The crash tests re-run their own test binary as a child, SIGKILL it at a random moment and
//! check the recovered state; CI runs 20 cycles, a soak as many as asked. Release builds, so a
//! cycle takes milliseconds.

use crate::shell::{cargo, run_checked};

/// Crash suites that honour `TOKM_SOAK_CYCLES`: (target name, package, test file).
const SUITES: &[(&str, &str, &str)] = &[
    ("wal", "tokm-wal", "crash_sigkill"),
    ("engine", "tokm-engine", "crash_sigkill"),
];

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let usage = || {
        let names: Vec<&str> = SUITES.iter().map(|(name, _, _)| *name).collect();
        format!("usage: cargo xtask soak <{}> --cycles N", names.join("|"))
    };
    let [target, flag, cycles] = args else {
        return Err(usage());
    };
    if flag != "--cycles" {
        return Err(usage());
    }
    let cycles: u64 = cycles
        .parse()
        .ok()
        .filter(|&cycles| cycles > 0)
        .ok_or_else(|| format!("--cycles takes a positive whole number, not `{cycles}`"))?;
    let Some((_, package, test)) = SUITES.iter().find(|(name, _, _)| name == target) else {
        return Err(usage());
    };

    println!("soak: {cycles} crash cycles of {package} ({test}), release build");
    let mut command = cargo(&[
        "test",
        "--release",
        "--locked",
        "--package",
        package,
        "--test",
        test,
        "--",
        "--nocapture",
    ]);
    command.env("TOKM_SOAK_CYCLES", cycles.to_string());
    run_checked(&mut command)
}

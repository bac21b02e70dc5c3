//! Project automation for tokm, run as `cargo xtask <command>` (an alias in `.cargo/config.toml`).
//!
//! Is: the one place that knows how to generate code, run every check, run benchmarks and soak
//! tests. Is not: part of any build; library crates never depend on it.
//!
//! Commands:
//!
//! | command | what it does |
//! |---|---|
//! | `codegen [--check]` | compile `proto/v1/*.proto` into committed Rust; `--check` fails if stale |
//! | `ci` | every check CI runs: fmt, tidy, clippy, codegen freshness, tests, the Redis Cluster tests, docs, the bench smoke run |
//! | `tidy` | the repository's own rules (no sleeps in tests, byte order only in `format.rs`, used dependencies, error-code tables, doc paths); see `tidy.rs` |
//! | `bench [--quick] [--sessions N] [--scale]` | the end-to-end acceptance run: engine at 1M (or N) sessions, the SPEC table; `--scale`: scaling at N, 2N, 4N |
//! | `bench criterion [NAME] [--quick]` | criterion benchmarks (all, or one bench file by name) |
//! | `soak wal\|engine --cycles N` | long crash-and-recover loops, outside CI |
//! | `cluster up\|down\|test` | a local 3+3 Redis Cluster for `tokm-redis` (leave one running, stop it, or test against a fresh one) |

mod bench;
mod ci;
mod cluster;
mod codegen;
mod shell;
mod soak;
mod tidy;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  codegen [--check]           regenerate Rust from proto/v1 (--check: fail if the committed code is stale)
  ci                          run every check and test, as CI does
  tidy                        the repository's own rules: no sleep in tests, byte-order
                              conversions only in format.rs, no unused dependency, error-code
                              tables match code(), every path a doc names exists
  bench [--quick] [--sessions N] [--scale]
                              end-to-end acceptance run (engine at 1M sessions; --quick: 20k;
                              --sessions N: N >= 1,000; --scale: scaling at N, 2N and 4N)
  bench criterion [NAME] [--quick]
                              criterion benches (NAME: cmap, memory_store, crypto, wal, snapshot)
  soak wal|engine --cycles N  SIGKILL crash-and-recover loop (WAL or whole engine), N cycles
  cluster up|down|test        a 3-master + 3-replica Redis Cluster on 127.0.0.1 for tokm-redis:
                              up leaves one running, down stops it, test runs tokm-redis's tests
                              against a fresh one and stops it
  help                        this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let result = match command.as_str() {
        "codegen" => codegen::run(rest),
        "ci" => ci::run(rest),
        "bench" => bench::run(rest),
        "soak" => soak::run(rest),
        "cluster" => cluster::run(rest),
        "tidy" => tidy::run(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

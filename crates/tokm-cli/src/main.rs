//! `tokm`: the operator's command-line tool for a tokm data directory.
//!
//! Is: a way to look at, check, dump, recover, snapshot and compact the data directory of a
//! service that embeds `tokm-engine` (`<dir>/wal/`, `<dir>/snapshots/`, `<dir>/LOCK`).
//! Is not: a client of a running service (it does no networking), an editor of sessions, or a
//! format parser: every byte is read through `tokm-wal`, `tokm-snapshot` and `tokm-proto`.
//!
//! # Commands
//! - `tokm inspect DIR`: log segments (name, size, first LSN from the name), snapshots (covered
//!   LSN, session count, size, age, header/footer valid or not) and what recovery would do.
//! - `tokm verify DIR`: reads every record and every snapshot block, checks every checksum
//!   and tag, decodes every record; names file and offset of each damage; progress on stderr.
//! - `tokm dump wal DIR` / `tokm dump snapshot DIR`: JSON lines, one record or session per line;
//!   `--from-lsn`, `--to-lsn` (log only), `--session ID`, `--file NAME` (snapshot only).
//! - `tokm recover DIR --policy point-in-time|absolute|skip [--dry-run]`.
//! - `tokm snapshot DIR`, `tokm compact DIR`: offline snapshot; snapshot then retention and log
//!   compaction. These three open the engine and so take the directory lock; they refuse a
//!   directory without `wal/` rather than let the engine create a data directory there.
//!
//! `inspect`, `verify`, `dump` and `recover --dry-run` change nothing in `DIR`: snapshots are
//! read through a private linked or copied view (see `snapshot_view.rs`) because the snapshot
//! store's own open and load may remove temp files or rename damaged ones.
//!
//! Keys: `--key-file PATH` (refused unless mode 0600) with `--key-id N` (default 1), or the
//! `TOKM_KEY_HEX` environment variable (64 hex digits). `--json` prints one JSON document
//! (`dump` always prints JSON lines). Errors go to stderr as `error[TM-...]: message`, never
//! with a secret. Ages are measured with `tokm_domain::SystemClock`.
//!
//! # Exit codes
//! | code | meaning |
//! |---|---|
//! | 0 | success; for `verify`, no damage |
//! | 1 | damage found (`verify`, or a command that hit damaged data) |
//! | 2 | usage error (bad flag, bad `TOKM_KEY_HEX`, bad session id) |
//! | 3 | I/O failure or refused: locked by a running service, wrong key, foreign file, missing directory |
//!
//! # Example
//! ```text
//! $ tokm verify /var/lib/myservice/sessions --json
//! {"damaged":[],"ok":true,"segments":[...],"snapshots":[...]}
//! ```
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, DumpTarget};
use crate::error::CliError;

mod cli;
mod dump;
mod error;
mod inspect;
mod keys;
mod maintain;
mod recover;
mod render;
mod snapshot_view;
mod verify;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr.
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(error::EXIT_USAGE)
            } else {
                ExitCode::from(error::EXIT_OK)
            };
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = run(cli.command, &mut out).and_then(|()| {
        out.flush()
            .map_err(CliError::io("write", std::path::Path::new("<stdout>")))
    });
    match result {
        Ok(()) => ExitCode::from(error::EXIT_OK),
        Err(error) => {
            report_error(&error);
            ExitCode::from(error.exit_code())
        }
    }
}

fn run(command: Command, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        Command::Inspect(args) => inspect::run(&args, out),
        Command::Verify(args) => verify::run(&args, out),
        Command::Dump {
            target: DumpTarget::Wal(args),
        } => dump::run_wal(&args, out),
        Command::Dump {
            target: DumpTarget::Snapshot(args),
        } => dump::run_snapshot(&args, out),
        Command::Recover(args) => recover::run(&args, out),
        Command::Snapshot(args) => maintain::run_snapshot(&args, out),
        Command::Compact(args) => maintain::run_compact(&args, out),
    }
}

/// `error[TM-CLI-5003]: wal: ... (cause TM-WAL-4031)` on stderr.
fn report_error(error: &CliError) {
    let mut line = format!("error[{}]: {error}", error.code());
    if let Some(cause) = error.cause_code() {
        line.push_str(&format!(" (cause {cause})"));
    }
    eprintln!("{line}");
}

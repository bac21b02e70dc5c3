//! `tokm`: the operator's command-line tool for a tokm data directory.
//!
//! Is: a way to look at, check, dump, recover, snapshot and compact the data directory of a
//! service that embeds `tokm-engine` (`<dir>/wal/`, `<dir>/snapshots/`, `<dir>/LOCK`).
//! Is not: a client of a running service (it does no networking), an editor of sessions, or a
//! format parser: every byte is read through `tokm-wal`, `tokm-snapshot` and `tokm-proto`.
//!
//! # Commands
//! - `tokm inspect DIR`: log segments as `tokm_wal::SegmentInfo` describes them (name, LSN
//!   range recovery keeps or "empty", records, size, sealed or open, key id or "plaintext",
//!   damaged ranges), snapshots (covered LSN, session count, size, age, header/footer valid or
//!   not) and what recovery would do.
//! - `tokm verify DIR`: reads every record and every snapshot block, checks every checksum
//!   and tag, decodes every record; names file and offset of each damage. Progress goes to
//!   stderr: an `indicatif` bar (log records, then snapshot bytes) when stderr is a terminal,
//!   else one `verify: ...` line per step.
//! - `tokm dump wal DIR` / `tokm dump snapshot DIR`: JSON lines, one record or session per line;
//!   `--from-lsn`, `--to-lsn` (log only), `--session ID`, `--file NAME` (snapshot only).
//! - `tokm recover DIR --policy refuse-loss|point-in-time|skip|absolute [--dry-run]`: what
//!   opening the engine under a policy does (`--dry-run`: would do, changing nothing). The
//!   README's table says what each policy drops and keeps.
//! - `tokm snapshot DIR`, `tokm compact DIR`: offline snapshot; snapshot then retention and log
//!   compaction. These three open the engine and so take the directory lock; they refuse a
//!   directory without `wal/` rather than let the engine create a data directory there.
//!
//! `inspect`, `verify`, `dump` and `recover --dry-run` change nothing in `DIR`: they read through
//! `tokm_snapshot::SnapshotReader`, `tokm_wal::LogSurvey` and `Engine::plan_recovery`, which
//! never create, rename, truncate or remove a file.
//!
//! Keys: `--key-file PATH` (refused unless mode 0600) with `--key-id N` (default 1), or the
//! `TOKM_KEY_HEX` environment variable (64 hex digits). For a directory whose files span a key
//! rotation, `--keyring FILE` (refused unless mode 0600) holds several keys, one per line as
//! `<key id> <64 hex digits>` with `#` comments, the last one active (see
//! `tokm_crypto_adaptive::Keyring::from_file`). `--json` prints one JSON document
//! (`dump` always prints JSON lines). Errors go to stderr as `error[TM-...]: message`, never
//! with a secret. Ages are measured with `tokm_domain::SystemClock`.
//!
//! # Exit codes
//! | code | meaning |
//! |---|---|
//! | 0 | success; for `verify`, no damage |
//! | 1 | damage found (`verify`, or a command that hit damaged data), or recovery refused to drop acknowledged records |
//! | 2 | usage error (bad flag, bad `TOKM_KEY_HEX`, bad session id) |
//! | 3 | I/O failure or refused: locked by a running service, wrong or missing key, foreign file, missing directory |
//!
//! # Example
//! ```text
//! $ tokm inspect /var/lib/myservice/sessions
//! segments (3):
//!   00000000000000000001.wal  LSN 1..=100000  100000 records  18322895 bytes  sealed  plaintext
//!   00000000000000100001.wal  LSN 100001..=200000  100000 records  18550120 bytes  sealed  plaintext
//!   00000000000000200001.wal  LSN 200001..=300000  100000 records  18550120 bytes  open  plaintext
//! snapshots (1):
//!   00000000000000200000-00000001795546638829.snap  LSN 200000  age 291 s  valid, 200000 sessions, 27079163 bytes
//! recovery would find: records 300000, last LSN 300000, torn-tail bytes to truncate 0, damaged ranges 0
//! $ tokm verify /var/lib/myservice/sessions --json
//! {"damaged":[],"ok":true,"snapshots":[...],"wal":{...}}
//! ```
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tokm_domain::ErrorChain;

use crate::cli::{Cli, Command, DumpTarget};
use crate::error::CliError;

mod cli;
mod dump;
mod error;
mod inspect;
mod keys;
mod maintain;
mod progress;
mod recover;
mod render;
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

/// `error[TM-CLI-5003]: <what failed>: <its causes> (cause TM-WAL-4031)` on stderr.
fn report_error(error: &CliError) {
    let mut line = format!("error[{}]: {}", error.code(), ErrorChain(error));
    if let Some(cause) = error.cause_code() {
        line.push_str(&format!(" (cause {cause})"));
    }
    eprintln!("{line}");
}

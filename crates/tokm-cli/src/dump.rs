//! `tokm dump wal|snapshot DIR`: JSON lines, one log record or one session per line.
//! Changes nothing. Token hashes only, metadata values as lengths (see `render`).

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use tokm_domain::SessionId;
use tokm_snapshot::SnapshotReader;
use tokm_storage::{FsStorage, Lsn};
use tokm_wal::{RecoveryMode, WalReader};

use crate::cli::DumpArgs;
use crate::error::CliError;
use crate::inspect;
use crate::render;

/// Dumps the log. Damaged ranges are skipped (and named on stderr) so everything readable is
/// printed; a record that does not decode is printed as `{"lsn":..,"undecodable":code}`. Either
/// makes the exit code 1 after the dump.
pub(crate) fn run_wal(args: &DumpArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if args.file.is_some() {
        return Err(CliError::usage("--file applies to `dump snapshot` only"));
    }
    args.common.checked_data_dir()?;
    let session = parse_session(args.session.as_deref())?;
    let wal_dir = args.common.wal_dir();
    let options = inspect::wal_options(args.common.keyring()?, RecoveryMode::SkipDamaged);
    let (reader, report) = WalReader::open(&wal_dir, &options)?;
    for range in &report.damaged {
        eprintln!(
            "dump: skipping damaged range in wal/{} at offset {} ({} bytes)",
            range.file, range.offset, range.len_bytes
        );
    }
    let after = Lsn::new(args.from_lsn.unwrap_or(1).saturating_sub(1));
    let to_lsn = args.to_lsn.unwrap_or(u64::MAX);
    let mut undecodable_count = 0_usize;
    let mut write_error = None;
    reader.replay(after, |lsn, payload| {
        if lsn.get() > to_lsn {
            return ControlFlow::Break(());
        }
        let line = match tokm_proto::decode_mutation(payload) {
            Ok(logged) => {
                if session.is_some_and(|id| logged.mutation.session_id() != id) {
                    return ControlFlow::Continue(());
                }
                let mut value = render::mutation(&logged);
                value["lsn"] = json!(lsn.get());
                value
            }
            Err(error) => {
                undecodable_count += 1;
                json!({"lsn": lsn.get(), "undecodable": error.code()})
            }
        };
        match writeln!(out, "{line}") {
            Ok(()) => ControlFlow::Continue(()),
            Err(error) => {
                write_error = Some(error);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(error) = write_error {
        return Err(CliError::io("write", Path::new("<stdout>"))(error));
    }
    let damaged_count = report.damaged.len() + undecodable_count;
    if damaged_count > 0 {
        return Err(CliError::DamageFound { damaged_count });
    }
    Ok(())
}

/// Dumps the sessions of one snapshot: `--file NAME`, or the newest valid one (falling back
/// past damaged ones as the engine would, naming them on stderr, renaming nothing).
pub(crate) fn run_snapshot(args: &DumpArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if args.from_lsn.is_some() || args.to_lsn.is_some() {
        return Err(CliError::usage(
            "--from-lsn/--to-lsn apply to `dump wal` only; choose a snapshot with --file",
        ));
    }
    args.common.checked_data_dir()?;
    let session = parse_session(args.session.as_deref())?;
    let snapshot_dir = args.common.snapshot_dir();
    let reader = SnapshotReader::new(&snapshot_dir, Arc::new(FsStorage), args.common.keyring()?);
    let mut names: Vec<String> = reader
        .list()?
        .into_iter()
        .map(|info| info.file_name)
        .collect();
    if let Some(name) = &args.file {
        if !names.contains(name) {
            return Err(CliError::usage(format!(
                "no snapshot named {name:?} in {}",
                snapshot_dir.display()
            )));
        }
        names = vec![name.clone()];
    }
    let mut damaged_count = 0;
    let mut loaded = None;
    for name in &names {
        match reader.load(name) {
            Ok(snapshot) => {
                loaded = Some(snapshot);
                break;
            }
            Err(error) if error.is_damage() => {
                damaged_count += 1;
                eprintln!(
                    "dump: snapshot {name} failed [{}]: {error}; using an older one",
                    error.code()
                );
            }
            // A key problem, a foreign file, an I/O error: not damage, nothing to fall past.
            Err(error) => return Err(error.into()),
        }
    }
    if let Some(mut snapshot) = loaded {
        // A snapshot keeps no order; print by id so that dumps of one state compare equal.
        snapshot.records.sort_unstable_by_key(|record| record.id());
        for record in &snapshot.records {
            if session.is_some_and(|id| record.id() != id) {
                continue;
            }
            let body = &record.to_session();
            let line = json!({
                "snapshot": snapshot.meta.file_name,
                "covered_lsn": snapshot.meta.covered_lsn.get(),
                "session": render::session(body),
            });
            writeln!(out, "{line}").map_err(CliError::io("write", Path::new("<stdout>")))?;
        }
    }
    if damaged_count > 0 {
        return Err(CliError::DamageFound { damaged_count });
    }
    Ok(())
}

fn parse_session(text: Option<&str>) -> Result<Option<SessionId>, CliError> {
    text.map(|text| {
        SessionId::parse(text)
            .map_err(|error| CliError::usage(format!("--session {text:?}: {error}")))
    })
    .transpose()
}

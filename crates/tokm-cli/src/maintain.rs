//! `tokm snapshot DIR` and `tokm compact DIR`: offline maintenance through the engine.

use std::io::Write;
use std::path::Path;

use serde_json::json;
use tokm_engine::{Engine, EngineConfig};

use crate::cli::CommonArgs;
use crate::error::CliError;

/// Turns off the engine's time- and size-based background snapshots: the tool opens the
/// engine only to do one thing and close it.
pub(crate) fn quiet_background(config: &mut EngineConfig) {
    config.snapshots.interval = None;
    config.snapshots.wal_bytes = None;
}

fn open(args: &CommonArgs) -> Result<Engine, CliError> {
    let mut config = EngineConfig::new(args.existing_data_dir()?);
    config.keyring = args.keyring()?;
    quiet_background(&mut config);
    // A big replay may already trigger a snapshot on open; that is harmless here.
    let (engine, _report) = Engine::open(config)?;
    Ok(engine)
}

/// Takes one snapshot and closes the engine.
pub(crate) fn run_snapshot(args: &CommonArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let engine = open(args)?;
    let meta = engine.snapshot_now()?;
    engine.close()?;
    let text = if args.json {
        let document = json!({
            "file": meta.file_name,
            "covered_lsn": meta.covered_lsn.get(),
            "session_count": meta.session_count,
            "size_bytes": meta.size_bytes,
        });
        format!("{document}\n")
    } else {
        format!(
            "snapshot {}: LSN {}, {} session(s), {} bytes\n",
            meta.file_name, meta.covered_lsn, meta.session_count, meta.size_bytes
        )
    };
    out.write_all(text.as_bytes())
        .map_err(CliError::io("write", Path::new("<stdout>")))
}

/// Snapshot, then the engine's retention and log compaction (which run after every
/// snapshot); prints which files went away.
pub(crate) fn run_compact(args: &CommonArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let before = data_files(args)?;
    let engine = open(args)?;
    let meta = engine.snapshot_now()?;
    engine.close()?;
    let after = data_files(args)?;
    let removed: Vec<&String> = before.iter().filter(|name| !after.contains(name)).collect();
    let text = if args.json {
        let document = json!({
            "snapshot": meta.file_name,
            "covered_lsn": meta.covered_lsn.get(),
            "removed": removed,
            "kept": after,
        });
        format!("{document}\n")
    } else {
        let mut text = format!(
            "snapshot {} at LSN {}; removed {} file(s)\n",
            meta.file_name,
            meta.covered_lsn,
            removed.len()
        );
        for name in removed {
            text.push_str(&format!("  removed {name}\n"));
        }
        text
    };
    out.write_all(text.as_bytes())
        .map_err(CliError::io("write", Path::new("<stdout>")))
}

/// `wal/<segment>` and `snapshots/<snapshot>` names, sorted.
fn data_files(args: &CommonArgs) -> Result<Vec<String>, CliError> {
    let mut names = Vec::new();
    for (dir, prefix, suffix) in [
        (args.wal_dir(), "wal", ".wal"),
        (args.snapshot_dir(), "snapshots", ".snap"),
    ] {
        for name in read_dir_or_empty(&dir)? {
            if name.ends_with(suffix) {
                names.push(format!("{prefix}/{name}"));
            }
        }
    }
    names.sort();
    Ok(names)
}

/// File names in `dir`, or none if it does not exist.
fn read_dir_or_empty(dir: &Path) -> Result<Vec<String>, CliError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(CliError::io("list", dir)(error)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(CliError::io("list", dir))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

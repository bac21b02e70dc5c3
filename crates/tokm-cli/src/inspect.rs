//! `tokm inspect DIR`: what is in the directory and what recovery would do. Changes nothing.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use tokm_crypto_adaptive::Keyring;
use tokm_domain::{Clock, SystemClock};
use tokm_wal::{RecoveryMode, RecoveryReport, WalOptions, WalReader};

use crate::cli::CommonArgs;
use crate::error::CliError;
use crate::render;
use crate::snapshot_view::{self, SnapshotView};

/// Runs `inspect`.
pub(crate) fn run(args: &CommonArgs, out: &mut dyn Write) -> Result<(), CliError> {
    args.data_dir()?;
    let keyring = args.keyring()?;
    let segments = list_segments(&args.wal_dir())?;
    let report = dry_run_report(&args.wal_dir(), keyring.clone(), RecoveryMode::PointInTime)?;
    let snapshots = list_snapshots(&args.snapshot_dir(), keyring)?;
    let document = json!({
        "dir": args.dir.display().to_string(),
        "segments": segments,
        "snapshots": snapshots,
        "recovery": render::wal_report(&report),
    });
    let text = if args.json {
        format!("{document}\n")
    } else {
        text(&segments, &snapshots, &report)
    };
    out.write_all(text.as_bytes())
        .map_err(CliError::io("write", Path::new("<stdout>")))
}

/// Segment files (`<first LSN>.wal`) with their size and the first LSN their name states.
pub(crate) fn list_segments(wal_dir: &Path) -> Result<Vec<Value>, CliError> {
    let mut segments = Vec::new();
    for name in snapshot_view::read_dir_or_empty(wal_dir)? {
        let Some(stem) = name.strip_suffix(".wal") else {
            continue;
        };
        let size_bytes = snapshot_view::file_size_bytes(&wal_dir.join(&name))?;
        // A name that is not 20 digits is a foreign file; WalReader refuses it, so say so.
        let first_lsn = stem.parse::<u64>().ok().filter(|_| stem.len() == 20);
        segments.push(json!({
            "name": name,
            "size_bytes": size_bytes,
            "first_lsn": first_lsn,
        }));
    }
    Ok(segments)
}

/// The log's recovery report under `mode`, without changing anything; an absent log is empty.
pub(crate) fn dry_run_report(
    wal_dir: &Path,
    keyring: Option<Arc<Keyring>>,
    mode: RecoveryMode,
) -> Result<RecoveryReport, CliError> {
    if !wal_dir.is_dir() {
        return Ok(RecoveryReport::default());
    }
    let (_reader, report) = WalReader::open(wal_dir, &wal_options(keyring, mode))?;
    Ok(report)
}

pub(crate) fn wal_options(keyring: Option<Arc<Keyring>>, mode: RecoveryMode) -> WalOptions {
    let options = WalOptions::default().with_recovery_mode(mode);
    match keyring {
        Some(keyring) => options.with_keyring(keyring),
        None => options,
    }
}

/// Snapshots, newest first, with header and footer checked (blocks are `verify`'s job).
fn list_snapshots(
    snapshot_dir: &Path,
    keyring: Option<Arc<Keyring>>,
) -> Result<Vec<Value>, CliError> {
    let names = snapshot_view::snapshot_file_names(snapshot_dir)?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let view = SnapshotView::of_files(snapshot_dir, &names, keyring)?;
    let now = SystemClock.now();
    let mut snapshots = Vec::new();
    for info in view.list()? {
        let age_ms = now.saturating_duration_since(info.created_at).as_millis();
        let mut value = json!({
            "file": info.file_name,
            "covered_lsn": info.covered_lsn,
            "created_at_ms": info.created_at.as_millis(),
            "age_ms": u64::try_from(age_ms).unwrap_or(u64::MAX),
        });
        match &info.meta {
            Ok(meta) => {
                value["valid"] = json!(true);
                value["session_count"] = json!(meta.session_count);
                value["size_bytes"] = json!(meta.size_bytes);
            }
            Err(error) => {
                value["valid"] = json!(false);
                value["error_code"] = json!(error.code());
                value["error"] = json!(error.to_string());
            }
        }
        snapshots.push(value);
    }
    Ok(snapshots)
}

fn text(segments: &[Value], snapshots: &[Value], report: &RecoveryReport) -> String {
    let mut text = format!("segments ({}):\n", segments.len());
    for segment in segments {
        text.push_str(&format!(
            "  {}  {} bytes  first LSN {}\n",
            segment["name"].as_str().unwrap_or("?"),
            segment["size_bytes"],
            segment["first_lsn"]
        ));
    }
    text.push_str(&format!("snapshots ({}):\n", snapshots.len()));
    for snapshot in snapshots {
        let state = if snapshot["valid"] == json!(true) {
            format!(
                "valid, {} sessions, {} bytes",
                snapshot["session_count"], snapshot["size_bytes"]
            )
        } else {
            format!(
                "INVALID [{}]",
                snapshot["error_code"].as_str().unwrap_or("?")
            )
        };
        text.push_str(&format!(
            "  {}  LSN {}  age {} s  {state}\n",
            snapshot["file"].as_str().unwrap_or("?"),
            snapshot["covered_lsn"],
            snapshot["age_ms"].as_u64().unwrap_or(0) / 1000
        ));
    }
    text.push_str("recovery would find: ");
    text.push_str(&render::wal_report_text(report));
    text
}

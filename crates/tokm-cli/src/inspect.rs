//! `tokm inspect DIR`: what is in the directory and what recovery would do. Changes nothing.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use tokm_crypto_adaptive::Keyring;
use tokm_domain::{Clock, SystemClock};
use tokm_engine::{Engine, EngineConfig, EngineError};
use tokm_snapshot::SnapshotReader;
use tokm_storage::FsStorage;
use tokm_wal::{LogSurvey, RecoveryMode, RecoveryReport, SegmentInfo, WalOptions};

use crate::cli::CommonArgs;
use crate::error::CliError;
use crate::maintain;
use crate::recover;
use crate::render;

/// Runs `inspect`.
pub(crate) fn run(args: &CommonArgs, out: &mut dyn Write) -> Result<(), CliError> {
    args.checked_data_dir()?;
    let keyring = args.keyring()?;
    let log = log_report(&args.wal_dir(), keyring.clone())?;
    let segments: Vec<Value> = log.segments.iter().map(render::segment).collect();
    let snapshots = list_snapshots(&args.snapshot_dir(), keyring.clone())?;
    let recovery = recovery_outlook(args, keyring)?;
    let document = json!({
        "dir": args.dir.display().to_string(),
        "segments": segments,
        "snapshots": snapshots,
        "recovery": recovery.0,
    });
    let text = if args.json {
        format!("{document}\n")
    } else {
        text(&log.segments, &snapshots, &recovery.1)
    };
    out.write_all(text.as_bytes())
        .map_err(CliError::io("write", Path::new("<stdout>")))
}

/// Every segment as recovery finds it, reading everything that can be read (`SkipDamaged`,
/// the log's own start as the base): what each holds, whatever a policy would then decide.
pub(crate) fn log_report(
    wal_dir: &Path,
    keyring: Option<Arc<Keyring>>,
) -> Result<RecoveryReport, CliError> {
    let options = wal_options(keyring, RecoveryMode::SkipDamaged);
    let walk =
        LogSurvey::read(wal_dir, &options)?.walk(None, &mut |_, _| ControlFlow::Continue(()))?;
    let plan = walk.plan()?;
    Ok(walk.report(&plan))
}

pub(crate) fn wal_options(keyring: Option<Arc<Keyring>>, mode: RecoveryMode) -> WalOptions {
    WalOptions {
        keyring,
        recovery_mode: mode,
        ..WalOptions::default()
    }
}

/// What opening the engine with its default policy would do (JSON and text), or why it would
/// refuse. Key problems and I/O failures are errors.
fn recovery_outlook(
    args: &CommonArgs,
    keyring: Option<Arc<Keyring>>,
) -> Result<(Value, String), CliError> {
    let mut config = EngineConfig::new(&args.dir);
    config.keyring = keyring;
    maintain::quiet_background(&mut config);
    match Engine::plan_recovery(&config) {
        Ok(report) => Ok((recover::document(&report), recover::text(&report))),
        Err(error @ EngineError::WouldDropRecords { .. }) => {
            let code = error.code();
            Ok((
                json!({"refused": code, "error": error.to_string()}),
                format!("would refuse [{code}]: {error}\n"),
            ))
        }
        Err(error) => Err(error.into()),
    }
}

/// Snapshots, newest first, with header and footer checked (blocks are `verify`'s job).
fn list_snapshots(
    snapshot_dir: &Path,
    keyring: Option<Arc<Keyring>>,
) -> Result<Vec<Value>, CliError> {
    let reader = SnapshotReader::new(snapshot_dir, Arc::new(FsStorage), keyring);
    let now = SystemClock.now();
    let mut snapshots = Vec::new();
    for info in reader.list()? {
        let age_ms = now.saturating_duration_since(info.created_at).as_millis();
        let mut value = json!({
            "file": info.file_name,
            "covered_lsn": info.covered_lsn.get(),
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

fn text(segments: &[SegmentInfo], snapshots: &[Value], recovery: &str) -> String {
    let mut text = format!("segments ({}):\n", segments.len());
    for segment in segments {
        text.push_str(&segment_line(segment));
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
    text.push_str("recovery (default policy): ");
    text.push_str(recovery);
    text
}

/// `  <name>  LSN 1..=3  3 records  420 bytes  sealed  key 1`, plus damage when there is some.
fn segment_line(segment: &SegmentInfo) -> String {
    let range = match segment.last_lsn {
        Some(last) => format!("LSN {}..={last}", segment.first_lsn),
        // No record kept because of damage; "empty" would hide that.
        None if segment.damaged_ranges_count > 0 => "no records kept".to_owned(),
        None => "empty".to_owned(),
    };
    let state = if segment.sealed { "sealed" } else { "open" };
    let key = match (segment.segment_id, segment.key_id) {
        (None, _) => "header damaged".to_owned(),
        (Some(_), Some(key_id)) => format!("key {key_id}"),
        (Some(_), None) => "plaintext".to_owned(),
    };
    let mut line = format!(
        "  {}  {range}  {} records  {} bytes  {state}  {key}",
        segment.file, segment.records_count, segment.size_bytes
    );
    if segment.damaged_ranges_count > 0 {
        line.push_str(&format!(
            "  {} damaged range(s)",
            segment.damaged_ranges_count
        ));
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use tokm_storage::Lsn;
    use tokm_wal::{Wal, WalOptions, WalReader};

    use super::*;

    #[test]
    fn segment_lines_show_range_state_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let options = WalOptions {
            segment_records_max: 2,
            ..WalOptions::default()
        };
        let (wal, _) = Wal::open(dir.path(), options.clone()).unwrap();
        for payload in [b"a", b"b", b"c"] {
            wal.append(payload, tokm_wal::Durability::Sync).unwrap();
        }
        wal.close().unwrap();
        let (_reader, report) = WalReader::open(dir.path(), &options).unwrap();
        let lines: Vec<String> = report.segments.iter().map(segment_line).collect();
        assert_eq!(report.last_lsn, Lsn::new(3));
        assert_eq!(
            lines,
            vec![
                format!(
                    "  00000000000000000001.wal  LSN 1..=2  2 records  {} bytes  sealed  plaintext\n",
                    report.segments[0].size_bytes
                ),
                format!(
                    "  00000000000000000003.wal  LSN 3..=3  1 records  {} bytes  open  plaintext\n",
                    report.segments[1].size_bytes
                ),
            ]
        );
    }
}

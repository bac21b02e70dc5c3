//! `tokm inspect DIR`: what is in the directory and what recovery would do. Changes nothing.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use tokm_crypto_adaptive::Keyring;
use tokm_domain::{Clock, SystemClock};
use tokm_wal::{RecoveryMode, RecoveryReport, SegmentInfo, WalOptions, WalReader};

use crate::cli::CommonArgs;
use crate::error::CliError;
use crate::render;
use crate::snapshot_view::{self, SnapshotView};

/// Runs `inspect`.
pub(crate) fn run(args: &CommonArgs, out: &mut dyn Write) -> Result<(), CliError> {
    args.data_dir()?;
    let keyring = args.keyring()?;
    let report = dry_run_report(&args.wal_dir(), keyring.clone(), RecoveryMode::PointInTime)?;
    let segments: Vec<Value> = report.segments.iter().map(render::segment).collect();
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
        text(&report.segments, &snapshots, &report)
    };
    out.write_all(text.as_bytes())
        .map_err(CliError::io("write", Path::new("<stdout>")))
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

fn text(segments: &[SegmentInfo], snapshots: &[Value], report: &RecoveryReport) -> String {
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
    text.push_str("recovery would find: ");
    text.push_str(&render::wal_report_text(report));
    text
}

/// `  <name>  LSN 1..=3  3 records  420 bytes  sealed  key 1`, plus damage when there is some.
fn segment_line(segment: &SegmentInfo) -> String {
    let range = match segment.last_lsn {
        Some(last) => format!("LSN {}..={last}", segment.first_lsn),
        // Recovery keeps nothing from a segment after damage; "empty" would hide that.
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
    use tokm_wal::{Lsn, Wal, WalOptions};

    use super::*;

    #[test]
    fn segment_lines_show_range_state_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let options = WalOptions::default().with_segment_records_max(2);
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

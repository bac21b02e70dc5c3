//! `tokm verify DIR`: reads everything and checks every checksum and tag. Changes nothing.
//!
//! Progress goes to stderr (see `progress.rs`): a spinner while the log is scanned, a bar of
//! log records while they are replayed and decoded, a bar of snapshot bytes while snapshots
//! are loaded; without a terminal, one `verify: ...` line per step (and per snapshot) instead.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use tokm_crypto_adaptive::Keyring;
use tokm_snapshot::SnapshotError;
use tokm_wal::{Lsn, RecoveryMode, WalReader};

use crate::cli::CommonArgs;
use crate::error::CliError;
use crate::inspect;
use crate::progress::{Step, Unit};
use crate::render;
use crate::snapshot_view::{self, SnapshotView};

/// The prefix of progress lines.
const COMMAND: &str = "verify";

/// Runs `verify`: prints the findings, then fails with `DamageFound` if there were any.
pub(crate) fn run(args: &CommonArgs, out: &mut dyn Write) -> Result<(), CliError> {
    args.data_dir()?;
    let keyring = args.keyring()?;
    let mut damaged = Vec::new();
    let wal = verify_wal(&args.wal_dir(), keyring.clone(), &mut damaged)?;
    let snapshots = verify_snapshots(&args.snapshot_dir(), keyring, &mut damaged)?;
    let document = json!({
        "ok": damaged.is_empty(),
        "wal": wal,
        "snapshots": snapshots,
        "damaged": damaged,
    });
    let text = if args.json {
        format!("{document}\n")
    } else {
        text(&document)
    };
    out.write_all(text.as_bytes())
        .map_err(CliError::io("write", Path::new("<stdout>")))?;
    if damaged.is_empty() {
        return Ok(());
    }
    Err(CliError::DamageFound {
        damaged_count: damaged.len(),
    })
}

/// Scans the log under `SkipDamaged` (so every damaged range is found, not only the first),
/// then replays every record, which re-verifies checksum and tag, and decodes it.
fn verify_wal(
    wal_dir: &Path,
    keyring: Option<Arc<Keyring>>,
    damaged: &mut Vec<Value>,
) -> Result<Value, CliError> {
    if !wal_dir.is_dir() {
        return Ok(json!({"records_count": 0, "segments": 0}));
    }
    let options = inspect::wal_options(keyring, RecoveryMode::SkipDamaged);
    // The scan reads every segment but reports nothing until it is done: a spinner.
    let scanning = Step::spinner(COMMAND);
    scanning.show("scanning log segments".to_owned());
    let opened = WalReader::open(wal_dir, &options);
    drop(scanning);
    let (reader, report) = opened?;
    for range in &report.damaged {
        damaged.push(json!({
            "file": format!("wal/{}", range.file),
            "offset": range.offset,
            "len_bytes": range.len_bytes,
            "kind": render::damage_kind(range.kind),
        }));
    }
    let decoding = Step::bar(COMMAND, report.records_count, Unit::Records);
    decoding.show(format!(
        "decoding {} log record(s) from {} segment(s)",
        report.records_count,
        report.segments.len()
    ));
    let mut decoded_count = 0_u64;
    reader.replay(Lsn::ZERO, |lsn, payload| {
        decoding.advance(1);
        match tokm_proto::decode_mutation(payload) {
            Ok(_) => decoded_count += 1,
            Err(error) => damaged.push(json!({
                "file": "wal",
                "lsn": lsn.get(),
                "code": error.code(),
                "error": error.to_string(),
            })),
        }
        ControlFlow::Continue(())
    })?;
    let mut value = render::wal_report(&report);
    value["segments"] = json!(report.segments.len());
    value["records_decoded"] = json!(decoded_count);
    Ok(value)
}

/// Loads each snapshot on its own (through a private view), so every block of every file is
/// read and checked, not only the newest valid one. Progress counts the bytes of the files.
fn verify_snapshots(
    snapshot_dir: &Path,
    keyring: Option<Arc<Keyring>>,
    damaged: &mut Vec<Value>,
) -> Result<Vec<Value>, CliError> {
    let names = snapshot_view::snapshot_file_names(snapshot_dir)?;
    let mut sizes_bytes = Vec::with_capacity(names.len());
    for name in &names {
        sizes_bytes.push(snapshot_view::file_size_bytes(&snapshot_dir.join(name))?);
    }
    let loading = Step::bar(COMMAND, sizes_bytes.iter().sum(), Unit::Bytes);
    let mut results = Vec::with_capacity(names.len());
    for (index, (name, size_bytes)) in names.iter().zip(sizes_bytes).enumerate() {
        loading.show(format!("snapshot {}/{} {name}", index + 1, names.len()));
        let view =
            SnapshotView::of_files(snapshot_dir, std::slice::from_ref(name), keyring.clone())?;
        match view.load_newest() {
            Ok(outcome) => {
                let session_count = outcome
                    .snapshot
                    .map_or(0, |snapshot| snapshot.sessions.len());
                results.push(json!({"file": name, "ok": true, "session_count": session_count}));
            }
            Err(SnapshotError::NoValidSnapshot { fallbacks }) => {
                for fallback in fallbacks {
                    let error = &fallback.error;
                    damaged.push(json!({
                        "file": format!("snapshots/{name}"),
                        "code": error.code(),
                        "cause_code": error.cause_code(),
                        "error": error.to_string(),
                    }));
                }
                results.push(json!({"file": name, "ok": false}));
            }
            // A foreign file, a missing key or an I/O error: not damage, so refuse.
            Err(error) => return Err(error.into()),
        }
        loading.advance(size_bytes);
    }
    Ok(results)
}

fn text(document: &Value) -> String {
    let wal = &document["wal"];
    let mut text = format!(
        "log: {} record(s) decoded, torn-tail bytes {}\n",
        wal["records_decoded"].as_u64().unwrap_or(0),
        wal["truncated_bytes"].as_u64().unwrap_or(0)
    );
    for snapshot in document["snapshots"].as_array().into_iter().flatten() {
        let state = if snapshot["ok"] == json!(true) {
            format!("ok, {} sessions", snapshot["session_count"])
        } else {
            "DAMAGED".to_owned()
        };
        text.push_str(&format!(
            "snapshot {}: {state}\n",
            snapshot["file"].as_str().unwrap_or("?")
        ));
    }
    let damaged = document["damaged"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if damaged.is_empty() {
        text.push_str("ok: no damage found\n");
    }
    for damage in damaged {
        text.push_str(&format!("DAMAGE {damage}\n"));
    }
    text
}

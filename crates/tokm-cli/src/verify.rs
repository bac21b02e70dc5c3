//! `tokm verify DIR`: reads everything and checks every checksum and tag. Changes nothing.
//!
//! Progress goes to stderr (see `progress.rs`): a spinner while the log is read and decoded
//! (one pass), a bar of snapshot bytes while snapshots are loaded; without a terminal, one
//! `verify: ...` line per step (and per snapshot) instead.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use tokm_crypto_adaptive::Keyring;
use tokm_snapshot::SnapshotReader;
use tokm_storage::FsStorage;
use tokm_wal::{LogSurvey, RecoveryMode};

use crate::cli::CommonArgs;
use crate::error::CliError;
use crate::inspect;
use crate::progress::{Step, Unit};
use crate::render;

/// The prefix of progress lines.
const COMMAND: &str = "verify";

/// Runs `verify`: prints the findings, then fails with `DamageFound` if there were any.
pub(crate) fn run(args: &CommonArgs, out: &mut dyn Write) -> Result<(), CliError> {
    args.checked_data_dir()?;
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

/// Reads the log once under `SkipDamaged`, so every damaged range is found (not only the
/// first) and every readable record is verified (checksum and tag) and decoded.
fn verify_wal(
    wal_dir: &Path,
    keyring: Option<Arc<Keyring>>,
    damaged: &mut Vec<Value>,
) -> Result<Value, CliError> {
    let options = inspect::wal_options(keyring, RecoveryMode::SkipDamaged);
    let survey = LogSurvey::read(wal_dir, &options)?;
    let reading = Step::spinner(COMMAND);
    reading.show("reading and decoding every log record".to_owned());
    let mut decoded_count = 0_u64;
    let walk = survey.walk(None, &mut |lsn, payload| {
        reading.advance(1);
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
    drop(reading);
    let report = walk.report(&walk.plan()?);
    for range in &report.damaged {
        damaged.push(json!({
            "file": format!("wal/{}", range.file),
            "offset": range.offset,
            "len_bytes": range.len_bytes,
            "kind": render::damage_kind(range.kind),
        }));
    }
    let mut value = render::wal_report(&report);
    value["segments"] = json!(report.segments.len());
    value["records_decoded"] = json!(decoded_count);
    Ok(value)
}

/// Loads every snapshot in full (read-only: nothing is renamed), so every block of every file
/// is read and checked, not only the newest valid one. Progress counts the files' bytes.
fn verify_snapshots(
    snapshot_dir: &Path,
    keyring: Option<Arc<Keyring>>,
    damaged: &mut Vec<Value>,
) -> Result<Vec<Value>, CliError> {
    let reader = SnapshotReader::new(snapshot_dir, Arc::new(FsStorage), keyring);
    let infos = reader.list()?;
    let mut sizes_bytes = Vec::with_capacity(infos.len());
    for info in &infos {
        let path = snapshot_dir.join(&info.file_name);
        let metadata = std::fs::metadata(&path).map_err(CliError::io("stat", &path))?;
        sizes_bytes.push(metadata.len());
    }
    let loading = Step::bar(COMMAND, sizes_bytes.iter().sum(), Unit::Bytes);
    let mut results = Vec::with_capacity(infos.len());
    for (index, (info, size_bytes)) in infos.iter().zip(sizes_bytes).enumerate() {
        let name = &info.file_name;
        loading.show(format!("snapshot {}/{} {name}", index + 1, infos.len()));
        match reader.load(name) {
            Ok(snapshot) => {
                let count = snapshot.records.len();
                results.push(json!({"file": name, "ok": true, "session_count": count}));
            }
            Err(error) if error.is_damage() => {
                damaged.push(json!({
                    "file": format!("snapshots/{name}"),
                    "code": error.code(),
                    "cause_code": error.cause_code(),
                    "error": error.to_string(),
                }));
                results.push(json!({"file": name, "ok": false}));
            }
            // A foreign file, a key problem or an I/O error: not damage, so refuse.
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

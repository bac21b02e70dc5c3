//! `tokm recover DIR --policy ... [--dry-run]`.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};
use tokm_engine::{Engine, EngineConfig, RecoveryReport};

use crate::cli::RecoverArgs;
use crate::error::CliError;
use crate::maintain;
use crate::render;

/// With `--dry-run`: what opening the engine under the policy would do (which snapshot it
/// starts from, which it sets aside, what the log keeps, drops and repairs), changing nothing
/// and taking no lock. Without: opens the engine under the policy, which does it (and, after a
/// policy dropped or skipped records, takes a snapshot so the next default open agrees), then
/// closes it. A refusal is the engine's error (exit 1 for records it would drop, 3 for a key
/// problem), with nothing changed.
pub(crate) fn run(args: &RecoverArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let dir = args.common.existing_data_dir()?;
    let mut config = EngineConfig::new(dir);
    config.recovery_mode = args.policy.recovery_mode();
    config.keyring = args.common.keyring()?;
    maintain::quiet_background(&mut config);
    let report = if args.dry_run {
        Engine::plan_recovery(&config)?
    } else {
        let (engine, report) = Engine::open(config)?;
        engine.close()?;
        report
    };
    let document = document(&report);
    let text = if args.common.json {
        format!("{document}\n")
    } else {
        text(&report)
    };
    out.write_all(text.as_bytes())
        .map_err(CliError::io("write", Path::new("<stdout>")))
}

/// The report as one JSON document.
pub(crate) fn document(report: &RecoveryReport) -> Value {
    let fallbacks: Vec<Value> = report
        .snapshot_fallbacks
        .iter()
        .map(|fallback| {
            json!({
                "file": fallback.file_name,
                "renamed_to": fallback.renamed_to,
                "code": fallback.error.code(),
                "error": fallback.error.to_string(),
            })
        })
        .collect();
    json!({
        "dry_run": report.dry_run,
        "snapshot": report.snapshot.as_ref().map(|meta| meta.file_name.clone()),
        "snapshot_fallbacks": fallbacks,
        "wal": render::wal_report(&report.wal),
        "replayed_count": report.replayed_count,
        "skipped_count": report.skipped_count,
        "expired_count": report.expired_count,
        "sessions": report.session_count,
        "snapshot_after_recovery": report
            .snapshot_after_recovery
            .as_ref()
            .map(|meta| meta.file_name.clone()),
    })
}

/// The report as text.
pub(crate) fn text(report: &RecoveryReport) -> String {
    let mut text = String::new();
    if report.dry_run {
        text.push_str("dry run, nothing changed; opening would:\n");
    }
    text.push_str(&format!(
        "start from {}; replay {} record(s); {} session(s)\n",
        report
            .snapshot
            .as_ref()
            .map_or("an empty store (no usable snapshot)", |meta| meta
                .file_name
                .as_str()),
        report.replayed_count,
        report.session_count
    ));
    for fallback in &report.snapshot_fallbacks {
        text.push_str(&format!(
            "  set aside snapshot {} as {} [{}]: {}\n",
            fallback.file_name,
            fallback.renamed_to,
            fallback.error.code(),
            fallback.error
        ));
    }
    text.push_str("log: ");
    text.push_str(&render::wal_report_text(&report.wal));
    if let Some(meta) = &report.snapshot_after_recovery {
        text.push_str(&format!(
            "snapshot {} taken so later opens start past what was dropped\n",
            meta.file_name
        ));
    }
    text
}

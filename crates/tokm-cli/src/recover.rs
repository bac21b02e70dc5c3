//! `tokm recover DIR --policy ... [--dry-run]`.

use std::io::Write;
use std::path::Path;

use serde_json::json;
use tokm_engine::{Engine, EngineConfig};

use crate::cli::RecoverArgs;
use crate::error::CliError;
use crate::inspect;
use crate::maintain;
use crate::render;

/// With `--dry-run`: the log's recovery report under the policy, changing nothing (under
/// `absolute`, damage is an error, exit 1). Without: opens the engine with that policy (which
/// truncates torn tails, quarantines or refuses damage, and loads the newest valid snapshot),
/// then closes it, and prints the engine's report.
pub(crate) fn run(args: &RecoverArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let dir = args.common.existing_data_dir()?;
    let keyring = args.common.keyring()?;
    let mode = args.policy.recovery_mode();
    let (document, text) = if args.dry_run {
        let report = inspect::dry_run_report(&args.common.wal_dir(), keyring, mode)?;
        let document = json!({"dry_run": true, "wal": render::wal_report(&report)});
        let text = format!(
            "dry run, nothing changed: {}",
            render::wal_report_text(&report)
        );
        (document, text)
    } else {
        let mut config = EngineConfig::new(dir);
        config.recovery_mode = mode;
        config.keyring = keyring;
        maintain::quiet_background(&mut config);
        let (engine, report) = Engine::open(config)?;
        engine.close()?;
        let fallbacks: Vec<_> = report
            .snapshot_fallbacks
            .iter()
            .map(|fallback| {
                json!({
                    "file": fallback.file_name,
                    "renamed_to": fallback.renamed_to,
                    "code": fallback.error.code(),
                })
            })
            .collect();
        let document = json!({
            "dry_run": false,
            "snapshot": report.snapshot.as_ref().map(|meta| meta.file_name.clone()),
            "snapshot_fallbacks": fallbacks,
            "wal": render::wal_report(&report.wal),
            "replayed_records": report.replayed_records,
            "replay_skipped": report.replay_skipped,
            "expired_dropped": report.expired_dropped,
            "sessions": report.sessions,
        });
        let text = format!(
            "recovered {} session(s) (snapshot {}, {} record(s) replayed, {} snapshot fallback(s)); log: {}",
            report.sessions,
            report
                .snapshot
                .as_ref()
                .map_or("none", |meta| meta.file_name.as_str()),
            report.replayed_records,
            report.snapshot_fallbacks.len(),
            render::wal_report_text(&report.wal)
        );
        (document, text)
    };
    let text = if args.common.json {
        format!("{document}\n")
    } else {
        text
    };
    out.write_all(text.as_bytes())
        .map_err(CliError::io("write", Path::new("<stdout>")))
}

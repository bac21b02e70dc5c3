//! The command line (clap derive).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokm_crypto_adaptive::Keyring;
use tokm_wal::RecoveryMode;

use crate::error::CliError;
use crate::keys;

const EXIT_CODES_HELP: &str = "Exit codes:
  0  success (verify: no damage)
  1  damage found
  2  usage error (bad flag, bad TOKM_KEY_HEX, bad session id)
  3  I/O failure or refused (locked by a running service, wrong key, foreign file, no such directory)

Keys: --key-file PATH (must be mode 0600) and --key-id N, or TOKM_KEY_HEX=<64 hex digits>;
for a directory whose files span a key rotation, --keyring FILE (mode 0600): one key per line
as \"<key id> <64 hex digits>\", # comments allowed, the last key listed seals new data.";

/// Inspect, verify, dump, recover and compact a tokm data directory.
#[derive(Debug, Parser)]
#[command(name = "tokm", version, after_help = EXIT_CODES_HELP)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Segments, snapshots and what recovery would do; changes nothing.
    #[command(after_help = EXIT_CODES_HELP)]
    Inspect(CommonArgs),
    /// Read everything and check every checksum and tag; exit 1 on damage; changes nothing.
    #[command(after_help = EXIT_CODES_HELP)]
    Verify(CommonArgs),
    /// Print log records or snapshot sessions as JSON lines; changes nothing.
    #[command(after_help = EXIT_CODES_HELP)]
    Dump {
        #[command(subcommand)]
        target: DumpTarget,
    },
    /// Show (--dry-run) or apply recovery under a policy; see the README for what each drops.
    #[command(after_help = EXIT_CODES_HELP)]
    Recover(RecoverArgs),
    /// Take a snapshot offline (opens the engine; the directory must not be in use).
    #[command(after_help = EXIT_CODES_HELP)]
    Snapshot(CommonArgs),
    /// Snapshot, then apply retention and compact the log (opens the engine).
    #[command(after_help = EXIT_CODES_HELP)]
    Compact(CommonArgs),
}

/// What `dump` prints.
#[derive(Debug, Subcommand)]
pub(crate) enum DumpTarget {
    /// Log records in LSN order.
    Wal(DumpArgs),
    /// Sessions of one snapshot (the newest valid one unless --file).
    Snapshot(DumpArgs),
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct CommonArgs {
    /// The data directory (holding wal/ and snapshots/).
    pub(crate) dir: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Key file (32 raw bytes or 64 hex digits; mode 0600).
    #[arg(long, value_name = "PATH")]
    pub(crate) key_file: Option<PathBuf>,
    /// Id of the key in --key-file or TOKM_KEY_HEX.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) key_id: u32,
    /// Keyring file holding several keys (mode 0600): one per line, its id then 64 hex digits,
    /// `#` comments allowed; the last key listed is active. For files sealed under several keys.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["key_file", "key_id"])]
    pub(crate) keyring: Option<PathBuf>,
}

/// Options of `dump`.
#[derive(Debug, Args)]
pub(crate) struct DumpArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// Only records with an LSN at or above this (log only).
    #[arg(long, value_name = "LSN")]
    pub(crate) from_lsn: Option<u64>,
    /// Only records with an LSN at or below this (log only).
    #[arg(long, value_name = "LSN")]
    pub(crate) to_lsn: Option<u64>,
    /// Only this session (ULID).
    #[arg(long, value_name = "ID")]
    pub(crate) session: Option<String>,
    /// The snapshot file to dump (snapshot only; default: the newest valid one).
    #[arg(long, value_name = "NAME")]
    pub(crate) file: Option<String>,
}

/// Options of `recover`.
#[derive(Debug, Args)]
pub(crate) struct RecoverArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// What to do about damage in the log.
    #[arg(long, value_enum)]
    pub(crate) policy: Policy,
    /// Show the recovery report without changing anything.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `--policy` values, mapped to [`RecoveryMode`].
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Policy {
    /// Open only if no acknowledged record after the snapshot is lost; else refuse (the
    /// engine's default). Truncates a torn tail, sets damaged snapshots aside.
    RefuseLoss,
    /// Drop every record after the first lost one (moved to *.quarantine files), keep the rest.
    PointInTime,
    /// Drop only the records that cannot be read, keep every other.
    Skip,
    /// Refuse any damage at all, even where nothing is lost.
    Absolute,
}

impl Policy {
    pub(crate) fn recovery_mode(self) -> RecoveryMode {
        match self {
            Policy::RefuseLoss => RecoveryMode::RefuseLoss,
            Policy::PointInTime => RecoveryMode::PointInTime,
            Policy::Absolute => RecoveryMode::Absolute,
            Policy::Skip => RecoveryMode::SkipDamaged,
        }
    }
}

impl CommonArgs {
    /// The data directory, checked to exist (commands never create one).
    pub(crate) fn data_dir(&self) -> Result<&Path, CliError> {
        if !self.dir.is_dir() {
            return Err(CliError::DirNotFound {
                path: self.dir.clone(),
            });
        }
        Ok(&self.dir)
    }

    /// The data directory, checked to exist, with its `wal/` and `snapshots/` either missing
    /// or directories: a regular file there is not something to read past.
    pub(crate) fn checked_data_dir(&self) -> Result<&Path, CliError> {
        let dir = self.data_dir()?;
        for part in [self.wal_dir(), self.snapshot_dir()] {
            if part.exists() && !part.is_dir() {
                return Err(CliError::PartNotADirectory { path: part });
            }
        }
        Ok(dir)
    }

    /// The data directory, checked to hold a log: for the commands that open the engine,
    /// which would otherwise turn any directory into a data directory.
    pub(crate) fn existing_data_dir(&self) -> Result<&Path, CliError> {
        let dir = self.checked_data_dir()?;
        if !self.wal_dir().is_dir() {
            return Err(CliError::NotADataDir {
                path: self.dir.clone(),
            });
        }
        Ok(dir)
    }

    pub(crate) fn wal_dir(&self) -> PathBuf {
        self.dir.join("wal")
    }

    pub(crate) fn snapshot_dir(&self) -> PathBuf {
        self.dir.join("snapshots")
    }

    /// The keyring from the flags or `TOKM_KEY_HEX`, if any key was given.
    pub(crate) fn keyring(&self) -> Result<Option<Arc<Keyring>>, CliError> {
        if let Some(path) = &self.keyring {
            return keys::load_keyring_file(path).map(Some);
        }
        let key_hex = std::env::var(keys::KEY_HEX_VAR).ok();
        keys::load_keyring(self.key_file.as_deref(), self.key_id, key_hex.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn policies_map_to_the_recovery_modes_of_the_log() {
        let parsed =
            Cli::try_parse_from(["tokm", "recover", "d", "--policy", "skip", "--dry-run"]).unwrap();
        let Command::Recover(args) = parsed.command else {
            panic!("parsed {parsed:?}");
        };
        assert!(args.dry_run);
        assert_eq!(args.policy.recovery_mode(), RecoveryMode::SkipDamaged);
        assert_eq!(
            Policy::PointInTime.recovery_mode(),
            RecoveryMode::PointInTime
        );
        assert_eq!(Policy::Absolute.recovery_mode(), RecoveryMode::Absolute);
        assert_eq!(Policy::RefuseLoss.recovery_mode(), RecoveryMode::default());
    }

    #[test]
    fn a_keyring_file_excludes_a_key_file_and_a_key_id() {
        for extra in [["--key-file", "k"], ["--key-id", "2"]] {
            let error = Cli::try_parse_from(
                ["tokm", "verify", "d", "--keyring", "ring"]
                    .into_iter()
                    .chain(extra),
            )
            .unwrap_err();
            assert!(error.use_stderr(), "{extra:?}");
        }
        let parsed = Cli::try_parse_from(["tokm", "inspect", "d", "--keyring", "ring"]).unwrap();
        let Command::Inspect(args) = parsed.command else {
            panic!("parsed {parsed:?}");
        };
        assert_eq!(args.keyring.as_deref(), Some(Path::new("ring")));
    }

    #[test]
    fn recover_without_a_policy_is_a_usage_error() {
        let error = Cli::try_parse_from(["tokm", "recover", "d"]).unwrap_err();
        assert!(error.use_stderr());
    }
}

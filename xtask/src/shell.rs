//! Running cargo and other programs from the workspace root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace root: the parent of this crate's manifest directory.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// A `cargo` command run from the workspace root, using the same cargo that runs xtask.
pub(crate) fn cargo(args: &[&str]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(args).current_dir(workspace_root());
    command
}

/// Runs `command` with inherited stdout and stderr; an unsuccessful exit is an error.
pub(crate) fn run_checked(command: &mut Command) -> Result<(), String> {
    let status = command
        .stdin(Stdio::null())
        .status()
        .map_err(|error| format!("cannot start {}: {error}", describe(command)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", describe(command)))
    }
}

/// Like [`run_checked`], but also returns what the command printed on stdout (still echoed live).
pub(crate) fn run_tee_stdout(command: &mut Command) -> Result<String, String> {
    use std::io::{BufRead, BufReader, Write};

    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot start {}: {error}", describe(command)))?;
    let mut captured = String::new();
    if let Some(stdout) = child.stdout.take() {
        let mut echo = std::io::stdout().lock();
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|error| format!("reading {}: {error}", describe(command)))?;
            // Echo failures (a closed terminal) must not abort the check itself.
            let _ = writeln!(echo, "{line}");
            captured.push_str(&line);
            captured.push('\n');
        }
    }
    let status = child
        .wait()
        .map_err(|error| format!("waiting for {}: {error}", describe(command)))?;
    if status.success() {
        Ok(captured)
    } else {
        Err(format!("{} failed ({status})", describe(command)))
    }
}

fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

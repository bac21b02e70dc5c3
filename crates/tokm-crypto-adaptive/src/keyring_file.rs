//! Keyring files: several keys by id in one owner-only text file.
//!
//! ```text
//! # tokm keyring: "<key id> <64 hex digits>" per line; the last key listed is active.
//! 1 5d2c...64 hex digits...
//! 2 9f01...64 hex digits...
//! ```

use std::fs::File;
use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

use crate::algorithm::Algorithm;
use crate::error::{CryptoError, Result};
use crate::key::{KeyId, check_owner_only, parse_key_hex};
use crate::keyring::Keyring;

/// Largest keyring file accepted: about 800 keys, far more than any rotation keeps.
pub(crate) const KEYRING_FILE_BYTES_MAX: u64 = 64 * 1024;

impl Keyring {
    /// Loads a keyring file: one key per line as `<key id> <64 hex digits>` (decimal id,
    /// either hex case, separated by spaces or tabs); blank lines and lines starting with `#`
    /// are ignored. The last key listed is active, so a rotation appends a line. New data is
    /// sealed with `algorithm`; data already sealed opens with the algorithm it names.
    ///
    /// As for [`Key::from_file`](crate::Key::from_file), on Unix the file must not be
    /// accessible to group or others (`chmod 600`), checked on the opened file. Errors name
    /// the path and line number, never a line's contents.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::io::Write;
    /// use std::os::unix::fs::PermissionsExt;
    /// use tokm_crypto_adaptive::{Algorithm, KeyId, Keyring};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("keyring");
    /// let mut file = std::fs::File::create(&path)?;
    /// file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    /// writeln!(file, "# retired once no file needs it")?;
    /// writeln!(file, "1 {}", "11".repeat(32))?;
    /// writeln!(file, "2 {}", "22".repeat(32))?;
    /// let keyring = Keyring::from_file(&path, Algorithm::detect())?;
    /// assert_eq!(keyring.key_ids(), [KeyId::new(1), KeyId::new(2)]);
    /// assert_eq!(keyring.active_key_id(), KeyId::new(2));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`CryptoError::KeyFileIo`] if the file cannot be opened or read,
    /// [`CryptoError::KeyFilePermissions`] if group or other bits are set,
    /// [`CryptoError::KeyringFileFormat`] for a malformed line, an id listed twice, no key at
    /// all, or a file over 64 KiB.
    pub fn from_file(path: &Path, algorithm: Algorithm) -> Result<Keyring> {
        let io_error = |source| CryptoError::KeyFileIo {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_error)?;
        check_owner_only(&file, path)?;
        // Room for one byte more than the limit, allocated once: no reallocation leaves a
        // stray copy of key material behind, and the whole buffer is wiped on drop.
        let capacity = usize::try_from(KEYRING_FILE_BYTES_MAX + 1).unwrap_or(usize::MAX);
        let mut contents = Zeroizing::new(Vec::with_capacity(capacity));
        file.take(KEYRING_FILE_BYTES_MAX + 1)
            .read_to_end(&mut contents)
            .map_err(io_error)?;
        let format_error = |line: usize, reason: &'static str| CryptoError::KeyringFileFormat {
            path: path.to_path_buf(),
            line,
            reason,
        };
        if contents.len() as u64 > KEYRING_FILE_BYTES_MAX {
            return Err(format_error(0, "the file is larger than 64 KiB"));
        }
        let mut keyring: Option<Keyring> = None;
        let mut active = None;
        for (index, line) in contents.split(|byte| *byte == b'\n').enumerate() {
            let line_number = index + 1;
            let line = line.trim_ascii();
            if line.is_empty() || line.starts_with(b"#") {
                continue;
            }
            let (key_id, key) = parse_line(line).ok_or_else(|| {
                format_error(
                    line_number,
                    "expected \"<key id> <64 hex digits>\" (a decimal id up to 4294967295)",
                )
            })?;
            match &mut keyring {
                None => keyring = Some(Keyring::new(key_id, key, algorithm)),
                Some(keyring) => keyring
                    .insert(key_id, key)
                    .map_err(|_| format_error(line_number, "this key id is listed twice"))?,
            }
            active = Some(key_id);
        }
        let (Some(mut keyring), Some(active)) = (keyring, active) else {
            return Err(format_error(0, "the file holds no key"));
        };
        keyring.set_active(active)?;
        Ok(keyring)
    }
}

/// `<decimal id> <64 hex digits>`, separated by spaces or tabs.
fn parse_line(line: &[u8]) -> Option<(KeyId, crate::Key)> {
    let mut fields = line
        .split(|byte| *byte == b' ' || *byte == b'\t')
        .filter(|field| !field.is_empty());
    let (id, hex) = (fields.next()?, fields.next()?);
    if fields.next().is_some() || !id.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let id: u32 = std::str::from_utf8(id).ok()?.parse().ok()?;
    Some((KeyId::new(id), parse_key_hex(hex)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(byte: &str) -> String {
        byte.repeat(32)
    }

    #[test]
    fn lines_parse_with_spaces_or_tabs_and_either_case() {
        let line = format!("7\t {}", hex("aB"));
        let (id, key) = parse_line(line.as_bytes()).expect("well formed");
        assert_eq!(id, KeyId::new(7));
        assert_eq!(key.as_bytes(), &[0xab; 32]);
    }

    #[test]
    fn malformed_lines_are_refused() {
        let good = hex("11");
        for line in [
            good.clone(),
            format!("1 {good} extra"),
            format!("-1 {good}"),
            format!("+1 {good}"),
            format!("4294967296 {good}"),
            format!("1 {}", &good[..62]),
            format!("1 {}zz", &good[..62]),
            "1".to_owned(),
        ] {
            assert!(parse_line(line.as_bytes()).is_none(), "{line}");
        }
    }
}

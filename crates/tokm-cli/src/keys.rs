//! Loading the keyring from `--keyring`, `--key-file`/`--key-id` or `TOKM_KEY_HEX`.

use std::path::Path;
use std::sync::Arc;

use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};

use crate::error::CliError;

/// The environment variable holding a key as 64 hex digits.
pub(crate) const KEY_HEX_VAR: &str = "TOKM_KEY_HEX";

/// Builds the keyring, or `None` when no key was given (an unencrypted directory).
///
/// `key_hex` is the value of [`KEY_HEX_VAR`], passed in so tests need not touch the
/// environment. A key file wins over the variable. The algorithm only matters for writing:
/// readers use the one recorded in each file.
pub(crate) fn load_keyring(
    key_file: Option<&Path>,
    key_id: u32,
    key_hex: Option<&str>,
) -> Result<Option<Arc<Keyring>>, CliError> {
    let key = match (key_file, key_hex) {
        (Some(path), _) => Key::from_file(path)?,
        (None, Some(hex)) => Key::from_bytes(&decode_key_hex(hex)?)?,
        (None, None) => return Ok(None),
    };
    Ok(Some(Arc::new(Keyring::new(
        KeyId::new(key_id),
        key,
        Algorithm::detect(),
    ))))
}

/// Loads a keyring file (`--keyring`): several keys, the last one listed active; see
/// [`Keyring::from_file`] for the format and the mode check.
pub(crate) fn load_keyring_file(path: &Path) -> Result<Arc<Keyring>, CliError> {
    Ok(Arc::new(Keyring::from_file(path, Algorithm::detect())?))
}

/// Decodes exactly 64 hex digits (surrounding whitespace allowed). The error never echoes
/// the value: it may be most of a key.
fn decode_key_hex(text: &str) -> Result<Vec<u8>, CliError> {
    let digits = text.trim().as_bytes();
    if digits.len() != 64 {
        return Err(CliError::usage(format!(
            "{KEY_HEX_VAR} must be 64 hex digits, it has {} characters",
            digits.len()
        )));
    }
    digits
        .chunks_exact(2)
        .map(|pair| Some(hex_value(pair[0])? << 4 | hex_value(pair[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| CliError::usage(format!("{KEY_HEX_VAR} holds a non-hex character")))
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_means_no_keyring() {
        assert!(load_keyring(None, 1, None).unwrap().is_none());
    }

    #[test]
    fn hex_key_of_64_digits_builds_a_keyring_with_the_given_id() {
        let hex = "0123456789abcdefABCDEF0123456789abcdef0123456789abcdef0123456789";
        let keyring = load_keyring(None, 7, Some(hex)).unwrap().unwrap();
        assert_eq!(keyring.active_key_id(), KeyId::new(7));
    }

    #[test]
    fn short_or_non_hex_key_is_a_usage_error_that_does_not_echo_the_value() {
        let error = load_keyring(None, 1, Some("abcd")).unwrap_err();
        assert_eq!(error.code(), "TM-CLI-4001");
        assert!(!error.to_string().contains("abcd"));
        let bad = "zz".repeat(32);
        let error = load_keyring(None, 1, Some(&bad)).unwrap_err();
        assert_eq!(error.code(), "TM-CLI-4001");
        assert!(!error.to_string().contains("zz"));
    }
}

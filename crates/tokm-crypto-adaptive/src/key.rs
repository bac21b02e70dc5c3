//! Key ids, key material, and loading keys from files.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{CryptoError, Result};
use crate::random::fill_random;

/// Length of every key, in bytes (256 bits).
pub(crate) const KEY_LEN: usize = 32;

/// Longest well-formed key file: 64 hex digits and a newline.
const KEY_FILE_LEN_MAX: usize = 2 * KEY_LEN + 1;

/// Bound on `read` calls while loading a key file; each successful call makes progress, so
/// this only limits a storm of `EINTR`.
const KEY_FILE_READS_MAX: usize = 64;

/// Names a key in a [`Keyring`](crate::Keyring); written into every blob and file header.
///
/// ```
/// use tokm_crypto_adaptive::KeyId;
/// let id = KeyId::new(7);
/// assert_eq!(id.get(), 7);
/// assert_eq!(id.to_string(), "7");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(u32);

impl KeyId {
    /// Wraps a raw id.
    pub const fn new(id: u32) -> KeyId {
        KeyId(id)
    }

    /// The raw id.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// 32 bytes of key material, wiped from memory when dropped; `Debug` shows no byte of it.
///
/// The bytes live in their own heap allocation, so moving a `Key` around moves a pointer and
/// leaves no stray copies of the material on the stack.
pub struct Key {
    bytes: Box<[u8; KEY_LEN]>,
}

impl Key {
    /// A key from exactly 32 bytes.
    ///
    /// # Errors
    /// [`CryptoError::BadKeyLength`] for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Key> {
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::BadKeyLength { len: bytes.len() });
        }
        let mut key = Key::zeroed();
        key.bytes.copy_from_slice(bytes);
        Ok(key)
    }

    /// A fresh random key from the operating system's random source.
    ///
    /// # Errors
    /// [`CryptoError::RandomSource`] if the random source fails.
    pub fn generate() -> Result<Key> {
        let mut key = Key::zeroed();
        fill_random(&mut key.bytes[..])?;
        Ok(key)
    }

    /// Loads a key file.
    ///
    /// The file must hold exactly 32 raw bytes, or 64 hex digits (either case) optionally
    /// followed by one `\n`; nothing else is accepted, so a 32-byte file is always raw. On
    /// Unix the file must not be accessible to group or others (mode `0600` or `0400`): a
    /// key others can read is refused rather than used, because using it would hide the leak.
    /// The mode is checked on the opened file, so a rename in between cannot swap it.
    ///
    /// # Errors
    /// [`CryptoError::KeyFileIo`] if the file cannot be opened or read,
    /// [`CryptoError::KeyFilePermissions`] if group or other bits are set,
    /// [`CryptoError::KeyFileFormat`] if the contents are neither form.
    pub fn from_file(path: &Path) -> Result<Key> {
        let io_error = |source| CryptoError::KeyFileIo {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io_error)?;
        check_owner_only(&file, path)?;

        // One byte more than the longest valid file, so an over-long file is detected without
        // reading all of it. A fixed buffer (not a growing Vec) leaves no reallocated copies.
        let mut contents = Zeroizing::new([0_u8; KEY_FILE_LEN_MAX + 1]);
        let mut filled = 0;
        for _ in 0..KEY_FILE_READS_MAX {
            if filled == contents.len() {
                break;
            }
            match file.read(&mut contents[filled..]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(io_error(error)),
            }
        }
        parse_key_file(&contents[..filled]).ok_or_else(|| CryptoError::KeyFileFormat {
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    fn zeroed() -> Key {
        Key {
            bytes: Box::new([0; KEY_LEN]),
        }
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl ZeroizeOnDrop for Key {}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// Refuses a key or keyring file that group or others can access.
#[cfg(unix)]
pub(crate) fn check_owner_only(file: &File, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;

    let metadata = file.metadata().map_err(|source| CryptoError::KeyFileIo {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CryptoError::KeyFilePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Other platforms have no Unix mode bits to check; their ACLs are the operator's job.
#[cfg(not(unix))]
pub(crate) fn check_owner_only(_file: &File, _path: &Path) -> Result<()> {
    Ok(())
}

/// Raw 32 bytes, or 64 hex digits with an optional trailing `\n`; `None` for anything else.
fn parse_key_file(contents: &[u8]) -> Option<Key> {
    if contents.len() == KEY_LEN {
        return Key::from_bytes(contents).ok();
    }
    parse_key_hex(contents.strip_suffix(b"\n").unwrap_or(contents))
}

/// Exactly 64 hex digits (either case) as a key; `None` for anything else.
pub(crate) fn parse_key_hex(hex: &[u8]) -> Option<Key> {
    if hex.len() != 2 * KEY_LEN {
        return None;
    }
    let mut key = Key::zeroed();
    for (byte, pair) in key.bytes.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Some(key)
}

fn hex_digit(ascii: u8) -> Option<u8> {
    match ascii {
        b'0'..=b'9' => Some(ascii - b'0'),
        b'a'..=b'f' => Some(ascii - b'a' + 10),
        b'A'..=b'F' => Some(ascii - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_HEX: &[u8] = b"000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F";

    fn counting_bytes() -> [u8; KEY_LEN] {
        std::array::from_fn(|i| u8::try_from(i).unwrap_or(0))
    }

    #[test]
    fn from_bytes_refuses_every_wrong_length() {
        for len in [0, 1, 16, 31, 33, 64] {
            let error = Key::from_bytes(&vec![7; len]).err();
            assert!(
                matches!(error, Some(CryptoError::BadKeyLength { len: found }) if found == len)
            );
        }
    }

    #[test]
    fn key_file_parses_raw_bytes() {
        let key = parse_key_file(&counting_bytes()).map(|k| *k.as_bytes());
        assert_eq!(key, Some(counting_bytes()));
    }

    #[test]
    fn key_file_parses_hex_with_and_without_newline() {
        let mut with_newline = KEY_HEX.to_vec();
        with_newline.push(b'\n');
        for contents in [KEY_HEX, &with_newline[..]] {
            let key = parse_key_file(contents).map(|k| *k.as_bytes());
            assert_eq!(key, Some(counting_bytes()));
        }
    }

    #[test]
    fn key_file_refuses_other_shapes() {
        let mut two_newlines = KEY_HEX.to_vec();
        two_newlines.extend_from_slice(b"\n\n");
        let mut bad_digit = KEY_HEX.to_vec();
        bad_digit[5] = b'g';
        let mut crlf = KEY_HEX.to_vec();
        crlf.extend_from_slice(b"\r\n");
        let raw_with_newline = [&counting_bytes()[..], b"\n"].concat();
        for contents in [
            &b""[..],
            &KEY_HEX[..63],
            &two_newlines,
            &bad_digit,
            &crlf,
            &raw_with_newline,
        ] {
            assert!(
                parse_key_file(contents).is_none(),
                "{} bytes",
                contents.len()
            );
        }
    }

    #[test]
    fn generated_keys_differ() {
        let first = Key::generate().map(|k| *k.as_bytes()).ok();
        let second = Key::generate().map(|k| *k.as_bytes()).ok();
        assert!(first.is_some());
        assert_ne!(first, second);
    }
}

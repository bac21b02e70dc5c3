//! Authenticated encryption for tokm: AES-256-GCM or ChaCha20-Poly1305 chosen by the CPU,
//! keys with ids and rotation, and nonces that cannot repeat.
//!
//! Is: a [`Keyring`] of [`Key`]s named by [`KeyId`]; self-describing sealed blobs for
//! standalone values; a [`FileCipher`] per file for the records of the WAL and snapshots.
//! The only tokm crate that sees key bytes.
//!
//! Is not: a file format (callers store the key id, algorithm and [`FileSalt`] in their own
//! headers), a key-management service (keys come from bytes, a key file or the OS random
//! source), or a password hash.
//!
//! # Example
//!
//! ```
//! use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};
//!
//! # fn main() -> Result<(), tokm_crypto_adaptive::CryptoError> {
//! let mut keyring = Keyring::new(KeyId::new(1), Key::generate()?, Algorithm::detect());
//!
//! // A standalone value: the blob names its algorithm and key id.
//! let blob = keyring.seal(b"session:42", b"secret value")?;
//! assert_eq!(keyring.open(b"session:42", &blob)?, b"secret value");
//!
//! // Rotation: key 2 seals from now on, key 1 still opens what it sealed.
//! keyring.insert(KeyId::new(2), Key::generate()?)?;
//! keyring.set_active(KeyId::new(2))?;
//! assert_eq!(keyring.open(b"session:42", &blob)?, b"secret value");
//!
//! // A keyring already shared (say with a running engine) rotates through `&self`.
//! let shared = std::sync::Arc::new(keyring);
//! shared.rotate(KeyId::new(3), Key::generate()?)?;
//! assert_eq!(shared.active_key_id(), KeyId::new(3));
//! let keyring = shared;
//!
//! // Records of a new file: store key id, algorithm and salt in its header.
//! let writer = keyring.new_file_cipher()?;
//! let mut sealed = Vec::new();
//! writer.seal_into(0, b"segment 7, seq 0", b"record", &mut sealed)?;
//!
//! // Reading the file back later.
//! let reader = keyring.file_cipher(writer.key_id(), writer.algorithm(), writer.salt())?;
//! let mut plaintext = Vec::new();
//! reader.open_into(0, b"segment 7, seq 0", &sealed, &mut plaintext)?;
//! assert_eq!(plaintext, b"record");
//! # Ok(())
//! # }
//! ```
//!
//! # Choosing the algorithm
//!
//! [`Algorithm::detect`] picks AES-256-GCM when the CPU has AES and carry-less multiply
//! instructions and ChaCha20-Poly1305 otherwise; choosing an [`Algorithm`] for the
//! [`Keyring`] overrides it. Readers always use the algorithm recorded with the data, so files
//! move freely between machines that would have chosen differently.
//!
//! # Sealed blob format (version 1)
//!
//! | offset | size | field          | encoding                                  |
//! |--------|------|----------------|-------------------------------------------|
//! | 0      | 1    | format version | `1`                                       |
//! | 1      | 1    | algorithm      | 1 AES-256-GCM, 2 ChaCha20-Poly1305        |
//! | 2      | 4    | key id         | u32 LE                                    |
//! | 6      | 12   | nonce          | random                                    |
//! | 18     | n    | ciphertext     | same length as the plaintext              |
//! | 18 + n | 16   | tag            | over AAD = bytes 0..18 ‖ caller's AAD     |
//!
//! The caller's associated data is authenticated, not stored. Random 96-bit nonces keep the
//! collision risk negligible for up to 2^32 blobs per key (NIST SP 800-38D); bulk data uses
//! [`FileCipher`], whose nonces are counters.
//!
//! # Key files
//!
//! [`Key::from_file`] accepts exactly 32 raw bytes, or 64 hex digits optionally followed by
//! one `\n`. On Unix the file must have no group or other permission bits (`chmod 600`);
//! otherwise it is refused with [`CryptoError::KeyFilePermissions`], naming path and mode.
//!
//! # Keyring files
//!
//! [`Keyring::from_file`] loads several keys from one text file, for a directory whose files
//! span a rotation: one key per line as `<key id> <64 hex digits>`, blank lines and `#`
//! comments ignored, the last key listed active. The same owner-only rule applies
//! ([`CryptoError::KeyFilePermissions`]); a malformed line is
//! [`CryptoError::KeyringFileFormat`], naming the line number but never its contents.
//!
//! ```text
//! # tokm keyring (chmod 600). Key 1 is retired once no file needs it.
//! 1 5d2c7f0e...  (64 hex digits)
//! 2 9f01b3aa...  (64 hex digits; the last key listed seals new data)
//! ```
//!
//! # Why a file's (subkey, nonce) pair never repeats
//!
//! AES-GCM and ChaCha20-Poly1305 lose confidentiality and integrity if one (key, nonce) pair
//! seals two different messages. A nonce derived only from a segment id and record index is
//! not enough: after a crash truncates a segment, new records would take the old positions.
//! [`FileCipher`] rules this out:
//!
//! 1. Every new file gets a fresh [`FileSalt`]: 32 bytes from the OS CSPRNG
//!    ([`Keyring::new_file_cipher`]), stored in the file header.
//! 2. The file's subkey is `BLAKE3-derive_key("tokm 2026-11 file subkey v1", key ‖ salt)`.
//!    Two files share a subkey only if their salts collide, probability about n² / 2^257 for
//!    n files: nil in practice.
//! 3. Within a file, record `counter` has nonce `counter (u64 LE) ‖ 0x00000000`. The writer
//!    gives each record of a file a distinct counter (its index or sequence number), so no
//!    nonce repeats under that file's subkey.
//! 4. After a crash the WAL never appends to a file that was open at the crash: it starts a
//!    new file, which gets a new salt and so a new subkey (step 1). Records rewritten "at the
//!    same positions" therefore use a different subkey from the records they replace.
//!
//! Hence (subkey, nonce) never repeats, and the master key itself never seals a file record.
//! Associated data should bind each record to its place (segment id, sequence number), so
//! records cannot be swapped or replayed between positions or files undetected.
//!
//! # Secrets
//!
//! [`Key`] keeps its bytes in one heap allocation and wipes them on drop; the ciphers wipe
//! their expanded key schedules on drop, and per-file subkeys are wiped once the cipher is
//! built. `Debug` of [`Key`], [`Keyring`] and [`FileCipher`] shows no key bytes, and no error
//! message contains key bytes, key file contents or plaintext. Wiping is best effort: copies
//! the compiler makes in registers or on the stack are out of reach.
//!
//! # API
//!
//! - [`Algorithm`]: `detect`, `id`, `name`, `TryFrom<u8>`.
//! - [`KeyId`], [`Key`]: `from_bytes`, `from_file`, `generate`.
//! - [`Keyring`]: `new`, `from_file`, `insert`, `set_active`, `rotate` (through `&self`, for
//!   a shared keyring), `key_ids`, `seal`, `open`, `new_file_cipher`, `file_cipher`.
//! - [`FileSalt`], [`FileCipher`]: `seal_into`, `open_into`; [`TAG_LEN`].
//! - [`CryptoError`] with stable codes `TM-CRYP-NNNN`:
//!
//! | code | variant | when |
//! |---|---|---|
//! | `TM-CRYP-4001` | `BadKeyLength` | a key is not 32 bytes |
//! | `TM-CRYP-4002` | `KeyFileFormat` | a key file holds neither 32 raw bytes nor 64 hex digits |
//! | `TM-CRYP-4003` | `UnsupportedVersion` | a sealed blob's format version is unknown |
//! | `TM-CRYP-4004` | `UnsupportedAlgorithm` | an algorithm id names no known algorithm |
//! | `TM-CRYP-4005` | `KeyringFileFormat` | a keyring file line is malformed, repeats an id, or the file is empty or too large |
//! | `TM-CRYP-4031` | `KeyFilePermissions` | a key or keyring file is readable by group or others |
//! | `TM-CRYP-4041` | `UnknownKeyId` | no key with this id is in the keyring |
//! | `TM-CRYP-4091` | `DuplicateKeyId` | the keyring already holds a key with this id |
//! | `TM-CRYP-4131` | `MessageTooLong` | a plaintext is too long to seal under one nonce |
//! | `TM-CRYP-5001` | `KeyFileIo` | reading a key file failed |
//! | `TM-CRYP-5002` | `RandomSource` | the operating system's random source failed |
//! | `TM-CRYP-5201` | `AuthenticationFailed` | a tag did not verify: wrong key, wrong associated data or damage |
//! | `TM-CRYP-5202` | `TooShort` | a sealed blob or record is shorter than its fixed parts |
#![forbid(unsafe_code)]

pub use crate::algorithm::Algorithm;
pub use crate::cipher::TAG_LEN;
pub use crate::error::{CryptoError, Result};
pub use crate::file::{FileCipher, FileSalt};
pub use crate::key::{Key, KeyId};
pub use crate::keyring::Keyring;

mod algorithm;
mod cipher;
mod error;
mod file;
mod format;
mod key;
mod keyring;
mod keyring_file;
mod random;

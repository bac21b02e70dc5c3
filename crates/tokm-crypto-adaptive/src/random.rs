//! The operating system's random source, behind this crate's error type.

use crate::error::{CryptoError, Result};

/// Fills `buf` from the operating system's CSPRNG (`getrandom(2)` on Linux).
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|source| CryptoError::RandomSource { source })
}

//! Which AEAD seals the data, and how the CPU picks one.

use std::fmt;

use crate::error::CryptoError;

/// An AEAD algorithm with a stable one-byte id.
///
/// The id is what files and blobs record, so it never changes meaning: a reader uses the
/// recorded id, never the CPU it happens to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Algorithm {
    /// AES-256 in Galois/Counter Mode: fastest where the CPU has AES and carry-less multiply.
    Aes256Gcm = 1,
    /// ChaCha20-Poly1305 (RFC 8439): fast and constant time on any CPU.
    ChaCha20Poly1305 = 2,
}

impl Algorithm {
    /// Picks AES-256-GCM when this CPU has AES and carry-less multiply instructions
    /// (x86/x86_64: `aes` + `pclmulqdq`; aarch64: `aes` + `pmull`), ChaCha20-Poly1305 otherwise.
    ///
    /// Without those instructions AES-GCM falls back to a bitsliced software implementation
    /// that is several times slower than ChaCha20, hence the switch. To override, choose the
    /// algorithm explicitly when building the [`Keyring`](crate::Keyring).
    pub fn detect() -> Algorithm {
        if cpu_has_aes_and_clmul() {
            Algorithm::Aes256Gcm
        } else {
            Algorithm::ChaCha20Poly1305
        }
    }

    /// The stable id written into blobs and file headers.
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// The conventional name, e.g. `"AES-256-GCM"`.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Aes256Gcm => "AES-256-GCM",
            Algorithm::ChaCha20Poly1305 => "ChaCha20-Poly1305",
        }
    }
}

impl TryFrom<u8> for Algorithm {
    type Error = CryptoError;

    fn try_from(id: u8) -> Result<Self, Self::Error> {
        match id {
            1 => Ok(Algorithm::Aes256Gcm),
            2 => Ok(Algorithm::ChaCha20Poly1305),
            _ => Err(CryptoError::UnsupportedAlgorithm { id }),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
cpufeatures::new!(cpuid_aes_clmul, "aes", "pclmulqdq");

// On aarch64 cpufeatures' "aes" already requires PMULL as well (Linux: HWCAP_AES | HWCAP_PMULL;
// Apple silicon has both), matching LLVM's `aes` target feature.
#[cfg(target_arch = "aarch64")]
cpufeatures::new!(cpuid_aes_clmul, "aes");

#[cfg(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64"))]
fn cpu_has_aes_and_clmul() -> bool {
    cpuid_aes_clmul::get()
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
fn cpu_has_aes_and_clmul() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_try_from() {
        for algorithm in [Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305] {
            let decoded = Algorithm::try_from(algorithm.id());
            assert!(matches!(decoded, Ok(a) if a == algorithm));
        }
    }

    #[test]
    fn ids_are_the_documented_stable_values() {
        assert_eq!(Algorithm::Aes256Gcm.id(), 1);
        assert_eq!(Algorithm::ChaCha20Poly1305.id(), 2);
    }

    #[test]
    fn unknown_ids_are_a_typed_error() {
        for id in [0_u8, 3, 255] {
            let error = Algorithm::try_from(id).err();
            assert!(
                matches!(error, Some(CryptoError::UnsupportedAlgorithm { id: found }) if found == id)
            );
        }
    }

    #[test]
    fn detect_agrees_with_the_standard_library_feature_probe() {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        let expected_aes = std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq");
        #[cfg(target_arch = "aarch64")]
        let expected_aes = std::arch::is_aarch64_feature_detected!("aes");
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
        let expected_aes = false;
        let expected = if expected_aes {
            Algorithm::Aes256Gcm
        } else {
            Algorithm::ChaCha20Poly1305
        };
        assert_eq!(Algorithm::detect(), expected);
    }

    #[test]
    fn display_is_the_conventional_name() {
        assert_eq!(Algorithm::Aes256Gcm.to_string(), "AES-256-GCM");
        assert_eq!(Algorithm::ChaCha20Poly1305.to_string(), "ChaCha20-Poly1305");
    }
}

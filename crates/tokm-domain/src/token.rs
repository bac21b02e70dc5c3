//! The bearer-token hash: the only form in which a token is kept.

use std::fmt;

use crate::error::SessionError;

/// Domain-separation context for [`TokenHash::of_token`]; changing it invalidates every session.
pub const TOKEN_HASH_CONTEXT: &str = "tokm 2026 bearer token v1";

/// Longest raw bearer token accepted by [`TokenHash::of_token`], in bytes.
pub const TOKEN_LEN_MAX: usize = 4096;

/// BLAKE3 `derive_key` hash of a bearer token under [`TOKEN_HASH_CONTEXT`].
///
/// The raw token is never stored. `Debug` shows only the first 4 bytes in hex, enough to tell
/// hashes apart in a test failure; there is no `Display`. Equality is constant-time.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(blake3::Hash);

impl TokenHash {
    /// Hashes a raw bearer token. Refuses an empty token and one over [`TOKEN_LEN_MAX`] bytes.
    pub fn of_token(token: &str) -> Result<TokenHash, SessionError> {
        if token.is_empty() {
            return Err(SessionError::invalid("token", "is empty"));
        }
        if token.len() > TOKEN_LEN_MAX {
            return Err(SessionError::invalid(
                "token",
                format!(
                    "is {} bytes, limit TOKEN_LEN_MAX = {TOKEN_LEN_MAX}",
                    token.len()
                ),
            ));
        }
        Ok(TokenHash(blake3::Hash::from(blake3::derive_key(
            TOKEN_HASH_CONTEXT,
            token.as_bytes(),
        ))))
    }

    /// A hash read back from storage.
    pub fn from_bytes(bytes: [u8; 32]) -> TokenHash {
        TokenHash(blake3::Hash::from(bytes))
    }

    /// The 32 hash bytes, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.as_bytes();
        write!(
            f,
            "TokenHash({:02x}{:02x}{:02x}{:02x}…)",
            bytes[0], bytes[1], bytes[2], bytes[3]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_deterministic_and_domain_separated() {
        let a = TokenHash::of_token("secret-token").unwrap();
        assert_eq!(a, TokenHash::of_token("secret-token").unwrap());
        assert_ne!(a, TokenHash::of_token("secret-token2").unwrap());
        assert_ne!(
            a.as_bytes(),
            blake3::hash(b"secret-token").as_bytes(),
            "plain hash must differ"
        );
        assert_eq!(TokenHash::from_bytes(*a.as_bytes()), a);
    }

    #[test]
    fn debug_shows_only_a_short_prefix() {
        let hash = TokenHash::of_token("secret-token").unwrap();
        let text = format!("{hash:?}");
        let full_hex = blake3::Hash::from(*hash.as_bytes()).to_hex();
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains(&full_hex[..8]), "{text}");
        assert!(!text.contains(&full_hex[..9]), "{text}");
    }

    #[test]
    fn token_length_is_limited() {
        assert_eq!(TokenHash::of_token("").unwrap_err().code(), "TM-SESS-4001");
        assert!(TokenHash::of_token(&"t".repeat(TOKEN_LEN_MAX)).is_ok());
        let err = TokenHash::of_token(&"t".repeat(TOKEN_LEN_MAX + 1)).unwrap_err();
        assert!(err.to_string().contains("TOKEN_LEN_MAX"), "{err}");
    }
}

//! Bearer tokens: made from the operating system's random source, handed to the client once,
//! and read back from the `Authorization` header. The service keeps only
//! [`TokenHash::of_token`] of a token.

use std::fmt;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use tokm_domain::TokenHash;

use crate::error::ApiError;

/// Random bytes in a token: 256 bits, beyond guessing and beyond collision.
const TOKEN_RANDOM_BYTES: usize = 32;

/// A freshly made bearer token. `Debug` does not show it.
pub(crate) struct BearerToken(String);

impl BearerToken {
    /// A new token: [`TOKEN_RANDOM_BYTES`] from `getrandom`, as lowercase hex.
    pub(crate) fn generate() -> Result<BearerToken, ApiError> {
        let mut random = [0_u8; TOKEN_RANDOM_BYTES];
        getrandom::fill(&mut random).map_err(ApiError::RandomSource)?;
        let mut text = String::with_capacity(TOKEN_RANDOM_BYTES * 2);
        for byte in random {
            text.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
            text.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
        }
        Ok(BearerToken(text))
    }

    /// The hash the engine stores and looks up.
    pub(crate) fn hash(&self) -> Result<TokenHash, ApiError> {
        Ok(TokenHash::of_token(&self.0)?)
    }

    /// The token, to hand to the client once.
    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The hash of the token in `Authorization: Bearer <token>`; the scheme is matched without
/// regard to case (RFC 9110). The raw token goes no further than this function.
///
/// # Errors
/// [`ApiError::NoBearerToken`] without such a header; `TM-SESS-4001` for a token over
/// `TOKEN_LEN_MAX` bytes.
pub(crate) fn bearer_token_hash(headers: &HeaderMap) -> Result<TokenHash, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(ApiError::NoBearerToken);
    };
    let Ok(value) = value.to_str() else {
        return Err(ApiError::NoBearerToken);
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(ApiError::NoBearerToken);
    };
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::NoBearerToken);
    }
    Ok(TokenHash::of_token(token)?)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers_with(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(authorization).expect("valid header"),
        );
        headers
    }

    #[test]
    fn generated_tokens_are_64_hex_digits_and_differ() {
        let a = BearerToken::generate()
            .expect("random source")
            .into_string();
        let b = BearerToken::generate()
            .expect("random source")
            .into_string();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|byte| HEX_DIGITS.contains(&byte)), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn debug_of_a_token_hides_it() {
        let token = BearerToken::generate().expect("random source");
        let text = format!("{token:?}");
        assert!(!text.contains(&token.into_string()[..8]), "{text}");
    }

    #[test]
    fn header_yields_the_hash_of_the_token_whatever_the_scheme_case() {
        let expected = TokenHash::of_token("abc123").expect("valid");
        for header in ["Bearer abc123", "bearer abc123", "BEARER  abc123 "] {
            let hash = bearer_token_hash(&headers_with(header)).expect(header);
            assert_eq!(hash, expected, "{header}");
        }
    }

    #[test]
    fn missing_or_foreign_credentials_are_no_bearer_token() {
        assert_eq!(
            bearer_token_hash(&HeaderMap::new()).unwrap_err().code(),
            "TM-HTTP-4011"
        );
        for header in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "abc123"] {
            let err = bearer_token_hash(&headers_with(header)).unwrap_err();
            assert_eq!(err.code(), "TM-HTTP-4011", "{header}");
        }
    }

    #[test]
    fn an_oversized_token_is_invalid_input() {
        let header = format!("Bearer {}", "t".repeat(tokm_domain::TOKEN_LEN_MAX + 1));
        let err = bearer_token_hash(&headers_with(&header)).unwrap_err();
        assert_eq!(err.code(), "TM-SESS-4001");
    }
}

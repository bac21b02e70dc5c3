//! Identifiers: the ULID session id and the validated string ids.

use std::fmt;

use crate::error::SessionError;
use crate::time::Timestamp;

/// Longest [`UserId`], [`DeviceId`] or [`ApiKeyId`], in bytes of UTF-8.
pub const ID_LEN_MAX: usize = 128;

/// Checks a caller-supplied string: non-empty, at most `len_max` bytes, no control characters.
///
/// Control characters are refused because these strings reach logs and admin screens, where a
/// newline or escape sequence could forge or hide lines.
pub(crate) fn check_text(
    field: &'static str,
    value: &str,
    len_max: usize,
    limit_name: &str,
) -> Result<(), SessionError> {
    if value.is_empty() {
        return Err(SessionError::invalid(field, "is empty"));
    }
    if value.len() > len_max {
        return Err(SessionError::invalid(
            field,
            format!("is {} bytes, limit {limit_name} = {len_max}", value.len()),
        ));
    }
    if has_control_character(value) {
        return Err(SessionError::invalid(field, "contains a control character"));
    }
    Ok(())
}

/// Whether `value` holds a control character (Unicode category Cc: U+0000-U+001F and
/// U+007F-U+009F). Reads bytes for ASCII text, the common case on every snapshot load, and
/// decodes characters only otherwise.
pub(crate) fn has_control_character(value: &str) -> bool {
    if value.is_ascii() {
        value.bytes().any(|byte| byte < 0x20 || byte == 0x7f)
    } else {
        value.chars().any(char::is_control)
    }
}

/// The id of a session: a ULID (48-bit millisecond time, 80 random bits), never nil.
///
/// Ordering is the ULID's: by creation millisecond, then by the random part.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(ulid::Ulid);

impl SessionId {
    /// Largest timestamp a ULID can hold: 2^48 - 1 ms (year 10889).
    pub const TIMESTAMP_MAX: Timestamp = Timestamp::from_millis((1 << 48) - 1);

    /// A fresh id for a session created at `now`, with 80 bits from the thread-local RNG.
    ///
    /// Fails only if `now` is past [`SessionId::TIMESTAMP_MAX`].
    pub fn generate(now: Timestamp) -> Result<SessionId, SessionError> {
        check_id_time(now)?;
        // Built from `now` rather than the system time so that the clock stays injected.
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now.as_millis());
        SessionId::from_ulid(ulid::Ulid::from_datetime(at))
    }

    /// The id with the given time and random part (only the low 80 bits of `random` are used).
    ///
    /// Deterministic: for tests, generators and decoding.
    pub fn from_parts(time: Timestamp, random: u128) -> Result<SessionId, SessionError> {
        check_id_time(time)?;
        SessionId::from_ulid(ulid::Ulid::from_parts(time.as_millis(), random))
    }

    /// Parses the 26-character Crockford base32 form.
    pub fn parse(text: &str) -> Result<SessionId, SessionError> {
        let ulid = ulid::Ulid::from_string(text)
            .map_err(|err| SessionError::invalid("id", format!("not a ULID: {err}")))?;
        SessionId::from_ulid(ulid)
    }

    /// The id from its 16-byte big-endian ULID form (as stored on disk).
    pub fn from_bytes(bytes: [u8; 16]) -> Result<SessionId, SessionError> {
        SessionId::from_ulid(ulid::Ulid::from_bytes(bytes))
    }

    /// The id from bytes that already passed [`SessionId::from_bytes`] (a checked record).
    pub(crate) fn from_checked_bytes(bytes: [u8; 16]) -> SessionId {
        SessionId(ulid::Ulid::from_bytes(bytes))
    }

    /// The 16-byte big-endian ULID form; [`SessionId::from_bytes`] reverses it.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_bytes()
    }

    /// The creation time embedded in the id.
    pub fn timestamp(self) -> Timestamp {
        Timestamp::from_millis(self.0.timestamp_ms())
    }

    fn from_ulid(ulid: ulid::Ulid) -> Result<SessionId, SessionError> {
        if ulid.is_nil() {
            return Err(SessionError::invalid("id", "is the nil ULID"));
        }
        Ok(SessionId(ulid))
    }
}

fn check_id_time(time: Timestamp) -> Result<(), SessionError> {
    if time > SessionId::TIMESTAMP_MAX {
        return Err(SessionError::invalid(
            "id",
            "time is past the 48-bit ULID range",
        ));
    }
    Ok(())
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.0)
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        ///
        /// Non-empty, at most [`ID_LEN_MAX`] bytes, no control characters.
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Box<str>);

        impl $name {
            /// Validates and wraps `value`.
            pub fn new(value: &str) -> Result<$name, SessionError> {
                check_text($field, value, ID_LEN_MAX, "ID_LEN_MAX")?;
                Ok($name(value.into()))
            }

            /// Wraps text that already passed the rules of `new` (read from a checked record).
            pub(crate) fn from_checked(value: &str) -> $name {
                $name(value.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), &*self.0)
            }
        }
    };
}

string_id!(
    /// The user who owns a session, as the embedding service names users.
    UserId,
    "user_id"
);
string_id!(
    /// The device a session was created on, as the client reports it.
    DeviceId,
    "device_id"
);
string_id!(
    /// The API key that created a session (for sessions created on a user's behalf).
    ApiKeyId,
    "created_by"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_ids_accept_limit_and_refuse_one_more() {
        let at_limit = "x".repeat(ID_LEN_MAX);
        let over = "x".repeat(ID_LEN_MAX + 1);
        assert!(UserId::new(&at_limit).is_ok());
        assert!(DeviceId::new(&at_limit).is_ok());
        assert!(ApiKeyId::new(&at_limit).is_ok());
        for err in [
            UserId::new(&over).unwrap_err(),
            DeviceId::new(&over).unwrap_err(),
            ApiKeyId::new(&over).unwrap_err(),
        ] {
            assert_eq!(err.code(), "TM-SESS-4001");
            assert!(err.to_string().contains("ID_LEN_MAX = 128"), "{err}");
        }
    }

    #[test]
    fn string_ids_refuse_empty_and_control_characters() {
        assert!(
            UserId::new("")
                .unwrap_err()
                .to_string()
                .contains("user_id: is empty")
        );
        let err = DeviceId::new("a\nb").unwrap_err();
        assert!(
            err.to_string().contains("device_id: contains a control"),
            "{err}"
        );
        assert!(ApiKeyId::new("ключ-1").is_ok(), "non-ASCII text is allowed");
    }

    #[test]
    fn the_ascii_path_finds_the_same_control_characters_as_char_is_control() {
        for code in 0_u32..0x100 {
            let Some(character) = char::from_u32(code) else {
                continue;
            };
            let text = format!("a{character}b");
            assert_eq!(
                has_control_character(&text),
                character.is_control(),
                "U+{code:04X}"
            );
        }
    }

    #[test]
    fn session_id_round_trips_text_and_bytes() {
        let id = SessionId::from_parts(Timestamp::from_millis(1_700_000_000_000), 42).unwrap();
        assert_eq!(SessionId::parse(&id.to_string()).unwrap(), id);
        assert_eq!(SessionId::from_bytes(id.to_bytes()).unwrap(), id);
        assert_eq!(id.timestamp(), Timestamp::from_millis(1_700_000_000_000));
    }

    #[test]
    fn session_id_refuses_nil_garbage_and_far_future() {
        assert_eq!(
            SessionId::from_bytes([0; 16]).unwrap_err().code(),
            "TM-SESS-4001"
        );
        assert_eq!(
            SessionId::parse("not-a-ulid").unwrap_err().code(),
            "TM-SESS-4001"
        );
        let past_max = Timestamp::from_millis(1 << 48);
        assert!(SessionId::from_parts(past_max, 1).is_err());
        assert!(SessionId::generate(past_max).is_err());
        assert!(SessionId::from_parts(SessionId::TIMESTAMP_MAX, 1).is_ok());
    }

    #[test]
    fn generated_ids_carry_the_given_time_and_differ() {
        let now = Timestamp::from_millis(1_700_000_000_123);
        let a = SessionId::generate(now).unwrap();
        let b = SessionId::generate(now).unwrap();
        assert_eq!(a.timestamp(), now);
        assert_ne!(a, b);
    }
}

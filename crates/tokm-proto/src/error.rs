//! [`ProtoError`]: why bytes could not be turned back into domain values.

use tokm_domain::SessionError;

/// A message from disk could not be decoded into a valid domain value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The bytes are not a valid protobuf encoding of the expected message.
    #[error("damaged {message} message")]
    Decode {
        /// The message type being decoded.
        message: &'static str,
        /// What prost found wrong.
        #[source]
        source: prost::DecodeError,
    },
    /// A required field is absent.
    #[error("{message}.{field} is missing")]
    MissingField {
        /// The message type.
        message: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A fixed-size bytes field has the wrong length.
    #[error("{field} is {len} bytes, expected {expected}")]
    BadLength {
        /// The field.
        field: &'static str,
        /// Its length as found.
        len: usize,
        /// The lengths it may have.
        expected: &'static str,
    },
    /// An enum value this version of tokm does not know.
    #[error("{field} has unknown value {value}")]
    UnknownEnum {
        /// The field.
        field: &'static str,
        /// The raw value found.
        value: i32,
    },
    /// A value breaks a domain rule (an over-long id, a bad ULID, expiry before creation...).
    #[error(transparent)]
    Invalid {
        /// The domain's reason.
        #[from]
        source: SessionError,
    },
}

impl ProtoError {
    /// Every code this crate can return, in declaration order.
    pub const CODES: [&'static str; 5] = [
        "TM-PROTO-5201",
        "TM-PROTO-5202",
        "TM-PROTO-5203",
        "TM-PROTO-5204",
        "TM-PROTO-5205",
    ];

    /// The stable code of this error, `TM-PROTO-NNNN`.
    pub fn code(&self) -> &'static str {
        match self {
            ProtoError::Decode { .. } => "TM-PROTO-5201",
            ProtoError::MissingField { .. } => "TM-PROTO-5202",
            ProtoError::BadLength { .. } => "TM-PROTO-5203",
            ProtoError::UnknownEnum { .. } => "TM-PROTO-5204",
            ProtoError::Invalid { .. } => "TM-PROTO-5205",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ProtoError::CODES {
            assert!(seen.insert(code), "{code} listed twice");
            let digits = code.strip_prefix("TM-PROTO-").expect("prefix");
            assert!(
                digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()),
                "{code}"
            );
        }
        let samples = [
            ProtoError::MissingField {
                message: "Session",
                field: "id",
            },
            ProtoError::BadLength {
                field: "id",
                len: 3,
                expected: "16",
            },
            ProtoError::UnknownEnum {
                field: "op",
                value: 9,
            },
            ProtoError::Invalid {
                source: SessionError::ReadOnly,
            },
        ];
        for error in &samples {
            assert!(ProtoError::CODES.contains(&error.code()), "{error}");
        }
    }
}

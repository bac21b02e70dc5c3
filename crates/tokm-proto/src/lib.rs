//! tokm's on-disk schemas (`proto/v1/`) as Rust, and the conversions between them and the
//! domain types.
//!
//! Is: the generated protobuf messages ([`pb`]), encoders that cannot fail, and decoders that
//! validate everything through `tokm-domain`'s own constructors, so a record from disk is held
//! to exactly the rules a caller's input is.
//! Is not: a file format. Framing, checksums and encryption belong to `tokm-wal` and
//! `tokm-snapshot`; this crate turns one message into bytes and back.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tokm_domain::{Mutation, NewSession, Session, SessionFields, SessionId, Timestamp, TokenHash, UserId};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = Timestamp::from_millis(1_700_000_000_000);
//! let fields = SessionFields::new(
//!     SessionId::from_parts(now, 42)?,
//!     UserId::new("alice")?,
//!     TokenHash::of_token("raw bearer token")?,
//!     now,
//!     now.checked_add(Duration::from_secs(3600)).expect("in range"),
//! );
//! let session = Arc::new(Session::new(NewSession::new(fields)?, Session::VERSION_FIRST)?);
//!
//! let mut bytes = Vec::new();
//! tokm_proto::encode_mutation(&Mutation::Create(Arc::clone(&session)), now, &mut bytes);
//! let entry = tokm_proto::decode_mutation(&bytes)?;
//! assert_eq!(entry.mutation, Mutation::Create(session));
//! assert_eq!(entry.timestamp, now);
//!
//! // Damaged bytes are a typed error, never a panic.
//! let err = tokm_proto::decode_mutation(&bytes[..bytes.len() / 2]).unwrap_err();
//! assert!(err.code().starts_with("TM-PROTO-"));
//! # Ok(())
//! # }
//! ```
//!
//! # Error codes
//!
//! | code | variant | meaning |
//! |---|---|---|
//! | `TM-PROTO-5201` | `Decode` | the bytes are not a valid protobuf message of the expected type |
//! | `TM-PROTO-5202` | `MissingField` | a required field is absent or empty |
//! | `TM-PROTO-5203` | `BadLength` | a fixed-size field (id, hash, IP) has the wrong length |
//! | `TM-PROTO-5204` | `UnknownEnum` | an enum value this version does not know |
//! | `TM-PROTO-5205` | `Invalid` | a value breaks a domain rule; carries the domain error |
//!
//! Codes are in the 520 (corruption) class: these decoders read what tokm wrote, so a failure
//! means damaged or foreign data.
#![forbid(unsafe_code)]

pub use crate::codec::{
    LoggedMutation, decode_mutation, decode_session, encode_mutation, encode_session,
    session_from_message, session_to_message,
};
pub use crate::error::ProtoError;

/// The generated messages of package `tokm.v1` (`cargo xtask codegen`; do not edit).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    include!("generated/tokm.v1.rs");
}

mod codec;
mod error;

//! The session domain of tokm: the session record, its ids and limits, the token hash, queries,
//! the one error type with stable codes, the clock, and the repository traits stores implement.
//!
//! Is: plain validated values and contracts, shared by every tokm crate.
//! Is not: a store. Nothing here keeps sessions, does I/O, or reads the system time except
//! [`SystemClock`]. Encoding to bytes belongs to the log and snapshot crates, which decode
//! through the same validating constructors ([`Session::from_fields`], [`SessionId::from_bytes`],
//! [`TokenHash::from_bytes`], ...).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tokm_domain::{
//!     ManualClock, Clock, NewSession, Page, Session, SessionFields, SessionFilter, SessionId,
//!     SessionStatus, Sort, Timestamp, TokenHash, UserAgent, UserId,
//! };
//!
//! # fn main() -> Result<(), tokm_domain::SessionError> {
//! let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
//! let now = clock.now();
//!
//! // The raw bearer token goes to the client; only its hash is kept.
//! let token_hash = TokenHash::of_token("b3f1c0ffee-raw-bearer-token")?;
//! let mut fields = SessionFields::new(
//!     SessionId::generate(now)?,
//!     UserId::new("alice")?,
//!     token_hash,
//!     now,
//!     now.checked_add(Duration::from_secs(3600)).expect("no overflow an hour after 2023"),
//! );
//! fields.user_agent = Some(UserAgent::new("curl/8.5")?);
//! fields.idle_timeout = Some(Duration::from_secs(900));
//! let session = Session::new(NewSession::new(fields)?, Session::VERSION_FIRST)?;
//! assert!(!format!("{session:?}").contains("raw-bearer-token"));
//!
//! // Limits are errors, never truncation.
//! let err = UserAgent::new(&"x".repeat(513)).unwrap_err();
//! assert_eq!(err.code(), "TM-SESS-4001");
//!
//! // Expiry: 15 idle minutes end the session before the absolute hour is up.
//! clock.advance(Duration::from_secs(900));
//! assert!(session.is_expired_at(clock.now()));
//!
//! // Queries: every repository applies these same rules.
//! let filter = SessionFilter {
//!     user_id: Some(UserId::new("alice")?),
//!     status: Some(SessionStatus::Expired),
//!     ..SessionFilter::default()
//! };
//! assert!(filter.matches(&session, clock.now()));
//! let page = Page::new(2, 50)?;
//! assert_eq!(page.offset(), 50);
//! assert_eq!(Page::new(1, 101).unwrap_err().code(), "TM-SESS-4002");
//! let _newest_first = Sort::default();
//! # Ok(())
//! # }
//! ```
//!
//! # Error codes
//!
//! [`SessionError::code`] returns one of these; they are never renumbered or reused.
//!
//! | code | variant | meaning |
//! |---|---|---|
//! | `TM-SESS-4001` | `InvalidField` | a field breaks a rule; names the field and the limit |
//! | `TM-SESS-4002` | `InvalidPage` | page number 0, or size outside 1..=100 |
//! | `TM-SESS-4003` | `InvalidCursor` | cursor text garbled or made for another sort |
//! | `TM-SESS-4041` | `NotFound` | no session with this id |
//! | `TM-SESS-4042` | `TokenNotFound` | no session with this token hash |
//! | `TM-SESS-4101` | `Expired` | the session exists but has expired (HTTP 410 Gone) |
//! | `TM-SESS-4091` | `VersionConflict` | optimistic lock failed; carries expected and stored |
//! | `TM-SESS-4092` | `IdConflict` | a session with this id exists |
//! | `TM-SESS-4093` | `TokenConflict` | another session holds this token hash |
//! | `TM-SESS-4291` | `QuotaExceeded` | the user is at the live-session limit |
//! | `TM-SESS-5001` | `Storage` | a lower layer failed; carries its code and error |
//! | `TM-SESS-5031` | `ReadOnly` | the store refuses writes |
//!
//! # Limits
//!
//! [`ID_LEN_MAX`] (128 bytes) for user, device and API key ids; [`USER_AGENT_LEN_MAX`] (512);
//! [`METADATA_ENTRIES_MAX`] (16), [`METADATA_KEY_LEN_MAX`] (64), [`METADATA_VALUE_LEN_MAX`]
//! (256); [`TOKEN_LEN_MAX`] (4096); [`LIFETIME_MAX`] and [`IDLE_TIMEOUT_MAX`] (3650 days);
//! [`PAGE_SIZE_MAX`] (100, default [`PAGE_SIZE_DEFAULT`] 20); [`SESSIONS_PER_USER_DEFAULT`] (50).
//! Text is non-empty and free of control characters.
//!
//! # API
//!
//! - Values: [`Session`] (validated, versioned), [`NewSession`] (validated, versionless: what
//!   `create` and `update` take), [`SessionFields`] (plain data), [`SessionId`], [`UserId`],
//!   [`DeviceId`], [`ApiKeyId`], [`UserAgent`], [`Metadata`], [`TokenHash`], [`Timestamp`].
//! - Expiry: [`Session::is_expired_at`], the only expiry rule.
//! - Time: [`Clock`], [`SystemClock`], [`ManualClock`].
//! - Queries: [`SessionFilter`], [`Sort`] ([`SortBy`], [`SortOrder`]), [`Page`], [`PageSize`],
//!   [`ListResult`], [`Cursor`], [`CursorPage`].
//! - Changes: [`Mutation`], what a store applies and a durable store logs.
//! - Contracts: [`SessionRepository`], [`TokenRepository`], [`CreateOutcome`], [`Quota`],
//!   [`QuotaPolicy`].
//! - Feature `testkit`: module `testkit`, the conformance suite for repositories and a deterministic
//!   session generator.
#![forbid(unsafe_code)]

pub use crate::error::{ErrorChain, SessionError};
pub use crate::id::{ApiKeyId, DeviceId, ID_LEN_MAX, SessionId, UserId};
pub use crate::mutation::Mutation;
pub use crate::query::{
    Cursor, CursorPage, ListResult, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, Page, PageSize,
    SessionFilter, Sort, SortBy, SortOrder,
};
pub use crate::record::{MetadataEntries, RECORD_LEN_MAX, SessionRecord};
pub use crate::repository::{
    CreateOutcome, Quota, QuotaPolicy, SESSIONS_PER_USER_DEFAULT, SessionRepository,
    TokenRepository,
};
pub use crate::session::{
    IDLE_TIMEOUT_MAX, LIFETIME_MAX, METADATA_ENTRIES_MAX, METADATA_KEY_LEN_MAX,
    METADATA_VALUE_LEN_MAX, Metadata, NewSession, Session, SessionFields, SessionStatus,
    USER_AGENT_LEN_MAX, UserAgent,
};
pub use crate::time::{Clock, ManualClock, SystemClock, Timestamp};
pub use crate::token::{TOKEN_HASH_CONTEXT, TOKEN_LEN_MAX, TokenHash};

// A public module (not re-exports) because other crates' tests call the suite by path,
// `tokm_domain::testkit::run_all`, and it must stay apart from the production API.
#[cfg(feature = "testkit")]
pub mod testkit;

mod error;
mod id;
mod mutation;
mod query;
mod record;
mod repository;
mod session;
mod time;
mod token;

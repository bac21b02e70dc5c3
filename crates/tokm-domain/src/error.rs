//! The one error type of the session domain, with stable codes.

use crate::id::{SessionId, UserId};

/// Everything that can go wrong in the session domain and in a repository.
///
/// Every variant has a stable code (see [`SessionError::code`] and the table in the crate docs).
/// Codes are never renumbered or reused. No variant carries a token, a token hash or a metadata
/// value: errors name the field or the session, never a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A caller- or disk-supplied field broke a rule; `reason` names the limit.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field, as named in [`SessionFields`](crate::SessionFields) (or the type's name).
        field: &'static str,
        /// Which rule was broken, e.g. "is 300 bytes, limit USER_AGENT_LEN_MAX = 256".
        reason: String,
    },
    /// A page number or page size is out of range.
    #[error("invalid page: {reason}")]
    InvalidPage {
        /// Which rule was broken.
        reason: String,
    },
    /// A paging cursor could not be decoded or does not fit the requested sort.
    #[error("invalid cursor: {reason}")]
    InvalidCursor {
        /// Which rule was broken.
        reason: String,
    },
    /// No session has this id.
    #[error("session {id} not found")]
    NotFound {
        /// The id that was looked up.
        id: SessionId,
    },
    /// No live session has the given token hash (the hash itself is not shown).
    #[error("no session for this token")]
    TokenNotFound,
    /// The session exists but has expired; it is never returned as live.
    #[error("session {id} expired at {expired_at}")]
    Expired {
        /// The expired session.
        id: SessionId,
        /// When it expired: `expires_at`, or `last_active + idle_timeout` if earlier.
        expired_at: crate::Timestamp,
    },
    /// Optimistic lock failure: the stored version is not the one the caller read.
    #[error("session {id}: version conflict, expected {expected}, stored {actual}")]
    VersionConflict {
        /// The session being updated.
        id: SessionId,
        /// The version the caller expected.
        expected: u64,
        /// The version actually stored.
        actual: u64,
    },
    /// A session with this id already exists.
    #[error("session {id} already exists")]
    IdConflict {
        /// The conflicting id.
        id: SessionId,
    },
    /// Another session already holds this token hash.
    #[error("session {id}: token hash already used by another session")]
    TokenConflict {
        /// The session whose create or update was refused.
        id: SessionId,
    },
    /// The user already has the maximum number of live sessions and the policy is to reject.
    #[error("user {user_id} has reached the limit of {limit} sessions")]
    QuotaExceeded {
        /// The user over quota.
        user_id: UserId,
        /// The per-user limit in force.
        limit: u32,
    },
    /// A lower layer (log, snapshot, disk) failed; `layer_code` is that layer's own stable code.
    #[error("storage failure ({layer_code})")]
    Storage {
        /// The lower layer's code, e.g. `TM-WAL-5001`.
        layer_code: &'static str,
        /// The lower layer's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The store refuses writes (e.g. after a durability failure); reads still work.
    #[error("store is read-only")]
    ReadOnly,
}

impl SessionError {
    /// Every code, in declaration order; the crate docs table lists the same codes.
    pub const CODES: [&'static str; 12] = [
        "TM-SESS-4001",
        "TM-SESS-4002",
        "TM-SESS-4003",
        "TM-SESS-4041",
        "TM-SESS-4042",
        "TM-SESS-4101",
        "TM-SESS-4091",
        "TM-SESS-4092",
        "TM-SESS-4093",
        "TM-SESS-4291",
        "TM-SESS-5001",
        "TM-SESS-5031",
    ];

    /// The stable code of this error, `TM-SESS-NNNN`; the first three digits echo an HTTP status.
    pub fn code(&self) -> &'static str {
        match self {
            SessionError::InvalidField { .. } => "TM-SESS-4001",
            SessionError::InvalidPage { .. } => "TM-SESS-4002",
            SessionError::InvalidCursor { .. } => "TM-SESS-4003",
            SessionError::NotFound { .. } => "TM-SESS-4041",
            SessionError::TokenNotFound => "TM-SESS-4042",
            SessionError::Expired { .. } => "TM-SESS-4101",
            SessionError::VersionConflict { .. } => "TM-SESS-4091",
            SessionError::IdConflict { .. } => "TM-SESS-4092",
            SessionError::TokenConflict { .. } => "TM-SESS-4093",
            SessionError::QuotaExceeded { .. } => "TM-SESS-4291",
            SessionError::Storage { .. } => "TM-SESS-5001",
            SessionError::ReadOnly => "TM-SESS-5031",
        }
    }

    /// Shorthand for [`SessionError::InvalidField`].
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> SessionError {
        SessionError::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}

/// Displays an error followed by each of its sources, joined by `": "`.
///
/// Errors in tokm say what failed in their own message and keep the cause as their
/// [`source`](std::error::Error::source), never both, so a cause is printed once: print an
/// error for a person (a log line, a status message, a command-line report) through this.
///
/// ```
/// use std::io;
/// use tokm_domain::ErrorChain;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("writing segment 7")]
/// struct WriteFailed(#[source] io::Error);
///
/// let error = WriteFailed(io::Error::other("no space left on device"));
/// assert_eq!(
///     ErrorChain(&error).to_string(),
///     "writing segment 7: no space left on device"
/// );
/// ```
#[derive(Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'a));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;
    use std::collections::HashSet;

    fn one_of_each() -> Vec<SessionError> {
        let id = SessionId::from_parts(Timestamp::from_millis(1), 1).unwrap();
        let user_id = UserId::new("u").unwrap();
        vec![
            SessionError::invalid("user_agent", "too long"),
            SessionError::InvalidPage {
                reason: "zero".into(),
            },
            SessionError::InvalidCursor {
                reason: "garbled".into(),
            },
            SessionError::NotFound { id },
            SessionError::TokenNotFound,
            SessionError::Expired {
                id,
                expired_at: Timestamp::from_millis(2),
            },
            SessionError::VersionConflict {
                id,
                expected: 1,
                actual: 2,
            },
            SessionError::IdConflict { id },
            SessionError::TokenConflict { id },
            SessionError::QuotaExceeded { user_id, limit: 50 },
            SessionError::Storage {
                layer_code: "TM-WAL-5001",
                source: Box::new(std::io::Error::other("disk")),
            },
            SessionError::ReadOnly,
        ]
    }

    fn is_well_formed(code: &str) -> bool {
        let mut parts = code.split('-');
        let (Some("TM"), Some(area), Some(digits), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        !area.is_empty()
            && area.bytes().all(|b| b.is_ascii_uppercase())
            && digits.len() == 4
            && digits.bytes().all(|b| b.is_ascii_digit())
    }

    #[test]
    fn codes_are_unique_well_formed_and_listed() {
        let errors = one_of_each();
        let codes: Vec<&str> = errors.iter().map(SessionError::code).collect();
        let unique: HashSet<&str> = codes.iter().copied().collect();
        assert_eq!(unique.len(), codes.len(), "duplicate code in {codes:?}");
        for code in &codes {
            assert!(is_well_formed(code), "malformed code {code}");
        }
        assert_eq!(
            codes,
            SessionError::CODES,
            "CODES must list every variant in order"
        );
    }

    #[test]
    fn well_formed_check_rejects_bad_codes() {
        for bad in [
            "TM-sess-4001",
            "TM-SESS-401",
            "XX-SESS-4001",
            "TM--4001",
            "TM-SESS-4001-1",
        ] {
            assert!(!is_well_formed(bad), "{bad} should be rejected");
        }
    }

    #[test]
    fn conflict_message_names_versions() {
        let id = SessionId::from_parts(Timestamp::from_millis(1), 7).unwrap();
        let text = SessionError::VersionConflict {
            id,
            expected: 3,
            actual: 4,
        }
        .to_string();
        assert!(
            text.contains("expected 3") && text.contains("stored 4"),
            "{text}"
        );
    }
}

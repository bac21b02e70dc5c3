//! [`Mutation`]: one applied change to the set of stored sessions.

use std::net::IpAddr;
use std::sync::Arc;

use crate::id::SessionId;
use crate::session::Session;
use crate::time::Timestamp;

/// One change to the stored session set, exactly as a store applies it.
///
/// Every repository operation that changes anything decomposes into mutations: `create` is one
/// [`Mutation::Create`] (plus a [`Mutation::Delete`] when the quota evicts), `delete_by_user` and
/// `cleanup_expired` are one `Delete` per session removed. A durable store logs each mutation
/// before applying it, and replays the log by applying the same mutations in the same order.
///
/// Mutations are facts, not requests: they carry the resulting state (`Update` holds the whole
/// new body at its new version), so applying one needs no validation and applying a prefix of a
/// log rebuilds exactly the state callers saw at that point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// A new session, stored at [`Session::VERSION_FIRST`].
    Create(Arc<Session>),
    /// A session's new body, at its new version.
    Update(Arc<Session>),
    /// A session removed; `version` is the version it had.
    Delete {
        /// The removed session.
        id: SessionId,
        /// Its version when removed.
        version: u64,
    },
    /// A heartbeat: `last_active` raised to at least `last_active`, `last_access_ip` set when
    /// `Some`. The version does not change.
    Touch {
        /// The touched session.
        id: SessionId,
        /// The use time; a stored later value is kept.
        last_active: Timestamp,
        /// The address of the use, if known.
        last_access_ip: Option<IpAddr>,
    },
}

impl Mutation {
    /// The id of the session the mutation applies to.
    pub fn session_id(&self) -> SessionId {
        match self {
            Mutation::Create(session) | Mutation::Update(session) => session.id(),
            Mutation::Delete { id, .. } | Mutation::Touch { id, .. } => *id,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::id::UserId;
    use crate::session::{NewSession, SessionFields};
    use crate::token::TokenHash;

    #[test]
    fn session_id_names_the_target_of_every_kind() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let id = SessionId::from_parts(now, 7).expect("id");
        let fields = SessionFields::new(
            id,
            UserId::new("u").expect("user"),
            TokenHash::of_token("t").expect("token"),
            now,
            now.checked_add(Duration::from_secs(60)).expect("expiry"),
        );
        let session =
            Arc::new(Session::new(NewSession::new(fields).expect("valid"), 1).expect("session"));
        let all = [
            Mutation::Create(Arc::clone(&session)),
            Mutation::Update(session),
            Mutation::Delete { id, version: 1 },
            Mutation::Touch {
                id,
                last_active: now,
                last_access_ip: None,
            },
        ];
        assert!(all.iter().all(|mutation| mutation.session_id() == id));
    }
}

//! The session record: its fields, limits, validation and the expiry rule.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::error::SessionError;
use crate::id::{ApiKeyId, DeviceId, SessionId, UserId, check_text};
use crate::time::Timestamp;
use crate::token::TokenHash;

/// Longest user agent, in bytes of UTF-8.
pub const USER_AGENT_LEN_MAX: usize = 512;
/// Most metadata entries per session.
pub const METADATA_ENTRIES_MAX: usize = 16;
/// Longest metadata key, in bytes (keys are non-empty).
pub const METADATA_KEY_LEN_MAX: usize = 64;
/// Longest metadata value, in bytes (values may be empty).
pub const METADATA_VALUE_LEN_MAX: usize = 256;
/// Longest session lifetime, `expires_at - created_at`: 3650 days. Catches unit mix-ups
/// (seconds for milliseconds) and "never expires" sentinels such as `u64::MAX`.
pub const LIFETIME_MAX: Duration = Duration::from_secs(3650 * 24 * 60 * 60);
/// Longest idle timeout; the same bound as [`LIFETIME_MAX`].
pub const IDLE_TIMEOUT_MAX: Duration = LIFETIME_MAX;

/// The client's `User-Agent`: non-empty, at most [`USER_AGENT_LEN_MAX`] bytes, no control
/// characters. Absent is `None`, never an empty string.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserAgent(Box<str>);

impl UserAgent {
    /// Validates and wraps `value`; too long is an error, never a truncation.
    pub fn new(value: &str) -> Result<UserAgent, SessionError> {
        UserAgent::check(value)?;
        Ok(UserAgent(value.into()))
    }

    /// The rules of [`UserAgent::new`], without building one.
    pub(crate) fn check(value: &str) -> Result<(), SessionError> {
        check_text(
            "user_agent",
            value,
            USER_AGENT_LEN_MAX,
            "USER_AGENT_LEN_MAX",
        )
    }

    /// Wraps text that already passed [`UserAgent::check`].
    pub(crate) fn from_checked(value: &str) -> UserAgent {
        UserAgent(value.into())
    }

    /// The user agent as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserAgent({:?})", &*self.0)
    }
}

/// A small string map attached to a session, bounded by the `METADATA_*` limits.
///
/// Keys follow the id rules (non-empty, no control characters); values may be empty but contain
/// no control characters. Values are shown in `Debug` only as their length, because callers put
/// things like client hints there that do not belong in logs.
///
/// Stored as a vector of pairs sorted by key: a session typically carries one or two entries,
/// and a `BTreeMap` node would cost over 500 bytes for the first one (the bulk of a session's
/// memory at a million sessions).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Metadata(Vec<(Box<str>, Box<str>)>);

impl Metadata {
    /// An empty map.
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Validates every entry of `map`.
    pub fn from_map(map: BTreeMap<String, String>) -> Result<Metadata, SessionError> {
        if map.len() > METADATA_ENTRIES_MAX {
            return Err(Metadata::too_many(map.len()));
        }
        for (key, value) in &map {
            check_entry(key, value)?;
        }
        // BTreeMap iterates in key order, so the vector is sorted and its keys unique.
        Ok(Metadata(
            map.into_iter()
                .map(|(key, value)| (key.into_boxed_str(), value.into_boxed_str()))
                .collect(),
        ))
    }

    /// Inserts or replaces an entry; returns the previous value.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<Option<String>, SessionError> {
        check_entry(key, value)?;
        match self.position(key) {
            Ok(index) => {
                let previous = std::mem::replace(&mut self.0[index].1, value.into());
                Ok(Some(previous.into_string()))
            }
            Err(index) => {
                if self.0.len() >= METADATA_ENTRIES_MAX {
                    return Err(Metadata::too_many(self.0.len() + 1));
                }
                self.0.insert(index, (key.into(), value.into()));
                Ok(None)
            }
        }
    }

    /// Removes an entry; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let index = self.position(key).ok()?;
        Some(self.0.remove(index).1.into_string())
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        let index = self.position(key).ok()?;
        Some(&self.0[index].1)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(key, value)| (&**key, &**value))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries as an ordered map (a copy).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect()
    }

    /// Entries that already passed [`check_entry`], unique and in ascending key order.
    pub(crate) fn from_checked<'a>(entries: impl Iterator<Item = (&'a str, &'a str)>) -> Metadata {
        Metadata(
            entries
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
        )
    }

    /// The error for a map of `count` entries, over [`METADATA_ENTRIES_MAX`].
    pub(crate) fn too_many(count: usize) -> SessionError {
        SessionError::invalid(
            "metadata",
            format!("has {count} entries, limit METADATA_ENTRIES_MAX = {METADATA_ENTRIES_MAX}"),
        )
    }

    /// Where `key` is, or where it would be inserted.
    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(stored, _)| (**stored).cmp(key))
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, value) in self.iter() {
            map.entry(&key, &format_args!("<{} bytes>", value.len()));
        }
        map.finish()
    }
}

/// The rules of one metadata entry.
pub(crate) fn check_entry(key: &str, value: &str) -> Result<(), SessionError> {
    check_text(
        "metadata key",
        key,
        METADATA_KEY_LEN_MAX,
        "METADATA_KEY_LEN_MAX",
    )?;
    if value.len() > METADATA_VALUE_LEN_MAX {
        return Err(SessionError::invalid(
            "metadata value",
            format!(
                "is {} bytes, limit METADATA_VALUE_LEN_MAX = {METADATA_VALUE_LEN_MAX}",
                value.len()
            ),
        ));
    }
    if crate::id::has_control_character(value) {
        return Err(SessionError::invalid(
            "metadata value",
            "contains a control character",
        ));
    }
    Ok(())
}

/// Whether a session may still be used at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionStatus {
    /// Not expired.
    Active,
    /// Past `expires_at`, or idle for at least `idle_timeout`.
    Expired,
}

/// The plain content of a session, everything except the version.
///
/// Each field's type validates itself; the rules between fields (`expires_at` after
/// `created_at`, ...) are checked by [`NewSession::new`] and [`Session::new`]. Edit a stored
/// session by cloning its fields, changing them and validating again.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionFields {
    /// Unique id.
    pub id: SessionId,
    /// Owner.
    pub user_id: UserId,
    /// Hash of the bearer token.
    pub token_hash: TokenHash,
    /// Device the session was created on.
    pub device_id: Option<DeviceId>,
    /// API key that created the session.
    pub created_by: Option<ApiKeyId>,
    /// Client address at creation.
    pub ip_address: Option<IpAddr>,
    /// Client address at the last access.
    pub last_access_ip: Option<IpAddr>,
    /// Client user agent.
    pub user_agent: Option<UserAgent>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last use; at or after `created_at`.
    pub last_active: Timestamp,
    /// Absolute expiry; after `created_at`, at most [`LIFETIME_MAX`] later.
    pub expires_at: Timestamp,
    /// Expire this long after `last_active`; whole milliseconds, 1 ms to [`IDLE_TIMEOUT_MAX`].
    pub idle_timeout: Option<Duration>,
    /// Caller-defined key/value pairs.
    pub metadata: Metadata,
}

impl SessionFields {
    /// Fields with the required values set, every optional one empty and
    /// `last_active = created_at`.
    pub fn new(
        id: SessionId,
        user_id: UserId,
        token_hash: TokenHash,
        created_at: Timestamp,
        expires_at: Timestamp,
    ) -> SessionFields {
        SessionFields {
            id,
            user_id,
            token_hash,
            device_id: None,
            created_by: None,
            ip_address: None,
            last_access_ip: None,
            user_agent: None,
            created_at,
            last_active: created_at,
            expires_at,
            idle_timeout: None,
            metadata: Metadata::new(),
        }
    }

    /// The cross-field rules; each violation names its field and limit.
    fn validate(&self) -> Result<(), SessionError> {
        check_times(
            self.created_at,
            self.last_active,
            self.expires_at,
            self.idle_timeout,
        )
    }

    /// When the session stops being usable: the earlier of `expires_at` and
    /// `last_active + idle_timeout`.
    fn expiry(&self) -> Timestamp {
        expiry_of(self.last_active, self.expires_at, self.idle_timeout)
    }
}

/// The rules between a session's times; each violation names its field and limit.
pub(crate) fn check_times(
    created_at: Timestamp,
    last_active: Timestamp,
    expires_at: Timestamp,
    idle_timeout: Option<Duration>,
) -> Result<(), SessionError> {
    if created_at > SessionId::TIMESTAMP_MAX {
        return Err(SessionError::invalid(
            "created_at",
            "is past the 48-bit ULID range",
        ));
    }
    if expires_at <= created_at {
        return Err(SessionError::invalid(
            "expires_at",
            "is not after created_at",
        ));
    }
    if expires_at.saturating_duration_since(created_at) > LIFETIME_MAX {
        return Err(SessionError::invalid(
            "expires_at",
            format!(
                "is more than LIFETIME_MAX = {} days after created_at",
                LIFETIME_MAX.as_secs() / 86_400
            ),
        ));
    }
    if last_active < created_at {
        return Err(SessionError::invalid("last_active", "is before created_at"));
    }
    if let Some(idle_timeout) = idle_timeout {
        if idle_timeout < Duration::from_millis(1) {
            return Err(SessionError::invalid(
                "idle_timeout",
                "is shorter than 1 ms",
            ));
        }
        if idle_timeout > IDLE_TIMEOUT_MAX {
            return Err(SessionError::invalid(
                "idle_timeout",
                format!(
                    "is longer than IDLE_TIMEOUT_MAX = {} days",
                    IDLE_TIMEOUT_MAX.as_secs() / 86_400
                ),
            ));
        }
        // Stored times have millisecond resolution; refusing a fraction keeps a round trip
        // through disk exact instead of silently rounding.
        if idle_timeout.subsec_nanos() % 1_000_000 != 0 {
            return Err(SessionError::invalid(
                "idle_timeout",
                "is not a whole number of milliseconds",
            ));
        }
    }
    Ok(())
}

/// The expiry rule's instant: the earlier of `expires_at` and `last_active + idle_timeout`.
pub(crate) fn expiry_of(
    last_active: Timestamp,
    expires_at: Timestamp,
    idle_timeout: Option<Duration>,
) -> Timestamp {
    let idle_expiry = idle_timeout.and_then(|idle| last_active.checked_add(idle));
    match idle_expiry {
        Some(idle_expiry) => idle_expiry.min(expires_at),
        None => expires_at,
    }
}

/// A validated session body without a version: what `create` and `update` take.
///
/// The store owns versions, so callers cannot pass one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NewSession(SessionFields);

impl NewSession {
    /// Checks the rules between fields.
    pub fn new(fields: SessionFields) -> Result<NewSession, SessionError> {
        fields.validate()?;
        Ok(NewSession(fields))
    }

    /// The validated fields.
    pub fn fields(&self) -> &SessionFields {
        &self.0
    }

    /// The fields, for editing.
    pub fn into_fields(self) -> SessionFields {
        self.0
    }

    /// The session id.
    pub fn id(&self) -> SessionId {
        self.0.id
    }
}

/// A stored session: validated fields plus the version used for optimistic locking.
///
/// Versions start at 1 and grow by one with every change a store applies.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Session {
    fields: SessionFields,
    version: u64,
}

impl Session {
    /// The first version a store gives a created session.
    pub const VERSION_FIRST: u64 = 1;

    /// A session at `version` (at least [`Session::VERSION_FIRST`]). Stores call this on
    /// create and update; decoders call it with what they read.
    pub fn new(body: NewSession, version: u64) -> Result<Session, SessionError> {
        if version < Session::VERSION_FIRST {
            return Err(SessionError::invalid(
                "version",
                "is 0, versions start at 1",
            ));
        }
        Ok(Session {
            fields: body.0,
            version,
        })
    }

    /// Wraps fields and a version that already passed every rule (read from a checked record).
    pub(crate) fn from_checked(fields: SessionFields, version: u64) -> Session {
        Session { fields, version }
    }

    /// Validates `fields` and wraps them with `version`: the path for bytes read from disk.
    pub fn from_fields(fields: SessionFields, version: u64) -> Result<Session, SessionError> {
        Session::new(NewSession::new(fields)?, version)
    }

    /// The session id.
    pub fn id(&self) -> SessionId {
        self.fields.id
    }

    /// The version; changes with every stored change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The validated fields.
    pub fn fields(&self) -> &SessionFields {
        &self.fields
    }

    /// The body without the version, e.g. to edit and pass to `update`.
    pub fn to_new(&self) -> NewSession {
        NewSession(self.fields.clone())
    }

    /// When this session expires: the earlier of `expires_at` and `last_active + idle_timeout`.
    pub fn expiry(&self) -> Timestamp {
        self.fields.expiry()
    }

    /// The expiry rule, the only one in the workspace: expired when `now >= expires_at`, or
    /// when an idle timeout is set and `now >= last_active + idle_timeout`. At exactly the
    /// expiry instant the session is already expired.
    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        now >= self.expiry()
    }

    /// [`SessionStatus`] at `now`, by [`Session::is_expired_at`].
    pub fn status_at(&self, now: Timestamp) -> SessionStatus {
        if self.is_expired_at(now) {
            SessionStatus::Expired
        } else {
            SessionStatus::Active
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: u64 = 1_700_000_000_000;

    fn fields() -> SessionFields {
        SessionFields::new(
            SessionId::from_parts(Timestamp::from_millis(T0), 9).unwrap(),
            UserId::new("alice").unwrap(),
            TokenHash::of_token("tok").unwrap(),
            Timestamp::from_millis(T0),
            Timestamp::from_millis(T0 + 60_000),
        )
    }

    fn field_of(result: Result<NewSession, SessionError>) -> &'static str {
        match result {
            Err(SessionError::InvalidField { field, .. }) => field,
            other => panic!("expected InvalidField, got {other:?}"),
        }
    }

    #[test]
    fn user_agent_limit_is_inclusive() {
        assert!(UserAgent::new(&"a".repeat(USER_AGENT_LEN_MAX)).is_ok());
        let err = UserAgent::new(&"a".repeat(USER_AGENT_LEN_MAX + 1)).unwrap_err();
        assert!(
            err.to_string()
                .contains("user_agent: is 513 bytes, limit USER_AGENT_LEN_MAX = 512"),
            "{err}"
        );
        assert!(UserAgent::new("").is_err());
        assert!(UserAgent::new("Mozilla\r\nX-Injected: 1").is_err());
    }

    #[test]
    fn metadata_key_and_value_limits_are_inclusive() {
        let mut metadata = Metadata::new();
        assert!(
            metadata
                .insert(&"k".repeat(METADATA_KEY_LEN_MAX), "")
                .is_ok()
        );
        assert!(
            metadata
                .insert("v", &"v".repeat(METADATA_VALUE_LEN_MAX))
                .is_ok()
        );
        let key_err = metadata
            .insert(&"k".repeat(METADATA_KEY_LEN_MAX + 1), "x")
            .unwrap_err();
        assert!(
            key_err.to_string().contains("METADATA_KEY_LEN_MAX"),
            "{key_err}"
        );
        let value_err = metadata
            .insert("v", &"v".repeat(METADATA_VALUE_LEN_MAX + 1))
            .unwrap_err();
        assert!(
            value_err.to_string().contains("METADATA_VALUE_LEN_MAX"),
            "{value_err}"
        );
        assert!(metadata.insert("", "x").is_err());
        assert!(metadata.insert("k", "a\u{7}").is_err());
        assert_eq!(metadata.len(), 2, "failed inserts change nothing");
    }

    #[test]
    fn metadata_entry_count_limit_is_inclusive() {
        let mut metadata = Metadata::new();
        for index in 0..METADATA_ENTRIES_MAX {
            metadata.insert(&format!("k{index}"), "v").unwrap();
        }
        assert!(
            metadata.insert("k0", "replaced").is_ok(),
            "replacing is not growing"
        );
        let err = metadata.insert("one-more", "v").unwrap_err();
        assert!(
            err.to_string().contains("METADATA_ENTRIES_MAX = 16"),
            "{err}"
        );
        let mut map = metadata.to_map();
        assert!(Metadata::from_map(map.clone()).is_ok());
        map.insert("one-more".into(), "v".into());
        assert!(Metadata::from_map(map).is_err());
    }

    #[test]
    fn metadata_behaves_as_an_ordered_map() {
        let mut metadata = Metadata::new();
        assert_eq!(metadata.insert("zone", "b").expect("valid"), None);
        assert_eq!(metadata.insert("app", "web").expect("valid"), None);
        assert_eq!(
            metadata.insert("zone", "c").expect("valid"),
            Some("b".to_owned())
        );
        assert_eq!(metadata.get("zone"), Some("c"));
        assert_eq!(metadata.get("missing"), None);
        let keys: Vec<&str> = metadata.iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["app", "zone"], "iteration is in key order");
        let rebuilt = Metadata::from_map(metadata.to_map()).expect("valid");
        assert_eq!(rebuilt, metadata, "to_map and from_map round-trip");
        assert_eq!(metadata.remove("app"), Some("web".to_owned()));
        assert_eq!(metadata.remove("app"), None);
        assert_eq!(metadata.len(), 1);
    }

    #[test]
    fn metadata_debug_hides_values() {
        let mut metadata = Metadata::new();
        metadata.insert("hint", "private-value").unwrap();
        let text = format!("{metadata:?}");
        assert!(
            text.contains("hint") && !text.contains("private-value"),
            "{text}"
        );
    }

    #[test]
    fn expires_at_must_follow_created_at_within_lifetime_max() {
        let mut f = fields();
        f.expires_at = f.created_at;
        assert_eq!(field_of(NewSession::new(f.clone())), "expires_at");
        f.expires_at = f.created_at.checked_add(Duration::from_millis(1)).unwrap();
        assert!(NewSession::new(f.clone()).is_ok());
        f.expires_at = f.created_at.checked_add(LIFETIME_MAX).unwrap();
        assert!(NewSession::new(f.clone()).is_ok());
        f.expires_at = f.expires_at.checked_add(Duration::from_millis(1)).unwrap();
        assert_eq!(field_of(NewSession::new(f)), "expires_at");
    }

    #[test]
    fn last_active_may_not_precede_created_at() {
        let mut f = fields();
        f.last_active = f.created_at.checked_sub(Duration::from_millis(1)).unwrap();
        assert_eq!(field_of(NewSession::new(f.clone())), "last_active");
        f.last_active = f.created_at;
        assert!(NewSession::new(f).is_ok());
    }

    #[test]
    fn created_at_is_bounded_by_the_ulid_range() {
        let mut f = fields();
        f.created_at = SessionId::TIMESTAMP_MAX;
        f.last_active = f.created_at;
        f.expires_at = f.created_at.checked_add(Duration::from_secs(1)).unwrap();
        assert!(NewSession::new(f.clone()).is_ok());
        f.created_at = f.created_at.checked_add(Duration::from_millis(1)).unwrap();
        f.last_active = f.created_at;
        assert_eq!(field_of(NewSession::new(f)), "created_at");
    }

    #[test]
    fn idle_timeout_limits_are_inclusive() {
        let mut f = fields();
        for ok in [Duration::from_millis(1), IDLE_TIMEOUT_MAX] {
            f.idle_timeout = Some(ok);
            assert!(NewSession::new(f.clone()).is_ok(), "{ok:?}");
        }
        for bad in [
            Duration::ZERO,
            IDLE_TIMEOUT_MAX + Duration::from_millis(1),
            Duration::from_micros(1_500),
        ] {
            f.idle_timeout = Some(bad);
            assert_eq!(
                field_of(NewSession::new(f.clone())),
                "idle_timeout",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn version_zero_is_refused() {
        let body = NewSession::new(fields()).unwrap();
        assert_eq!(
            Session::new(body.clone(), 0).unwrap_err().code(),
            "TM-SESS-4001"
        );
        assert_eq!(Session::new(body, 1).unwrap().version(), 1);
    }

    #[test]
    fn expiry_boundary_is_inclusive() {
        let session = Session::from_fields(fields(), 1).unwrap();
        let expires_at = session.fields().expires_at;
        assert!(!session.is_expired_at(Timestamp::from_millis(expires_at.as_millis() - 1)));
        assert!(session.is_expired_at(expires_at));
        assert_eq!(session.status_at(expires_at), SessionStatus::Expired);
    }

    #[test]
    fn idle_timeout_expires_before_absolute_expiry() {
        let mut f = fields();
        f.idle_timeout = Some(Duration::from_secs(10));
        f.last_active = Timestamp::from_millis(T0 + 5_000);
        let session = Session::from_fields(f, 1).unwrap();
        assert_eq!(session.expiry(), Timestamp::from_millis(T0 + 15_000));
        assert!(!session.is_expired_at(Timestamp::from_millis(T0 + 14_999)));
        assert!(session.is_expired_at(Timestamp::from_millis(T0 + 15_000)));
    }

    #[test]
    fn session_debug_never_shows_the_token() {
        let session = Session::from_fields(fields(), 1).unwrap();
        let text = format!("{session:?}");
        assert!(!text.contains("tok\""), "{text}");
        assert!(text.contains("TokenHash("), "{text}");
    }

    proptest! {
        #[test]
        fn validation_never_panics(
            user in ".{0,200}",
            agent in ".{0,600}",
            key in ".{0,80}",
            value in ".{0,300}",
            created in any::<u64>(),
            last in any::<u64>(),
            expires in any::<u64>(),
            idle_nanos in proptest::option::of(any::<u64>()),
            version in any::<u64>(),
            id_bytes in any::<[u8; 16]>(),
        ) {
            let user_id = UserId::new(&user);
            let user_agent = UserAgent::new(&agent);
            let mut metadata = Metadata::new();
            let _ = metadata.insert(&key, &value);
            let Ok(id) = SessionId::from_bytes(id_bytes) else { return Ok(()); };
            let Ok(user_id) = user_id else { return Ok(()); };
            let mut f = SessionFields::new(
                id,
                user_id,
                TokenHash::from_bytes([7; 32]),
                Timestamp::from_millis(created),
                Timestamp::from_millis(expires),
            );
            f.last_active = Timestamp::from_millis(last);
            f.user_agent = user_agent.ok();
            f.metadata = metadata;
            f.idle_timeout = idle_nanos.map(Duration::from_nanos);
            if let Ok(session) = Session::from_fields(f, version) {
                let _ = session.is_expired_at(Timestamp::from_millis(last));
                prop_assert!(session.fields().expires_at > session.fields().created_at);
            }
        }
    }
}

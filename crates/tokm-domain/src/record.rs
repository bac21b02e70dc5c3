//! [`SessionRecord`]: a stored session laid out in one allocation, and its byte format.
//!
//! A [`Session`] spreads its text over up to eight heap allocations (each id, the user agent,
//! the metadata vector and its strings), which at a million sessions costs more memory than the
//! data itself. A `SessionRecord` holds the same validated content and version in a single
//! immutable, reference-counted byte string, read through accessors that borrow from it. Stores
//! keep records; snapshots write their bytes as they are and read them back with one copy.
//!
//! The byte layout is in [`format`], the only code that reads or writes its offsets.

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use crate::error::SessionError;
use crate::id::{ApiKeyId, DeviceId, ID_LEN_MAX, SessionId, UserId, check_text};
use crate::session::{
    METADATA_ENTRIES_MAX, Metadata, NewSession, Session, SessionFields, USER_AGENT_LEN_MAX,
    UserAgent, check_entry, check_times,
};
use crate::time::Timestamp;
use crate::token::TokenHash;

mod format;

pub(crate) use self::format::FIXED_LEN;
use self::format::{
    CREATED_AT, ENTRY_HEADER_LEN, EXPIRES_AT, ID, IDLE_TIMEOUT, LAST_ACTIVE, Layout, TOKEN,
    VERSION, address, metadata_entry,
};

/// Longest possible record: every text and metadata entry at its limit, two IPv6 addresses.
pub const RECORD_LEN_MAX: usize = FIXED_LEN
    + 3 * ID_LEN_MAX
    + 2 * 16
    + USER_AGENT_LEN_MAX
    + METADATA_ENTRIES_MAX
        * (ENTRY_HEADER_LEN
            + crate::session::METADATA_KEY_LEN_MAX
            + crate::session::METADATA_VALUE_LEN_MAX);

/// A validated session and its version in one immutable allocation (see the module docs for the
/// layout). Cloning shares the bytes.
///
/// Built from a [`Session`] ([`SessionRecord::from_session`]), from a validated body and a version
/// ([`SessionRecord::new`]), or from bytes read back from disk ([`SessionRecord::from_bytes`],
/// which checks everything [`Session::from_fields`] checks). [`SessionRecord::to_session`] gives
/// the `Session` back.
///
/// `Debug` shows only the id and version: a record holds metadata values and addresses, which do
/// not belong in logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionRecord(Arc<[u8]>);

impl SessionRecord {
    /// The record of `body` at `version` (at least [`Session::VERSION_FIRST`]).
    pub fn new(body: &NewSession, version: u64) -> Result<SessionRecord, SessionError> {
        if version < Session::VERSION_FIRST {
            return Err(SessionError::invalid(
                "version",
                "is 0, versions start at 1",
            ));
        }
        Ok(SessionRecord::encode_fields(body.fields(), version))
    }

    /// The record of a stored session.
    pub fn from_session(session: &Session) -> SessionRecord {
        SessionRecord::encode_fields(session.fields(), session.version())
    }

    /// Checks `bytes` as a record and copies them into one allocation.
    ///
    /// # Errors
    /// [`SessionError::InvalidField`] naming the first field that is malformed, out of its limits
    /// or inconsistent with another (the rules of [`Session::from_fields`]), or `"record"` when
    /// the lengths do not add up to `bytes.len()`.
    pub fn from_bytes(bytes: &[u8]) -> Result<SessionRecord, SessionError> {
        check_record(bytes)?;
        Ok(SessionRecord(Arc::from(bytes)))
    }

    /// The record's bytes, in the layout of the module docs.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The session as a [`Session`] (allocates its strings).
    pub fn to_session(&self) -> Session {
        let fields = SessionFields {
            id: self.id(),
            user_id: UserId::from_checked(self.user_id()),
            token_hash: self.token_hash(),
            device_id: self.device_id().map(DeviceId::from_checked),
            created_by: self.created_by().map(ApiKeyId::from_checked),
            ip_address: self.ip_address(),
            last_access_ip: self.last_access_ip(),
            user_agent: self.user_agent().map(UserAgent::from_checked),
            created_at: self.created_at(),
            last_active: self.last_active(),
            expires_at: self.expires_at(),
            idle_timeout: self.idle_timeout(),
            metadata: Metadata::from_checked(self.metadata()),
        };
        Session::from_checked(fields, self.version())
    }

    /// The session id.
    pub fn id(&self) -> SessionId {
        SessionId::from_checked_bytes(self.array(ID))
    }

    /// The version.
    pub fn version(&self) -> u64 {
        format::read_u64(&self.0, VERSION)
    }

    /// Hash of the bearer token.
    pub fn token_hash(&self) -> TokenHash {
        TokenHash::from_bytes(self.array(TOKEN))
    }

    /// Owner.
    pub fn user_id(&self) -> &str {
        self.text(self.layout().user_id)
    }

    /// Device the session was created on.
    pub fn device_id(&self) -> Option<&str> {
        self.optional_text(self.layout().device_id)
    }

    /// API key that created the session.
    pub fn created_by(&self) -> Option<&str> {
        self.optional_text(self.layout().created_by)
    }

    /// Client address at creation.
    pub fn ip_address(&self) -> Option<IpAddr> {
        address(&self.0, self.layout().ip_address)
    }

    /// Client address at the last access.
    pub fn last_access_ip(&self) -> Option<IpAddr> {
        address(&self.0, self.layout().last_access_ip)
    }

    /// Client user agent.
    pub fn user_agent(&self) -> Option<&str> {
        self.optional_text(self.layout().user_agent)
    }

    /// Creation time.
    pub fn created_at(&self) -> Timestamp {
        Timestamp::from_millis(format::read_u64(&self.0, CREATED_AT))
    }

    /// Last use.
    pub fn last_active(&self) -> Timestamp {
        Timestamp::from_millis(format::read_u64(&self.0, LAST_ACTIVE))
    }

    /// Absolute expiry.
    pub fn expires_at(&self) -> Timestamp {
        Timestamp::from_millis(format::read_u64(&self.0, EXPIRES_AT))
    }

    /// Idle timeout.
    pub fn idle_timeout(&self) -> Option<Duration> {
        match format::read_u64(&self.0, IDLE_TIMEOUT) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Metadata entries in key order.
    pub fn metadata(&self) -> MetadataEntries<'_> {
        MetadataEntries {
            bytes: &self.0,
            at: self.layout().metadata_start,
            left: format::metadata_count(&self.0),
        }
    }

    /// When this session expires: the earlier of `expires_at` and `last_active + idle_timeout`
    /// (the rule of [`Session::expiry`]).
    pub fn expiry(&self) -> Timestamp {
        crate::session::expiry_of(self.last_active(), self.expires_at(), self.idle_timeout())
    }

    /// Whether the session is expired at `now` (the rule of [`Session::is_expired_at`]).
    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        now >= self.expiry()
    }

    /// The record with `last_active` raised to `last_active` (a stored later value is kept) and
    /// `last_access_ip` replaced when `Some`: what a touch does. The version does not change.
    pub fn touched(&self, last_active: Timestamp, last_access_ip: Option<IpAddr>) -> SessionRecord {
        let raised = self.last_active().max(last_active);
        let address_unchanged = last_access_ip.is_none_or(|ip| self.last_access_ip() == Some(ip));
        if address_unchanged {
            let mut bytes = self.0.to_vec();
            format::write_u64(&mut bytes, LAST_ACTIVE, raised.as_millis());
            return SessionRecord(Arc::from(bytes));
        }
        let mut fields = self.to_session().fields().clone();
        fields.last_active = raised;
        fields.last_access_ip = last_access_ip;
        SessionRecord::encode_fields(&fields, self.version())
    }

    /// Lays out validated `fields` (the caller guarantees the session rules hold).
    fn encode_fields(fields: &SessionFields, version: u64) -> SessionRecord {
        SessionRecord(Arc::from(format::encode(fields, version)))
    }

    fn array<const N: usize>(&self, range: Range<usize>) -> [u8; N] {
        let mut out = [0; N];
        out.copy_from_slice(&self.0[range]);
        out
    }

    fn layout(&self) -> Layout {
        // Checked when the record was built, so the lengths fit.
        Layout::of(&self.0).unwrap_or_else(|| unreachable!("a record's lengths were checked"))
    }

    fn text(&self, range: Range<usize>) -> &str {
        std::str::from_utf8(&self.0[range])
            .unwrap_or_else(|_| unreachable!("a record's text was checked as UTF-8"))
    }

    fn optional_text(&self, range: Range<usize>) -> Option<&str> {
        (!range.is_empty()).then(|| self.text(range))
    }
}

impl From<&Session> for SessionRecord {
    fn from(session: &Session) -> SessionRecord {
        SessionRecord::from_session(session)
    }
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("id", &self.id())
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

/// A record's metadata entries, in key order.
#[derive(Clone, Debug)]
pub struct MetadataEntries<'a> {
    bytes: &'a [u8],
    at: usize,
    left: usize,
}

impl<'a> Iterator for MetadataEntries<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        if self.left == 0 {
            return None;
        }
        let (entry, next) = metadata_entry(self.bytes, self.at)?;
        self.left -= 1;
        self.at = next;
        let text = |range| {
            std::str::from_utf8(&self.bytes[range])
                .unwrap_or_else(|_| unreachable!("a record's text was checked as UTF-8"))
        };
        Some((text(entry.key), text(entry.value)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for MetadataEntries<'_> {}

/// Every rule a record's bytes must meet: a consistent layout, and the session rules of
/// [`Session::from_fields`] on the values, checked in place without allocating.
fn check_record(bytes: &[u8]) -> Result<(), SessionError> {
    let malformed = || SessionError::invalid("record", "lengths do not match the record's size");
    if bytes.len() > RECORD_LEN_MAX {
        return Err(SessionError::invalid(
            "record",
            format!("is {} bytes, longer than any session", bytes.len()),
        ));
    }
    let layout = Layout::of(bytes).ok_or_else(malformed)?;
    let read_u64 = |range: Range<usize>| format::read_u64(bytes, range);
    if read_u64(VERSION) < Session::VERSION_FIRST {
        return Err(SessionError::invalid(
            "version",
            "is 0, versions start at 1",
        ));
    }
    let mut id = [0; 16];
    id.copy_from_slice(&bytes[ID]);
    SessionId::from_bytes(id)?;
    let text = |field: &'static str, range: Range<usize>| {
        std::str::from_utf8(&bytes[range]).map_err(|_| SessionError::invalid(field, "is not UTF-8"))
    };
    check_text(
        "user_id",
        text("user_id", layout.user_id)?,
        ID_LEN_MAX,
        "ID_LEN_MAX",
    )?;
    for (field, range) in [
        ("device_id", layout.device_id),
        ("created_by", layout.created_by),
    ] {
        if !range.is_empty() {
            check_text(field, text(field, range)?, ID_LEN_MAX, "ID_LEN_MAX")?;
        }
    }
    if !layout.user_agent.is_empty() {
        UserAgent::check(text("user_agent", layout.user_agent)?)?;
    }
    let count = format::metadata_count(bytes);
    if count > METADATA_ENTRIES_MAX {
        return Err(Metadata::too_many(count));
    }
    let mut at = layout.metadata_start;
    let mut previous_key: Option<&str> = None;
    for _ in 0..count {
        let (entry, next) = metadata_entry(bytes, at).ok_or_else(malformed)?;
        let key = text("metadata key", entry.key)?;
        let value = text("metadata value", entry.value)?;
        check_entry(key, value)?;
        if previous_key.is_some_and(|previous| previous >= key) {
            return Err(SessionError::invalid(
                "metadata",
                "keys are not unique and in ascending order",
            ));
        }
        previous_key = Some(key);
        at = next;
    }
    if at != bytes.len() {
        return Err(malformed());
    }
    let idle_ms = read_u64(IDLE_TIMEOUT);
    check_times(
        Timestamp::from_millis(read_u64(CREATED_AT)),
        Timestamp::from_millis(read_u64(LAST_ACTIVE)),
        Timestamp::from_millis(read_u64(EXPIRES_AT)),
        (idle_ms != 0).then(|| Duration::from_millis(idle_ms)),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    fn session(version: u64) -> Session {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let mut fields = SessionFields::new(
            SessionId::from_parts(now, 7).unwrap(),
            UserId::new("alice").unwrap(),
            TokenHash::of_token("t").unwrap(),
            now,
            now.checked_add(Duration::from_secs(3600)).unwrap(),
        );
        fields.device_id = Some(DeviceId::new("phone").unwrap());
        fields.ip_address = Some("10.0.0.1".parse().unwrap());
        fields.last_access_ip = Some("::1".parse().unwrap());
        fields.user_agent = Some(UserAgent::new("curl/8").unwrap());
        fields.idle_timeout = Some(Duration::from_secs(60));
        fields.metadata.insert("b", "2").unwrap();
        fields.metadata.insert("a", "").unwrap();
        Session::from_fields(fields, version).unwrap()
    }

    #[test]
    fn a_record_reads_back_every_field() {
        let original = session(3);
        let record = SessionRecord::from_session(&original);
        assert_eq!(record.to_session(), original);
        assert_eq!(record.user_id(), "alice");
        assert_eq!(record.device_id(), Some("phone"));
        assert_eq!(record.created_by(), None);
        assert_eq!(
            record.metadata().collect::<Vec<_>>(),
            [("a", ""), ("b", "2")]
        );
        assert_eq!(record.expiry(), original.expiry());
        let copied = SessionRecord::from_bytes(record.as_bytes()).unwrap();
        assert_eq!(copied, record);
    }

    #[test]
    fn the_longest_record_is_the_documented_bound() {
        // FORMAT.md of tokm-snapshot quotes this figure.
        assert_eq!(RECORD_LEN_MAX, 6_191);
    }

    #[test]
    fn debug_shows_no_metadata_or_address() {
        let text = format!("{:?}", SessionRecord::from_session(&session(1)));
        assert!(text.contains("version: 1"), "{text}");
        assert!(
            !text.contains("10.0.0.1") && !text.contains("phone"),
            "{text}"
        );
    }

    #[test]
    fn malformed_bytes_are_refused_with_the_field() {
        let record = SessionRecord::from_session(&session(1));
        let bytes = record.as_bytes();
        for len in 0..bytes.len() {
            let err = SessionRecord::from_bytes(&bytes[..len]).unwrap_err();
            assert_eq!(err.code(), "TM-SESS-4001");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(SessionRecord::from_bytes(&longer).is_err());

        let mut zero_version = bytes.to_vec();
        zero_version[VERSION].fill(0);
        let err = SessionRecord::from_bytes(&zero_version).unwrap_err();
        assert!(err.to_string().contains("version"), "{err}");

        let mut control = bytes.to_vec();
        control[FIXED_LEN] = b'\n';
        let err = SessionRecord::from_bytes(&control).unwrap_err();
        assert!(err.to_string().contains("user_id"), "{err}");

        let mut expired_before_created = bytes.to_vec();
        expired_before_created[EXPIRES_AT].copy_from_slice(&1_u64.to_le_bytes());
        let err = SessionRecord::from_bytes(&expired_before_created).unwrap_err();
        assert!(err.to_string().contains("expires_at"), "{err}");

        let mut unknown_address = bytes.to_vec();
        unknown_address[format::ADDRESS_FLAGS.start] = 0b11;
        assert!(SessionRecord::from_bytes(&unknown_address).is_err());
    }

    #[test]
    fn touched_raises_last_active_and_keeps_the_version() {
        let record = SessionRecord::from_session(&session(4));
        let later = record
            .last_active()
            .checked_add(Duration::from_secs(5))
            .unwrap();
        let same_ip = record.touched(later, None);
        assert_eq!(same_ip.last_active(), later);
        assert_eq!(same_ip.version(), 4);
        let earlier = record.touched(record.created_at(), None);
        assert_eq!(earlier.last_active(), record.last_active());
        let moved = record.touched(later, Some("192.0.2.9".parse().unwrap()));
        assert_eq!(moved.last_access_ip(), Some("192.0.2.9".parse().unwrap()));
        assert_eq!(moved.last_active(), later);
        assert_eq!(moved.user_agent(), Some("curl/8"));
    }

    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Zé-]{1,20}"
    }

    prop_compose! {
        fn any_session()(
            user in text(),
            device in proptest::option::of(text()),
            creator in proptest::option::of(text()),
            ip in proptest::option::of(any::<[u8; 4]>()),
            last_ip in proptest::option::of(any::<[u8; 16]>()),
            agent in proptest::option::of("[ -~]{1,80}"),
            metadata in proptest::collection::btree_map(text(), "[ -~]{0,30}", 0..4),
            created in 0_u64..1 << 47,
            lifetime in 1_u64..1 << 30,
            idle in proptest::option::of(1_u64..1 << 30),
            version in 1_u64..u64::MAX,
            random in 1_u128..,
        ) -> Session {
            let created_at = Timestamp::from_millis(created);
            let mut fields = SessionFields::new(
                SessionId::from_parts(created_at, random).unwrap(),
                UserId::new(&user).unwrap(),
                TokenHash::from_bytes([created as u8; 32]),
                created_at,
                Timestamp::from_millis(created + lifetime),
            );
            fields.device_id = device.map(|d| DeviceId::new(&d).unwrap());
            fields.created_by = creator.map(|c| ApiKeyId::new(&c).unwrap());
            fields.ip_address = ip.map(|o| IpAddr::V4(Ipv4Addr::from(o)));
            fields.last_access_ip = last_ip.map(|o| IpAddr::V6(Ipv6Addr::from(o)));
            fields.user_agent = agent.map(|a| UserAgent::new(&a).unwrap());
            fields.idle_timeout = idle.map(Duration::from_millis);
            fields.metadata = Metadata::from_map(metadata.into_iter().collect::<BTreeMap<_, _>>()).unwrap();
            Session::from_fields(fields, version).unwrap()
        }
    }

    proptest! {
        #[test]
        fn any_session_round_trips(session in any_session()) {
            let record = SessionRecord::from_session(&session);
            prop_assert_eq!(record.to_session(), session.clone());
            prop_assert_eq!(SessionRecord::from_bytes(record.as_bytes()).unwrap(), record);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            // Whatever is accepted must read back consistently.
            if let Ok(record) = SessionRecord::from_bytes(&bytes) {
                let again = SessionRecord::from_session(&record.to_session());
                prop_assert_eq!(again.as_bytes(), &bytes[..]);
            }
        }

        #[test]
        fn flipped_bytes_are_refused_or_read_back_exactly(
            session in any_session(),
            at in any::<prop::sample::Index>(),
            flip in 1_u8..,
        ) {
            let record = SessionRecord::from_session(&session);
            let mut bytes = record.as_bytes().to_vec();
            let at = at.index(bytes.len());
            bytes[at] ^= flip;
            if let Ok(read) = SessionRecord::from_bytes(&bytes) {
                let again = SessionRecord::from_session(&read.to_session());
                prop_assert_eq!(again.as_bytes(), &bytes[..]);
            }
        }
    }
}

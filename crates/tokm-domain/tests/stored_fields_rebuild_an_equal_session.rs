//! A session taken apart into the primitive values a log or snapshot stores (id bytes, token
//! hash bytes, milliseconds, strings) and rebuilt through the validating constructors is equal
//! to the original: the decode path loses nothing and refuses nothing valid.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use proptest::prelude::*;
use tokm_domain::{
    ApiKeyId, DeviceId, Metadata, Session, SessionFields, SessionId, Timestamp, TokenHash,
    UserAgent, UserId,
};

/// What an on-disk record holds, as plain values.
struct Stored {
    id: [u8; 16],
    user_id: String,
    token_hash: [u8; 32],
    device_id: Option<String>,
    created_by: Option<String>,
    ip_address: Option<IpAddr>,
    last_access_ip: Option<IpAddr>,
    user_agent: Option<String>,
    created_at_ms: u64,
    last_active_ms: u64,
    expires_at_ms: u64,
    idle_timeout_ms: Option<u64>,
    metadata: BTreeMap<String, String>,
    version: u64,
}

fn take_apart(session: &Session) -> Stored {
    let f = session.fields();
    Stored {
        id: f.id.to_bytes(),
        user_id: f.user_id.as_str().to_owned(),
        token_hash: *f.token_hash.as_bytes(),
        device_id: f.device_id.as_ref().map(|d| d.as_str().to_owned()),
        created_by: f.created_by.as_ref().map(|k| k.as_str().to_owned()),
        ip_address: f.ip_address,
        last_access_ip: f.last_access_ip,
        user_agent: f.user_agent.as_ref().map(|a| a.as_str().to_owned()),
        created_at_ms: f.created_at.as_millis(),
        last_active_ms: f.last_active.as_millis(),
        expires_at_ms: f.expires_at.as_millis(),
        idle_timeout_ms: f
            .idle_timeout
            .map(|d| u64::try_from(d.as_millis()).unwrap()),
        metadata: f.metadata.to_map(),
        version: session.version(),
    }
}

fn rebuild(stored: Stored) -> Result<Session, tokm_domain::SessionError> {
    let mut fields = SessionFields::new(
        SessionId::from_bytes(stored.id)?,
        UserId::new(&stored.user_id)?,
        TokenHash::from_bytes(stored.token_hash),
        Timestamp::from_millis(stored.created_at_ms),
        Timestamp::from_millis(stored.expires_at_ms),
    );
    fields.device_id = stored.device_id.as_deref().map(DeviceId::new).transpose()?;
    fields.created_by = stored
        .created_by
        .as_deref()
        .map(ApiKeyId::new)
        .transpose()?;
    fields.ip_address = stored.ip_address;
    fields.last_access_ip = stored.last_access_ip;
    fields.user_agent = stored
        .user_agent
        .as_deref()
        .map(UserAgent::new)
        .transpose()?;
    fields.last_active = Timestamp::from_millis(stored.last_active_ms);
    fields.idle_timeout = stored.idle_timeout_ms.map(Duration::from_millis);
    fields.metadata = Metadata::from_map(stored.metadata)?;
    Session::from_fields(fields, stored.version)
}

prop_compose! {
    fn valid_session()(
        created in 0u64..(1 << 47),
        lifetime_ms in 1u64..86_400_000,
        idle_after_ms in 0u64..86_400_000,
        idle_ms in proptest::option::of(1u64..86_400_000),
        random in any::<u128>(),
        user in "[a-z0-9@.]{1,128}",
        device in proptest::option::of("[ -~]{1,128}"),
        key in proptest::option::of("[A-Za-z0-9_-]{1,128}"),
        agent in proptest::option::of("[ -~]{1,512}"),
        ip in proptest::option::of(any::<IpAddr>()),
        last_ip in proptest::option::of(any::<IpAddr>()),
        metadata in proptest::collection::btree_map("[a-z]{1,64}", "[ -~]{0,256}", 0..=16),
        version in 1u64..,
        token in "[A-Za-z0-9]{1,64}",
    ) -> Session {
        let created_at = Timestamp::from_millis(created);
        let mut fields = SessionFields::new(
            SessionId::from_parts(created_at, random | 1).unwrap(),
            UserId::new(&user).unwrap(),
            TokenHash::of_token(&token).unwrap(),
            created_at,
            Timestamp::from_millis(created + lifetime_ms),
        );
        fields.device_id = device.as_deref().map(|d| DeviceId::new(d).unwrap());
        fields.created_by = key.as_deref().map(|k| ApiKeyId::new(k).unwrap());
        fields.user_agent = agent.as_deref().map(|a| UserAgent::new(a).unwrap());
        fields.ip_address = ip;
        fields.last_access_ip = last_ip;
        fields.last_active = Timestamp::from_millis(created + idle_after_ms);
        fields.idle_timeout = idle_ms.map(Duration::from_millis);
        fields.metadata = Metadata::from_map(metadata).unwrap();
        Session::from_fields(fields, version).unwrap()
    }
}

proptest! {
    #[test]
    fn stored_fields_rebuild_an_equal_session(session in valid_session()) {
        let rebuilt = rebuild(take_apart(&session));
        prop_assert_eq!(rebuilt.ok(), Some(session));
    }
}

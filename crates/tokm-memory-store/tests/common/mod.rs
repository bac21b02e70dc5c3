//! Sessions for the capture and bulk-load tests: every optional field drawn from a small set,
//! so that filters and index keys collide often.

#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use proptest::prelude::*;
use tokm_domain::testkit::SUITE_START;
use tokm_domain::{
    ApiKeyId, DeviceId, Metadata, NewSession, Session, SessionFields, SessionId, SessionRecord,
    Timestamp, TokenHash, UserAgent, UserId,
};

/// The shape of one session; `number` makes its id and token unique.
#[derive(Clone, Debug)]
pub struct Spec {
    pub user: u8,
    pub device: Option<u8>,
    pub creator: Option<u8>,
    pub ip: Option<u8>,
    pub last_ip: Option<u8>,
    pub created_s: u16,
    pub lifetime_s: u16,
    pub idle_s: Option<u16>,
    pub active_s: u16,
    pub version: u64,
}

pub fn user(user: u8) -> UserId {
    UserId::new(&format!("user-{user}")).unwrap()
}

pub fn device(device: u8) -> DeviceId {
    DeviceId::new(&format!("device-{device}")).unwrap()
}

pub fn api_key(key: u8) -> ApiKeyId {
    ApiKeyId::new(&format!("key-{key}")).unwrap()
}

pub fn ip(n: u8) -> IpAddr {
    if n.is_multiple_of(2) {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))
    } else {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(n)))
    }
}

pub fn at_s(seconds: u64) -> Timestamp {
    Timestamp::from_millis(SUITE_START.as_millis() + seconds * 1000)
}

pub fn token(number: u64) -> TokenHash {
    TokenHash::of_token(&format!("token-{number}")).unwrap()
}

/// The fields of session `number` shaped by `spec`.
pub fn fields(number: u64, spec: &Spec) -> SessionFields {
    let created_at = at_s(u64::from(spec.created_s));
    let mut fields = SessionFields::new(
        SessionId::from_parts(created_at, u128::from(number) + 1).unwrap(),
        user(spec.user),
        token(number),
        created_at,
        at_s(u64::from(spec.created_s) + u64::from(spec.lifetime_s) + 1),
    );
    fields.device_id = spec.device.map(device);
    fields.created_by = spec.creator.map(api_key);
    fields.ip_address = spec.ip.map(ip);
    fields.last_access_ip = spec.last_ip.map(ip);
    fields.user_agent = Some(UserAgent::new("test-agent/1.0").unwrap());
    fields.idle_timeout = spec.idle_s.map(|s| Duration::from_secs(u64::from(s) + 1));
    fields.last_active = at_s(u64::from(spec.created_s) + u64::from(spec.active_s));
    let mut metadata = Metadata::new();
    metadata.insert("n", &number.to_string()).unwrap();
    fields.metadata = metadata;
    fields
}

pub fn new_session(number: u64, spec: &Spec) -> NewSession {
    NewSession::new(fields(number, spec)).unwrap()
}

pub fn session(number: u64, spec: &Spec) -> Session {
    Session::from_fields(fields(number, spec), spec.version).unwrap()
}

pub fn record(number: u64, spec: &Spec) -> SessionRecord {
    SessionRecord::from_session(&session(number, spec))
}

prop_compose! {
    pub fn any_spec()(
        user in 0_u8..4,
        device in proptest::option::of(0_u8..4),
        creator in proptest::option::weighted(0.3, 0_u8..3),
        ip in proptest::option::of(0_u8..4),
        last_ip in proptest::option::weighted(0.3, 0_u8..4),
        created_s in 0_u16..200,
        lifetime_s in 0_u16..400,
        idle_s in proptest::option::weighted(0.3, 0_u16..200),
        active_s in 0_u16..100,
        version in 1_u64..4,
    ) -> Spec {
        Spec { user, device, creator, ip, last_ip, created_s, lifetime_s, idle_s, active_s, version }
    }
}

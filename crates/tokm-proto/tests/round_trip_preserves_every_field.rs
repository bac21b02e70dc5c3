//! Encoding then decoding gives back the same domain value, for sessions and for every kind of
//! mutation.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{Mutation, Session, Timestamp, UserAgent};
use tokm_proto::{decode_mutation, decode_session, encode_mutation, encode_session};

fn sessions(count: u32) -> Vec<Arc<Session>> {
    let mut factory = SessionFactory::new(7, SUITE_START);
    (0..count)
        .map(|index| {
            let mut fields = factory
                .next_for(&SessionFactory::user(index % 3))
                .into_fields();
            // Cover the fields the factory leaves empty: IPv6, idle timeout, metadata.
            if index % 2 == 1 {
                fields.last_access_ip = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
                fields.idle_timeout = Some(Duration::from_millis(900_000));
                fields.user_agent =
                    Some(UserAgent::new("Mozilla/5.0 (X11; Linux x86_64)").expect("ua"));
                fields
                    .metadata
                    .insert("region", "eu-west")
                    .expect("metadata");
            }
            let version = 1 + u64::from(index);
            Arc::new(Session::from_fields(fields, version).expect("valid session"))
        })
        .collect()
}

#[test]
fn sessions_round_trip() {
    for session in sessions(12) {
        let mut bytes = Vec::new();
        encode_session(&session, &mut bytes);
        assert_eq!(decode_session(&bytes).expect("decodes"), *session);
    }
}

#[test]
fn mutations_round_trip() {
    let at = SUITE_START
        .checked_add(Duration::from_secs(5))
        .expect("small");
    for session in sessions(6) {
        let all = [
            Mutation::Create(Arc::clone(&session)),
            Mutation::Update(Arc::clone(&session)),
            Mutation::Delete {
                id: session.id(),
                version: session.version(),
            },
            Mutation::Touch {
                id: session.id(),
                last_active: Timestamp::from_millis(at.as_millis() + 1),
                last_access_ip: session.fields().ip_address,
            },
            Mutation::Touch {
                id: session.id(),
                last_active: at,
                last_access_ip: None,
            },
        ];
        for mutation in all {
            let mut bytes = Vec::new();
            encode_mutation(&mutation, at, &mut bytes);
            let logged = decode_mutation(&bytes).expect("decodes");
            assert_eq!(logged.mutation, mutation);
            assert_eq!(logged.timestamp, at);
        }
    }
}

#[test]
fn encoding_appends_and_is_deterministic() {
    let session = &sessions(2)[1];
    let mut first = b"prefix".to_vec();
    encode_session(session, &mut first);
    let mut second = Vec::new();
    encode_session(session, &mut second);
    assert_eq!(&first[..6], b"prefix");
    assert_eq!(&first[6..], &second[..], "same value, same bytes");
}

//! Messages that decode as protobuf but break a rule come back as typed errors naming the
//! problem, never as a panic or a silently repaired value.

use std::time::Duration;

use prost::Message;
use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{ID_LEN_MAX, Session};
use tokm_proto::{decode_mutation, decode_session, pb, session_to_message};

fn valid_message() -> pb::Session {
    let mut factory = SessionFactory::new(1, SUITE_START);
    let body = factory.next_for(&SessionFactory::user(0));
    session_to_message(&Session::new(body, 1).expect("valid"))
}

fn decode_code(message: &pb::Session) -> &'static str {
    decode_session(&message.encode_to_vec())
        .expect_err("must be refused")
        .code()
}

#[test]
fn a_missing_or_short_id_is_a_length_error() {
    let mut message = valid_message();
    message.id.clear();
    assert_eq!(decode_code(&message), "TM-PROTO-5203");
    message.id = vec![1; 15];
    assert_eq!(decode_code(&message), "TM-PROTO-5203");
}

#[test]
fn a_nil_ulid_is_invalid() {
    let mut message = valid_message();
    message.id = vec![0; 16];
    assert_eq!(decode_code(&message), "TM-PROTO-5205");
}

#[test]
fn an_oversized_user_id_is_invalid_not_truncated() {
    let mut message = valid_message();
    message.user_id = "u".repeat(ID_LEN_MAX + 1);
    assert_eq!(decode_code(&message), "TM-PROTO-5205");
}

#[test]
fn a_token_hash_of_the_wrong_length_is_refused() {
    let mut message = valid_message();
    message.token_hash.pop();
    assert_eq!(decode_code(&message), "TM-PROTO-5203");
}

#[test]
fn an_ip_of_five_bytes_is_refused() {
    let mut message = valid_message();
    message.last_access_ip = vec![1, 2, 3, 4, 5];
    assert_eq!(decode_code(&message), "TM-PROTO-5203");
}

#[test]
fn expiry_before_creation_is_invalid() {
    let mut message = valid_message();
    message.expires_at_ms = message.created_at_ms;
    assert_eq!(decode_code(&message), "TM-PROTO-5205");
}

#[test]
fn version_zero_is_invalid() {
    let mut message = valid_message();
    message.version = 0;
    assert_eq!(decode_code(&message), "TM-PROTO-5205");
}

#[test]
fn a_fractional_or_huge_idle_timeout_is_invalid() {
    let mut message = valid_message();
    message.idle_timeout_ms = Some(u64::MAX);
    assert_eq!(decode_code(&message), "TM-PROTO-5205");
    message.idle_timeout_ms = Some(0);
    assert_eq!(decode_code(&message), "TM-PROTO-5205");
}

#[test]
fn an_unknown_op_is_an_unknown_enum() {
    let entry = pb::WalEntry {
        op: 99,
        session_id: valid_message().id,
        ..pb::WalEntry::default()
    };
    let err = decode_mutation(&entry.encode_to_vec()).expect_err("unknown op");
    assert_eq!(err.code(), "TM-PROTO-5204");
    assert!(err.to_string().contains("99"), "{err}");
}

#[test]
fn an_unspecified_op_is_a_missing_field() {
    let entry = pb::WalEntry {
        session_id: valid_message().id,
        ..pb::WalEntry::default()
    };
    let err = decode_mutation(&entry.encode_to_vec()).expect_err("no op");
    assert_eq!(err.code(), "TM-PROTO-5202");
}

#[test]
fn a_create_without_a_body_is_a_missing_field() {
    let mut entry = pb::WalEntry {
        session_id: valid_message().id,
        version: 1,
        ..pb::WalEntry::default()
    };
    entry.set_op(pb::WalOp::Create);
    let err = decode_mutation(&entry.encode_to_vec()).expect_err("no body");
    assert_eq!(err.code(), "TM-PROTO-5202");
}

#[test]
fn an_entry_whose_id_disagrees_with_its_body_is_invalid() {
    let body = valid_message();
    let mut other_id = body.id.clone();
    other_id[15] ^= 1;
    let mut entry = pb::WalEntry {
        session_id: other_id,
        version: body.version,
        session: Some(body),
        timestamp_ms: (SUITE_START
            .checked_add(Duration::from_secs(1))
            .expect("small"))
        .as_millis(),
        ..pb::WalEntry::default()
    };
    entry.set_op(pb::WalOp::Update);
    let err = decode_mutation(&entry.encode_to_vec()).expect_err("mismatch");
    assert_eq!(err.code(), "TM-PROTO-5205");
}

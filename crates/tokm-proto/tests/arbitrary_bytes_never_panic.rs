//! Every decoder survives arbitrary bytes: damaged files are typed errors, never panics.

use std::sync::Arc;

use proptest::prelude::*;
use tokm_domain::testkit::{SUITE_START, SessionFactory};
use tokm_domain::{Mutation, Session};
use tokm_proto::{decode_mutation, decode_session, encode_mutation, encode_session};

fn valid_encodings() -> (Vec<u8>, Vec<u8>) {
    let mut factory = SessionFactory::new(3, SUITE_START);
    let session =
        Arc::new(Session::new(factory.next_for(&SessionFactory::user(0)), 1).expect("valid"));
    let mut session_bytes = Vec::new();
    encode_session(&session, &mut session_bytes);
    let mut entry_bytes = Vec::new();
    encode_mutation(&Mutation::Update(session), SUITE_START, &mut entry_bytes);
    (session_bytes, entry_bytes)
}

#[test]
fn every_truncation_of_a_valid_encoding_is_handled() {
    let (session_bytes, entry_bytes) = valid_encodings();
    for len in 0..session_bytes.len() {
        // Some prefixes are still valid messages (protobuf has no end marker); all must return.
        let _ = decode_session(&session_bytes[..len]);
    }
    for len in 0..entry_bytes.len() {
        let _ = decode_mutation(&entry_bytes[..len]);
    }
    assert!(decode_session(&session_bytes[..session_bytes.len() - 1]).is_err());
    assert!(decode_mutation(&entry_bytes[..entry_bytes.len() - 1]).is_err());
}

proptest! {
    #[test]
    fn random_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Err(err) = decode_session(&bytes) {
            prop_assert!(err.code().starts_with("TM-PROTO-"));
        }
        if let Err(err) = decode_mutation(&bytes) {
            prop_assert!(err.code().starts_with("TM-PROTO-"));
        }
    }

    #[test]
    fn flipped_bytes_of_valid_encodings_decode_or_fail_cleanly(
        index in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let (mut session_bytes, mut entry_bytes) = valid_encodings();
        let at = index.index(session_bytes.len());
        session_bytes[at] ^= mask;
        let _ = decode_session(&session_bytes);
        let at = index.index(entry_bytes.len());
        entry_bytes[at] ^= mask;
        let _ = decode_mutation(&entry_bytes);
    }
}

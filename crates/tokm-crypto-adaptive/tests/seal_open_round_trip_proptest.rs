//! Property tests: opening undoes sealing for any data, and opening arbitrary bytes returns
//! a typed error instead of panicking.

mod common;

use common::{ALGORITHMS, keyring};
use proptest::prelude::*;
use tokm_crypto_adaptive::{Algorithm, Keyring};

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop::sample::select(ALGORITHMS.to_vec())
}

fn keyring_for(algorithm: Algorithm) -> Keyring {
    keyring(algorithm, &[1, 2])
}

proptest! {
    #[test]
    fn open_undoes_seal_for_blobs(
        algorithm in algorithm(),
        aad in prop::collection::vec(any::<u8>(), 0..64),
        plaintext in prop::collection::vec(any::<u8>(), 0..1024),
    ) {
        let keyring = keyring_for(algorithm);
        let blob = keyring.seal(&aad, &plaintext).expect("seal");
        prop_assert_eq!(keyring.open(&aad, &blob).expect("open"), plaintext);
    }

    #[test]
    fn open_undoes_seal_for_file_records(
        algorithm in algorithm(),
        counter in any::<u64>(),
        aad in prop::collection::vec(any::<u8>(), 0..64),
        plaintext in prop::collection::vec(any::<u8>(), 0..1024),
        prefix in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let cipher = keyring_for(algorithm).new_file_cipher().expect("cipher");
        let mut sealed = prefix.clone();
        cipher.seal_into(counter, &aad, &plaintext, &mut sealed).expect("seal");
        let mut out = prefix.clone();
        cipher.open_into(counter, &aad, &sealed[prefix.len()..], &mut out).expect("open");
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        prop_assert_eq!(&out[prefix.len()..], &plaintext[..]);
    }

    #[test]
    fn open_returns_an_error_for_arbitrary_bytes(
        algorithm in algorithm(),
        blob in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        prop_assert!(keyring_for(algorithm).open(b"", &blob).is_err());
    }

    #[test]
    fn open_returns_an_error_for_arbitrary_bytes_behind_a_valid_header(
        algorithm in algorithm(),
        key_id in 0_u8..4,
        body in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        // Version 1, a valid algorithm, a key id that is often known: reaches the AEAD.
        let mut blob = vec![1, algorithm.id(), key_id, 0, 0, 0];
        blob.extend_from_slice(&body);
        prop_assert!(keyring_for(algorithm).open(b"", &blob).is_err());
    }

    #[test]
    fn open_into_returns_an_error_for_arbitrary_bytes_and_keeps_out(
        algorithm in algorithm(),
        counter in any::<u64>(),
        sealed in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let cipher = keyring_for(algorithm).new_file_cipher().expect("cipher");
        let mut out = b"kept".to_vec();
        prop_assert!(cipher.open_into(counter, b"", &sealed, &mut out).is_err());
        prop_assert_eq!(out, b"kept");
    }
}

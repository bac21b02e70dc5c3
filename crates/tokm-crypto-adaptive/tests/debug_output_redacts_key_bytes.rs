//! `Debug` of keys, keyrings and file ciphers shows no key or subkey bytes, in any rendering.

mod common;

use common::{ALGORITHMS, key, key_bytes};
use tokm_crypto_adaptive::{CryptoError, KeyId, Keyring};

/// Renderings of 4-byte windows of `secret` that a leak would contain: lower and upper hex,
/// the `Debug` of a byte slice, and the raw bytes as text.
fn leak_patterns(secret: &[u8]) -> Vec<String> {
    let mut patterns = Vec::new();
    for window in secret.windows(4) {
        let lower: String = window.iter().map(|b| format!("{b:02x}")).collect();
        patterns.push(lower.to_uppercase());
        patterns.push(lower);
        let decimal = format!("{window:?}");
        patterns.push(decimal.trim_matches(['[', ']']).to_owned());
        patterns.push(String::from_utf8_lossy(window).into_owned());
    }
    patterns
}

fn assert_no_leak(rendered: &str, secret: &[u8], what: &str) {
    for pattern in leak_patterns(secret) {
        assert!(
            !rendered.contains(&pattern),
            "{what} leaks {pattern:?}: {rendered}"
        );
    }
}

/// The documented per-file subkey derivation, recomputed here to look for it in `Debug`.
fn subkey(key: &[u8; 32], salt: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key(
        "tokm 2026-11 file subkey v1",
        &[&key[..], &salt[..]].concat(),
    )
}

#[test]
fn key_debug_is_redacted() {
    let rendered = format!("{:?} {:#?}", key(9), key(9));
    assert_no_leak(&rendered, &key_bytes(9), "Key");
    assert!(rendered.contains("redacted"));
}

#[test]
fn keyring_debug_shows_ids_and_algorithm_only() {
    for algorithm in ALGORITHMS {
        let mut keyring = Keyring::new(KeyId::new(9), key(9), algorithm);
        keyring.insert(KeyId::new(10), key(10)).expect("insert");
        let rendered = format!("{keyring:?} {keyring:#?}");
        assert_no_leak(&rendered, &key_bytes(9), "Keyring");
        assert_no_leak(&rendered, &key_bytes(10), "Keyring");
        assert!(rendered.contains(&format!("{algorithm:?}")), "{rendered}");
        assert!(rendered.contains("10"), "{rendered}");
    }
}

#[test]
fn file_cipher_debug_shows_neither_key_nor_subkey() {
    for algorithm in ALGORITHMS {
        let keyring = Keyring::new(KeyId::new(9), key(9), algorithm);
        let cipher = keyring.new_file_cipher().expect("cipher");
        let rendered = format!("{cipher:?} {cipher:#?}");
        assert_no_leak(&rendered, &key_bytes(9), "FileCipher");
        let subkey = subkey(&key_bytes(9), cipher.salt().as_bytes());
        assert_no_leak(&rendered, &subkey, "FileCipher");
        assert!(rendered.contains("redacted"), "{rendered}");
    }
}

#[test]
fn errors_from_opening_show_no_key_or_plaintext() {
    let keyring = Keyring::new(KeyId::new(9), key(9), ALGORITHMS[0]);
    let mut blob = keyring.seal(b"", b"PLAINTEXT-MARKER").expect("seal");
    let last = blob.len() - 1;
    blob[last] ^= 1;
    let error: CryptoError = keyring.open(b"", &blob).expect_err("tampered");
    let rendered = format!("{error} {error:?}");
    assert_no_leak(&rendered, &key_bytes(9), "CryptoError");
    assert!(!rendered.contains("PLAINTEXT"));
}

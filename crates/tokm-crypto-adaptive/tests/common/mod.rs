//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use tokm_crypto_adaptive::{Algorithm, Key, KeyId, Keyring};

/// Both algorithms, so every behaviour is checked under each.
pub const ALGORITHMS: [Algorithm; 2] = [Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305];

/// Deterministic key material: distinct bytes, so any leaked window is recognisable.
pub fn key_bytes(seed: u8) -> [u8; 32] {
    std::array::from_fn(|i| {
        seed.wrapping_mul(31)
            .wrapping_add(u8::try_from(i).unwrap_or(0) * 7 + 1)
    })
}

pub fn key(seed: u8) -> Key {
    Key::from_bytes(&key_bytes(seed)).expect("32 bytes make a key")
}

/// A keyring whose key `id` is built from seed `id`, with the first id active.
pub fn keyring(algorithm: Algorithm, ids: &[u32]) -> Keyring {
    let (first, rest) = ids.split_first().expect("at least one key id");
    let mut keyring = Keyring::new(KeyId::new(*first), key(seed(*first)), algorithm);
    for id in rest {
        keyring
            .insert(KeyId::new(*id), key(seed(*id)))
            .expect("distinct key ids");
    }
    keyring
}

fn seed(id: u32) -> u8 {
    u8::try_from(id % 251).unwrap_or(0)
}

//! [`KeyLayout`]: the name of every key the store writes.
//!
//! ```text
//! NS:{u:<fp>}:r     hash    session id (ULID text) -> session record (tokm_domain::SessionRecord bytes)
//! NS:{u:<fp>}:c     zset    session id, score created_at ms      (quota's "oldest", list_by_user)
//! NS:{u:<fp>}:e     zset    session id, score expiry ms          (live count, cleanup)
//! NS:{s:<id>}       string  <fp>                                 (session id -> owner; a hint)
//! NS:{t:<hash>}     string  <fp>:<id>                            (token hash -> owner and id; a hint)
//! ```
//!
//! `<fp>` is the user's fingerprint: the first 16 bytes of a BLAKE3 key derivation over the user
//! id, in hex. A user id may contain `{` and `}`, which would change the hash slot, and may be
//! 128 bytes long; the fingerprint is neither. The three keys of one user share the hash tag
//! `{u:<fp>}`, so they live in one slot and a Lua script can change them together.

use std::fmt::{self, Write as _};

use tokm_domain::{SessionId, TokenHash, UserId};

/// BLAKE3 key-derivation context of user fingerprints; changing it moves every user's keys.
const FINGERPRINT_CONTEXT: &str = "tokm-redis 2026 user slot v1";

/// Suffix of a user's record hash.
const RECORDS_SUFFIX: &str = ":r";
/// Suffix of a user's `created_at` index.
const CREATED_SUFFIX: &str = ":c";
/// Suffix of a user's expiry index.
const EXPIRY_SUFFIX: &str = ":e";

/// A user's fingerprint: which slot their keys live in. Two users share one with probability
/// about `n² / 2¹²⁹` for `n` users.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserFingerprint([u8; 16]);

impl UserFingerprint {
    /// The fingerprint of `user_id`.
    pub fn of(user_id: &UserId) -> UserFingerprint {
        let derived = blake3::derive_key(FINGERPRINT_CONTEXT, user_id.as_str().as_bytes());
        let mut bytes = [0; 16];
        bytes.copy_from_slice(&derived[..16]);
        UserFingerprint(bytes)
    }

    /// The fingerprint in lowercase hex, 32 characters: the form in keys and pointers.
    pub fn to_hex(self) -> String {
        hex(&self.0)
    }
}

impl fmt::Debug for UserFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserFingerprint({})", self.to_hex())
    }
}

/// The keys of one user: the record hash and the two time indexes, all in one slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserKeys {
    /// `NS:{u:<fp>}:r`, the records.
    pub records: String,
    /// `NS:{u:<fp>}:c`, ids by `created_at`.
    pub created: String,
    /// `NS:{u:<fp>}:e`, ids by expiry.
    pub expiry: String,
}

/// The key names of one namespace (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyLayout {
    namespace: String,
}

impl KeyLayout {
    /// The layout under `namespace`, which must already follow the namespace rules of
    /// [`RedisClusterOptions::namespace`](crate::RedisClusterOptions::namespace).
    pub(crate) fn new(namespace: &str) -> KeyLayout {
        KeyLayout {
            namespace: namespace.to_owned(),
        }
    }

    /// The namespace every key starts with.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The keys of `user_id`.
    pub fn user(&self, user_id: &UserId) -> UserKeys {
        self.user_by_fingerprint(&UserFingerprint::of(user_id).to_hex())
    }

    /// The keys of the user whose fingerprint is `fingerprint_hex` (as stored in a pointer).
    pub(crate) fn user_by_fingerprint(&self, fingerprint_hex: &str) -> UserKeys {
        let base = format!("{}:{{u:{fingerprint_hex}}}", self.namespace);
        UserKeys {
            records: format!("{base}{RECORDS_SUFFIX}"),
            created: format!("{base}{CREATED_SUFFIX}"),
            expiry: format!("{base}{EXPIRY_SUFFIX}"),
        }
    }

    /// The keys of the user whose expiry index is `expiry_key`, or `None` if it is not one.
    pub(crate) fn user_from_expiry_key(&self, expiry_key: &str) -> Option<UserKeys> {
        let base = expiry_key.strip_suffix(EXPIRY_SUFFIX)?;
        base.strip_prefix(&self.namespace)?.strip_prefix(":{u:")?;
        Some(UserKeys {
            records: format!("{base}{RECORDS_SUFFIX}"),
            created: format!("{base}{CREATED_SUFFIX}"),
            expiry: expiry_key.to_owned(),
        })
    }

    /// `NS:{s:<id>}`: the session id's pointer to its owner's fingerprint.
    pub fn session_pointer(&self, id: SessionId) -> String {
        format!("{}:{{s:{id}}}", self.namespace)
    }

    /// `NS:{t:<hash hex>}`: the token hash's pointer to `<fp>:<id>`. The name holds the token
    /// hash, so it is never put in an error or a log line.
    pub fn token_pointer(&self, token_hash: &TokenHash) -> String {
        let mut key = format!("{}:{{t:", self.namespace);
        key.push_str(&hex(token_hash.as_bytes()));
        key.push('}');
        key
    }

    /// `SCAN MATCH` pattern of every user's record hash in this namespace.
    pub(crate) fn records_pattern(&self) -> String {
        format!("{}:{{u:*}}{RECORDS_SUFFIX}", self.namespace)
    }

    /// `SCAN MATCH` pattern of every user's expiry index in this namespace.
    pub(crate) fn expiry_pattern(&self) -> String {
        format!("{}:{{u:*}}{EXPIRY_SUFFIX}", self.namespace)
    }
}

/// The value of a token pointer: `<fp>:<id>`.
pub(crate) fn token_pointer_value(fingerprint_hex: &str, id: SessionId) -> String {
    format!("{fingerprint_hex}:{id}")
}

/// `(fingerprint, id text)` of a token pointer's value, or `None` if it is not one.
pub(crate) fn parse_token_pointer(value: &[u8]) -> Option<(&str, &str)> {
    let text = std::str::from_utf8(value).ok()?;
    let (fingerprint, id) = text.split_once(':')?;
    (is_fingerprint(fingerprint) && !id.is_empty()).then_some((fingerprint, id))
}

/// Whether `text` looks like a fingerprint in hex (32 lowercase hex digits).
pub(crate) fn is_fingerprint(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(text, "{byte:02x}");
    }
    text
}

#[cfg(test)]
mod tests {
    use redis::cluster_routing::Slot;
    use tokm_domain::Timestamp;

    use super::*;

    #[test]
    fn a_users_keys_share_one_slot_whatever_braces_the_user_id_holds() {
        let layout = KeyLayout::new("tokm");
        for user in ["alice", "{evil}", "a}b{c", "}{"] {
            let keys = layout.user(&UserId::new(user).unwrap());
            let slot = Slot::for_key(&keys.records);
            assert_eq!(Slot::for_key(&keys.created), slot, "{user}");
            assert_eq!(Slot::for_key(&keys.expiry), slot, "{user}");
            assert!(keys.records.starts_with("tokm:{u:"), "{}", keys.records);
            assert_eq!(layout.user_from_expiry_key(&keys.expiry), Some(keys));
        }
        assert_eq!(layout.user_from_expiry_key("other:{u:00}:e"), None);
        assert_eq!(layout.user_from_expiry_key("tokm:{u:00}:r"), None);
    }

    #[test]
    fn fingerprints_differ_per_user_and_pointers_parse_back() {
        let a = UserFingerprint::of(&UserId::new("a").unwrap()).to_hex();
        let b = UserFingerprint::of(&UserId::new("b").unwrap()).to_hex();
        assert_ne!(a, b);
        assert!(is_fingerprint(&a));
        let id = SessionId::from_parts(Timestamp::from_millis(1), 9).unwrap();
        let value = token_pointer_value(&a, id);
        assert_eq!(
            parse_token_pointer(value.as_bytes()),
            Some((a.as_str(), id.to_string().as_str()))
        );
        assert_eq!(parse_token_pointer(b"nonsense"), None);
        assert_eq!(parse_token_pointer(b"ABCD:x"), None);
    }

    #[test]
    fn patterns_match_only_this_namespace() {
        let layout = KeyLayout::new("ns");
        assert_eq!(layout.records_pattern(), "ns:{u:*}:r");
        assert_eq!(layout.expiry_pattern(), "ns:{u:*}:e");
        let token = TokenHash::from_bytes([0xab; 32]);
        assert_eq!(
            layout.token_pointer(&token),
            format!("ns:{{t:{}}}", "ab".repeat(32))
        );
    }
}

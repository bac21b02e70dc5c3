//! Domain values to messages and back. Encoding cannot fail; decoding checks everything.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokm_domain::{
    ApiKeyId, DeviceId, Metadata, Mutation, Session, SessionFields, SessionId, Timestamp,
    TokenHash, UserAgent, UserId,
};

use crate::error::ProtoError;
use crate::pb;

/// A mutation as read back from a log entry, with the time it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedMutation {
    /// What changed.
    pub mutation: Mutation,
    /// When, by the writer's clock.
    pub timestamp: Timestamp,
}

/// Appends the protobuf encoding of `session` to `out`.
pub fn encode_session(session: &Session, out: &mut Vec<u8>) {
    let message = session_to_message(session);
    out.reserve(message.encoded_len());
    message
        .encode(out)
        .expect("a Vec<u8> grows as needed, so encoding cannot run out of room");
}

/// Decodes and validates one `tokm.v1.Session`.
pub fn decode_session(bytes: &[u8]) -> Result<Session, ProtoError> {
    let message = pb::Session::decode(bytes).map_err(|source| ProtoError::Decode {
        message: "Session",
        source,
    })?;
    session_from_message(message)
}

/// Appends the `tokm.v1.WalEntry` encoding of `mutation`, made at `timestamp`, to `out`.
pub fn encode_mutation(mutation: &Mutation, timestamp: Timestamp, out: &mut Vec<u8>) {
    let mut entry = pb::WalEntry {
        timestamp_ms: timestamp.as_millis(),
        session_id: mutation.session_id().to_bytes().to_vec(),
        ..pb::WalEntry::default()
    };
    match mutation {
        Mutation::Create(session) | Mutation::Update(session) => {
            let op = if matches!(mutation, Mutation::Create(_)) {
                pb::WalOp::Create
            } else {
                pb::WalOp::Update
            };
            entry.set_op(op);
            entry.version = session.version();
            entry.session = Some(session_to_message(session));
        }
        Mutation::Delete { version, .. } => {
            entry.set_op(pb::WalOp::Delete);
            entry.version = *version;
        }
        Mutation::Touch {
            last_active,
            last_access_ip,
            ..
        } => {
            entry.set_op(pb::WalOp::Touch);
            entry.last_active_ms = last_active.as_millis();
            entry.last_access_ip = ip_to_bytes(*last_access_ip);
        }
    }
    out.reserve(entry.encoded_len());
    entry
        .encode(out)
        .expect("a Vec<u8> grows as needed, so encoding cannot run out of room");
}

/// Decodes and validates one `tokm.v1.WalEntry`.
pub fn decode_mutation(bytes: &[u8]) -> Result<LoggedMutation, ProtoError> {
    let entry = pb::WalEntry::decode(bytes).map_err(|source| ProtoError::Decode {
        message: "WalEntry",
        source,
    })?;
    let op = pb::WalOp::try_from(entry.op).map_err(|_| ProtoError::UnknownEnum {
        field: "WalEntry.op",
        value: entry.op,
    })?;
    let id = session_id_from_bytes("WalEntry.session_id", &entry.session_id)?;
    let mutation = match op {
        pb::WalOp::Unspecified => {
            return Err(ProtoError::MissingField {
                message: "WalEntry",
                field: "op",
            });
        }
        pb::WalOp::Create | pb::WalOp::Update => {
            let message = entry.session.ok_or(ProtoError::MissingField {
                message: "WalEntry",
                field: "session",
            })?;
            let session = Arc::new(session_from_message(message)?);
            // The entry's own id and version must agree with the body it carries; a mismatch
            // means the entry was assembled wrongly or damaged in a way protobuf cannot see.
            if session.id() != id || session.version() != entry.version {
                return Err(ProtoError::Invalid {
                    source: tokm_domain::SessionError::InvalidField {
                        field: "WalEntry.session",
                        reason: "id or version differs from the entry's".into(),
                    },
                });
            }
            if op == pb::WalOp::Create {
                Mutation::Create(session)
            } else {
                Mutation::Update(session)
            }
        }
        pb::WalOp::Delete => Mutation::Delete {
            id,
            version: entry.version,
        },
        pb::WalOp::Touch => Mutation::Touch {
            id,
            last_active: Timestamp::from_millis(entry.last_active_ms),
            last_access_ip: ip_from_bytes("WalEntry.last_access_ip", &entry.last_access_ip)?,
        },
    };
    Ok(LoggedMutation {
        mutation,
        timestamp: Timestamp::from_millis(entry.timestamp_ms),
    })
}

/// The message for `session`. Every domain value has a message form, so this cannot fail.
pub fn session_to_message(session: &Session) -> pb::Session {
    let fields = session.fields();
    pb::Session {
        id: fields.id.to_bytes().to_vec(),
        user_id: fields.user_id.as_str().to_owned(),
        token_hash: fields.token_hash.as_bytes().to_vec(),
        device_id: fields.device_id.as_ref().map(|id| id.as_str().to_owned()),
        created_by: fields.created_by.as_ref().map(|id| id.as_str().to_owned()),
        ip_address: ip_to_bytes(fields.ip_address),
        last_access_ip: ip_to_bytes(fields.last_access_ip),
        user_agent: fields.user_agent.as_ref().map(|ua| ua.as_str().to_owned()),
        created_at_ms: fields.created_at.as_millis(),
        last_active_ms: fields.last_active.as_millis(),
        expires_at_ms: fields.expires_at.as_millis(),
        // Validated sessions hold whole milliseconds below IDLE_TIMEOUT_MAX, so this is exact.
        idle_timeout_ms: fields
            .idle_timeout
            .map(|idle| u64::try_from(idle.as_millis()).unwrap_or(u64::MAX)),
        metadata: fields.metadata.to_map(),
        version: session.version(),
    }
}

/// The domain session for `message`, validated exactly as caller input is.
pub fn session_from_message(message: pb::Session) -> Result<Session, ProtoError> {
    let id = session_id_from_bytes("Session.id", &message.id)?;
    let token_hash: [u8; 32] =
        message
            .token_hash
            .as_slice()
            .try_into()
            .map_err(|_| ProtoError::BadLength {
                field: "Session.token_hash",
                len: message.token_hash.len(),
                expected: "32",
            })?;
    let fields = SessionFields {
        id,
        user_id: UserId::new(&message.user_id)?,
        token_hash: TokenHash::from_bytes(token_hash),
        device_id: message
            .device_id
            .as_deref()
            .map(DeviceId::new)
            .transpose()?,
        created_by: message
            .created_by
            .as_deref()
            .map(ApiKeyId::new)
            .transpose()?,
        ip_address: ip_from_bytes("Session.ip_address", &message.ip_address)?,
        last_access_ip: ip_from_bytes("Session.last_access_ip", &message.last_access_ip)?,
        user_agent: message
            .user_agent
            .as_deref()
            .map(UserAgent::new)
            .transpose()?,
        created_at: Timestamp::from_millis(message.created_at_ms),
        last_active: Timestamp::from_millis(message.last_active_ms),
        expires_at: Timestamp::from_millis(message.expires_at_ms),
        idle_timeout: message.idle_timeout_ms.map(Duration::from_millis),
        metadata: Metadata::from_map(message.metadata)?,
    };
    Ok(Session::from_fields(fields, message.version)?)
}

fn session_id_from_bytes(field: &'static str, bytes: &[u8]) -> Result<SessionId, ProtoError> {
    let raw: [u8; 16] = bytes.try_into().map_err(|_| ProtoError::BadLength {
        field,
        len: bytes.len(),
        expected: "16",
    })?;
    Ok(SessionId::from_bytes(raw)?)
}

fn ip_to_bytes(ip: Option<IpAddr>) -> Vec<u8> {
    match ip {
        None => Vec::new(),
        Some(IpAddr::V4(v4)) => v4.octets().to_vec(),
        Some(IpAddr::V6(v6)) => v6.octets().to_vec(),
    }
}

fn ip_from_bytes(field: &'static str, bytes: &[u8]) -> Result<Option<IpAddr>, ProtoError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Ok(Some(IpAddr::V4(Ipv4Addr::from(v4))));
    }
    if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        return Ok(Some(IpAddr::V6(Ipv6Addr::from(v6))));
    }
    Err(ProtoError::BadLength {
        field,
        len: bytes.len(),
        expected: "0, 4 or 16",
    })
}

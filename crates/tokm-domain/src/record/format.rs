//! The byte layout of a [`SessionRecord`](super::SessionRecord), format version 1: the only
//! code that reads or writes its offsets.
//!
//! All integers little-endian. The fixed part is 95 bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | version |
//! | 8 | 16 | id, big-endian ULID bytes |
//! | 24 | 32 | token hash |
//! | 56 | 8 | `created_at`, ms since the epoch |
//! | 64 | 8 | `last_active`, ms |
//! | 72 | 8 | `expires_at`, ms |
//! | 80 | 8 | `idle_timeout` in ms, 0 when none |
//! | 88 | 1 | address flags: bits 0-1 `ip_address`, bits 2-3 `last_access_ip` (0 none, 1 IPv4, 2 IPv6) |
//! | 89 | 1 | `user_id` length, 1-128 |
//! | 90 | 1 | `device_id` length, 0 when none |
//! | 91 | 1 | `created_by` length, 0 when none |
//! | 92 | 2 | `user_agent` length, 0 when none |
//! | 94 | 1 | metadata entry count |
//!
//! Then, in this order and without padding: `user_id`, `device_id`, `created_by`, the two
//! addresses (4 or 16 bytes each, when present), `user_agent`, and each metadata entry as key
//! length (1 byte), value length (2 bytes), key, value, in ascending key order. The record ends
//! exactly after the last entry.
//!
//! Absent optional text is stored as length 0, which is unambiguous because every present
//! optional text is non-empty (the field types refuse empty values).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use crate::id::{ApiKeyId, DeviceId};
use crate::session::{SessionFields, UserAgent};

/// The range of a `len`-byte field that follows `previous`: offsets derive from sizes.
const fn after(previous: Range<usize>, len: usize) -> Range<usize> {
    previous.end..previous.end + len
}

pub(super) const VERSION: Range<usize> = 0..8;
pub(super) const ID: Range<usize> = after(VERSION, 16);
pub(super) const TOKEN: Range<usize> = after(ID, 32);
pub(super) const CREATED_AT: Range<usize> = after(TOKEN, 8);
pub(super) const LAST_ACTIVE: Range<usize> = after(CREATED_AT, 8);
pub(super) const EXPIRES_AT: Range<usize> = after(LAST_ACTIVE, 8);
pub(super) const IDLE_TIMEOUT: Range<usize> = after(EXPIRES_AT, 8);
pub(super) const ADDRESS_FLAGS: Range<usize> = after(IDLE_TIMEOUT, 1);
const USER_ID_LEN: Range<usize> = after(ADDRESS_FLAGS, 1);
const DEVICE_ID_LEN: Range<usize> = after(USER_ID_LEN, 1);
const CREATED_BY_LEN: Range<usize> = after(DEVICE_ID_LEN, 1);
const USER_AGENT_LEN: Range<usize> = after(CREATED_BY_LEN, 2);
pub(super) const METADATA_COUNT: Range<usize> = after(USER_AGENT_LEN, 1);
/// Bytes before the variable-length part of a record.
pub(crate) const FIXED_LEN: usize = METADATA_COUNT.end;
const _: () = assert!(FIXED_LEN == 95, "the documented fixed part is 95 bytes");

/// Bytes a metadata entry takes besides its key and value: key length (1), value length (2).
pub(super) const ENTRY_HEADER_LEN: usize = 3;

const ADDRESS_NONE: u8 = 0;
const ADDRESS_V4: u8 = 1;
const ADDRESS_V6: u8 = 2;

/// The little-endian `u64` at `range` (8 bytes) of `bytes`.
pub(super) fn read_u64(bytes: &[u8], range: Range<usize>) -> u64 {
    let mut out = [0; 8];
    out.copy_from_slice(&bytes[range]);
    u64::from_le_bytes(out)
}

/// Overwrites the little-endian `u64` at `range` (8 bytes) of `bytes`.
pub(super) fn write_u64(bytes: &mut [u8], range: Range<usize>, value: u64) {
    bytes[range].copy_from_slice(&value.to_le_bytes());
}

/// The little-endian `u16` at `range` (2 bytes) of `bytes`.
fn read_u16(bytes: &[u8], range: Range<usize>) -> u16 {
    let mut out = [0; 2];
    out.copy_from_slice(&bytes[range]);
    u16::from_le_bytes(out)
}

/// The one-byte field at `range` of `bytes`.
fn read_u8(bytes: &[u8], range: Range<usize>) -> u8 {
    bytes[range.start]
}

/// The number of metadata entries a record's fixed part declares.
pub(super) fn metadata_count(bytes: &[u8]) -> usize {
    usize::from(read_u8(bytes, METADATA_COUNT))
}

/// Lays out validated `fields` (the caller guarantees the session rules hold).
pub(super) fn encode(fields: &SessionFields, version: u64) -> Vec<u8> {
    let text_len = |text: Option<&str>| text.map_or(0, str::len);
    let device_id = fields.device_id.as_ref().map(DeviceId::as_str);
    let created_by = fields.created_by.as_ref().map(ApiKeyId::as_str);
    let user_agent = fields.user_agent.as_ref().map(UserAgent::as_str);
    let metadata_len: usize = fields
        .metadata
        .iter()
        .map(|(key, value)| ENTRY_HEADER_LEN + key.len() + value.len())
        .sum();
    let len = FIXED_LEN
        + fields.user_id.as_str().len()
        + text_len(device_id)
        + text_len(created_by)
        + address_len(fields.ip_address)
        + address_len(fields.last_access_ip)
        + text_len(user_agent)
        + metadata_len;
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.extend_from_slice(&fields.id.to_bytes());
    bytes.extend_from_slice(fields.token_hash.as_bytes());
    for at in [fields.created_at, fields.last_active, fields.expires_at] {
        bytes.extend_from_slice(&at.as_millis().to_le_bytes());
    }
    let idle_ms = fields.idle_timeout.map_or(0, |idle| idle.as_millis());
    bytes.extend_from_slice(&(idle_ms as u64).to_le_bytes());
    bytes.push(address_kind(fields.ip_address) | address_kind(fields.last_access_ip) << 2);
    // Each length fits its byte: the field types enforce ID_LEN_MAX (128),
    // USER_AGENT_LEN_MAX (512) and METADATA_ENTRIES_MAX (16).
    bytes.push(fields.user_id.as_str().len() as u8);
    bytes.push(text_len(device_id) as u8);
    bytes.push(text_len(created_by) as u8);
    bytes.extend_from_slice(&(text_len(user_agent) as u16).to_le_bytes());
    bytes.push(fields.metadata.len() as u8);
    bytes.extend_from_slice(fields.user_id.as_str().as_bytes());
    for text in [device_id, created_by].into_iter().flatten() {
        bytes.extend_from_slice(text.as_bytes());
    }
    for ip in [fields.ip_address, fields.last_access_ip]
        .into_iter()
        .flatten()
    {
        match ip {
            IpAddr::V4(v4) => bytes.extend_from_slice(&v4.octets()),
            IpAddr::V6(v6) => bytes.extend_from_slice(&v6.octets()),
        }
    }
    if let Some(user_agent) = user_agent {
        bytes.extend_from_slice(user_agent.as_bytes());
    }
    for (key, value) in fields.metadata.iter() {
        bytes.push(key.len() as u8);
        bytes.extend_from_slice(&(value.len() as u16).to_le_bytes());
        bytes.extend_from_slice(key.as_bytes());
        bytes.extend_from_slice(value.as_bytes());
    }
    debug_assert_eq!(bytes.len(), len);
    bytes
}

/// Where each variable-length field of a record lies.
pub(super) struct Layout {
    pub(super) user_id: Range<usize>,
    pub(super) device_id: Range<usize>,
    pub(super) created_by: Range<usize>,
    pub(super) ip_address: Range<usize>,
    pub(super) last_access_ip: Range<usize>,
    pub(super) user_agent: Range<usize>,
    pub(super) metadata_start: usize,
}

impl Layout {
    /// The field ranges read from the fixed part; `None` when they run past the end of `bytes`
    /// or an address kind is unknown.
    pub(super) fn of(bytes: &[u8]) -> Option<Layout> {
        if bytes.len() < FIXED_LEN {
            return None;
        }
        let flags = read_u8(bytes, ADDRESS_FLAGS);
        let ip_len = address_kind_len(flags & 0b11)?;
        let last_ip_len = address_kind_len(flags >> 2 & 0b11)?;
        if flags >> 4 != 0 {
            return None;
        }
        let user_agent_len = usize::from(read_u16(bytes, USER_AGENT_LEN));
        let mut at = FIXED_LEN;
        let mut take = |len: usize| {
            let range = at..at + len;
            at += len;
            range
        };
        let layout = Layout {
            user_id: take(usize::from(read_u8(bytes, USER_ID_LEN))),
            device_id: take(usize::from(read_u8(bytes, DEVICE_ID_LEN))),
            created_by: take(usize::from(read_u8(bytes, CREATED_BY_LEN))),
            ip_address: take(ip_len),
            last_access_ip: take(last_ip_len),
            user_agent: take(user_agent_len),
            metadata_start: at,
        };
        (layout.metadata_start <= bytes.len()).then_some(layout)
    }
}

/// One metadata entry's key and value ranges.
pub(super) struct EntryRanges {
    pub(super) key: Range<usize>,
    pub(super) value: Range<usize>,
}

/// The entry starting at `at` and where the next begins; `None` if it runs past the end.
pub(super) fn metadata_entry(bytes: &[u8], at: usize) -> Option<(EntryRanges, usize)> {
    let header = bytes.get(at..at + ENTRY_HEADER_LEN)?;
    let key_len = usize::from(header[0]);
    let value_len = usize::from(read_u16(header, 1..3));
    let key = at + ENTRY_HEADER_LEN..at + ENTRY_HEADER_LEN + key_len;
    let value = key.end..key.end + value_len;
    let next = value.end;
    (next <= bytes.len()).then_some((EntryRanges { key, value }, next))
}

fn address_kind(ip: Option<IpAddr>) -> u8 {
    match ip {
        None => ADDRESS_NONE,
        Some(IpAddr::V4(_)) => ADDRESS_V4,
        Some(IpAddr::V6(_)) => ADDRESS_V6,
    }
}

fn address_len(ip: Option<IpAddr>) -> usize {
    match ip {
        None => 0,
        Some(IpAddr::V4(_)) => 4,
        Some(IpAddr::V6(_)) => 16,
    }
}

fn address_kind_len(kind: u8) -> Option<usize> {
    match kind {
        ADDRESS_NONE => Some(0),
        ADDRESS_V4 => Some(4),
        ADDRESS_V6 => Some(16),
        _ => None,
    }
}

pub(super) fn address(bytes: &[u8], range: Range<usize>) -> Option<IpAddr> {
    let octets = &bytes[range];
    if let Ok(v4) = <[u8; 4]>::try_from(octets) {
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    <[u8; 16]>::try_from(octets)
        .ok()
        .map(|v6| IpAddr::V6(Ipv6Addr::from(v6)))
}

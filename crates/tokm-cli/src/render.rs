//! JSON shapes shared by the commands: sessions, mutations, log segments, recovery reports.
//!
//! Secrets never reach these: the token is stored only as its hash (printed as hex), and
//! metadata values are printed as their lengths only (as `Debug` of `Metadata` does), since
//! callers put anything there. User agents and IP addresses are printed: an operator needs
//! them to find a session, and they are not credentials.

use serde_json::{Value, json};
use tokm_crypto_adaptive::KeyId;
use tokm_domain::{Mutation, Session, SessionFields};
use tokm_proto::LoggedMutation;
use tokm_storage::Lsn;
use tokm_wal::{DamageKind, LogLoss, RecoveryReport, SegmentId, SegmentInfo};

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// A session body as JSON.
pub(crate) fn session(session: &Session) -> Value {
    let mut value = fields(session.fields());
    value["version"] = json!(session.version());
    value
}

fn fields(fields: &SessionFields) -> Value {
    let metadata_value_lengths: serde_json::Map<String, Value> = fields
        .metadata
        .iter()
        .map(|(key, value)| (key.to_owned(), json!(value.len())))
        .collect();
    json!({
        "id": fields.id.to_string(),
        "user_id": fields.user_id.as_str(),
        "token_hash": hex(fields.token_hash.as_bytes()),
        "device_id": fields.device_id.as_ref().map(|id| id.as_str()),
        "created_by": fields.created_by.as_ref().map(|id| id.as_str()),
        "ip_address": fields.ip_address.map(|ip| ip.to_string()),
        "last_access_ip": fields.last_access_ip.map(|ip| ip.to_string()),
        "user_agent": fields.user_agent.as_ref().map(|agent| agent.as_str()),
        "created_at_ms": fields.created_at.as_millis(),
        "last_active_ms": fields.last_active.as_millis(),
        "expires_at_ms": fields.expires_at.as_millis(),
        "idle_timeout_ms": fields.idle_timeout.map(|timeout| timeout.as_millis()),
        "metadata_value_lengths": metadata_value_lengths,
    })
}

/// One logged mutation as a JSON object (without the LSN).
pub(crate) fn mutation(logged: &LoggedMutation) -> Value {
    let mut value = match &logged.mutation {
        Mutation::Create(body) => json!({"op": "create", "session": session(body)}),
        Mutation::Update(body) => json!({"op": "update", "session": session(body)}),
        Mutation::Delete { version, .. } => json!({"op": "delete", "version": version}),
        Mutation::Touch {
            last_active,
            last_access_ip,
            ..
        } => json!({
            "op": "touch",
            "last_active_ms": last_active.as_millis(),
            "last_access_ip": last_access_ip.map(|ip| ip.to_string()),
        }),
    };
    value["session_id"] = json!(logged.mutation.session_id().to_string());
    value["timestamp_ms"] = json!(logged.timestamp.as_millis());
    value
}

/// A stable snake-case name for a damage kind.
pub(crate) fn damage_kind(kind: DamageKind) -> &'static str {
    match kind {
        DamageKind::BadHeader => "bad_header",
        DamageKind::BadFrame => "bad_frame",
        DamageKind::LsnOutOfOrder => "lsn_out_of_order",
        DamageKind::AuthenticationFailed => "authentication_failed",
        _ => "other",
    }
}

/// One log segment as recovery found it. `last_lsn` is null when recovery keeps no record of
/// it; `key_id` is null for plaintext and, with `segment_id`, when the header is damaged.
pub(crate) fn segment(info: &SegmentInfo) -> Value {
    json!({
        "name": info.file,
        "segment_id": info.segment_id.map(SegmentId::get),
        "first_lsn": info.first_lsn.get(),
        "last_lsn": info.last_lsn.map(Lsn::get),
        "records_count": info.records_count,
        "size_bytes": info.size_bytes,
        "sealed": info.sealed,
        "key_id": info.key_id.map(KeyId::get),
        "damaged_ranges_count": info.damaged_ranges_count,
    })
}

/// The log's recovery report as JSON.
pub(crate) fn wal_report(report: &RecoveryReport) -> Value {
    let damaged: Vec<Value> = report
        .damaged
        .iter()
        .map(|range| {
            json!({
                "file": range.file,
                "offset": range.offset,
                "len_bytes": range.len_bytes,
                "kind": damage_kind(range.kind),
            })
        })
        .collect();
    let repairs: Vec<String> = report.repairs.iter().map(ToString::to_string).collect();
    json!({
        "policy": format!("{:?}", report.mode),
        "base_lsn": report.base.get(),
        "records_count": report.records_count,
        "last_lsn": report.last_lsn.get(),
        "replayed_count": report.replayed.records_count,
        "truncated_bytes": report.truncated_bytes,
        "damaged": damaged,
        "loss": report.loss.as_ref().map(loss),
        "repairs": repairs,
        "quarantined": report.quarantined,
    })
}

/// Acknowledged records a policy dropped (or a refusal would have dropped).
pub(crate) fn loss(loss: &LogLoss) -> Value {
    json!({
        "file": loss.file,
        "offset": loss.offset,
        "cause": loss.cause.to_string(),
        "first_lsn": loss.first_lsn.get(),
        "unreadable_count": loss.unreadable_count,
        "intact_after_count": loss.intact_after_count,
    })
}

/// The log's recovery report as text lines.
pub(crate) fn wal_report_text(report: &RecoveryReport) -> String {
    let mut text = format!(
        "records {}, last LSN {}, torn-tail bytes to truncate {}, damaged ranges {}\n",
        report.records_count,
        report.last_lsn.get(),
        report.truncated_bytes,
        report.damaged.len()
    );
    for range in &report.damaged {
        text.push_str(&format!(
            "  damaged: {} at offset {} ({} bytes, {})\n",
            range.file,
            range.offset,
            range.len_bytes,
            damage_kind(range.kind)
        ));
    }
    if let Some(loss) = &report.loss {
        text.push_str(&format!("  dropped by policy {:?}: {loss}\n", report.mode));
    }
    for repair in &report.repairs {
        text.push_str(&format!("  repair: {repair}\n"));
    }
    for name in &report.quarantined {
        text.push_str(&format!("  quarantined: {name}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }
}

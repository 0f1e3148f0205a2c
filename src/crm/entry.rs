//! What a call leaves in the CRM: which number identifies the other party, the new lead's text,
//! and the snapshot a call's timeline entry keeps. Pure: takes the call row, returns values.

use crate::crm::phone::{DefaultCountry, normalize};
use crate::store::{CallRecord, NewPerson, NewTimelineEntry, PersonKind};

/// The other party's number of a call in E.164: the caller of an inbound call, the callee of an
/// outbound one. Internal calls, extensions and unparsable numbers give `None`.
pub fn party_number(call: &CallRecord, country: DefaultCountry) -> Option<String> {
    let raw = match call.direction.as_str() {
        "inbound" => &call.caller,
        "outbound" => &call.callee,
        _ => return None,
    };
    normalize(raw, country).ok()
}

/// The lead made for a call from (or to) an unknown number.
pub fn new_lead(call: &CallRecord, e164: &str) -> NewPerson {
    let title = if call.direction == "outbound" {
        format!("Outgoing call to {e164}")
    } else {
        format!("Incoming call from {e164}")
    };
    NewPerson {
        kind: PersonKind::Lead,
        name: call
            .caller_name
            .as_ref()
            .filter(|_| call.direction == "inbound")
            .map(|n| n.chars().take(200).collect()),
        title: Some(title),
        company: None,
        source: "telephony".into(),
        responsible: None,
        phones: vec![e164.to_owned()],
        emails: Vec::new(),
    }
}

/// The call entry for a person's timeline: a snapshot of the call as it ended, with the menu
/// path, the queue and operator, the rating and, for a campaign's call, the campaign and what
/// the attempt came to, and its transfers (`transfers`: the call's `transfer`,
/// `transfer_connected` and `transfer_failed` events, oldest first: who sent the caller to whom).
/// The recording link is looked up when the entry is read, since recordings are finalised after
/// the call.
pub fn call_entry(
    call: &CallRecord,
    person_id: &str,
    e164: &str,
    transfers: Vec<serde_json::Value>,
) -> NewTimelineEntry {
    NewTimelineEntry {
        person_id: person_id.to_owned(),
        kind: "call".into(),
        call_id: Some(call.id.clone()),
        at: call.started_at,
        data: serde_json::json!({
            "direction": call.direction,
            "number": e164,
            "caller": call.caller,
            "caller_name": call.caller_name,
            "callee": call.callee,
            "started_at": call.started_at,
            "answered_at": call.answered_at,
            "ended_at": call.ended_at,
            "duration_ms": call.duration_ms,
            "disposition": call.disposition,
            "hangup_by": call.hangup_by,
            "flow_id": call.flow_id,
            "flow_path": json_column(call.flow_path.as_deref()),
            "queue": call.queue,
            "operator": call.operator,
            "wait_ms": call.wait_ms,
            "rating": call.rating,
            "broadcast_id": call.broadcast_id,
            "broadcast": json_column(call.broadcast_result.as_deref()),
            "transfers": transfers,
        }),
    }
}

/// A JSON column as JSON (null when absent or unreadable).
fn json_column(text: Option<&str>) -> serde_json::Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn call(direction: &str, caller: &str, callee: &str) -> CallRecord {
        CallRecord {
            id: "0190".into(),
            node_id: "n".into(),
            direction: direction.into(),
            caller: caller.into(),
            caller_name: Some("<b>Olena</b>".into()),
            callee: callee.into(),
            started_at: Utc::now(),
            answered_at: None,
            ended_at: Some(Utc::now()),
            duration_ms: Some(1000),
            disposition: Some("answered.caller_hangup".into()),
            hangup_by: Some("caller".into()),
            flow_id: None,
            flow_path: None,
            rating: None,
            queue: None,
            operator: None,
            wait_ms: None,
            broadcast_id: None,
            broadcast_result: None,
        }
    }

    #[test]
    fn the_other_party_is_matched() {
        let ua = DefaultCountry::parse("UA").expect("UA");
        let inbound = call("inbound", "0441234567", "100");
        assert_eq!(party_number(&inbound, ua).as_deref(), Some("+380441234567"));
        let outbound = call("outbound", "101", "+380441234567");
        assert_eq!(
            party_number(&outbound, ua).as_deref(),
            Some("+380441234567")
        );
        assert_eq!(party_number(&call("internal", "101", "102"), ua), None);
        assert_eq!(party_number(&call("inbound", "sipp", "100"), ua), None);
    }

    #[test]
    fn new_lead_and_entry() {
        let c = call("inbound", "+380441234567", "100");
        let lead = new_lead(&c, "+380441234567");
        assert_eq!(
            lead.title.as_deref(),
            Some("Incoming call from +380441234567")
        );
        assert_eq!(lead.source, "telephony");
        assert_eq!(lead.name.as_deref(), Some("<b>Olena</b>"));
        let entry = call_entry(&c, "p1", "+380441234567", Vec::new());
        assert_eq!(entry.kind, "call");
        assert_eq!(entry.data["number"], "+380441234567");
        assert_eq!(entry.data["disposition"], "answered.caller_hangup");
        assert!(entry.data["queue"].is_null() && entry.data["broadcast"].is_null());
    }

    #[test]
    fn the_entry_carries_the_path_queue_operator_rating_and_campaign() {
        let mut c = call("outbound", "openline", "+380441234567");
        c.flow_id = Some("main".into());
        c.flow_path = Some(r#"[{"flow":"main","node":"menu","digits":"2"}]"#.into());
        c.queue = Some("sales".into());
        c.operator = Some("101".into());
        c.wait_ms = Some(4200);
        c.rating = Some(5);
        c.broadcast_id = Some("b1".into());
        let result = crate::broadcast::AttemptResult::Answered {
            amd: None,
            message: Some(crate::broadcast::MessageState::Complete),
            opted_out: false,
        };
        c.broadcast_result = Some(result.summary(2, Some('2')).to_string());
        let entry = call_entry(&c, "p1", "+380441234567", Vec::new());
        assert_eq!(entry.data["flow_path"][0]["node"], "menu");
        assert_eq!(entry.data["queue"], "sales");
        assert_eq!(entry.data["operator"], "101");
        assert_eq!(entry.data["wait_ms"], 4200);
        assert_eq!(entry.data["rating"], 5);
        assert_eq!(entry.data["broadcast_id"], "b1");
        assert_eq!(entry.data["broadcast"]["message"], "complete");
        assert_eq!(entry.data["broadcast"]["digit"], "2");
        assert_eq!(entry.data["broadcast"]["attempt"], 2);
    }
}

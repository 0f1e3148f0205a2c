//! Bitrix24's external-telephony REST methods, as payloads: what `telephony.externalcall.register`,
//! `telephony.externalcall.finish` and `telephony.externalCall.attachRecord` are sent for a call,
//! and how their answers are read. Pure: no IO.

use crate::store::CallRecord;
use serde_json::{Value, json};

pub const REGISTER: &str = "telephony.externalcall.register";
pub const FINISH: &str = "telephony.externalcall.finish";
pub const ATTACH_RECORD: &str = "telephony.externalCall.attachRecord";

/// `TYPE`: 1 outgoing, 2 incoming (Bitrix24's numbering).
fn call_type(direction: &str) -> u8 {
    if direction == "outbound" { 1 } else { 2 }
}

/// The fields of `register`, sent when the call starts. `number` is the other party's number
/// (E.164 when it parses, else as signalled).
pub fn register(call: &CallRecord, number: &str, user_id: u64, line: Option<&str>) -> Value {
    let mut v = json!({
        "USER_ID": user_id,
        "PHONE_NUMBER": number,
        "TYPE": call_type(&call.direction),
        "CALL_START_DATE": call.started_at.to_rfc3339(),
        "CRM_CREATE": 1,
        "SHOW": 0,
    });
    if let Some(line) = line {
        v["LINE_NUMBER"] = json!(line);
    }
    v
}

/// Bitrix24's STATUS_CODE for our disposition: 200 talked, 304 missed, 486 busy, 603 declined,
/// 500 failed. Campaign calls end `busy`, `no_answer`, `rejected.N` or `failed.*` when unanswered.
pub fn status_code(disposition: Option<&str>, answered: bool) -> u16 {
    let d = disposition.unwrap_or("");
    if answered || d.starts_with("answered.") || d.starts_with("broadcast.") {
        200
    } else if d == "rejected.486" || d == "busy" {
        486
    } else if d == "no_answer" {
        304
    } else if d.starts_with("rejected.6") || d == "rejected.480" {
        603
    } else if d.starts_with("cancelled.") || d.starts_with("rejected.") {
        304
    } else {
        500
    }
}

/// The fields of `finish` known when the call ends; `CALL_ID` is added at delivery, once the
/// register answer gave it. `rating` (1–5) goes as `VOTE`.
pub fn finish(call: &CallRecord, user_id: u64, rating: Option<u8>) -> Value {
    let seconds = call.duration_ms.unwrap_or(0).max(0).div_euclid(1000);
    let mut v = json!({
        "USER_ID": user_id,
        "DURATION": seconds,
        "STATUS_CODE": status_code(call.disposition.as_deref(), call.answered_at.is_some()),
        "ADD_TO_CHAT": 0,
    });
    if let Some(rating) = rating {
        v["VOTE"] = json!(rating);
    }
    v
}

/// The `CALL_ID` out of a `register` answer (`{"result": {"CALL_ID": "externalCall.…"}}`).
pub fn call_id_of(answer: &Value) -> Option<String> {
    answer
        .get("result")
        .and_then(|r| r.get("CALL_ID"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 200)
        .map(str::to_owned)
}

/// The error Bitrix24 answered with (`{"error": "…", "error_description": "…"}`), if any.
pub fn error_of(answer: &Value) -> Option<String> {
    let code = answer.get("error")?;
    let description = answer
        .get("error_description")
        .and_then(Value::as_str)
        .unwrap_or("");
    Some(format!(
        "{} {description}",
        code.as_str().unwrap_or("error")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn call(disposition: &str, answered: bool) -> CallRecord {
        let now = Utc::now();
        CallRecord {
            id: "c".into(),
            node_id: "n".into(),
            direction: "inbound".into(),
            caller: "+380441234567".into(),
            caller_name: None,
            callee: "100".into(),
            started_at: now,
            answered_at: answered.then_some(now),
            ended_at: Some(now),
            duration_ms: Some(61_900),
            disposition: Some(disposition.into()),
            hangup_by: None,
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
    fn payloads_carry_bitrix_fields() {
        let c = call("answered.caller_hangup", true);
        let r = register(&c, "+380441234567", 7, Some("100"));
        assert_eq!(r["TYPE"], 2);
        assert_eq!(r["PHONE_NUMBER"], "+380441234567");
        assert_eq!(r["CRM_CREATE"], 1);
        assert_eq!(r["LINE_NUMBER"], "100");
        let f = finish(&c, 7, Some(5));
        assert_eq!(f["DURATION"], 61);
        assert_eq!(f["STATUS_CODE"], 200);
        assert_eq!(f["VOTE"], 5);
        assert!(finish(&c, 7, None).get("VOTE").is_none());
    }

    #[test]
    fn campaign_calls_have_status_codes_too() {
        assert_eq!(status_code(Some("busy"), false), 486);
        assert_eq!(status_code(Some("no_answer"), false), 304);
        assert_eq!(status_code(Some("broadcast.left_on_machine"), true), 200);
        assert_eq!(status_code(Some("failed.timeout"), false), 500);
    }

    #[test]
    fn status_codes() {
        assert_eq!(status_code(Some("cancelled.by_caller"), false), 304);
        assert_eq!(status_code(Some("rejected.486"), false), 486);
        assert_eq!(status_code(Some("rejected.603"), false), 603);
        assert_eq!(status_code(Some("system.crashed"), false), 500);
        assert_eq!(status_code(Some("system.crashed"), true), 200);
    }

    #[test]
    fn answers() {
        let ok = json!({"result": {"CALL_ID": "externalCall.abc"}});
        assert_eq!(call_id_of(&ok).as_deref(), Some("externalCall.abc"));
        assert_eq!(call_id_of(&json!({"result": {}})), None);
        let err = json!({"error": "ERROR_CORE", "error_description": "bad"});
        assert_eq!(error_of(&err).as_deref(), Some("ERROR_CORE bad"));
        assert_eq!(error_of(&ok), None);
    }
}

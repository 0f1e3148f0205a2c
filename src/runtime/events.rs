//! The live event bus: a `tokio::sync::broadcast` channel that call, queue and operator events are
//! published into and that the event WebSocket (`/api/v1/events`) and the CRM worker read.
//!
//! Publishing never blocks and never fails: with nobody listening the event is dropped, and a
//! listener that falls more than the channel's capacity behind loses the oldest events (it sees
//! `RecvError::Lagged` and must re-read state from the database).
//!
//! The JSON shape (one WebSocket text message per event) is the enum below with a `type` tag:
//! ```json
//! {"type":"call_started","call_id":"0190…","direction":"inbound","caller":"+380441234567",
//!  "caller_name":"Olena","callee":"100","at":"2026-05-01T10:00:00Z"}
//! {"type":"call_answered","call_id":"0190…","operator":null,"at":"…"}
//! {"type":"call_ended","call_id":"0190…","disposition":"answered.caller_hangup","hangup_by":"caller","at":"…"}
//! {"type":"queue_joined","call_id":"0190…","queue":"sales","position":1,"at":"…"}
//! {"type":"queue_left","call_id":"0190…","queue":"sales","reason":"answered","at":"…"}
//! {"type":"operator_status","extension":"101","status":"away","at":"…"}
//! {"type":"broadcast_progress","broadcast_id":"0190…","state":"running","total":300,"pending":120,
//!  "calling":30,"done":150,"in_flight":28,"outcomes":{"human":90,"busy":12},"at":"…"}
//! ```

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

/// One live event. Call events are published after their row is written, so a client that reads
/// `/api/v1/calls/{id}` on an event finds the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    CallStarted {
        call_id: String,
        direction: String,
        caller: String,
        caller_name: Option<String>,
        callee: String,
        at: DateTime<Utc>,
    },
    CallAnswered {
        call_id: String,
        /// The operator's extension when an operator answered; `None` when the server did.
        operator: Option<String>,
        at: DateTime<Utc>,
    },
    CallEnded {
        call_id: String,
        disposition: String,
        hangup_by: Option<String>,
        at: DateTime<Utc>,
    },
    QueueJoined {
        call_id: String,
        queue: String,
        position: u32,
        at: DateTime<Utc>,
    },
    QueueLeft {
        call_id: String,
        queue: String,
        /// `answered` | `abandoned` | `overflow` | `timeout`.
        reason: String,
        at: DateTime<Utc>,
    },
    OperatorStatus {
        extension: String,
        status: String,
        at: DateTime<Utc>,
    },
    /// A voice broadcast's counts changed (at most every couple of seconds per campaign).
    BroadcastProgress {
        broadcast_id: String,
        state: String,
        total: i64,
        pending: i64,
        calling: i64,
        done: i64,
        in_flight: i64,
        /// Final outcomes so far.
        outcomes: std::collections::BTreeMap<String, i64>,
        at: DateTime<Utc>,
    },
}

impl Event {
    /// The call this event is about, if any.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            Event::CallStarted { call_id, .. }
            | Event::CallAnswered { call_id, .. }
            | Event::CallEnded { call_id, .. }
            | Event::QueueJoined { call_id, .. }
            | Event::QueueLeft { call_id, .. } => Some(call_id),
            Event::OperatorStatus { .. } | Event::BroadcastProgress { .. } => None,
        }
    }
}

/// The bus. Cheap to clone; every clone publishes into the same channel.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl EventBus {
    /// Events a slow listener may fall behind before it loses the oldest.
    pub const CAPACITY: usize = 4096;

    pub fn new() -> EventBus {
        let (tx, _) = broadcast::channel(Self::CAPACITY);
        EventBus { tx }
    }

    /// Sends `event` to every current listener; dropped when there is none.
    pub fn publish(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// A new listener that sees events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_a_type_tag() {
        let at = DateTime::parse_from_rfc3339("2026-05-01T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let event = Event::OperatorStatus {
            extension: "101".into(),
            status: "away".into(),
            at,
        };
        let json = serde_json::to_value(&event).expect("json");
        assert_eq!(json["type"], "operator_status");
        assert_eq!(json["extension"], "101");
        assert_eq!(event.call_id(), None);
    }

    #[tokio::test]
    async fn listeners_get_what_is_published_after_they_subscribe() {
        let bus = EventBus::new();
        bus.publish(Event::OperatorStatus {
            extension: "lost".into(),
            status: "online".into(),
            at: Utc::now(),
        });
        let mut rx = bus.subscribe();
        let event = Event::CallEnded {
            call_id: "c1".into(),
            disposition: "answered.caller_hangup".into(),
            hangup_by: Some("caller".into()),
            at: Utc::now(),
        };
        bus.publish(event.clone());
        assert_eq!(rx.recv().await.expect("event"), event);
    }
}

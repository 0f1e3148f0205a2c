//! `/api/v1/events`: the live event stream over WebSocket (RFC 6455). Each event on the bus is
//! sent as one JSON text message (shapes in `runtime::events`), after a first `{"type":"ready"}`.
//! Admins and managers get everything; an operator gets its own status and the events of calls
//! where its extension is a party or that it answered. A client that falls behind gets
//! `{"type":"lagged","missed":N}` and should re-read state over the REST endpoints. The
//! credential is checked again every `RECHECK`: when the session expires or signs out, or the
//! token is revoked, the stream sends `{"type":"session_ended"}` and closes (code 1008).

use std::collections::HashSet;

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{ApiState, Caller};
use crate::runtime::events::Event;
use crate::store::Store;

/// How often a stream's credential is checked again.
const RECHECK: Duration = Duration::from_secs(5);
/// Checks in a row the store could not answer before the stream ends (a minute).
const RECHECK_FAILURES: u32 = 12;

#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    responses(
        (status = 101, description = "WebSocket of JSON events: call_started, call_answered, call_ended, queue_joined, queue_left, operator_status"),
        (status = 401, description = "no token or session"),
    ))]
pub async fn stream(
    caller: Caller,
    State(state): State<ApiState>,
    ws: WebSocketUpgrade,
) -> Response {
    let events = state.options().events.subscribe();
    let store = state.store().clone();
    ws.on_upgrade(move |socket| run(socket, events, caller, store))
}

async fn run(
    mut socket: WebSocket,
    mut events: broadcast::Receiver<Event>,
    caller: Caller,
    store: Store,
) {
    if socket
        .send(Message::Text(r#"{"type":"ready"}"#.into()))
        .await
        .is_err()
    {
        return;
    }
    let mut visible = Visibility::default();
    let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
    let mut unanswered = 0;
    loop {
        let text = tokio::select! {
            _ = recheck.tick() => {
                // A store that cannot answer once is not a sign-out; a minute of it ends the
                // stream (the client reconnects and signs in again).
                match caller.still_valid(&store).await {
                    Ok(true) => unanswered = 0,
                    Ok(false) => {
                        end_session(socket).await;
                        return;
                    }
                    Err(_) => unanswered += 1,
                }
                if unanswered >= RECHECK_FAILURES {
                    end_session(socket).await;
                    return;
                }
                continue;
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                // Pings are answered by axum; anything else from the client is ignored.
                Some(Ok(_)) => continue,
            },
            event = events.recv() => match event {
                Ok(event) if visible.admits(&caller, &event) => {
                    match serde_json::to_string(&event) {
                        Ok(text) => text,
                        Err(_) => continue,
                    }
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => format!(r#"{{"type":"lagged","missed":{missed}}}"#),
                Err(RecvError::Closed) => break,
            },
        };
        if socket.send(Message::Text(text.into())).await.is_err() {
            break;
        }
    }
}

/// Tells the client why, then closes with 1008 (policy violation: the credential is gone).
async fn end_session(mut socket: WebSocket) {
    let _ = socket
        .send(Message::Text(r#"{"type":"session_ended"}"#.into()))
        .await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code::POLICY,
            reason: "session ended".into(),
        })))
        .await;
}

/// Which calls an operator's stream follows.
#[derive(Default)]
struct Visibility {
    calls: HashSet<String>,
}

impl Visibility {
    fn admits(&mut self, caller: &Caller, event: &Event) -> bool {
        let Some(ext) = caller.call_scope() else {
            return true;
        };
        let admitted = match event {
            Event::OperatorStatus { extension, .. } => extension == ext,
            Event::CallStarted {
                call_id,
                caller: from,
                callee,
                ..
            } => {
                let mine = caller.sees_call(from, callee, None);
                if mine {
                    self.calls.insert(call_id.clone());
                }
                mine
            }
            Event::CallAnswered {
                call_id,
                operator: Some(op),
                ..
            } if op == ext => {
                self.calls.insert(call_id.clone());
                true
            }
            other => other.call_id().is_some_and(|id| self.calls.contains(id)),
        };
        if let Event::CallEnded { call_id, .. } = event {
            self.calls.remove(call_id);
        }
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;
    use chrono::Utc;

    #[test]
    fn operators_follow_their_own_calls() {
        let op = Caller {
            role: Role::Operator,
            extension: Some("101".into()),
            principal: String::new(),
        };
        let mut v = Visibility::default();
        let started = |id: &str, callee: &str| Event::CallStarted {
            call_id: id.into(),
            direction: "inbound".into(),
            caller: "+380441234567".into(),
            caller_name: None,
            callee: callee.into(),
            at: Utc::now(),
        };
        let ended = |id: &str| Event::CallEnded {
            call_id: id.into(),
            disposition: "answered.caller_hangup".into(),
            hangup_by: None,
            at: Utc::now(),
        };
        assert!(v.admits(&op, &started("a", "101")));
        assert!(!v.admits(&op, &started("b", "100")));
        assert!(v.admits(&op, &ended("a")));
        assert!(!v.admits(&op, &ended("b")));
        assert!(!v.admits(&op, &ended("a")), "forgotten after it ended");
        let status = |ext: &str| Event::OperatorStatus {
            extension: ext.into(),
            status: "away".into(),
            at: Utc::now(),
        };
        assert!(v.admits(&op, &status("101")));
        assert!(!v.admits(&op, &status("102")));
    }
}

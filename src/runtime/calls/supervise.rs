//! Supervision through the API (`POST /api/v1/calls/{id}/supervise`): a supervisor's phone
//! (`[[operators]] supervisor = true`) is rung and, once answered, joins the caller's bridge to
//! listen, whisper to the operator, or barge in (see `call_task::supervision` for who hears
//! whom). Asking again with another mode switches it live; the supervisor hangs up to leave. The
//! caller is never told. Every step is on the call's events (`supervision_started`,
//! `supervision_mode`, `supervision_ended`, `supervision_failed`).
//!
//! From the phone: a supervisor dials a feature code with the operator's extension
//! ([`feature_code`]: `*81` listen, `*82` whisper, `*83` barge, so `*81101`) and is answered
//! straight onto that operator's call; on either way in, keys 1, 2 and 3 on the supervisor's phone
//! switch the mode.

use super::*;
use crate::runtime::call_task::SuperviseMode;

/// How long a supervisor's phone rings.
const SUPERVISOR_RING_TIMEOUT: Duration = Duration::from_secs(30);

/// `POST /api/v1/calls/{id}/supervise`, as the SIP task receives it.
#[derive(Debug)]
pub struct SuperviseControl {
    pub call_id: String,
    pub supervisor: String,
    pub mode: SuperviseMode,
    /// An operator's token (who may only supervise as themselves).
    pub operator: Option<String>,
    pub reply: tokio::sync::oneshot::Sender<Result<SuperviseOutcome, SuperviseError>>,
}

/// What the request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuperviseOutcome {
    /// The supervisor's phone is ringing.
    Ringing,
    /// The supervisor was already on the call (or rung for it): the mode changed.
    Changed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SuperviseError {
    #[error("no call with this id is up")]
    NotLive,
    #[error("the call has no operator on it to supervise")]
    NotBridged,
    #[error("this extension is not a supervisor (`[[operators]] supervisor = true`)")]
    NotSupervisor,
    #[error("an operator token supervises only as itself")]
    NotYourself,
    #[error("the supervisor is the operator on the call")]
    OwnCall,
    #[error("another supervisor is on this call")]
    Busy,
    #[error("the supervisor is on a call (or supervising one) already")]
    SupervisorBusy,
    #[error("the call is being transferred")]
    TransferInProgress,
    #[error("the supervisor's phone cannot be rung (not registered, no free port)")]
    Unreachable,
}

impl SuperviseError {
    pub fn code(self) -> &'static str {
        match self {
            SuperviseError::NotLive => "call.not_live",
            SuperviseError::NotBridged => "call.not_bridged",
            SuperviseError::NotSupervisor => "supervise.not_supervisor",
            SuperviseError::NotYourself => "supervise.not_yourself",
            SuperviseError::OwnCall => "supervise.own_call",
            SuperviseError::Busy => "supervise.busy",
            SuperviseError::SupervisorBusy => "supervise.supervisor_busy",
            SuperviseError::TransferInProgress => "supervise.transfer_in_progress",
            SuperviseError::Unreachable => "supervise.unreachable",
        }
    }
}

/// A supervisor on (or rung for) a caller's call.
pub(super) struct Supervising {
    pub(super) leg: LegId,
    pub(super) ext: String,
    pub(super) mode: SuperviseMode,
    pub(super) answered: bool,
    /// The supervisor called in with a feature code: `leg` is their own call to us, not a leg
    /// we rang.
    pub(super) inbound: bool,
}

/// The feature codes a supervisor dials before an operator's extension.
const FEATURE_CODES: [(&str, SuperviseMode); 3] = [
    ("*81", SuperviseMode::Listen),
    ("*82", SuperviseMode::Whisper),
    ("*83", SuperviseMode::Barge),
];

/// `*81101` → listen to 101's call; `None` when `called` is no supervision code.
pub(super) fn feature_code(called: &str) -> Option<(SuperviseMode, &str)> {
    FEATURE_CODES.iter().find_map(|(code, mode)| {
        let ext = called.strip_prefix(code)?;
        (!ext.is_empty()).then_some((*mode, ext))
    })
}

/// A key on the supervisor's phone: the mode it picks.
fn mode_for_key(digit: char) -> Option<SuperviseMode> {
    match digit {
        '1' => Some(SuperviseMode::Listen),
        '2' => Some(SuperviseMode::Whisper),
        '3' => Some(SuperviseMode::Barge),
        _ => None,
    }
}

impl SuperviseError {
    /// The SIP answer to a feature code that cannot be carried out.
    fn sip_status(self) -> (u16, &'static str) {
        match self {
            SuperviseError::NotSupervisor
            | SuperviseError::NotYourself
            | SuperviseError::OwnCall => (403, "Forbidden"),
            SuperviseError::NotLive | SuperviseError::NotBridged => {
                (480, "Temporarily Unavailable")
            }
            SuperviseError::Busy
            | SuperviseError::SupervisorBusy
            | SuperviseError::TransferInProgress => (486, "Busy Here"),
            SuperviseError::Unreachable => (503, "Service Unavailable"),
        }
    }
}

impl Calls {
    pub fn supervise_control(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        request: SuperviseControl,
    ) {
        let result = self.supervise(endpoint, now, &request);
        let _ = request.reply.send(result);
    }

    fn supervise(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        request: &SuperviseControl,
    ) -> Result<SuperviseOutcome, SuperviseError> {
        if request
            .operator
            .as_ref()
            .is_some_and(|me| me != &request.supervisor)
        {
            return Err(SuperviseError::NotYourself);
        }
        if !self.config.supervisors.contains(&request.supervisor) {
            return Err(SuperviseError::NotSupervisor);
        }
        let caller = self
            .active
            .iter()
            .find(|(_, a)| a.call_id == request.call_id && !a.ended && a.task.is_some())
            .map(|(leg, _)| *leg)
            .ok_or(SuperviseError::NotLive)?;
        let operator = self
            .bridged_operator(caller)
            .ok_or(SuperviseError::NotBridged)?;
        if operator == request.supervisor {
            return Err(SuperviseError::OwnCall);
        }
        if let Some(s) = self.supervisions.get(&caller) {
            if s.ext != request.supervisor {
                return Err(SuperviseError::Busy);
            }
            self.change_supervise_mode(caller, request.mode, "api");
            return Ok(SuperviseOutcome::Changed);
        }
        self.may_start_supervising(caller, &request.supervisor)?;
        let leg = self
            .ring_operator(endpoint, now, caller, &request.supervisor, None)
            .map_err(|reason| {
                tracing::info!(caller, %reason, "the supervisor cannot be rung");
                SuperviseError::Unreachable
            })?;
        if let Some(o) = self.outbound.get_mut(&leg) {
            o.supervising = true;
        }
        self.ring_deadlines
            .insert((now + SUPERVISOR_RING_TIMEOUT, leg));
        self.supervisions.insert(
            caller,
            Supervising {
                leg,
                ext: request.supervisor.clone(),
                mode: request.mode,
                answered: false,
                inbound: false,
            },
        );
        Ok(SuperviseOutcome::Ringing)
    }

    /// The operator bridged with `caller` (not a consulted target, not a supervisor).
    fn bridged_operator(&self, caller: LegId) -> Option<String> {
        self.outbound
            .values()
            .find(|o| o.caller_leg == caller && o.is_supervisable())
            .map(|o| o.ext.clone())
    }

    /// The mode of the supervision on `caller`'s call changes (`by` the API or the phone).
    fn change_supervise_mode(&mut self, caller: LegId, mode: SuperviseMode, by: &str) {
        let Some(s) = self.supervisions.get_mut(&caller) else {
            return;
        };
        if s.answered && s.mode == mode {
            return;
        }
        s.mode = mode;
        let (answered, ext) = (s.answered, s.ext.clone());
        if answered {
            self.tell(caller, CallCommand::SuperviseMode(mode));
        }
        let detail = serde_json::json!({ "supervisor": ext, "mode": mode.as_str(), "by": by });
        self.event(caller, "supervision_mode", detail);
    }

    /// A supervisor's feature code (`*81101`): answered straight onto operator `ext`'s call, or
    /// refused with the SIP status that says why.
    pub(super) fn supervise_by_code(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        call: &IncomingCall,
        mode: SuperviseMode,
        ext: &str,
    ) {
        let supervisor = call.operator.clone().unwrap_or_default();
        let found = self.call_to_supervise(&supervisor, ext);
        let caller = match found {
            Ok(caller) => caller,
            Err(e) => {
                tracing::info!(%supervisor, operator = %ext, code = e.code(), "feature code refused");
                let (status, text) = e.sip_status();
                endpoint.reject(now, call.leg, status, text);
                return;
            }
        };
        if !self.prepare_media(endpoint, now, call) {
            return;
        }
        let Some(active) = self.active.get_mut(&call.leg) else {
            return;
        };
        let (Some(sdp), Some((rtp, rtcp))) = (active.answer_sdp.take(), active.sockets.take())
        else {
            return;
        };
        active.answered = true;
        let session = session_config(active.negotiated.as_ref(), self.config.media_timeout);
        endpoint.answer(now, call.leg, sdp);
        let _ = self.records.send(RecordOp::CallAnswered {
            leg: call.leg,
            at: Utc::now(),
        });
        self.acd.call_started(now, &supervisor);
        self.run_acd(endpoint, now);
        self.supervisions.insert(
            caller,
            Supervising {
                leg: call.leg,
                ext: supervisor.clone(),
                mode,
                answered: true,
                inbound: true,
            },
        );
        let media = (rtp, rtcp, session);
        self.supervisor_joins(caller, &supervisor, mode, "phone", media);
    }

    /// A supervisor's answered leg joins `caller`'s bridge in `mode`; counted and recorded.
    fn supervisor_joins(
        &mut self,
        caller: LegId,
        supervisor: &str,
        mode: SuperviseMode,
        by: &str,
        (rtp, rtcp, session): (std::net::UdpSocket, std::net::UdpSocket, SessionConfig),
    ) {
        metrics::counter!("openline_supervisions_total", "mode" => mode.as_str()).increment(1);
        let detail =
            serde_json::json!({ "supervisor": supervisor, "mode": mode.as_str(), "by": by });
        self.event(caller, "supervision_started", detail);
        let command = CallCommand::Supervise {
            rtp,
            rtcp,
            session,
            mode,
        };
        self.tell(caller, command);
    }

    /// The caller's leg of the call operator `ext` is on, if `supervisor` may supervise it now.
    fn call_to_supervise(&self, supervisor: &str, ext: &str) -> Result<LegId, SuperviseError> {
        if !self.config.supervisors.contains(supervisor) {
            return Err(SuperviseError::NotSupervisor);
        }
        if ext == supervisor {
            return Err(SuperviseError::OwnCall);
        }
        let caller = self
            .outbound
            .values()
            .find(|o| {
                o.ext == ext
                    && o.is_supervisable()
                    && self
                        .active
                        .get(&o.caller_leg)
                        .is_some_and(|a| !a.ended && a.task.is_some())
            })
            .map(|o| o.caller_leg)
            .ok_or(SuperviseError::NotBridged)?;
        if self.supervisions.contains_key(&caller) {
            return Err(SuperviseError::Busy);
        }
        self.may_start_supervising(caller, supervisor)?;
        Ok(caller)
    }

    /// A supervision starts only on a call that is not being transferred (a consultation puts
    /// the caller on hold and moves the operator's leg: no mode is defined for that), by a
    /// supervisor who is free: on no call, rung for none, supervising no other.
    fn may_start_supervising(&self, caller: LegId, supervisor: &str) -> Result<(), SuperviseError> {
        if self.transfers.contains_key(&caller) {
            return Err(SuperviseError::TransferInProgress);
        }
        if self.acd.is_busy(supervisor) || self.supervisions.values().any(|s| s.ext == supervisor) {
            return Err(SuperviseError::SupervisorBusy);
        }
        Ok(())
    }

    /// A key pressed on a supervisor's phone (in the media or by SIP INFO).
    pub(super) fn supervisor_digit(&mut self, caller: LegId, digit: char) {
        if let Some(mode) = mode_for_key(digit) {
            self.change_supervise_mode(caller, mode, "phone");
        }
    }

    /// The caller's leg a supervisor's `leg` (rung by us or called in) supervises.
    pub(super) fn supervised_by(&self, leg: LegId) -> Option<LegId> {
        self.supervisions
            .iter()
            .find(|(_, s)| s.leg == leg && s.answered)
            .map(|(caller, _)| *caller)
    }

    /// The supervisor's phone went quiet: their leg ends.
    pub(super) fn supervisor_lost(&mut self, endpoint: &mut Endpoint, now: Instant, caller: LegId) {
        if let Some(s) = self.supervisions.get(&caller) {
            tracing::info!(caller, supervisor = %s.ext, "the supervisor's phone sends no media");
            endpoint.hangup(now, s.leg);
        }
    }

    /// A supervisor who called in hung up (their own call's leg ended): the bridge is as before.
    pub(super) fn inbound_supervisor_ended(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        leg: LegId,
    ) {
        let Some(caller) = self
            .supervisions
            .iter()
            .find(|(_, s)| s.inbound && s.leg == leg)
            .map(|(caller, _)| *caller)
        else {
            return;
        };
        let ext = self
            .supervisions
            .get(&caller)
            .map(|s| s.ext.clone())
            .unwrap_or_default();
        self.acd.call_ended(now, &ext, None);
        self.supervisor_leg_ended(caller, leg);
        self.run_acd(endpoint, now);
    }

    /// The supervisor answered: their leg joins the caller's bridge.
    pub(super) fn supervisor_answered(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        leg: LegId,
        media: (std::net::UdpSocket, std::net::UdpSocket, SessionConfig),
    ) {
        let Some(o) = self.outbound.get_mut(&leg) else {
            return;
        };
        let (caller, ext) = (o.caller_leg, o.ext.clone());
        o.counted = true;
        self.acd.call_started(now, &ext);
        self.run_acd(endpoint, now);
        let transferring = self.transfers.contains_key(&caller);
        let Some(s) = self
            .supervisions
            .get_mut(&caller)
            .filter(|s| s.leg == leg && !transferring)
        else {
            endpoint.hangup(now, leg);
            return;
        };
        s.answered = true;
        let mode = s.mode;
        self.supervisor_joins(caller, &ext, mode, "api", media);
    }

    /// The supervisor's leg ended (they hung up, or never answered).
    pub(super) fn supervisor_leg_ended(&mut self, caller: LegId, leg: LegId) {
        if self.supervisions.get(&caller).is_none_or(|s| s.leg != leg) {
            return;
        }
        let Some(s) = self.supervisions.remove(&caller) else {
            return;
        };
        if s.answered {
            self.tell(caller, CallCommand::SuperviseEnd);
            self.event(
                caller,
                "supervision_ended",
                serde_json::json!({ "supervisor": s.ext }),
            );
        } else {
            self.event(
                caller,
                "supervision_failed",
                serde_json::json!({ "supervisor": s.ext }),
            );
        }
    }

    /// The operator leaves the bridge (hangs up, transfers): so does their supervisor.
    pub(super) fn end_supervision_of(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        caller: LegId,
    ) {
        if let Some(s) = self.supervisions.get(&caller) {
            endpoint.hangup(now, s.leg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_codes_name_a_mode_and_an_extension() {
        let table: &[(&str, Option<(SuperviseMode, &str)>)] = &[
            ("*81101", Some((SuperviseMode::Listen, "101"))),
            ("*82101", Some((SuperviseMode::Whisper, "101"))),
            ("*83alice", Some((SuperviseMode::Barge, "alice"))),
            ("*81", None),
            ("*84101", None),
            ("81101", None),
            ("101", None),
            ("", None),
        ];
        for (called, expected) in table {
            assert_eq!(feature_code(called), *expected, "{called}");
        }
        let keys: Vec<Option<SuperviseMode>> = "1230#".chars().map(mode_for_key).collect();
        assert_eq!(
            keys,
            [
                Some(SuperviseMode::Listen),
                Some(SuperviseMode::Whisper),
                Some(SuperviseMode::Barge),
                None,
                None
            ]
        );
    }
}

//! Supervision through the API (`POST /api/v1/calls/{id}/supervise`): a supervisor's phone
//! (`[[operators]] supervisor = true`) is rung and, once answered, joins the caller's bridge to
//! listen, whisper to the operator, or barge in (see `call_task::supervision` for who hears
//! whom). Asking again with another mode switches it live; the supervisor hangs up to leave. The
//! caller is never told. Every step is on the call's events (`supervision_started`,
//! `supervision_mode`, `supervision_ended`, `supervision_failed`).

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
            .outbound
            .values()
            .find(|o| {
                o.caller_leg == caller
                    && o.answered
                    && o.counted
                    && !o.detached
                    && !o.consult
                    && !o.supervising
            })
            .map(|o| o.ext.clone())
            .ok_or(SuperviseError::NotBridged)?;
        if operator == request.supervisor {
            return Err(SuperviseError::OwnCall);
        }
        if let Some(s) = self.supervisions.get_mut(&caller) {
            if s.ext != request.supervisor {
                return Err(SuperviseError::Busy);
            }
            s.mode = request.mode;
            if s.answered {
                self.tell(caller, CallCommand::SuperviseMode(request.mode));
            }
            let detail = serde_json::json!({ "supervisor": request.supervisor, "mode": request.mode.as_str() });
            self.event(caller, "supervision_mode", detail);
            return Ok(SuperviseOutcome::Changed);
        }
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
            },
        );
        Ok(SuperviseOutcome::Ringing)
    }

    /// The supervisor answered: their leg joins the caller's bridge.
    pub(super) fn supervisor_answered(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        leg: LegId,
        (rtp, rtcp, session): (std::net::UdpSocket, std::net::UdpSocket, SessionConfig),
    ) {
        let Some(o) = self.outbound.get_mut(&leg) else {
            return;
        };
        let (caller, ext) = (o.caller_leg, o.ext.clone());
        o.counted = true;
        self.acd.call_started(now, &ext);
        self.run_acd(endpoint, now);
        let Some(s) = self.supervisions.get_mut(&caller).filter(|s| s.leg == leg) else {
            endpoint.hangup(now, leg);
            return;
        };
        s.answered = true;
        let mode = s.mode;
        metrics::counter!("openline_supervisions_total", "mode" => mode.as_str()).increment(1);
        self.event(
            caller,
            "supervision_started",
            serde_json::json!({ "supervisor": ext, "mode": mode.as_str() }),
        );
        self.tell(
            caller,
            CallCommand::Supervise {
                rtp,
                rtcp,
                session,
                mode,
            },
        );
    }

    /// The supervisor's leg ended (they hung up, or never answered).
    pub(super) fn supervisor_leg_ended(&mut self, caller: LegId, leg: LegId) {
        let Some(s) = self.supervisions.remove(&caller).filter(|s| s.leg == leg) else {
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

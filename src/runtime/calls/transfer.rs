//! Blind transfers: an operator's phone sends REFER (RFC 3515) on its leg, or the API is asked
//! (`POST /api/v1/calls/{id}/transfer`), to send the caller to another operator, a queue or an
//! external number.
//!
//! Openline takes the caller at once: the transferor's leg leaves the bridge (their phone hears
//! `202 Accepted`, a NOTIFY with `200 OK` and our BYE), the caller hears hold music while the
//! target rings, and the target's answer is bridged into the same call task — one call id, one
//! recording file (the new operator on its right channel), the flow still parked in the node that
//! connected the first operator (a queue's rating flow runs after the last operator hangs up).
//! A target that does not answer sends a caller who came through a queue back to that queue with
//! their wait so far; otherwise the flow's `dial` node hears a failed dial (`transfer.*`). Every
//! step is on the call's events: `transfer` (from, to, kind, by), `transfer_connected`,
//! `transfer_failed`.

use super::*;

/// The queue a caller joined, and how (priority, skills, wait so far).
type QueueJoin = (String, crate::queue::JoinRequest);
use crate::queue::JoinRequest;
use crate::sip::refer::ReferTo;

/// How long a transfer's target operator (or number) rings before the caller is taken back.
pub const TRANSFER_RING_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a transfer sends the caller; a name is looked up in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    /// An operator's extension (`[[operators]]`, or any registered extension).
    Operator(String),
    /// A configured queue, by name: the caller waits there as any caller would.
    Queue(String),
    /// A loaded IVR flow, by id: it takes the caller at once (a survey, another menu).
    Flow(String),
    /// The dialplan's external prefix + a number: out through the trunk, by the transferor's
    /// dialling rights.
    External(String),
}

impl TransferTarget {
    pub fn kind(&self) -> &'static str {
        match self {
            TransferTarget::Operator(_) => "operator",
            TransferTarget::Queue(_) => "queue",
            TransferTarget::Flow(_) => "flow",
            TransferTarget::External(_) => "external",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            TransferTarget::Operator(n)
            | TransferTarget::Queue(n)
            | TransferTarget::Flow(n)
            | TransferTarget::External(n) => n,
        }
    }
}

/// Why a transfer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("no call with this id is up (for an operator: none bridged to them)")]
    NotLive,
    #[error("the call has no operator on it to transfer from")]
    NotBridged,
    #[error("only an operator's leg can transfer a call")]
    NotFromOperator,
    #[error("a transfer of this call is already under way")]
    InProgress,
    #[error("the target is the operator already on the call")]
    SameOperator,
    #[error("no operator, queue or dialable number by that name")]
    UnknownTarget,
    #[error("the dialplan does not let this operator call that number")]
    ExternalNotAllowed,
    #[error("every trunk channel is busy")]
    TrunkBusy,
    #[error("the Replaces in the REFER names no call on this server")]
    ReplacesUnknown,
    #[error(
        "the Replaces names no own answered call of this operator (to a colleague or a number) to hand over"
    )]
    ReplacesNotConsultation,
    #[error("an attended transfer goes to a person (an operator or a number), not a queue")]
    AttendedToQueue,
    #[error("an attended transfer goes to a person (an operator or a number), not a flow")]
    AttendedToFlow,
    #[error("no consultation is under way on this call")]
    NoConsultation,
    #[error("the consulted target has not answered yet")]
    ConsultNotAnswered,
    #[error("the target cannot be rung now (not registered, no free port)")]
    TargetUnreachable,
}

impl TransferError {
    /// The API's error code.
    pub fn code(self) -> &'static str {
        match self {
            TransferError::NotLive => "call.not_live",
            TransferError::NotBridged => "call.not_bridged",
            TransferError::NotFromOperator => "transfer.not_from_operator",
            TransferError::InProgress => "transfer.in_progress",
            TransferError::SameOperator => "transfer.same_operator",
            TransferError::UnknownTarget => "transfer.unknown_target",
            TransferError::ExternalNotAllowed => "transfer.external_not_allowed",
            TransferError::TrunkBusy => "transfer.trunk_busy",
            TransferError::ReplacesUnknown => "transfer.replaces_unknown",
            TransferError::ReplacesNotConsultation => "transfer.replaces_not_consultation",
            TransferError::AttendedToQueue => "transfer.attended_to_queue",
            TransferError::AttendedToFlow => "transfer.attended_to_flow",
            TransferError::NoConsultation => "transfer.no_consultation",
            TransferError::ConsultNotAnswered => "transfer.consult_not_answered",
            TransferError::TargetUnreachable => "transfer.target_unreachable",
        }
    }

    /// The answer to a REFER refused for this reason.
    pub(super) fn sip(self) -> (u16, &'static str) {
        match self {
            TransferError::UnknownTarget => (404, "Not Found"),
            TransferError::TrunkBusy => (503, "Service Unavailable"),
            TransferError::InProgress => (491, "Request Pending"),
            // RFC 3891 §3: no dialog matches the Replaces.
            TransferError::ReplacesUnknown => (481, "Call/Transaction Does Not Exist"),
            TransferError::NotLive | TransferError::NotBridged => (481, "Call Does Not Exist"),
            _ => (403, "Forbidden"),
        }
    }
}

/// What the API asks of a call's transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferAction {
    /// Send the caller to `to` (an extension, a queue name, or the external prefix + a number).
    Blind { to: String },
    /// Put the caller on hold and ring `to` for the operator to consult first.
    Consult { to: String },
    /// The consulted target takes the caller; the operator leaves.
    Complete,
    /// The consultation ends; the caller is back with the operator.
    Cancel,
}

/// `POST /api/v1/calls/{id}/transfer[/complete|/cancel]`, as the SIP task receives it.
#[derive(Debug)]
pub struct TransferControl {
    pub call_id: String,
    pub action: TransferAction,
    /// An operator's token may only transfer a call bridged to it.
    pub operator: Option<String>,
    pub reply: tokio::sync::oneshot::Sender<Result<TransferTarget, TransferError>>,
}

/// A transfer under way, by the caller's leg.
pub(super) struct Transfer {
    pub(super) from: String,
    pub(super) target: TransferTarget,
    /// Where an unanswered target sends the caller back (the queue that found the first
    /// operator, with the caller's request and wait so far).
    pub(super) back_to: Option<(String, JoinRequest)>,
    /// An attended transfer's consultation (`None`: blind).
    pub(super) consult: Option<super::consult::Consult>,
}

impl Calls {
    /// A REFER on a leg: from a bridged operator's phone it transfers that operator's caller
    /// (blind, or with `Replaces` attended: to the party of the operator's own call it names,
    /// see `replaces`); anything else is refused (an outside caller or a trunk never sends a
    /// call elsewhere).
    pub fn refer(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        leg: LegId,
        refer_to: ReferTo,
        referred_by: Option<String>,
    ) {
        let result = match (&refer_to.replaces, &refer_to.user) {
            // (Sent on either of the operator's two calls: checked there.)
            (Some(replaces), _) => {
                self.refer_replaces(endpoint, now, leg, replaces, referred_by.as_deref())
            }
            // A caller's (or trunk's) own leg: never theirs to send elsewhere.
            _ if !self.outbound.contains_key(&leg) => Err(TransferError::NotFromOperator),
            (None, None) => Err(TransferError::UnknownTarget),
            (None, Some(target)) => {
                self.transfer(endpoint, now, leg, target, "refer", referred_by.as_deref())
            }
        };
        match result {
            Ok(target) => {
                tracing::info!(leg, to = %target.name(), kind = target.kind(), "REFER accepted");
                endpoint.accept_refer(now, leg);
                // The caller is ours now: the transferor's part is done.
                endpoint.notify_refer(now, leg, 200, "OK");
                endpoint.hangup(now, leg);
            }
            Err(e) => {
                tracing::info!(leg, uri = %refer_to.uri, error = %e, "REFER refused");
                let (status, reason) = e.sip();
                endpoint.reject_refer(now, leg, status, reason);
            }
        }
    }

    /// The API's transfer: the operator bridged to the call (for an operator's token, only when
    /// it is theirs) is let go, the caller goes to `to`.
    pub fn transfer_control(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        request: TransferControl,
    ) {
        let caller = self
            .active
            .iter()
            .find(|(_, a)| a.call_id == request.call_id && !a.ended)
            .map(|(leg, _)| *leg);
        let bridged = caller.and_then(|caller| {
            self.outbound
                .iter()
                .find(|(_, o)| o.caller_leg == caller && o.is_bridged_operator())
                .map(|(out, o)| (*out, o.ext.clone()))
        });
        let result = match (caller, bridged, &request.operator) {
            (None, _, _) => Err(TransferError::NotLive),
            (Some(_), Some((_, ext)), Some(me)) if ext.is_empty() || &ext != me => {
                Err(TransferError::NotLive)
            }
            (Some(_), None, Some(_)) => Err(TransferError::NotLive),
            (Some(_), None, None) => Err(TransferError::NotBridged),
            (Some(caller), Some((out, _)), _) => {
                let by = request
                    .operator
                    .as_deref()
                    .map_or("api", |_| "api.operator");
                match &request.action {
                    TransferAction::Blind { to } => {
                        let result = self.transfer(endpoint, now, out, to, by, None);
                        if result.is_ok() {
                            endpoint.hangup(now, out);
                        }
                        result
                    }
                    TransferAction::Consult { to } => self.consult(endpoint, now, out, to, by),
                    TransferAction::Complete => self.complete_consult(endpoint, now, caller),
                    TransferAction::Cancel => self.cancel_consult(endpoint, now, caller),
                }
            }
        };
        let _ = request.reply.send(result);
    }

    /// Takes the caller of operator leg `out` away from it and sends them to `name`.
    fn transfer(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        out: LegId,
        name: &str,
        by: &'static str,
        referred_by: Option<&str>,
    ) -> Result<TransferTarget, TransferError> {
        let (caller, from, back_to) = self.transferable(out)?;
        let target = self.transfer_target(endpoint, now, name, &from)?;
        if let TransferTarget::Flow(flow) = &target {
            let flow = crate::ivr::FlowId::new(flow).map_err(|_| TransferError::UnknownTarget)?;
            self.transfer_to_flow(endpoint, now, (out, caller), &from, flow, (by, referred_by));
            return Ok(target);
        }
        let hold_music = back_to
            .as_ref()
            .and_then(|(queue, _)| self.acd.media(queue))
            .map(|m| m.hold_music.clone());
        if let Some(o) = self.outbound.get_mut(&out) {
            o.detached = true;
        }
        self.end_supervision_of(endpoint, now, caller);
        metrics::counter!("openline_transfers_total", "kind" => target.kind()).increment(1);
        self.event(
            caller,
            "transfer",
            serde_json::json!({
                "from": from,
                "to": target.name(),
                "kind": target.kind(),
                "by": by,
                "referred_by": referred_by,
            }),
        );
        self.tell(caller, CallCommand::Transfer { hold_music });
        self.transfers.insert(
            caller,
            Transfer {
                from,
                target: target.clone(),
                back_to,
                consult: None,
            },
        );
        self.ring_transfer_target(endpoint, now, caller);
        Ok(target)
    }

    /// The caller of operator leg `out` goes to `flow` at once: no ring, nothing to come back
    /// from (the flow decides what follows).
    fn transfer_to_flow(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        (out, caller): (LegId, LegId),
        from: &str,
        flow: crate::ivr::FlowId,
        (by, referred_by): (&'static str, Option<&str>),
    ) {
        if let Some(o) = self.outbound.get_mut(&out) {
            o.detached = true;
        }
        self.end_supervision_of(endpoint, now, caller);
        metrics::counter!("openline_transfers_total", "kind" => "flow").increment(1);
        let to = flow.to_string();
        self.event(
            caller,
            "transfer",
            serde_json::json!({
                "from": from, "to": to, "kind": "flow", "by": by, "referred_by": referred_by,
            }),
        );
        let flows = self.shared.flows.borrow().clone();
        let variables = self
            .active
            .get(&caller)
            .map(|a| {
                BTreeMap::from([
                    ("caller".to_string(), a.caller.clone()),
                    ("call_id".to_string(), a.call_id.clone()),
                ])
            })
            .unwrap_or_default();
        self.tell(
            caller,
            CallCommand::TransferToFlow {
                flow,
                flows,
                variables,
            },
        );
        self.event(
            caller,
            "transfer_connected",
            serde_json::json!({ "from": from, "to": to, "kind": "flow" }),
        );
    }

    /// Operator leg `out` may hand its caller on: it is an operator's leg (not a trunk's) bridged
    /// to a live call with no transfer under way. The caller's leg, the operator, and the queue
    /// the caller came from.
    pub(super) fn transferable(
        &self,
        out: LegId,
    ) -> Result<(LegId, String, Option<QueueJoin>), TransferError> {
        let o = self
            .outbound
            .get(&out)
            .filter(|o| o.is_bridged_operator())
            .ok_or(TransferError::NotBridged)?;
        if o.ext.is_empty() || o.via_trunk {
            return Err(TransferError::NotFromOperator);
        }
        let (caller, from) = (o.caller_leg, o.ext.clone());
        let active = self
            .active
            .get(&caller)
            .filter(|a| !a.ended && a.task.is_some())
            .ok_or(TransferError::NotLive)?;
        if self.transfers.contains_key(&caller) {
            return Err(TransferError::InProgress);
        }
        Ok((caller, from, active.last_queue.clone()))
    }

    /// What a transfer's `name` is, looked up in this order: an operator, a queue, a loaded
    /// flow marked `transfer: true`, or an external number the transferor may dial.
    pub(super) fn transfer_target(
        &self,
        endpoint: &Endpoint,
        now: Instant,
        name: &str,
        from: &str,
    ) -> Result<TransferTarget, TransferError> {
        if name == from {
            return Err(TransferError::SameOperator);
        }
        if self.acd.is_operator(name) || !endpoint.registrar().bindings(name, now).is_empty() {
            return Ok(TransferTarget::Operator(name.to_string()));
        }
        if self.acd.has_queue(name) {
            return Ok(TransferTarget::Queue(name.to_string()));
        }
        if self
            .shared
            .flows
            .borrow()
            .get(name)
            .is_some_and(|f| f.transfer)
        {
            return Ok(TransferTarget::Flow(name.to_string()));
        }
        let number = self.config.external.as_ref().and_then(|x| x.number(name));
        let Some(number) = number else {
            return Err(TransferError::UnknownTarget);
        };
        match self.external_refusal(from, number) {
            None => Ok(TransferTarget::External(number.to_string())),
            Some((_, 503, _)) => Err(TransferError::TrunkBusy),
            Some(_) => Err(TransferError::ExternalNotAllowed),
        }
    }

    /// Rings (or queues the caller for) the target of the caller's transfer.
    fn ring_transfer_target(&mut self, endpoint: &mut Endpoint, now: Instant, caller: LegId) {
        let Some(t) = self.transfers.get(&caller) else {
            return;
        };
        let ringing = match t.target.clone() {
            TransferTarget::Operator(ext) => self.ring_operator(endpoint, now, caller, &ext, None),
            TransferTarget::External(number) => {
                self.ring_trunk(endpoint, now, caller, &number, None)
            }
            TransferTarget::Flow(_) => return, // (taken at once in `transfer`)
            TransferTarget::Queue(queue) => {
                // A queue keeps the caller's priority and wait; skills belong to the old queue.
                let request = t
                    .back_to
                    .as_ref()
                    .map(|(_, r)| JoinRequest {
                        priority: r.priority,
                        waited: r.waited,
                        ..Default::default()
                    })
                    .unwrap_or_default();
                self.enqueue(endpoint, now, caller, &queue, request);
                return;
            }
        };
        match ringing {
            Ok(out) => {
                self.ring_deadlines
                    .insert((now + TRANSFER_RING_TIMEOUT, out));
            }
            Err(reason) => {
                self.transfer_unreached(endpoint, now, caller, reason);
            }
        }
    }

    /// The transfer's target answered and is bridged: the transfer is done.
    pub(super) fn transfer_connected(&mut self, caller: LegId, ext: &str) {
        if let Some(t) = self.transfers.remove(&caller) {
            let to = if ext.is_empty() { t.target.name() } else { ext };
            self.event(
                caller,
                "transfer_connected",
                serde_json::json!({ "from": t.from, "to": to, "kind": t.target.kind() }),
            );
        }
    }

    /// The target operator or number did not answer (busy, rejected, not registered): a caller
    /// who came through a queue goes back to it; otherwise the flow hears a failed dial.
    /// Returns false when the caller has no transfer under way.
    pub(super) fn transfer_unreached(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        caller: LegId,
        reason: &str,
    ) -> bool {
        let Some(t) = self.transfers.remove(&caller) else {
            return false;
        };
        if t.consult.is_some() {
            // The consulted target did not answer: the caller is back with the operator.
            self.event(
                caller,
                "transfer_failed",
                serde_json::json!({ "to": t.target.name(), "kind": t.target.kind(), "reason": reason, "attended": true }),
            );
            self.tell(caller, CallCommand::ConsultCancel);
            return true;
        }
        let back = t.back_to.clone();
        self.event(
            caller,
            "transfer_failed",
            serde_json::json!({
                "to": t.target.name(),
                "kind": t.target.kind(),
                "reason": reason,
                "back_to": back.as_ref().map(|(queue, _)| queue),
            }),
        );
        match back {
            Some((queue, request)) => {
                self.transfers.insert(
                    caller,
                    Transfer {
                        from: t.from,
                        target: TransferTarget::Queue(queue.clone()),
                        back_to: None,
                        consult: None,
                    },
                );
                self.enqueue(endpoint, now, caller, &queue, request);
            }
            None => self.tell(
                caller,
                CallCommand::DialResult(crate::ivr::DialResult::Failed {
                    reason: format!("transfer.{reason}"),
                }),
            ),
        }
        true
    }

    /// The caller hung up: nothing of their transfer goes on.
    pub(super) fn forget_transfer(&mut self, caller: LegId) {
        self.transfers.remove(&caller);
    }
}

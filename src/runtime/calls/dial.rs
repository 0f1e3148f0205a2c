//! The call layer's outbound legs: an operator's phone rung for a caller's flow (`dial`), its
//! answer handed to the caller's task for bridging, re-INVITEs from it, and how the dial ended.

use super::*;

/// An operator's leg the flow (`dial`) or a queue is ringing or talking to, for a caller's call.
pub(super) struct OutboundLeg {
    pub(super) caller_leg: LegId,
    /// The operator's extension: the one rung, or on a trunk leg the one who placed the call
    /// (it counts as theirs toward `max_calls` while it is up).
    pub(super) ext: String,
    /// Rung by this queue (else by the flow's `dial`).
    pub(super) queue: Option<String>,
    pub(super) port: u16,
    /// Our SDP session on this leg: every new description bumps its version.
    pub(super) sdp_origin: sdp::Origin,
    /// Placed through the dialplan's trunk (counts toward its `max_channels`).
    pub(super) via_trunk: bool,
    /// Until the answer: then they go to the caller's task.
    pub(super) sockets: Option<(std::net::UdpSocket, std::net::UdpSocket)>,
    /// A queue ring's answered media, until the ACD says to bridge it.
    pub(super) answered_media: Option<(std::net::UdpSocket, std::net::UdpSocket, SessionConfig)>,
    pub(super) answered: bool,
    /// The ACD counts this call as the operator's (so its end is reported once): from the
    /// answer, or from the first ring for an operator's own call out through a trunk.
    pub(super) counted: bool,
    /// We gave up on this leg ourselves (cancelled, timed out): its end is not news for the flow
    /// or the queue.
    pub(super) reported: bool,
    /// The operator transferred the caller away: the leg is out of the bridge, and its end is
    /// not the caller's news.
    pub(super) detached: bool,
    /// Rung for an operator to consult before an attended transfer: bridged to the operator,
    /// not the caller, until the transfer completes.
    pub(super) consult: bool,
    /// A supervisor's leg: joins the caller's bridge in a mode, never bridged as the operator.
    pub(super) supervising: bool,
}

impl OutboundLeg {
    /// The leg is the operator talking with its caller now (answered, in the bridge; not a
    /// consulted target, not a supervisor).
    pub(super) fn is_bridged_operator(&self) -> bool {
        self.answered && self.counted && !self.detached && !self.consult && !self.supervising
    }

    /// The leg is an operator's, rung for the task's caller: a supervisor may join it. Not an
    /// operator's own call out through the trunk: there the task's caller is the operator and
    /// this leg the outside party, who must never hear a whisper.
    pub(super) fn is_supervisable(&self) -> bool {
        self.is_bridged_operator() && !self.via_trunk && !self.ext.is_empty()
    }
}

impl Calls {
    /// A re-INVITE from an operator's phone (hold, resume): answered on the operator leg's port,
    /// and the bridged session in the caller's task takes the new parameters.
    pub(super) fn reoffer_outbound(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        out: LegId,
        offer: &[u8],
    ) {
        let Some(o) = self.outbound.get_mut(&out).filter(|o| o.answered) else {
            endpoint.reject_reinvite(now, out, 491, "Request Pending");
            return;
        };
        let Ok(negotiated) = sdp::negotiate(offer) else {
            endpoint.reject_reinvite(now, out, 488, "Not Acceptable Here");
            return;
        };
        // The same session, the same address (also when the phone holds with c=0.0.0.0).
        o.sdp_origin = o.sdp_origin.next();
        let (port, caller, origin) = (o.port, o.caller_leg, o.sdp_origin);
        // (A consulted target's or a supervisor's re-INVITE is answered; their session keeps
        // its parameters: they are not the task's bridged operator.)
        let bridged_operator = !o.consult && !o.supervising;
        if let Some(task) = self
            .active
            .get(&caller)
            .and_then(|a| a.task.as_ref())
            .filter(|_| bridged_operator)
        {
            let config = session_config(Some(&negotiated), self.config.media_timeout);
            let _ = task.send(CallCommand::RenegotiateOther(config));
        }
        let answer = sdp::write(&origin, port, Some(&negotiated));
        endpoint.answer_reinvite(now, out, Bytes::from(answer));
    }

    /// A flow's `dial` node: an operator's extension rings their registered phone; the dialplan's
    /// external prefix + a number goes out through its trunk (the same numbers an operator's
    /// phone may dial), but only when the flow file names it (`may_use_trunk`): a target built
    /// from variables may carry the caller's digits, and the caller must never reach the trunk.
    pub(super) fn dial(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        caller_leg: LegId,
        target: &str,
        timeout: Duration,
        may_use_trunk: bool,
    ) {
        let external = self
            .config
            .external
            .as_ref()
            .and_then(|x| x.number(target).map(str::to_string));
        let ringing = match external {
            _ if self.acd.is_operator(target) => {
                self.ring_operator(endpoint, now, caller_leg, target, None)
            }
            Some(number) if may_use_trunk => {
                self.ring_trunk(endpoint, now, caller_leg, &number, None)
            }
            Some(_) => {
                tracing::warn!(caller_leg, %target, "a dial target built from variables is an external number: refused (toll fraud)");
                Err("dial.external_not_allowed")
            }
            None => self.ring_operator(endpoint, now, caller_leg, target, None),
        };
        match ringing {
            Ok(out) => {
                self.ring_deadlines.insert((now + timeout, out));
            }
            Err(reason) => self.dial_result(endpoint, now, caller_leg, reason),
        }
    }

    /// INVITEs the operator's newest binding for the caller; the leg's fate arrives as
    /// `outbound` / `outbound_ended`.
    pub(super) fn ring_operator(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        caller_leg: LegId,
        ext: &str,
        queue: Option<&str>,
    ) -> Result<LegId, &'static str> {
        let binding = endpoint
            .registrar()
            .bindings(ext, now)
            .into_iter()
            .max_by_key(|b| b.expires_at)
            .cloned();
        let Some(binding) = binding else {
            tracing::info!(caller_leg, %ext, reason = "dial.not_registered", "operator not rung");
            return Err("dial.not_registered");
        };
        let Some(active) = self.active.get(&caller_leg).filter(|a| !a.ended) else {
            return Err("dial.caller_gone");
        };
        let (from_user, from_display) = (active.caller.clone(), active.caller_name.clone());
        tracing::info!(caller_leg, %ext, queue = ?queue, to = %binding.peer.addr, "ringing an operator");
        let target = crate::sip::endpoint::OutboundTarget {
            uri: binding.contact_uri,
            peer: binding.peer,
            from_display,
            from_user,
            sdp: Bytes::new(),
            login: None,
        };
        self.ring_leg(endpoint, now, caller_leg, target, ext, queue)
    }

    /// INVITEs `number` at the trunk's proxy, with the trunk's account for its challenges, for
    /// an operator's own call (`placed_by`) or a flow's `dial`. The caller id is the trunk's
    /// `from_user`, else the operator's extension, else the caller's number (a forward).
    pub(super) fn ring_trunk(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        caller_leg: LegId,
        number: &str,
        placed_by: Option<&str>,
    ) -> Result<LegId, &'static str> {
        let Some(external) = self.config.external.as_ref() else {
            return Err("dial.no_trunk");
        };
        // Flows' dials are held to the dialplan's channels too (operators are refused earlier,
        // with 503, in `external_refusal`).
        if self.trunk_legs_up() >= external.max_channels {
            return Err("dial.trunk_busy");
        }
        let trunk = external.trunk.clone();
        let Some(active) = self.active.get(&caller_leg).filter(|a| !a.ended) else {
            return Err("dial.caller_gone");
        };
        let from_user = trunk
            .from_user
            .clone()
            .or_else(|| placed_by.map(str::to_string))
            .unwrap_or_else(|| active.caller.clone());
        let (peer, login) = trunk_peer(&trunk);
        tracing::info!(caller_leg, placed_by = ?placed_by, trunk = %trunk.name, %number, "dialing out through a trunk");
        let target = crate::sip::endpoint::OutboundTarget {
            uri: format!("sip:{number}@{}", trunk.proxy),
            peer,
            from_display: None,
            from_user,
            sdp: Bytes::new(),
            login,
        };
        let ext = placed_by.unwrap_or("");
        let out = self.ring_leg(endpoint, now, caller_leg, target, ext, None)?;
        if let Some(o) = self.outbound.get_mut(&out) {
            o.via_trunk = true;
        }
        if let Some(operator) = placed_by
            && let Some(o) = self.outbound.get_mut(&out)
        {
            // The operator is on this call from the first ring: no queue call is offered to
            // them meanwhile beyond their `max_calls`.
            o.counted = true;
            self.acd.call_started(now, operator);
            self.run_acd(endpoint, now);
        }
        Ok(out)
    }

    /// Binds the leg's RTP port, writes our offer into `target` and sends the INVITE; the
    /// leg's fate arrives as `outbound` / `outbound_ended`.
    fn ring_leg(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        caller_leg: LegId,
        mut target: crate::sip::endpoint::OutboundTarget,
        ext: &str,
        queue: Option<&str>,
    ) -> Result<LegId, &'static str> {
        let Some((port, sockets)) = self.bind_rtp() else {
            return Err("dial.no_port");
        };
        let local_ip = self
            .config
            .public_ip
            .unwrap_or_else(|| self.local_ip_for(target.peer.addr.ip()));
        let origin = sdp::Origin::new(local_ip, Utc::now().timestamp_micros().unsigned_abs());
        target.sdp = Bytes::from(sdp::write(&origin, port, None));
        let (remote_uri, peer) = (target.uri.clone(), target.peer);
        let out = endpoint.dial(now, target);
        let _ = self.records.send(RecordOp::LegStarted {
            caller_leg,
            leg: out,
            sip_call_id: endpoint.sip_call_id(out).unwrap_or_default().to_string(),
            remote_uri,
            remote_addr: peer.addr.to_string(),
            transport: peer.transport.as_str(),
        });
        self.outbound.insert(
            out,
            OutboundLeg {
                caller_leg,
                ext: ext.to_string(),
                queue: queue.map(str::to_string),
                port,
                sdp_origin: origin,
                via_trunk: false,
                sockets: Some(sockets),
                answered_media: None,
                answered: false,
                counted: false,
                reported: false,
                detached: false,
                consult: false,
                supervising: false,
            },
        );
        Ok(out)
    }

    /// Progress and the answer on an operator's leg.
    pub fn outbound(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        out: LegId,
        update: crate::sip::endpoint::OutboundUpdate,
    ) {
        if self.is_originated(out) {
            self.originated_answered(endpoint, now, out, update);
            return;
        }
        let crate::sip::endpoint::OutboundUpdate::Answered { sdp: answer } = update else {
            return;
        };
        let Some(o) = self.outbound.get_mut(&out) else {
            return;
        };
        if o.reported {
            endpoint.hangup(now, out); // answered after we gave up
            return;
        }
        let negotiated = sdp::negotiate(&answer);
        let (Ok(negotiated), Some((rtp, rtcp))) = (negotiated, o.sockets.take()) else {
            o.reported = true;
            let caller = o.caller_leg;
            endpoint.hangup(now, out);
            self.dial_result(endpoint, now, caller, "dial.no_media");
            return;
        };
        o.answered = true;
        let caller = o.caller_leg;
        let leg_ext = o.ext.clone();
        let key_codes = !o.via_trunk;
        let _ = self.records.send(RecordOp::LegAnswered {
            leg: out,
            at: Utc::now(),
        });
        let session = session_config(Some(&negotiated), self.config.media_timeout);
        if o.consult {
            self.consult_answered(endpoint, now, out, (rtp, rtcp, session));
            return;
        }
        if o.supervising {
            self.supervisor_answered(endpoint, now, out, (rtp, rtcp, session));
            return;
        }
        if o.queue.is_some() {
            // The queue decides: bridge (the ring is live) or BYE (answered too late).
            o.answered_media = Some((rtp, rtcp, session));
            let ext = o.ext.clone();
            self.acd.ring_answered(now, caller, &ext);
            self.run_acd(endpoint, now);
            return;
        }
        if !o.counted {
            o.counted = true;
            let ext = o.ext.clone();
            self.acd.call_started(now, &ext);
            self.run_acd(endpoint, now);
        }
        if self.active.get(&caller).is_some_and(|a| !a.answered) {
            // A direct call: the caller is answered now, with no flow.
            self.answer_leg(endpoint, now, caller);
        }
        self.transfer_connected(caller, &leg_ext);
        match self.active.get(&caller).and_then(|a| a.task.as_ref()) {
            Some(task) => {
                let _ = task.send(CallCommand::Bridge {
                    rtp,
                    rtcp,
                    session,
                    queue: None,
                    key_codes,
                });
            }
            None => endpoint.hangup(now, out),
        }
    }

    pub(super) fn outbound_ended(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        out: LegId,
        reason: EndReason,
    ) {
        let Some(o) = self.outbound.remove(&out) else {
            return;
        };
        self.ring_deadlines.retain(|(_, l)| *l != out);
        self.ports.release(o.port);
        let status = match reason {
            EndReason::Rejected(s) => Some(i32::from(s)),
            _ => None,
        };
        let _ = self.records.send(RecordOp::LegEnded {
            leg: out,
            at: Utc::now(),
            status,
        });
        if o.counted {
            self.acd.call_ended(now, &o.ext, o.queue.as_deref());
        }
        if o.consult {
            self.consult_leg_ended(o.caller_leg, out, reason);
            self.run_acd(endpoint, now);
            return;
        }
        if o.supervising {
            self.supervisor_leg_ended(o.caller_leg, out);
            self.run_acd(endpoint, now);
            return;
        }
        if o.counted && o.answered && !o.detached {
            self.end_supervision_of(endpoint, now, o.caller_leg);
            if self.transferor_left_consult(out, o.caller_leg) {
                // The consulted target has the caller now (or is rung for them).
            } else if let Some(task) = self.active.get(&o.caller_leg).and_then(|a| a.task.as_ref())
            {
                let _ = task.send(CallCommand::Unbridge);
            }
        } else if o.reported || o.answered {
            // We cancelled it, or it answered a ring the queue had already given up on.
        } else if o.queue.is_some() {
            self.acd
                .ring_failed(now, o.caller_leg, &o.ext, ring_failure(reason));
        } else {
            let why = match reason {
                EndReason::Rejected(486) | EndReason::Rejected(600) => "busy".to_string(),
                EndReason::Rejected(s) => format!("rejected.{s}"),
                _ => "no_answer".to_string(),
            };
            self.dial_result(endpoint, now, o.caller_leg, &why);
        }
        self.run_acd(endpoint, now);
    }

    /// The ring failed: the flow hears why, or the colleague's caller of a direct call (not
    /// answered yet) gets the matching SIP refusal.
    pub(super) fn dial_result(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        caller_leg: LegId,
        reason: &str,
    ) {
        if self.transfer_unreached(endpoint, now, caller_leg, reason) {
            return;
        }
        if let Some(active) = self.active.get(&caller_leg)
            && !active.answered
            && active.task.is_none()
        {
            let (status, phrase) = refusal_for(reason);
            endpoint.reject(now, caller_leg, status, phrase);
            return;
        }
        let result = crate::ivr::DialResult::Failed {
            reason: reason.to_string(),
        };
        if let Some(task) = self.active.get(&caller_leg).and_then(|a| a.task.as_ref()) {
            let _ = task.send(CallCommand::DialResult(result));
        }
    }
}

/// The SIP refusal for an operator whose own call (to a colleague or out through a trunk) failed
/// with `reason`: the far end's status where it means the same to the phone, else 480. A trunk
/// that still challenges after our credentials (401/407) is our configuration's fault: 503.
fn refusal_for(reason: &str) -> (u16, &'static str) {
    let status = reason
        .strip_prefix("rejected.")
        .and_then(|s| s.parse::<u16>().ok());
    match (reason, status) {
        ("busy", _) | (_, Some(486 | 600)) => (486, "Busy Here"),
        (_, Some(403)) => (403, "Forbidden"),
        (_, Some(404 | 604)) => (404, "Not Found"),
        (_, Some(484)) => (484, "Address Incomplete"),
        (_, Some(488 | 606)) => (488, "Not Acceptable Here"),
        (_, Some(603)) => (603, "Decline"),
        (_, Some(401 | 407 | 500..=599)) => (503, "Service Unavailable"),
        _ => (480, "Temporarily Unavailable"),
    }
}

/// How a queue's ring ended, for the missed-ring count: busy and unreachable phones are not
/// the operator's miss.
fn ring_failure(reason: EndReason) -> crate::queue::RingFailure {
    use crate::queue::RingFailure;
    match reason {
        EndReason::Rejected(486 | 600) => RingFailure::Busy,
        EndReason::Rejected(603) => RingFailure::Rejected,
        EndReason::Rejected(408 | 480 | 487) | EndReason::Cancelled => RingFailure::NoAnswer,
        _ => RingFailure::Unreachable,
    }
}

/// Where INVITEs to `trunk` go (UDP to its proxy) and the account that answers its challenges.
pub(super) fn trunk_peer(
    trunk: &crate::config::TrunkConfig,
) -> (
    crate::sip::transport::Peer,
    Option<crate::sip::endpoint::DigestLogin>,
) {
    let peer = crate::sip::transport::Peer {
        transport: crate::sip::transport::TransportKind::Udp,
        addr: trunk.proxy,
        conn: None,
    };
    let login = trunk
        .username
        .clone()
        .map(|username| crate::sip::endpoint::DigestLogin {
            username,
            password: trunk.password.clone().unwrap_or_default(),
            realm: trunk.realm.clone(),
        });
    (peer, login)
}

#[cfg(test)]
mod tests {
    use super::refusal_for;

    #[test]
    fn the_far_ends_refusal_reaches_the_operator_as_the_nearest_status() {
        let table = [
            ("busy", 486),
            ("rejected.600", 486),
            ("rejected.404", 404),
            ("rejected.604", 404),
            ("rejected.484", 484),
            ("rejected.403", 403),
            ("rejected.603", 603),
            ("rejected.488", 488),
            ("rejected.401", 503),
            ("rejected.407", 503),
            ("rejected.502", 503),
            ("rejected.480", 480),
            ("no_answer", 480),
            ("dial.not_registered", 480),
            ("rejected.garbage", 480),
        ];
        for (reason, status) in table {
            assert_eq!(refusal_for(reason).0, status, "{reason}");
        }
    }
}

//! The call layer's outbound legs: an operator's phone rung for a caller's flow (`dial`), its
//! answer handed to the caller's task for bridging, re-INVITEs from it, and how the dial ended.

use super::*;

/// An operator's leg the flow is ringing or talking to, for a caller's call.
pub(super) struct OutboundLeg {
    pub(super) caller_leg: LegId,
    pub(super) port: u16,
    /// Until the answer: then they go to the caller's task.
    pub(super) sockets: Option<(std::net::UdpSocket, std::net::UdpSocket)>,
    pub(super) answered: bool,
    /// The caller's flow was already told how the dial ended (e.g. no answer in time).
    pub(super) reported: bool,
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
        let Some(o) = self.outbound.get(&out).filter(|o| o.answered) else {
            endpoint.reject_reinvite(now, out, 491, "Request Pending");
            return;
        };
        let Ok(negotiated) = sdp::negotiate(offer) else {
            endpoint.reject_reinvite(now, out, 488, "Not Acceptable Here");
            return;
        };
        let (port, caller) = (o.port, o.caller_leg);
        let local_ip = self.config.public_ip.unwrap_or_else(|| {
            negotiated
                .remote_ip
                .filter(|ip| !ip.is_unspecified())
                .map(|ip| self.local_ip_for(ip))
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        });
        if let Some(task) = self.active.get(&caller).and_then(|a| a.task.as_ref()) {
            let config = session_config(Some(&negotiated), self.config.media_timeout);
            let _ = task.send(CallCommand::RenegotiateOther(config));
        }
        let session_id = Utc::now().timestamp_micros().unsigned_abs();
        let answer = sdp::write(local_ip, port, session_id, Some(&negotiated));
        endpoint.answer_reinvite(now, out, Bytes::from(answer));
    }

    /// Rings an operator's registered phone for a caller's flow (`dial` node). Only operators'
    /// extensions with a live binding can be rung; external numbers need trunks (queues issue).
    pub(super) fn dial(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        caller_leg: LegId,
        target: &str,
        timeout: Duration,
    ) {
        let binding = endpoint
            .registrar()
            .bindings(target, now)
            .into_iter()
            .max_by_key(|b| b.expires_at)
            .cloned();
        let Some(binding) = binding else {
            tracing::info!(caller_leg, %target, reason = "dial.not_registered", "dial refused");
            self.dial_result(caller_leg, "dial.not_registered");
            return;
        };
        let Some((port, sockets)) = self.bind_rtp() else {
            self.dial_result(caller_leg, "dial.no_port");
            return;
        };
        let Some(active) = self.active.get(&caller_leg) else {
            self.ports.release(port);
            return;
        };
        let (from_user, from_display) = (active.caller.clone(), active.caller_name.clone());
        let local_ip = self
            .config
            .public_ip
            .unwrap_or_else(|| self.local_ip_for(binding.peer.addr.ip()));
        let session_id = Utc::now().timestamp_micros().unsigned_abs();
        let offer = sdp::write(local_ip, port, session_id, None);
        let out = endpoint.dial(
            now,
            crate::sip::endpoint::OutboundTarget {
                uri: binding.contact_uri.clone(),
                peer: binding.peer,
                from_display,
                from_user,
                sdp: Bytes::from(offer),
            },
        );
        tracing::info!(caller_leg, out, %target, to = %binding.peer.addr, "dialing an operator");
        let _ = self.records.send(RecordOp::LegStarted {
            caller_leg,
            leg: out,
            sip_call_id: endpoint.sip_call_id(out).unwrap_or_default().to_string(),
            remote_uri: binding.contact_uri.clone(),
            remote_addr: binding.peer.addr.to_string(),
            transport: binding.peer.transport.as_str(),
        });
        self.outbound.insert(
            out,
            OutboundLeg {
                caller_leg,
                port,
                sockets: Some(sockets),
                answered: false,
                reported: false,
            },
        );
        self.ring_deadlines.insert((now + timeout, out));
    }

    /// Progress and the answer on an operator's leg.
    pub fn outbound(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        out: LegId,
        update: crate::sip::endpoint::OutboundUpdate,
    ) {
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
            self.dial_result(caller, "dial.no_media");
            return;
        };
        o.answered = true;
        let caller = o.caller_leg;
        let _ = self.records.send(RecordOp::LegAnswered {
            leg: out,
            at: Utc::now(),
        });
        let session = session_config(Some(&negotiated), self.config.media_timeout);
        match self.active.get(&caller).and_then(|a| a.task.as_ref()) {
            Some(task) => {
                let _ = task.send(CallCommand::Bridge { rtp, rtcp, session });
            }
            None => endpoint.hangup(now, out),
        }
    }

    pub(super) fn outbound_ended(&mut self, out: LegId, reason: EndReason) {
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
        if o.answered {
            if let Some(task) = self.active.get(&o.caller_leg).and_then(|a| a.task.as_ref()) {
                let _ = task.send(CallCommand::Unbridge);
            }
        } else if !o.reported {
            let why = match reason {
                EndReason::Rejected(486) | EndReason::Rejected(600) => "busy".to_string(),
                EndReason::Rejected(s) => format!("rejected.{s}"),
                _ => "no_answer".to_string(),
            };
            self.dial_result(o.caller_leg, &why);
        }
    }

    pub(super) fn dial_result(&self, caller_leg: LegId, reason: &str) {
        let result = crate::ivr::DialResult::Failed {
            reason: reason.to_string(),
        };
        if let Some(task) = self.active.get(&caller_leg).and_then(|a| a.task.as_ref()) {
            let _ = task.send(CallCommand::DialResult(result));
        }
    }
}

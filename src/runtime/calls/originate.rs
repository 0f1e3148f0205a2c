//! Calls a voice broadcast places: the INVITE to the trunk for one recipient, the answer (a
//! call task with answering-machine detection, the message and the answer flow), and the
//! attempt's result for the broadcast dispatcher.
//!
//! An originated call is an ordinary call of the call layer (it is in `active`, owns its RTP
//! ports, runs a task, can join a queue and be bridged to an operator), whose one SIP leg is
//! the one we dialled. Its record is `outbound`, from the campaign's caller id to the number.

use super::dial::trunk_peer;
use super::*;
use crate::broadcast::amd::Verdict;
use crate::broadcast::{AttemptResult, Unanswered};
use crate::runtime::broadcasts::{AttemptReport, OriginateRequest};
use crate::runtime::call_task::{BroadcastSetup, MessageState};

/// What the call layer keeps about a call a broadcast placed.
pub(super) struct Originated {
    pub(super) request: OriginateRequest,
    pub(super) answered_at: Option<chrono::DateTime<Utc>>,
    pub(super) amd: Option<(Verdict, &'static str)>,
    pub(super) message: Option<MessageState>,
    /// The first key pressed, and whether the opt-out key was.
    pub(super) digit: Option<char>,
    pub(super) opted_out: bool,
    /// We cancelled it at the campaign's maximum ring time.
    pub(super) ring_timed_out: bool,
    /// It answered with nothing we could use.
    pub(super) no_media: bool,
    /// How SIP said it ended.
    pub(super) end: Option<EndReason>,
}

impl Calls {
    /// Places a broadcast's call: an INVITE for the number to the campaign's trunk.
    pub fn originate(&mut self, endpoint: &mut Endpoint, now: Instant, request: OriginateRequest) {
        let span =
            tracing::info_span!("call", call_id = %request.call_id, broadcast = %request.campaign);
        let _entered = span.enter();
        let Some(trunk) = self
            .config
            .trunks
            .iter()
            .find(|t| t.name == request.trunk)
            .cloned()
        else {
            tracing::error!(trunk = %request.trunk, "the campaign's trunk is not configured");
            self.report(request, AttemptResult::NotSent("broadcast.no_trunk"));
            return;
        };
        let Some((port, sockets)) = self.bind_rtp() else {
            tracing::warn!("no free RTP port for a broadcast call");
            self.report(request, AttemptResult::NotSent("broadcast.no_port"));
            return;
        };
        let local_ip = self
            .config
            .public_ip
            .unwrap_or_else(|| self.local_ip_for(trunk.proxy.ip()));
        let origin = sdp::Origin::new(local_ip, Utc::now().timestamp_micros().unsigned_abs());
        let from_user = request
            .caller_id
            .clone()
            .or_else(|| trunk.from_user.clone())
            .unwrap_or_else(|| "openline".to_string());
        let uri = format!("sip:{}@{}", request.number, trunk.proxy);
        let trunk_ip = trunk.proxy.ip();
        let (peer, login) = trunk_peer(&trunk);
        let target = crate::sip::endpoint::OutboundTarget {
            uri: uri.clone(),
            peer,
            from_display: None,
            from_user: from_user.clone(),
            sdp: Bytes::from(sdp::write(&origin, port, None)),
            login,
        };
        let leg = endpoint.dial(now, target);
        let sip_call_id = endpoint.sip_call_id(leg).unwrap_or_default().to_string();
        tracing::info!(number = %request.number, trunk = %trunk.name, attempt = %request.attempt_id, "broadcast call placed");
        metrics::counter!("openline_calls_started_total").increment(1);
        let utc = Utc::now();
        let _ = self.records.send(RecordOp::CallStarted {
            leg,
            call: NewCall {
                id: request.call_id.clone(),
                node_id: self.config.node_id.clone(),
                direction: "outbound".into(),
                caller: from_user,
                caller_name: None,
                callee: request.number.clone(),
                started_at: utc,
            },
            sip_leg: NewLeg {
                call_id: request.call_id.clone(),
                sip_call_id: sip_call_id.clone(),
                direction: "outbound".into(),
                local_tag: None,
                remote_tag: None,
                remote_uri: uri,
                remote_addr: Some(trunk.proxy.to_string()),
                transport: "udp".into(),
                started_at: utc,
            },
        });
        let _ = self.records.send(RecordOp::CallBroadcast {
            leg,
            broadcast_id: request.campaign.clone(),
            result: serde_json::Value::Null,
        });
        self.active.insert(
            leg,
            ActiveCall {
                port: Some(port),
                sockets: Some(sockets),
                sdp_origin: Some(origin),
                // `caller`: what an operator's phone shows if the recipient is put through to a
                // queue.
                ..ActiveCall::new(
                    request.call_id.clone(),
                    request.number.clone(),
                    request.name.clone(),
                    sip_call_id,
                    trunk_ip,
                )
            },
        );
        self.ring_deadlines.insert((now + request.max_ring, leg));
        self.originated.insert(
            leg,
            Originated {
                request,
                answered_at: None,
                amd: None,
                message: None,
                digit: None,
                opted_out: false,
                ring_timed_out: false,
                no_media: false,
                end: None,
            },
        );
    }

    /// The campaign is cancelled: its calls still ringing are cancelled too (answered ones
    /// finish).
    pub fn cancel_broadcast(&mut self, endpoint: &mut Endpoint, now: Instant, campaign: &str) {
        let ringing: Vec<LegId> = self
            .originated
            .iter()
            .filter(|(leg, o)| {
                o.request.campaign == campaign && self.active.get(leg).is_some_and(|a| !a.answered)
            })
            .map(|(leg, _)| *leg)
            .collect();
        for leg in ringing {
            endpoint.hangup(now, leg);
        }
    }

    pub(super) fn is_originated(&self, leg: LegId) -> bool {
        self.originated.contains_key(&leg)
    }

    /// The campaign's maximum ring time is up: CANCEL.
    pub(super) fn originated_ring_timeout(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        leg: LegId,
    ) {
        let answered = self.active.get(&leg).is_some_and(|a| a.answered);
        if let Some(o) = self.originated.get_mut(&leg)
            && !answered
        {
            o.ring_timed_out = true;
            endpoint.hangup(now, leg);
        }
    }

    /// The recipient (or their machine) answered: the call's task starts on our RTP port.
    pub(super) fn originated_answered(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        leg: LegId,
        update: crate::sip::endpoint::OutboundUpdate,
    ) {
        let crate::sip::endpoint::OutboundUpdate::Answered { sdp: answer } = update else {
            return;
        };
        let Some(active) = self.active.get_mut(&leg).filter(|a| !a.answered) else {
            return;
        };
        let negotiated = sdp::negotiate(&answer);
        let (Ok(negotiated), Some((rtp, rtcp)), Some(port)) =
            (negotiated, active.sockets.take(), active.port)
        else {
            if let Some(o) = self.originated.get_mut(&leg) {
                o.no_media = true;
            }
            tracing::warn!("a broadcast call answered without usable media");
            endpoint.hangup(now, leg);
            return;
        };
        active.answered = true;
        let session = session_config(Some(&negotiated), self.config.media_timeout);
        active.negotiated = Some(negotiated);
        let (call_id, number) = (active.call_id.clone(), active.caller.clone());
        let utc = Utc::now();
        let _ = self.records.send(RecordOp::CallAnswered { leg, at: utc });
        let Some(o) = self.originated.get_mut(&leg) else {
            return;
        };
        o.answered_at = Some(utc);
        let plan = o.request.plan.clone();
        let campaign = o.request.campaign.clone();
        let answer_flow = plan.answer_flow.as_ref().and_then(|flow| {
            let flows = self.shared.flows.borrow().clone();
            if flows.get(flow).is_none() {
                tracing::error!(%flow, "the campaign's answer flow is not loaded; the message plays alone");
                return None;
            }
            let mut variables = BTreeMap::new();
            variables.insert("caller".to_string(), number.clone());
            variables.insert("called".to_string(), number.clone());
            variables.insert("call_id".to_string(), call_id.clone());
            variables.insert("broadcast_id".to_string(), campaign.clone());
            Some(IvrSetup {
                flows,
                flow: flow.clone(),
                variables,
            })
        });
        let setup = BroadcastSetup {
            message: plan.message.clone(),
            data_dir: self.config.data_dir.clone(),
            amd: plan.amd,
            amd_settings: plan.amd_settings,
            answer_flow,
            opt_out_digit: plan.opt_out_digit,
        };
        // We are the caller: the callee's 200 is its consent, our ACK is on its way.
        self.start_task(now, leg, (rtp, rtcp, port), session, Some(setup), false);
    }

    /// What the call task reported about a broadcast call (detection, message, keys).
    pub(super) fn originated_notice(&mut self, notice: &CallNotice) {
        match notice {
            CallNotice::Amd {
                leg,
                verdict,
                reason,
            } => {
                if let Some(o) = self.originated.get_mut(leg) {
                    o.amd = Some((*verdict, reason));
                }
                metrics::counter!("openline_broadcast_amd_total", "verdict" => verdict.as_str())
                    .increment(1);
                self.event(
                    *leg,
                    "amd",
                    serde_json::json!({ "verdict": verdict.as_str(), "reason": reason }),
                );
            }
            CallNotice::Message { leg, state } => {
                if let Some(o) = self.originated.get_mut(leg)
                    && o.message != Some(MessageState::Complete)
                {
                    o.message = Some(*state);
                }
            }
            CallNotice::Digit { leg, digit, .. } => {
                if let Some(o) = self.originated.get_mut(leg) {
                    o.digit.get_or_insert(*digit);
                    if o.request.plan.opt_out_digit == Some(*digit) {
                        o.opted_out = true;
                    }
                }
            }
            _ => {}
        }
    }

    /// SIP says how a broadcast call ended; kept until the call is closed.
    pub(super) fn originated_ended(&mut self, leg: LegId, reason: EndReason) {
        if let Some(o) = self.originated.get_mut(&leg) {
            o.end = Some(reason);
        }
    }

    /// The disposition of a broadcast call that nobody answered.
    pub(super) fn originated_disposition(
        &self,
        leg: LegId,
        reason: EndReason,
    ) -> Option<(String, Option<&'static str>, Option<i32>)> {
        let o = self.originated.get(&leg)?;
        if self.active.get(&leg).is_some_and(|a| a.answered) {
            return Some(match reason {
                EndReason::RemoteBye => {
                    ("answered.callee_hangup".into(), Some("callee"), Some(200))
                }
                _ => ("answered.system_hangup".into(), Some("system"), Some(200)),
            });
        }
        Some(if o.no_media {
            ("failed.no_media".into(), Some("system"), None)
        } else if o.ring_timed_out || reason == EndReason::Cancelled {
            ("no_answer".into(), Some("system"), Some(487))
        } else {
            match reason {
                EndReason::Rejected(s @ (486 | 600)) => {
                    ("busy".into(), Some("callee"), Some(i32::from(s)))
                }
                EndReason::Rejected(s) => {
                    (format!("rejected.{s}"), Some("callee"), Some(i32::from(s)))
                }
                EndReason::Timeout => ("failed.timeout".into(), Some("system"), Some(408)),
                _ => ("failed.no_answer".into(), Some("system"), None),
            }
        })
    }

    /// The call is closing (its end record goes next): the attempt's result goes on the call
    /// record and to the dispatcher.
    pub(super) fn originated_closed(&mut self, leg: LegId) {
        let Some(o) = self.originated.remove(&leg) else {
            return;
        };
        let answered = o.answered_at.is_some();
        let result = if answered {
            AttemptResult::Answered {
                amd: o.amd,
                message: o.message,
                opted_out: o.opted_out,
            }
        } else {
            let unanswered = if o.no_media {
                Unanswered::NoMedia
            } else if o.ring_timed_out {
                Unanswered::RingTimeout
            } else {
                match o.end {
                    Some(EndReason::Rejected(status)) => Unanswered::Status(status),
                    Some(EndReason::Cancelled) => Unanswered::RingTimeout,
                    _ => Unanswered::NoResponse,
                }
            };
            AttemptResult::Unanswered(unanswered)
        };
        let json = result.summary(o.request.attempt_number, o.digit);
        let _ = self.records.send(RecordOp::CallBroadcast {
            leg,
            broadcast_id: o.request.campaign.clone(),
            result: json,
        });
        let digit = o.digit;
        let answered_at = o.answered_at;
        self.report_with(o.request, result, true, answered_at, digit);
    }

    fn report(&self, request: OriginateRequest, result: AttemptResult) {
        self.report_with(request, result, false, None, None);
    }

    fn report_with(
        &self,
        request: OriginateRequest,
        result: AttemptResult,
        dialled: bool,
        answered_at: Option<chrono::DateTime<Utc>>,
        digit: Option<char>,
    ) {
        if let Some(reports) = &self.shared.broadcast_reports {
            let _ = reports.send(AttemptReport {
                campaign: request.campaign,
                attempt_id: request.attempt_id,
                call_id: request.call_id,
                dialled,
                result,
                answered_at,
                digit,
            });
        }
    }
}

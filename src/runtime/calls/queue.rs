//! The call layer's side of the ACD: callers a flow puts in a queue, operators rung and bridged
//! for them, and what the queue tells the caller's task (hold music, position, overflow).

use super::*;
use crate::ivr::QueueResult;
use crate::runtime::acd::AcdAction;
use crate::sip::endpoint::REASON_COMPLETED_ELSEWHERE;

/// Requests from the API to the ACD (through the SIP task, its owner).
pub enum AcdRequest {
    /// An operator's status was set (already stored); false when there is no such operator.
    SetStatus {
        ext: String,
        status: crate::queue::Presence,
        /// The person's reason for a pause (`lunch`).
        reason: Option<String>,
        reply: tokio::sync::oneshot::Sender<bool>,
    },
    Queues(tokio::sync::oneshot::Sender<Vec<crate::runtime::acd::QueueSnapshot>>),
    Operators(tokio::sync::oneshot::Sender<Vec<crate::runtime::acd::OperatorSnapshot>>),
    /// A queue's members change; replies with the members after the change.
    EditMembers {
        queue: String,
        edit: crate::runtime::acd::MembersEdit,
        reply: tokio::sync::oneshot::Sender<Result<Vec<String>, crate::runtime::acd::MembersError>>,
    },
}

/// What the caller's task needs to know about the queue that bridged it.
#[derive(Debug, Clone)]
pub struct QueueBridge {
    pub queue: String,
    /// After the operator hangs up, the caller goes to this flow.
    pub rating_flow: Option<String>,
    /// Start recording here (the queue's `record`, when the call is not recorded already).
    pub record_to: Option<PathBuf>,
}

impl Calls {
    /// The flow's `queue` node: the caller joins, or hears that the queue does not exist.
    pub(super) fn enqueue(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        leg: LegId,
        queue: &str,
        request: crate::queue::JoinRequest,
    ) {
        if self.active.get(&leg).is_none_or(|a| a.ended) {
            return; // hung up before the flow got here
        }
        if let Some(active) = self.active.get_mut(&leg) {
            active.last_queue = Some((queue.to_string(), request.clone()));
        }
        if !self.acd.join(now, leg, queue, request) {
            tracing::warn!(%queue, "the flow names a queue that is not configured");
            self.forget_transfer(leg);
            self.tell(leg, CallCommand::QueueResult(QueueResult::Unavailable));
            return;
        }
        self.run_acd(endpoint, now);
    }

    pub fn acd_request(&mut self, endpoint: &mut Endpoint, now: Instant, request: AcdRequest) {
        match request {
            AcdRequest::SetStatus {
                ext,
                status,
                reason,
                reply,
            } => {
                let _ = reply.send(self.acd.set_status(now, &ext, status, reason));
                self.run_acd(endpoint, now);
            }
            AcdRequest::Queues(reply) => {
                let active = &self.active;
                let call_id = |leg: LegId| {
                    active
                        .get(&leg)
                        .map(|a| a.call_id.clone())
                        .unwrap_or_default()
                };
                let _ = reply.send(self.acd.snapshot(now, &call_id));
            }
            AcdRequest::Operators(reply) => {
                let _ = reply.send(self.acd.operators_snapshot(now));
            }
            AcdRequest::EditMembers { queue, edit, reply } => {
                let _ = reply.send(self.acd.edit_members(now, &queue, edit));
                self.run_acd(endpoint, now);
            }
        }
    }

    /// A config reload's live changes (`runtime::reload`), each with how it went.
    pub fn reload(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        changes: &[crate::runtime::reload::LiveChange],
    ) -> Vec<Result<(), String>> {
        use crate::runtime::acd::MembersEdit;
        use crate::runtime::reload::LiveChange;
        let results = changes
            .iter()
            .map(|change| match change {
                LiveChange::Members { queue, members } => self
                    .acd
                    .edit_members(now, queue, MembersEdit::Replace(members.clone()))
                    .map(drop)
                    .map_err(|e| e.to_string()),
                LiveChange::Skills { ext, skills } => {
                    self.acd.set_skills(now, ext, skills);
                    Ok(())
                }
                LiveChange::Supervisors(set) => {
                    // A supervisor no longer one who is on a call stays there until hanging up.
                    self.config.supervisors = set.clone();
                    Ok(())
                }
                LiveChange::Operator { config, .. } => {
                    self.upsert_operator(endpoint, now, config);
                    Ok(())
                }
                LiveChange::OperatorRemoved(ext) => self.remove_operator(endpoint, now, ext),
            })
            .collect();
        self.run_acd(endpoint, now);
        results
    }

    /// An operator added or changed by a reload: their password for the next challenge, their
    /// name, `max_calls` and skills in the queues, their dialling rights.
    fn upsert_operator(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        op: &crate::config::OperatorConfig,
    ) {
        let realm = endpoint.registrar().realm().to_string();
        let secret = crate::sip::registrar::OperatorSecret::from_password(
            &op.extension,
            &realm,
            &op.password,
        );
        endpoint.registrar_mut().set_operator(&op.extension, secret);
        let registered = !endpoint.registrar().bindings(&op.extension, now).is_empty();
        let seed = crate::runtime::acd::OperatorSeed {
            extension: op.extension.clone(),
            name: op.name.clone(),
            max_calls: op.max_calls,
            status: crate::queue::Presence::Online,
            status_reason: None,
            skills: op.skills.clone(),
        };
        self.acd.upsert_operator(now, seed, registered);
        if let Some(external) = self.config.external.as_mut() {
            external.policy.operators.insert(
                op.extension.clone(),
                crate::dialplan::OperatorRights {
                    external: op.dial_external,
                    // (Validated with the file: every pattern parses.)
                    allow: crate::dialplan::patterns(&op.dial_allow).unwrap_or_default(),
                },
            );
        }
    }

    /// An operator removed by a reload: no more registrations, rings or own calls; their calls
    /// that are up go on (a REFER from them is still honoured: it is their call).
    fn remove_operator(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        ext: &str,
    ) -> Result<(), String> {
        self.acd
            .remove_operator(now, ext)
            .map_err(|e| e.to_string())?;
        for contact_uri in endpoint.registrar_mut().remove_operator(ext) {
            let _ = self.records.send(RecordOp::BindingRemove {
                extension: ext.to_string(),
                contact_uri,
            });
        }
        self.config.supervisors.remove(ext);
        if let Some(external) = self.config.external.as_mut() {
            // (Unlisted operators have full rights: a removed one is barred outright.)
            external.policy.operators.insert(
                ext.to_string(),
                crate::dialplan::OperatorRights {
                    external: false,
                    allow: Vec::new(),
                },
            );
        }
        Ok(())
    }

    /// An operator's registration changed.
    pub fn registration_changed(&mut self, endpoint: &mut Endpoint, now: Instant, ext: &str) {
        let registered = !endpoint.registrar().bindings(ext, now).is_empty();
        self.acd.set_registered(now, ext, registered);
        self.run_acd(endpoint, now);
    }

    /// Carries out what the ACD decided.
    pub(super) fn run_acd(&mut self, endpoint: &mut Endpoint, now: Instant) {
        while let Some(action) = self.acd.poll_action() {
            match action {
                AcdAction::Joined {
                    caller,
                    queue,
                    position,
                } => {
                    let media = self.acd.media(&queue).cloned();
                    if let Some(media) = media {
                        self.tell(
                            caller,
                            CallCommand::Queued {
                                hold_music: media.hold_music,
                                announce_recording: media.announce_recording,
                            },
                        );
                    }
                    metrics::counter!("openline_queue_joined_total", "queue" => queue.clone())
                        .increment(1);
                    let _ = self.records.send(RecordOp::CallQueued {
                        leg: caller,
                        queue,
                        position,
                        at: Utc::now(),
                    });
                }
                AcdAction::Ring { caller, ext, queue } => {
                    metrics::counter!("openline_queue_rings_total", "queue" => queue.clone())
                        .increment(1);
                    if let Err(reason) =
                        self.ring_operator(endpoint, now, caller, &ext, Some(&queue))
                    {
                        tracing::info!(caller, %ext, %reason, "queue ring failed at once");
                        self.acd.ring_failed(
                            now,
                            caller,
                            &ext,
                            crate::queue::RingFailure::Unreachable,
                        );
                    }
                }
                AcdAction::Cancel {
                    caller,
                    ext,
                    completed_elsewhere,
                } => {
                    for out in self.queue_legs(caller, &ext) {
                        if let Some(o) = self.outbound.get_mut(&out) {
                            if o.answered {
                                continue;
                            }
                            o.reported = true;
                        }
                        let reason = completed_elsewhere.then_some(REASON_COMPLETED_ELSEWHERE);
                        endpoint.cancel_because(now, out, reason);
                    }
                }
                AcdAction::Bridge {
                    caller,
                    ext,
                    queue,
                    waited,
                } => self.bridge_queue_call(endpoint, now, caller, &ext, &queue, waited),
                AcdAction::Reject { caller, ext } => {
                    for out in self.queue_legs(caller, &ext) {
                        let answered_unbridged = self
                            .outbound
                            .get(&out)
                            .is_some_and(|o| o.answered && !o.counted);
                        if answered_unbridged {
                            endpoint.hangup(now, out);
                        }
                    }
                }
                AcdAction::Announce { caller, position } => {
                    self.tell(caller, CallCommand::QueuePosition(position));
                }
                AcdAction::Overflow {
                    caller,
                    queue,
                    waited,
                    flow,
                } => {
                    metrics::counter!("openline_queue_overflows_total", "queue" => queue.clone())
                        .increment(1);
                    self.forget_transfer(caller);
                    let _ = self.records.send(RecordOp::CallQueueOutcome {
                        leg: caller,
                        queue,
                        operator: None,
                        waited,
                        outcome: "overflow",
                    });
                    let result = match flow.and_then(|f| crate::ivr::FlowId::new(&f).ok()) {
                        Some(flow) => QueueResult::Continue { flow },
                        None => QueueResult::Ended {
                            disposition: "queue.overflow".into(),
                        },
                    };
                    self.tell(caller, CallCommand::QueueResult(result));
                }
                AcdAction::OperatorStatus {
                    ext,
                    status,
                    reason,
                } => {
                    tracing::warn!(%ext, reason = ?reason, "operator set away by the queue");
                    let _ = self.records.send(RecordOp::OperatorStatus {
                        ext,
                        status: crate::runtime::acd::presence_name(status),
                        reason,
                        at: Utc::now(),
                    });
                }
            }
        }
    }

    /// The caller hung up: out of the queue, no operator is rung for them again.
    pub(super) fn leave_queue(&mut self, endpoint: &mut Endpoint, now: Instant, leg: LegId) {
        if let Some((queue, waited)) = self.acd.leave(now, leg) {
            metrics::counter!("openline_queue_abandoned_total", "queue" => queue.clone())
                .increment(1);
            let _ = self.records.send(RecordOp::CallQueueOutcome {
                leg,
                queue,
                operator: None,
                waited,
                outcome: "abandoned",
            });
            self.run_acd(endpoint, now);
        }
    }

    fn bridge_queue_call(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        caller: LegId,
        ext: &str,
        queue: &str,
        waited: Duration,
    ) {
        let out = self.queue_legs(caller, ext).into_iter().find(|out| {
            self.outbound
                .get(out)
                .is_some_and(|o| o.answered_media.is_some())
        });
        let media = out.and_then(|out| {
            let o = self.outbound.get_mut(&out)?;
            o.counted = true;
            o.answered_media.take()
        });
        let Some((rtp, rtcp, session)) = media else {
            // The ACD counted the call, but its leg is gone: end it for the ACD too.
            self.acd.call_ended(now, ext, Some(queue));
            return;
        };
        metrics::counter!("openline_queue_answered_total", "queue" => queue.to_string())
            .increment(1);
        metrics::histogram!("openline_queue_wait_seconds", "queue" => queue.to_string())
            .record(waited.as_secs_f64());
        let _ = self.records.send(RecordOp::CallQueueOutcome {
            leg: caller,
            queue: queue.to_string(),
            operator: Some(ext.to_string()),
            waited,
            outcome: "answered",
        });
        if let Some((_, request)) = self
            .active
            .get_mut(&caller)
            .and_then(|a| a.last_queue.as_mut())
        {
            request.waited = waited;
        }
        self.transfer_connected(caller, ext);
        let media = self.acd.media(queue).cloned();
        let record = media.as_ref().is_some_and(|m| m.record);
        let record_to = if record {
            self.start_recording_row(caller)
        } else {
            None
        };
        let bridge = QueueBridge {
            queue: queue.to_string(),
            rating_flow: media.and_then(|m| m.rating_flow),
            record_to,
        };
        match self.active.get(&caller).and_then(|a| a.task.as_ref()) {
            Some(task) => {
                let _ = task.send(CallCommand::Bridge {
                    rtp,
                    rtcp,
                    session,
                    queue: Some(bridge),
                    key_codes: true,
                });
            }
            None => {
                if let Some(out) = out {
                    endpoint.hangup(now, out);
                }
            }
        }
    }

    /// The legs rung for this caller to this operator.
    fn queue_legs(&self, caller: LegId, ext: &str) -> Vec<LegId> {
        self.outbound
            .iter()
            .filter(|(_, o)| o.caller_leg == caller && o.ext == ext && o.queue.is_some())
            .map(|(out, _)| *out)
            .collect()
    }

    pub(super) fn tell(&self, leg: LegId, command: CallCommand) {
        if let Some(task) = self.active.get(&leg).and_then(|a| a.task.as_ref()) {
            let _ = task.send(command);
        }
    }
}

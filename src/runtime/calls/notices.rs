//! What the call tasks report to the call layer (digits dialled, queues joined, ratings, paths,
//! media trouble, a task that finished) and what the SIP side does about each.

use super::*;

impl Calls {
    /// Something the media task reports.
    pub fn notice(&mut self, endpoint: &mut Endpoint, now: Instant, notice: CallNotice) {
        self.originated_notice(&notice);
        match notice {
            CallNotice::Amd { .. } | CallNotice::Message { .. } => {}
            CallNotice::SupervisorDigit { leg, digit } => self.supervisor_digit(leg, digit),
            CallNotice::SupervisorLost { leg } => self.supervisor_lost(endpoint, now, leg),
            CallNotice::ConsultLost { leg } => {
                let target = self.transfers.get(&leg).and_then(|t| t.consult.as_ref());
                if let Some(c) = target {
                    tracing::info!(caller = leg, "the consulted target's phone sends no media");
                    endpoint.hangup(now, c.leg);
                }
            }
            CallNotice::HandedOver { leg, media } => self.handed_over(endpoint, now, leg, media),
            CallNotice::Dial {
                leg,
                target,
                timeout,
                may_use_trunk,
            } => self.dial(endpoint, now, leg, &target, timeout, may_use_trunk),
            CallNotice::Enqueue {
                leg,
                queue,
                request,
            } => self.enqueue(endpoint, now, leg, &queue, request),
            CallNotice::Digit {
                leg,
                digit,
                source,
                at_ms,
                masked,
            } => {
                let source = match source {
                    DigitSource::Rfc4733 => "rfc4733",
                    DigitSource::Inband => "inband",
                    DigitSource::SipInfo => "sip_info",
                };
                metrics::counter!("openline_dtmf_digits_total", "source" => source).increment(1);
                let digit = (!masked).then(|| digit.to_string());
                let detail = serde_json::json!({ "digit": digit, "source": source, "at_ms": at_ms, "masked": masked });
                self.event(leg, "digit", detail);
            }
            CallNotice::Hangup { leg, disposition } => {
                if disposition == "failed.media_timeout" {
                    tracing::warn!(leg, "no media from the peer; hanging up");
                    self.event(leg, "media_timeout", serde_json::json!({}));
                }
                if disposition == "failed.media_unreachable" {
                    tracing::warn!(
                        leg,
                        "the peer's media address answers with ICMP errors; hanging up"
                    );
                    metrics::counter!("openline_rtp_unreachable_total").increment(1);
                    self.event(leg, "media_unreachable", serde_json::json!({}));
                }
                if let Some(active) = self.active.get_mut(&leg) {
                    active.ended_by_media = Some(disposition);
                }
                endpoint.hangup(now, leg);
            }
            CallNotice::Path { leg, flow, path } => {
                let _ = self.records.send(RecordOp::CallFlow { leg, flow, path });
            }
            CallNotice::Rating { leg, rating } => {
                let _ = self.records.send(RecordOp::CallRating { leg, rating });
            }
            CallNotice::Voicemail { leg, path, info } => {
                let relative = path
                    .strip_prefix(&self.config.data_dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                let utc = Utc::now();
                let id = new_call_id(utc);
                self.event(
                    leg,
                    "voicemail",
                    serde_json::json!({ "recording_id": id, "path": relative, "duration_ms": info.duration_ms }),
                );
                let _ = self.records.send(RecordOp::RecordingStarted {
                    leg,
                    id: id.clone(),
                    path: relative,
                    at: utc,
                });
                let _ = self.records.send(RecordOp::RecordingFinished {
                    id,
                    duration_ms: info.duration_ms as i64,
                    size_bytes: info.size_bytes as i64,
                    at: utc,
                });
            }
            CallNotice::RecordingPaused {
                leg,
                paused,
                by,
                at_ms,
                recording_ms,
            } => {
                let kind = if paused {
                    "recording_paused"
                } else {
                    "recording_resumed"
                };
                let detail =
                    serde_json::json!({ "at_ms": at_ms, "recording_ms": recording_ms, "by": by });
                self.event(leg, kind, detail);
            }
            CallNotice::RecordingFailed { leg, error } => {
                self.event(
                    leg,
                    "recording_failed",
                    serde_json::json!({ "error": error }),
                );
            }
            CallNotice::Finished {
                leg,
                port,
                recording,
                disposition: ivr_disposition,
                stats,
            } => {
                metrics::counter!("openline_rtp_packets_sent_total").increment(stats.packets_sent);
                metrics::counter!("openline_rtp_packets_received_total")
                    .increment(stats.packets_received);
                metrics::counter!("openline_rtp_packets_lost_total")
                    .increment(stats.packets_lost.max(0) as u64);
                metrics::counter!("openline_rtp_pacing_skipped_total").increment(stats.skipped);
                let recording_id = self
                    .active
                    .get_mut(&leg)
                    .and_then(|a| a.recording_id.take());
                if let (Some((path, info)), Some(id)) = (recording, recording_id) {
                    let relative = path
                        .strip_prefix(&self.config.data_dir)
                        .unwrap_or(&path)
                        .display()
                        .to_string();
                    self.event(
                        leg,
                        "recording",
                        serde_json::json!({
                            "recording_id": id,
                            "path": relative,
                            "duration_ms": info.duration_ms,
                            "size_bytes": info.size_bytes,
                        }),
                    );
                    let _ = self.records.send(RecordOp::RecordingFinished {
                        id,
                        duration_ms: info.duration_ms as i64,
                        size_bytes: info.size_bytes as i64,
                        at: Utc::now(),
                    });
                }
                if let Some(active) = self.active.get_mut(&leg) {
                    active.task = None;
                    if !active.ended {
                        // The media side stopped on its own (socket error): end the call.
                        endpoint.hangup(now, leg);
                        return;
                    }
                    if let Some(end) = active.pending_end.take() {
                        let disposition = match (&active.ended_by_media, ivr_disposition) {
                            (Some(by_task), _) => by_task.clone(),
                            (None, Some(ivr)) if end.caller_left => ivr,
                            _ => end.disposition,
                        };
                        self.originated_closed(leg);
                        self.record_end(leg, end.at, disposition, end.hangup_by, end.final_status);
                    }
                }
                self.active.remove(&leg);
                self.ports.release(port);
                let _ = self.records.send(RecordOp::Forget { leg });
            }
        }
    }
}

//! Which new INVITEs become calls (per-source and node-wide caps, the records backlog, overload
//! and the call rate: `runtime::overload`), and when an answered leg's media may flow (its ACK).

use std::time::Instant;

use super::{Calls, IncomingCall};
use crate::runtime::call_task::CallCommand;
use crate::runtime::overload::MAX_QUEUED_SIP;
use crate::sip::endpoint::LegId;

/// Why a new INVITE is not taken, and how it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refusal {
    /// `reason` label of `openline_calls_refused_total`.
    pub reason: &'static str,
    pub status: u16,
    pub text: &'static str,
    /// Seconds for `Retry-After` (RFC 3261 §21.5.4: 503 says when to come back).
    pub retry_after: Option<u32>,
}

const fn unavailable(reason: &'static str, retry_after: u32) -> Refusal {
    Refusal {
        reason,
        status: 503,
        text: "Service Unavailable",
        retry_after: Some(retry_after),
    }
}

impl Calls {
    /// Whether a new INVITE may become a call. Refused before anything is recorded or allocated,
    /// so a flood costs one response each: 503 + Retry-After when the node cannot take more
    /// (records behind, journal down, full, overloaded, over its call rate), 486 when its source
    /// has too many calls up already.
    pub(super) fn admission(&mut self, now: Instant, call: &IncomingCall) -> Option<Refusal> {
        // The records writer is behind (the database is down or slow): taking more calls
        // would grow the backlog without bound.
        if self.records.backlog() >= self.config.max_records_backlog as u64 {
            return Some(unavailable("records_backlog", 10));
        }
        // The journal cannot be written (disk full): a new call's records would live only in
        // memory.
        if self.records.journal_down() {
            return Some(unavailable("records_journal", 30));
        }
        if self.config.max_calls > 0 && self.active.len() >= self.config.max_calls {
            return Some(unavailable("node_full", 5));
        }
        if self.overloaded.now() {
            return Some(unavailable("overload", 2));
        }
        if self.sip_backlog > MAX_QUEUED_SIP {
            return Some(unavailable("sip_backlog", 2));
        }
        let source = call.peer.addr.ip();
        let exempt =
            call.operator.is_some() || self.config.trunks.iter().any(|t| t.proxy.ip() == source);
        if self.config.max_calls_per_source > 0 && !exempt {
            let from_source = self
                .active
                .values()
                .filter(|a| a.peer_ip == Some(source))
                .count();
            if from_source >= self.config.max_calls_per_source {
                return Some(Refusal {
                    reason: "source_limit",
                    status: 486,
                    text: "Busy Here",
                    retry_after: None,
                });
            }
        }
        // Last, so a call refused for another reason does not use up a token.
        if let Some(rate) = &mut self.call_rate
            && !rate.take(now)
        {
            return Some(unavailable("call_rate", 1));
        }
        None
    }

    /// The ACK for our 2xx on `leg` arrived: its media may flow.
    pub fn leg_confirmed(&mut self, leg: LegId) {
        if let Some(task) = self.active.get(&leg).and_then(|a| a.task.as_ref()) {
            let _ = task.send(CallCommand::Confirmed);
        }
    }
}

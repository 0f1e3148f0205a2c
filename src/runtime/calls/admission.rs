//! Which new INVITEs become calls (per-source and node-wide caps, the records backlog), and when an answered leg's
//! media may flow (its ACK).

use super::{Calls, IncomingCall};
use crate::runtime::call_task::CallCommand;
use crate::sip::endpoint::LegId;

impl Calls {
    /// Whether a new INVITE may become a call: `Some((metric reason, status, reason phrase))`
    /// when the node is full (503) or its source has too many calls up already (486). Refused
    /// before anything is recorded or allocated, so a flood costs one response each.
    pub(super) fn admission(
        &self,
        call: &IncomingCall,
    ) -> Option<(&'static str, u16, &'static str)> {
        // The records writer is behind (the database is down or slow): taking more calls
        // would grow the backlog without bound.
        if self.records.backlog() >= self.config.max_records_backlog as u64 {
            return Some(("records_backlog", 503, "Service Unavailable"));
        }
        // The journal cannot be written (disk full): a new call's records would live only in
        // memory.
        if self.records.journal_down() {
            return Some(("records_journal", 503, "Service Unavailable"));
        }
        if self.config.max_calls > 0 && self.active.len() >= self.config.max_calls {
            return Some(("node_full", 503, "Service Unavailable"));
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
                return Some(("source_limit", 486, "Busy Here"));
            }
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

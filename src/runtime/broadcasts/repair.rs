//! Repair: settling the attempts nobody will finish — those a crash of this node left open (at
//! start), those of a node whose leases ran out, and this node's own claims that neither a call
//! nor the planner holds any more (a result that could not be written).

use super::Dispatcher;
use crate::broadcast::Settings;
use crate::store::{AttemptEnd, OpenAttempt, RecipientNext};
use chrono::Utc;
use std::collections::{HashMap, HashSet};

impl Dispatcher {
    /// Renews this node's leases and settles attempts of leases that ran out (a dead node).
    pub(super) async fn renew_and_repair(&mut self) {
        let until = Utc::now() + chrono::Duration::from_std(self.config.lease).unwrap_or_default();
        if let Err(e) = self.store.renew_leases(&self.config.node_id, until).await {
            tracing::warn!(error = %e, "cannot renew broadcast leases");
        }
        self.repair(None).await;
        self.repair_orphans().await;
    }

    /// Closes this node's open attempts that neither a call nor the planner holds (a result
    /// that could not be written): the renewal above keeps their leases alive, so no other node
    /// would ever repair them and the campaign would never complete.
    async fn repair_orphans(&mut self) {
        let open = match self
            .store
            .open_attempts(Some(&self.config.node_id), Utc::now(), 10_000)
            .await
        {
            Ok(open) => open,
            Err(_) => return,
        };
        let held: HashSet<&str> = self
            .in_flight
            .keys()
            .map(String::as_str)
            .chain(self.planner.held().map(|a| a.attempt_id.as_str()))
            .collect();
        let orphans: Vec<_> = open
            .into_iter()
            .filter(|a| !held.contains(a.attempt_id.as_str()))
            .collect();
        for attempt in orphans {
            tracing::warn!(attempt = %attempt.attempt_id, "repairing a broadcast attempt nobody holds");
            let rules = self.load_settings(&attempt.broadcast_id).await;
            self.repair_one(&attempt, rules.as_ref()).await;
            self.dirty.insert(attempt.broadcast_id.clone());
        }
    }

    /// Closes open attempts of `node` (our own crash) or, with `None`, of expired leases.
    pub(super) async fn repair(&mut self, node: Option<String>) {
        let open = match self
            .store
            .open_attempts(node.as_deref(), Utc::now(), 10_000)
            .await
        {
            Ok(open) => open,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list open broadcast attempts");
                return;
            }
        };
        let mut settings: HashMap<String, Option<Settings>> = HashMap::new();
        for attempt in open {
            if node.is_none() && self.in_flight.contains_key(&attempt.attempt_id) {
                continue; // ours and running (a lease renewal will catch up)
            }
            if !settings.contains_key(&attempt.broadcast_id) {
                let loaded = self.load_settings(&attempt.broadcast_id).await;
                settings.insert(attempt.broadcast_id.clone(), loaded);
            }
            let rules = settings.get(&attempt.broadcast_id).cloned().flatten();
            self.repair_one(&attempt, rules.as_ref()).await;
            self.dirty.insert(attempt.broadcast_id.clone());
        }
    }

    async fn repair_one(&self, attempt: &OpenAttempt, settings: Option<&Settings>) {
        let now = Utc::now();
        let mut end = AttemptEnd {
            attempt_id: attempt.attempt_id.clone(),
            recipient_id: attempt.recipient_id,
            call_id: attempt.call_id.clone(),
            ended_at: now,
            ..AttemptEnd::default()
        };
        let next = if attempt.call_id.is_none() {
            // Claimed, never dialled: nobody was called.
            end.outcome = "released".into();
            RecipientNext::Requeue { at: now }
        } else {
            end.outcome = "crashed".into();
            let attempts = u32::try_from(attempt.attempt).unwrap_or(u32::MAX);
            let rules = settings.map(|s| s.retry.clone()).unwrap_or_default();
            match rules.retry_after(crate::broadcast::Outcome::Failed, attempts) {
                Some(delay) => RecipientNext::Retry {
                    at: now + chrono::Duration::from_std(delay).unwrap_or_default(),
                },
                None => RecipientNext::Done {
                    outcome: "failed".into(),
                },
            }
        };
        tracing::warn!(broadcast = %attempt.broadcast_id, attempt = %attempt.attempt_id, node = %attempt.node_id, outcome = %end.outcome, "closing a broadcast attempt left open");
        self.finish(&end, &next, None).await;
    }
}

//! Digest replay protection (RFC 7616 §3.3 and §5.10): the nonces stay stateless (any node with
//! the secret checks them), but each node remembers, per nonce it has accepted, the highest
//! nonce count (`nc`) it took. A response whose `nc` is not higher is a replay, answered with a
//! fresh challenge marked `stale=true` (a real client simply retries with a new nonce). A
//! client without `qop` (RFC 2069) has no count, so its nonce is good once.
//!
//! Entries live as long as their nonce could still be valid and are bounded in number: when
//! the table is full the oldest are forgotten, which re-opens the window only for nonces that
//! are about to expire anyway. Nodes do not share the table: behind a load balancer that sends
//! one client to several nodes, a replay to another node within the nonce lifetime would pass.

use std::collections::{HashMap, VecDeque};

/// What the table says about an authenticated response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// First use of this count: accepted and remembered.
    Fresh,
    /// This count (or a higher one) was already used with this nonce.
    Replayed,
}

#[derive(Debug)]
pub struct NonceCounts {
    /// nonce → highest `nc` accepted (0 for a response without `qop`).
    highest: HashMap<String, u32>,
    /// (forget at, nonce), oldest first.
    order: VecDeque<(u64, String)>,
    lifetime_secs: u64,
    max_entries: usize,
}

impl NonceCounts {
    pub fn new(lifetime_secs: u64, max_entries: usize) -> NonceCounts {
        NonceCounts {
            highest: HashMap::new(),
            order: VecDeque::new(),
            lifetime_secs,
            max_entries: max_entries.max(1),
        }
    }

    /// Records a verified response with `nonce` and count `nc` (`None`: no `qop`) at
    /// `unix_secs`, unless it is a replay.
    pub fn check(&mut self, nonce: &str, nc: Option<u32>, unix_secs: u64) -> Use {
        self.forget_expired(unix_secs);
        let count = nc.unwrap_or(0);
        match self.highest.get_mut(nonce) {
            // Without qop there is no count: a second use of the nonce is a replay.
            Some(_) if nc.is_none() => Use::Replayed,
            Some(highest) if count <= *highest => Use::Replayed,
            Some(highest) => {
                *highest = count;
                Use::Fresh
            }
            None => {
                while self.highest.len() >= self.max_entries {
                    let Some((_, oldest)) = self.order.pop_front() else {
                        break;
                    };
                    self.highest.remove(&oldest);
                }
                self.highest.insert(nonce.to_owned(), count);
                // A nonce is valid for `lifetime` after its issue, which is at most now.
                self.order
                    .push_back((unix_secs + self.lifetime_secs + 5, nonce.to_owned()));
                Use::Fresh
            }
        }
    }

    fn forget_expired(&mut self, unix_secs: u64) {
        while self.order.front().is_some_and(|(at, _)| *at <= unix_secs) {
            if let Some((_, nonce)) = self.order.pop_front() {
                self.highest.remove(&nonce);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.highest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.highest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_is_good_once_and_must_grow() {
        let mut t = NonceCounts::new(300, 100);
        assert_eq!(t.check("n1", Some(1), 1000), Use::Fresh);
        assert_eq!(
            t.check("n1", Some(1), 1001),
            Use::Replayed,
            "the same count again"
        );
        assert_eq!(t.check("n1", Some(2), 1002), Use::Fresh);
        assert_eq!(
            t.check("n1", Some(1), 1003),
            Use::Replayed,
            "an older count"
        );
        assert_eq!(t.check("n2", Some(1), 1003), Use::Fresh, "another nonce");
    }

    #[test]
    fn without_qop_a_nonce_is_good_once() {
        let mut t = NonceCounts::new(300, 100);
        assert_eq!(t.check("n1", None, 1000), Use::Fresh);
        assert_eq!(t.check("n1", None, 1001), Use::Replayed);
    }

    #[test]
    fn entries_go_with_their_nonce_and_the_table_is_bounded() {
        let mut t = NonceCounts::new(300, 3);
        t.check("n1", Some(1), 1000);
        assert_eq!(t.check("n1", Some(1), 1000 + 304), Use::Replayed);
        // Past the nonce's life (the nonce check refuses it by then anyway) the entry is gone.
        t.check("n2", Some(1), 1000 + 306);
        assert_eq!(t.len(), 1);
        for n in 0..10 {
            t.check(&format!("m{n}"), Some(1), 2000);
        }
        assert_eq!(t.len(), 3);
    }
}

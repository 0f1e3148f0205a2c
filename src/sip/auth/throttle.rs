//! Brute-force throttle for digest authentication keyed by (source IP, username) together, so one office
//! behind NAT is not locked out by one misconfigured phone (RFC 3261 §26.1.1 and §26.3.2 threats).
//!
//! Failures are counted in a fixed window opened by the first failure; `max_failures` within the window
//! block the pair for `cooldown`. Memory is bounded by `max_entries`: when full, the entry with the oldest
//! window is evicted first and blocked entries only when nothing else is left, so a flood of random
//! usernames cannot push a blocked attacker out.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Usernames are cut to this many bytes (at a char boundary) before being stored.
const MAX_USER_BYTES: usize = 128;

type Key = (IpAddr, String);

#[derive(Debug, Clone, Copy)]
enum State {
    /// Counting failures in the window opened at `since`.
    Counting { since: Instant },
    /// Blocked from `since` for the cool-down.
    Blocked { since: Instant },
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    state: State,
    /// Tie-breaker for the ordered indexes.
    seq: u64,
}

/// Per-(IP, user) failure counter with cool-down. All times are passed in.
#[derive(Debug)]
pub struct AuthThrottle {
    max_failures: u32,
    window: Duration,
    cooldown: Duration,
    max_entries: usize,
    entries: HashMap<Key, Entry>,
    /// Counting entries ordered by window start.
    counting: BTreeMap<(Instant, u64), Key>,
    /// Blocked entries ordered by block start (the same order as block end).
    blocked: BTreeMap<(Instant, u64), Key>,
    next_seq: u64,
}

/// `start + d <= now`; a sum beyond `Instant`'s range never expires.
fn elapsed(start: Instant, d: Duration, now: Instant) -> bool {
    start.checked_add(d).is_some_and(|end| end <= now)
}

fn key(ip: IpAddr, user: &str) -> Key {
    let mut end = user.len().min(MAX_USER_BYTES);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    (ip, user.get(..end).unwrap_or_default().to_owned())
}

impl AuthThrottle {
    /// `max_failures` and `max_entries` of 0 are treated as 1.
    pub fn new(
        max_failures: u32,
        window: Duration,
        cooldown: Duration,
        max_entries: usize,
    ) -> Self {
        AuthThrottle {
            max_failures: max_failures.max(1),
            window,
            cooldown,
            max_entries: max_entries.max(1),
            entries: HashMap::new(),
            counting: BTreeMap::new(),
            blocked: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// True while the pair is in cool-down.
    pub fn is_blocked(&mut self, now: Instant, ip: IpAddr, user: &str) -> bool {
        self.prune(now);
        matches!(
            self.entries.get(&key(ip, user)),
            Some(Entry {
                state: State::Blocked { .. },
                ..
            })
        )
    }

    /// Counts a failed attempt; the `max_failures`-th within the window blocks the pair until
    /// `now + cooldown`. Failures while blocked do not extend the block. Returns the pair's
    /// failures in its window so far (1: the first, a user new to this address).
    pub fn record_failure(&mut self, now: Instant, ip: IpAddr, user: &str) -> u32 {
        self.prune(now);
        let k = key(ip, user);
        if let Some(entry) = self.entries.get_mut(&k) {
            if let State::Counting { since } = entry.state {
                entry.failures = entry.failures.saturating_add(1);
                if entry.failures >= self.max_failures {
                    self.counting.remove(&(since, entry.seq));
                    entry.state = State::Blocked { since: now };
                    self.blocked.insert((now, entry.seq), k);
                }
            }
            return entry.failures;
        }
        while self.entries.len() >= self.max_entries && self.evict_one() {}
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let state = if self.max_failures <= 1 {
            self.blocked.insert((now, seq), k.clone());
            State::Blocked { since: now }
        } else {
            self.counting.insert((now, seq), k.clone());
            State::Counting { since: now }
        };
        self.entries.insert(
            k,
            Entry {
                failures: 1,
                state,
                seq,
            },
        );
        1
    }

    /// Forgets the pair (successful authentication).
    pub fn record_success(&mut self, ip: IpAddr, user: &str) {
        if let Some(entry) = self.entries.remove(&key(ip, user)) {
            self.unindex(&entry);
        }
    }

    /// Drops entries whose window or cool-down has passed.
    pub fn prune(&mut self, now: Instant) {
        while let Some((&(since, _), _)) = self.blocked.first_key_value() {
            if !elapsed(since, self.cooldown, now) {
                break;
            }
            if let Some((_, k)) = self.blocked.pop_first() {
                self.entries.remove(&k);
            }
        }
        while let Some((&(since, _), _)) = self.counting.first_key_value() {
            if !elapsed(since, self.window, now) {
                break;
            }
            if let Some((_, k)) = self.counting.pop_first() {
                self.entries.remove(&k);
            }
        }
    }

    /// The pairs in cool-down now: (IP, user, when the block ends), oldest block first.
    pub fn blocked(&mut self, now: Instant) -> Vec<(IpAddr, String, Instant)> {
        self.prune(now);
        self.blocked
            .iter()
            .map(|(&(since, _), (ip, user))| {
                let until = since.checked_add(self.cooldown).unwrap_or(since);
                (*ip, user.clone(), until)
            })
            .collect()
    }

    /// Forgets every pair of this IP (an admin lifts a block); returns how many there were.
    pub fn forget_ip(&mut self, ip: IpAddr) -> usize {
        let keys: Vec<Key> = self.entries.keys().filter(|k| k.0 == ip).cloned().collect();
        for k in &keys {
            if let Some(entry) = self.entries.remove(k) {
                self.unindex(&entry);
            }
        }
        keys.len()
    }

    /// Blocks in force as of the last prune (cheap: for a gauge).
    pub fn blocked_count(&self) -> usize {
        self.blocked.len()
    }

    /// Number of tracked (IP, user) pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn unindex(&mut self, entry: &Entry) {
        match entry.state {
            State::Counting { since } => self.counting.remove(&(since, entry.seq)),
            State::Blocked { since } => self.blocked.remove(&(since, entry.seq)),
        };
    }

    /// Evicts the oldest counting entry, or the oldest blocked one if none is counting.
    fn evict_one(&mut self) -> bool {
        let victim = self
            .counting
            .pop_first()
            .or_else(|| self.blocked.pop_first());
        match victim {
            Some((_, k)) => {
                self.entries.remove(&k);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const SEC: Duration = Duration::from_secs(1);
    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));

    fn throttle() -> AuthThrottle {
        AuthThrottle::new(5, 60 * SEC, 300 * SEC, 1000)
    }

    #[test]
    fn blocks_are_listed_with_their_end_and_lifted_per_ip() {
        let mut t = throttle();
        let t0 = crate::testing::t0();
        for _ in 0..5 {
            t.record_failure(t0, A, "101");
        }
        t.record_failure(t0, A, "102");
        t.record_failure(t0 + SEC, B, "101");
        for _ in 0..5 {
            t.record_failure(t0 + SEC, B, "103");
        }
        assert_eq!(
            t.blocked(t0 + 2 * SEC),
            vec![
                (A, "101".to_string(), t0 + 300 * SEC),
                (B, "103".to_string(), t0 + 301 * SEC)
            ]
        );
        assert_eq!(t.forget_ip(A), 2);
        assert!(!t.is_blocked(t0 + 2 * SEC, A, "101"));
        assert!(t.is_blocked(t0 + 2 * SEC, B, "103"));
        assert_eq!(t.blocked(t0 + 301 * SEC), vec![]);
    }

    #[test]
    fn blocks_after_n_failures_until_cooldown_ends() {
        let t0 = crate::testing::t0();
        let mut t = throttle();
        for i in 0..4 {
            t.record_failure(t0 + i * SEC, A, "100");
            assert!(
                !t.is_blocked(t0 + i * SEC, A, "100"),
                "after {} failures",
                i + 1
            );
        }
        t.record_failure(t0 + 4 * SEC, A, "100");
        assert!(t.is_blocked(t0 + 4 * SEC, A, "100"));
        // More failures during the cool-down do not extend it.
        t.record_failure(t0 + 100 * SEC, A, "100");
        assert!(t.is_blocked(t0 + 303 * SEC, A, "100"));
        assert!(!t.is_blocked(t0 + 304 * SEC, A, "100"));
        assert!(t.is_empty());
        // A fresh start after the cool-down.
        t.record_failure(t0 + 305 * SEC, A, "100");
        assert!(!t.is_blocked(t0 + 305 * SEC, A, "100"));
    }

    #[test]
    fn keyed_by_ip_and_user_together() {
        let t0 = crate::testing::t0();
        let mut t = throttle();
        for _ in 0..5 {
            t.record_failure(t0, A, "100");
        }
        assert!(t.is_blocked(t0, A, "100"));
        assert!(!t.is_blocked(t0, A, "101"));
        assert!(!t.is_blocked(t0, B, "100"));
        t.record_failure(t0, A, "101");
        assert!(!t.is_blocked(t0, A, "101"));
    }

    #[test]
    fn success_clears() {
        let t0 = crate::testing::t0();
        let mut t = throttle();
        for _ in 0..4 {
            t.record_failure(t0, A, "100");
        }
        t.record_success(A, "100");
        assert!(t.is_empty());
        for _ in 0..4 {
            t.record_failure(t0, A, "100");
        }
        assert!(!t.is_blocked(t0, A, "100"));
        t.record_failure(t0, A, "100");
        assert!(t.is_blocked(t0, A, "100"));
        t.record_success(A, "100");
        assert!(!t.is_blocked(t0, A, "100"));
        assert!(t.blocked.is_empty() && t.counting.is_empty());
    }

    #[test]
    fn window_expiry_forgets_old_failures() {
        let t0 = crate::testing::t0();
        let mut t = throttle();
        for _ in 0..4 {
            t.record_failure(t0, A, "100");
        }
        t.prune(t0 + 59 * SEC);
        assert_eq!(t.len(), 1);
        t.record_failure(t0 + 60 * SEC, A, "100");
        assert!(!t.is_blocked(t0 + 60 * SEC, A, "100"));
        for _ in 0..3 {
            t.record_failure(t0 + 61 * SEC, A, "100");
        }
        assert!(!t.is_blocked(t0 + 61 * SEC, A, "100"));
        t.record_failure(t0 + 62 * SEC, A, "100");
        assert!(t.is_blocked(t0 + 62 * SEC, A, "100"));
    }

    #[test]
    fn memory_bounded_under_random_user_flood() {
        let t0 = crate::testing::t0();
        let mut t = throttle();
        for _ in 0..5 {
            t.record_failure(t0, B, "victim");
        }
        for i in 0..100_000u32 {
            let user = format!("{:016x}", rand::random::<u64>());
            t.record_failure(t0 + Duration::from_millis(u64::from(i)), A, &user);
            assert!(t.len() <= 1000);
        }
        assert_eq!(t.len(), 1000);
        assert_eq!(t.entries.len(), t.counting.len() + t.blocked.len());
        // The blocked pair survived the flood.
        assert!(t.is_blocked(t0 + 10 * SEC, B, "victim"));
    }

    #[test]
    fn long_usernames_are_clipped_and_degenerate_limits() {
        let t0 = crate::testing::t0();
        let mut t = AuthThrottle::new(0, SEC, SEC, 0);
        let long = "ü".repeat(1000);
        t.record_failure(t0, A, &long);
        assert!(t.is_blocked(t0, A, &long));
        assert!(t.entries.keys().all(|(_, u)| u.len() <= MAX_USER_BYTES));
        t.record_failure(t0, A, "x");
        assert_eq!(t.len(), 1);
        let mut t = AuthThrottle::new(3, Duration::MAX, Duration::MAX, 10);
        for _ in 0..3 {
            t.record_failure(t0, A, "100");
        }
        t.prune(t0 + 1_000_000 * SEC);
        assert!(t.is_blocked(t0 + 1_000_000 * SEC, A, "100"));
    }
}

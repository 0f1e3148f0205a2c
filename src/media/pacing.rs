//! Packet pacing on a fixed grid: packet n is due at t0 + n·ptime and carries position n·samples
//! (so timestamp ts0 + 160·n at 20 ms). n advances through silence and pauses alike, so a call never
//! drifts, however long it lasts and however late the shell wakes up.

use std::ops::Range;
use std::time::{Duration, Instant};

/// Packets sent at once when the shell wakes up late; beyond this we skip ahead instead of
/// bursting (a burst longer than the peer's jitter buffer would be dropped anyway).
pub const MAX_BURST: u64 = 3;

#[derive(Debug, Clone)]
pub struct Pacer {
    t0: Instant,
    ptime: Duration,
    next: u64,
    /// Packets skipped because the shell woke up far too late.
    pub skipped: u64,
}

impl Pacer {
    pub fn new(t0: Instant, ptime: Duration) -> Self {
        Pacer {
            t0,
            ptime,
            next: 0,
            skipped: 0,
        }
    }

    /// A pacer on `t0`'s grid whose first packet is the one whose slot `now` falls in (a leg that
    /// joins a call later keeps the call's grid; a task that starts a few ms late still sends the
    /// call's first frame).
    pub fn joining(t0: Instant, ptime: Duration, now: Instant) -> Self {
        let elapsed = now.saturating_duration_since(t0).as_nanos();
        let ptime_ns = ptime.as_nanos().max(1);
        let next = (elapsed / ptime_ns) as u64;
        Pacer {
            t0,
            ptime,
            next,
            skipped: 0,
        }
    }

    /// When packet `n` is due.
    pub fn due_at(&self, n: u64) -> Instant {
        self.t0 + self.ptime * n as u32
    }

    /// When the next packet is due.
    pub fn next_deadline(&self) -> Instant {
        self.due_at(self.next)
    }

    /// The packet indexes to send now (usually one).
    pub fn due(&mut self, now: Instant) -> Range<u64> {
        if now < self.next_deadline() {
            return self.next..self.next;
        }
        let elapsed = now.saturating_duration_since(self.t0);
        let last_due = (elapsed.as_nanos() / self.ptime.as_nanos().max(1)) as u64;
        let count = last_due + 1 - self.next;
        if count > MAX_BURST {
            self.skipped += count - MAX_BURST;
            self.next = last_due + 1 - MAX_BURST;
        }
        let range = self.next..last_due + 1;
        self.next = last_due + 1;
        range
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTIME: Duration = Duration::from_millis(20);

    #[test]
    fn one_hour_on_the_grid_without_drift() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(t0, PTIME);
        let mut sent = 0u64;
        // The shell wakes a little late every time (up to 3 ms); the grid does not move.
        for i in 0..180_000u64 {
            let deadline = pacer.next_deadline();
            assert_eq!(deadline, t0 + PTIME * i as u32);
            let wake = deadline + Duration::from_micros((i * 7919) % 3000);
            for n in pacer.due(wake) {
                assert_eq!(n, sent);
                sent += 1;
            }
        }
        assert_eq!(sent, 180_000);
        assert_eq!(pacer.next_deadline() - t0, Duration::from_secs(3600));
        assert_eq!(pacer.skipped, 0);
    }

    #[test]
    fn a_joining_leg_keeps_the_grid() {
        let t0 = Instant::now();
        assert_eq!(Pacer::joining(t0, PTIME, t0).next_deadline(), t0);
        let p = Pacer::joining(t0, PTIME, t0 + Duration::from_millis(41));
        assert_eq!(p.next_deadline(), t0 + Duration::from_millis(40));
    }

    #[test]
    fn a_late_wakeup_sends_the_overdue_packets_and_a_stall_skips_ahead() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(t0, PTIME);
        assert_eq!(pacer.due(t0), 0..1);
        assert_eq!(pacer.due(t0 + Duration::from_millis(10)), 1..1);
        assert_eq!(pacer.due(t0 + Duration::from_millis(45)), 1..3);
        // A 1 s stall: only MAX_BURST packets go out, the rest are skipped, the grid stays.
        let range = pacer.due(t0 + Duration::from_millis(1045));
        assert_eq!(range, 50..53);
        assert_eq!(pacer.skipped, 47);
        assert_eq!(pacer.next_deadline(), t0 + Duration::from_millis(1060));
    }
}

//! The pace of INVITEs towards one trunk: at most `max_cps` calls in any one-second window, and
//! slower while the trunk says it is overloaded (503). Pure: the time comes in with each call.
//!
//! INVITEs are spaced evenly, `1.02 / rate` seconds apart: `max_cps` of them always fit in one
//! second with 2 % to spare for jitter on the way, so the trunk never counts more than its cap in
//! any second. A 503 halves the rate (down to [`MIN_CPS`]) and holds every INVITE for the 503's
//! `Retry-After` (or [`DEFAULT_HOLD`]); each second without a 503 afterwards gives back a tenth of
//! the cap, so a trunk that recovers is used fully again within ten seconds.

use std::time::{Duration, Instant};

/// The slowest pace a congested trunk is driven at.
pub const MIN_CPS: f64 = 0.2;
/// How long INVITEs wait after a 503 without `Retry-After`.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(2);
/// The longest `Retry-After` we honour: a misconfigured trunk must not stall a campaign for hours.
pub const MAX_HOLD: Duration = Duration::from_secs(300);
const GUARD: f64 = 1.02;
/// How late an INVITE may be and still keep the grid of slots.
const CATCH_UP: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct Pacer {
    max_cps: f64,
    rate: f64,
    /// The earliest instant the next INVITE may go.
    next_at: Option<Instant>,
    /// No INVITE before this (after a 503).
    hold_until: Option<Instant>,
    /// When the rate last went down or up.
    changed_at: Option<Instant>,
}

impl Pacer {
    pub fn new(max_cps: f64) -> Pacer {
        let max_cps = max_cps.max(MIN_CPS);
        Pacer {
            max_cps,
            rate: max_cps,
            next_at: None,
            hold_until: None,
            changed_at: None,
        }
    }

    /// Calls per second allowed now.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn max_cps(&self) -> f64 {
        self.max_cps
    }

    /// A new cap (the config or the campaign changed); the current rate never exceeds it.
    pub fn set_max(&mut self, max_cps: f64) {
        self.max_cps = max_cps.max(MIN_CPS);
        self.rate = self.rate.min(self.max_cps);
    }

    /// The earliest instant an INVITE may go (`None`: right away).
    pub fn next_slot(&self) -> Option<Instant> {
        match (self.next_at, self.hold_until) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn may_send(&self, now: Instant) -> bool {
        self.next_slot().is_none_or(|at| at <= now)
    }

    /// An INVITE went at `now`.
    pub fn sent(&mut self, now: Instant) {
        let spacing = Duration::from_secs_f64(GUARD / self.rate);
        // Spacing counts from the slot when the INVITE is at most CATCH_UP late (timers wake
        // a little late; counting from "now" would lose that every time, ~1 ms an INVITE, 18 %
        // at 200 cps), else from now, so a caller idle for long never earns a burst of slots.
        // Any window of one second still holds at most `rate` INVITEs: `rate` gaps of the
        // spacing take 1.02 s, and CATCH_UP is less than the 0.02 s to spare.
        let base = match self.next_slot() {
            Some(slot) if now <= slot + CATCH_UP => slot,
            _ => now,
        };
        self.next_at = Some(base + spacing);
    }

    /// The trunk answered 503: slow down and hold.
    pub fn congested(&mut self, now: Instant, retry_after: Option<Duration>) {
        let hold = retry_after.unwrap_or(DEFAULT_HOLD).min(MAX_HOLD);
        let until = now + hold;
        self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
        // One halving per second: a burst of 503s to INVITEs already on their way counts once.
        if self
            .changed_at
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1))
            || self.rate >= self.max_cps
        {
            self.rate = (self.rate / 2.0).max(MIN_CPS);
            self.changed_at = Some(now);
        }
    }

    /// The trunk took a call (any final answer but 503): recover a step per second.
    pub fn succeeded(&mut self, now: Instant) {
        if self.rate >= self.max_cps {
            return;
        }
        if self
            .changed_at
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1))
        {
            self.rate = (self.rate + self.max_cps / 10.0).min(self.max_cps);
            self.changed_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::t0;

    /// Sends as fast as the pacer lets for `span`, returning the send times (ms from t0).
    fn drive(p: &mut Pacer, from: Instant, span: Duration) -> Vec<u64> {
        let mut sent = Vec::new();
        let mut now = from;
        while now < from + span {
            if p.may_send(now) {
                p.sent(now);
                sent.push(now.duration_since(t0()).as_millis() as u64);
            }
            now = p
                .next_slot()
                .unwrap_or(now)
                .max(now + Duration::from_millis(1));
        }
        sent
    }

    fn max_in_any_second(times: &[u64]) -> usize {
        times
            .iter()
            .map(|&start| {
                times
                    .iter()
                    .filter(|&&t| t >= start && t < start + 1000)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn never_more_than_the_cap_in_any_second() {
        for cps in [1.0, 3.0, 10.0, 50.0] {
            let mut p = Pacer::new(cps);
            let sent = drive(&mut p, t0(), Duration::from_secs(20));
            assert!(max_in_any_second(&sent) <= cps as usize, "{cps}: {sent:?}");
            // ...and the cap is used: at least cps·19 sends in 20 s.
            assert!(sent.len() as f64 >= cps * 19.0, "{cps}: {}", sent.len());
        }
    }

    /// Regression (bench/broadcast_rate.sh): a caller that always woke a little late lost that
    /// time on every INVITE, so 50 cps came out as 47.
    #[test]
    fn a_caller_that_wakes_a_little_late_keeps_the_rate_and_the_cap() {
        for cps in [10.0, 50.0, 200.0] {
            let mut p = Pacer::new(cps);
            let mut now = t0();
            let mut sent_us = Vec::new();
            let mut jitter = 7u64;
            let end = t0() + Duration::from_secs(20);
            while now < end {
                if p.may_send(now) {
                    p.sent(now);
                    sent_us.push(now.duration_since(t0()).as_micros() as u64);
                }
                // Wake 0.2–9.9 ms after the slot, as a busy runtime does.
                jitter = (jitter * 7919 + 13) % 97;
                let late = Duration::from_micros(200 + jitter * 100);
                now = p.next_slot().unwrap_or(now).max(now) + late;
            }
            let achieved = sent_us.len() as f64 / 20.0;
            assert!(achieved >= cps / GUARD * 0.99, "{cps}: {achieved}");
            let most = (0..sent_us.len())
                .map(|i| {
                    sent_us[i..]
                        .iter()
                        .take_while(|&&t| t < sent_us[i] + 1_000_000)
                        .count()
                })
                .max()
                .unwrap_or(0);
            assert!(most <= cps as usize, "{cps}: {most} in one second");
        }
    }

    #[test]
    fn a_late_caller_gets_no_burst_of_saved_slots() {
        let mut p = Pacer::new(10.0);
        p.sent(t0());
        // Nobody sent for 5 s; then the pacer still spaces the next ones.
        let later = t0() + Duration::from_secs(5);
        assert!(p.may_send(later));
        p.sent(later);
        assert!(!p.may_send(later + Duration::from_millis(50)));
        assert!(p.may_send(later + Duration::from_millis(102)));
    }

    #[test]
    fn a_503_halves_the_rate_and_holds_then_the_rate_recovers() {
        let mut p = Pacer::new(10.0);
        let at = t0() + Duration::from_secs(1);
        p.congested(at, None);
        assert_eq!(p.rate(), 5.0);
        assert!(!p.may_send(at + Duration::from_millis(1999)));
        assert!(p.may_send(at + DEFAULT_HOLD));
        // A burst of 503s within the second counts once.
        p.congested(at + Duration::from_millis(100), None);
        p.congested(at + Duration::from_millis(200), None);
        assert_eq!(p.rate(), 5.0);
        // Another a second later halves again.
        p.congested(
            at + Duration::from_millis(1100),
            Some(Duration::from_secs(3)),
        );
        assert_eq!(p.rate(), 2.5);
        assert!(!p.may_send(at + Duration::from_millis(4000)));
        assert!(p.may_send(at + Duration::from_millis(4100)));
        // Recovery: a tenth of the cap per second of success.
        let mut now = at + Duration::from_secs(5);
        for _ in 0..20 {
            p.succeeded(now);
            now += Duration::from_millis(500);
        }
        assert_eq!(p.rate(), 10.0);
    }

    #[test]
    fn the_rate_never_goes_below_the_floor_and_retry_after_is_capped() {
        let mut p = Pacer::new(1.0);
        let mut now = t0();
        for _ in 0..20 {
            p.congested(now, Some(Duration::from_secs(100_000)));
            now += Duration::from_secs(2);
        }
        assert_eq!(p.rate(), MIN_CPS);
        assert!(p.next_slot().expect("held") <= now + MAX_HOLD);
    }
}

//! Overload control: past what the node can serve, new calls are refused at once with
//! 503 + Retry-After, so the calls already up keep clean audio and their BYEs get through
//! (a node that takes every call makes every call bad).
//!
//! Three signals, each cheap to read on the INVITE path:
//! - **scheduler lag** ([`LagGate`]): a probe task asks to wake every 10 ms and measures how late
//!   it is; a smoothed lateness over `calls.overload_lag` for about 200 ms means the runtime's
//!   workers are behind (media packets leave late, the SIP task answers late). It stops refusing
//!   once the lag is below half of that (hysteresis, so the node does not flap call by call).
//!   Lateness is what callers hear, whatever causes it: other processes on the node's cores
//!   count too;
//! - **SIP backlog**: more than [`MAX_QUEUED_SIP`] messages waiting for the SIP task;
//! - **call rate** ([`CallRate`]): `calls.max_call_rate` new calls per second (token bucket, one
//!   second of burst), for an operator who measured the node and wants a fixed ceiling.
//!
//! Every one is pure with the time passed in and tested with a fake clock; the probe is a thin
//! shell around [`LagGate`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// SIP messages waiting for the SIP task beyond which new INVITEs are refused (1/8 of the
/// queue: retransmissions and BYEs of the calls up still fit behind them).
pub const MAX_QUEUED_SIP: usize = 2_048;

/// How often the probe asks to wake.
const PROBE_EVERY: Duration = Duration::from_millis(10);
/// Weight of the newest sample in the smoothed lateness (time constant ≈ 10 samples = 100 ms).
const SMOOTHING: f64 = 0.1;

/// Probes in a row the smoothed lateness must stay over the limit before shedding starts
/// (≈ 200 ms): one stall (a VM's stolen time, a page-fault storm) moves the average for a few
/// probes and is not overload.
const SUSTAINED: u32 = 20;

/// Smoothed scheduler lateness with hysteresis: shedding starts once it has been above `limit`
/// for [`SUSTAINED`] probes, and ends below half of it.
#[derive(Debug, Clone)]
pub struct LagGate {
    limit: Duration,
    smoothed_us: f64,
    over_for: u32,
    shedding: bool,
}

impl LagGate {
    pub fn new(limit: Duration) -> Self {
        LagGate {
            limit,
            smoothed_us: 0.0,
            over_for: 0,
            shedding: false,
        }
    }

    /// Takes one probe's lateness; returns whether new calls are to be refused now.
    pub fn observe(&mut self, lateness: Duration) -> bool {
        let sample = lateness.as_micros() as f64;
        self.smoothed_us += SMOOTHING * (sample - self.smoothed_us);
        let limit_us = self.limit.as_micros() as f64;
        if self.smoothed_us > limit_us {
            self.over_for = self.over_for.saturating_add(1);
            if self.over_for >= SUSTAINED {
                self.shedding = true;
            }
        } else {
            self.over_for = 0;
            if self.smoothed_us < limit_us / 2.0 {
                self.shedding = false;
            }
        }
        self.shedding
    }

    pub fn smoothed(&self) -> Duration {
        Duration::from_micros(self.smoothed_us as u64)
    }
}

/// Token bucket: `rate` new calls per second, up to one second's worth at once.
#[derive(Debug, Clone)]
pub struct CallRate {
    rate: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl CallRate {
    pub fn new(rate: f64) -> Self {
        CallRate {
            rate,
            tokens: rate.max(1.0),
            last: None,
        }
    }

    /// Takes one call's token at `now`; false when the rate is used up.
    pub fn take(&mut self, now: Instant) -> bool {
        let burst = self.rate.max(1.0);
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Whether the lag probe says the node is overloaded (shared with the SIP task).
#[derive(Debug, Clone, Default)]
pub struct Overloaded(Arc<AtomicBool>);

impl Overloaded {
    pub fn now(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Starts the lag probe; `limit` zero leaves it off (the flag stays false).
pub fn spawn_lag_probe(
    limit: Duration,
    token: CancellationToken,
    tracker: &TaskTracker,
) -> Overloaded {
    let flag = Overloaded::default();
    if limit.is_zero() {
        return flag;
    }
    let shared = flag.0.clone();
    tracker.spawn(async move {
        let mut gate = LagGate::new(limit);
        let mut was = false;
        loop {
            let asked = tokio::time::Instant::now() + PROBE_EVERY;
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tokio::time::sleep_until(asked) => {}
            }
            let late = tokio::time::Instant::now().saturating_duration_since(asked);
            let shedding = gate.observe(late);
            metrics::gauge!("openline_runtime_lag_seconds").set(gate.smoothed().as_secs_f64());
            if shedding != was {
                was = shedding;
                shared.store(shedding, Ordering::Relaxed);
                metrics::gauge!("openline_overloaded").set(if shedding { 1.0 } else { 0.0 });
                if shedding {
                    tracing::warn!(
                        lag_ms = gate.smoothed().as_millis() as u64,
                        "overloaded: new calls get 503"
                    );
                } else {
                    tracing::info!("overload over: new calls are taken again");
                }
            }
        }
    });
    flag
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn lag_sheds_above_the_limit_and_stops_below_half_of_it() {
        // The default limit.
        let mut gate = LagGate::new(5 * MS);
        // Sub-millisecond lateness, as on an idle node: never sheds.
        assert!((0..1_000).all(|_| !gate.observe(MS / 2)));
        // One stall of 200 ms (a VM descheduled) lifts the average over the limit for a few
        // probes only: no call is refused for it.
        assert!(!gate.observe(200 * MS));
        assert!(
            (0..100).all(|_| !gate.observe(MS / 2)),
            "{:?}",
            gate.smoothed()
        );
        // Sustained lateness of 8 ms sheds, but only after ~200 ms of it.
        let shed_after = (0..200).find(|_| gate.observe(8 * MS));
        assert!(
            shed_after.is_some_and(|i| (SUSTAINED as usize..40).contains(&i)),
            "{shed_after:?}"
        );
        // At 4 ms (under the limit, over half) it keeps shedding: no flapping.
        assert!((0..200).all(|_| gate.observe(4 * MS)));
        // Below 2.5 ms for long enough it takes calls again.
        let resumed = (0..100).any(|_| !gate.observe(MS));
        assert!(resumed, "smoothed {:?}", gate.smoothed());
    }

    #[test]
    fn call_rate_allows_a_second_of_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut rate = CallRate::new(10.0);
        assert_eq!(
            (0..15).filter(|_| rate.take(t0)).count(),
            10,
            "burst of one second"
        );
        // Half a second later five more tokens.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..10).filter(|_| rate.take(t1)).count(), 5);
        // Over 10 s at 20 attempts per second, half get through.
        let mut admitted = 0;
        for i in 1..=200u64 {
            if rate.take(t1 + Duration::from_millis(50 * i)) {
                admitted += 1;
            }
        }
        assert!((99..=101).contains(&admitted), "{admitted}");
        // A long pause refills only up to the burst.
        let later = t1 + Duration::from_secs(3_600);
        assert_eq!((0..50).filter(|_| rate.take(later)).count(), 10);
    }

    #[test]
    fn a_fractional_rate_still_admits_one_call() {
        let t0 = Instant::now();
        let mut rate = CallRate::new(0.5);
        assert!(rate.take(t0));
        assert!(!rate.take(t0 + Duration::from_secs(1)));
        assert!(rate.take(t0 + Duration::from_secs(3)));
    }
}

//! The dispatcher's core: which running campaign claims recipients next and when each claimed
//! attempt is dialled, within every campaign's concurrency limit and every trunk's pace and
//! channel cap. Pure: `handle`-style calls with the time, drained with [`Planner::poll_action`].
//!
//! The shell claims recipients from the database when asked ([`Action::Claim`]), hands them
//! back ([`Planner::claimed`]), dials what it is told to ([`Action::Dial`]) and reports each end
//! ([`Planner::ended`]). Claimed attempts wait here only as long as the trunk's pace needs: a
//! campaign asks for about two seconds of INVITEs at a time, so a crash strands few leases.
//! Paused or cancelled campaigns give their waiting attempts back ([`Action::Release`]).
//! Campaigns sharing a trunk take turns.

use super::pacing::Pacer;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// After a claim that found fewer recipients than asked for, the next claim waits this long
/// (nobody is due yet; the database is not asked in a busy loop).
pub const IDLE_RECLAIM: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq)]
pub struct CampaignLimits {
    pub trunk: String,
    /// Calls of this campaign up at once (ringing or answered).
    pub concurrency: usize,
    /// The campaign's own INVITEs per second (its trunk's pace may be lower).
    pub cps: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrunkLimits {
    /// INVITEs in any second.
    pub cps: f64,
    /// Broadcast calls up at once through the trunk (all campaigns).
    pub channels: usize,
}

/// How the trunk took an attempt's INVITE, for its pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkResponse {
    /// 503: slow down, hold for the `Retry-After` if given.
    Congested(Option<Duration>),
    /// Any other answer from the trunk.
    Took,
    /// The INVITE never reached the trunk (no port, the call was refused locally).
    NotSent,
}

#[derive(Debug, PartialEq)]
pub enum Action<A> {
    /// Claim up to `max` due recipients of `campaign` and hand them to [`Planner::claimed`].
    Claim { campaign: String, max: usize },
    /// Place the call now.
    Dial { campaign: String, attempt: A },
    /// These claimed attempts will not be dialled (the campaign stopped): unclaim them.
    Release { campaign: String, attempts: Vec<A> },
}

#[derive(Debug)]
struct Run<A> {
    limits: CampaignLimits,
    pacer: Pacer,
    in_flight: usize,
    ready: VecDeque<A>,
    claiming: bool,
    claim_after: Option<Instant>,
}

#[derive(Debug)]
struct Trunk {
    pacer: Pacer,
    channels: usize,
    in_flight: usize,
    /// The campaign that dialled last, for turns.
    last: Option<String>,
}

#[derive(Debug)]
pub struct Planner<A> {
    campaigns: BTreeMap<String, Run<A>>,
    trunks: HashMap<String, Trunk>,
    /// Calls of campaigns no longer running, still up: they keep their trunk's channel.
    stopped_in_flight: HashMap<String, (String, usize)>,
    actions: VecDeque<Action<A>>,
}

impl<A> Default for Planner<A> {
    fn default() -> Self {
        Planner {
            campaigns: BTreeMap::new(),
            trunks: HashMap::new(),
            stopped_in_flight: HashMap::new(),
            actions: VecDeque::new(),
        }
    }
}

impl<A> Planner<A> {
    pub fn new() -> Planner<A> {
        Planner::default()
    }

    /// A trunk's pace and channel cap (from the config).
    pub fn set_trunk(&mut self, name: &str, limits: TrunkLimits) {
        match self.trunks.get_mut(name) {
            Some(t) => {
                t.pacer.set_max(limits.cps);
                t.channels = limits.channels;
            }
            None => {
                self.trunks.insert(
                    name.to_string(),
                    Trunk {
                        pacer: Pacer::new(limits.cps),
                        channels: limits.channels,
                        in_flight: 0,
                        last: None,
                    },
                );
            }
        }
    }

    /// The trunk's current pace (calls per second), for metrics.
    pub fn trunk_rate(&self, name: &str) -> Option<f64> {
        self.trunks.get(name).map(|t| t.pacer.rate())
    }

    /// The campaign runs (started or resumed), or its limits changed. `in_flight` counts its
    /// calls already up (after a restart: none; the dispatcher's own bookkeeping otherwise).
    pub fn run(&mut self, now: Instant, campaign: &str, limits: CampaignLimits) {
        let carried = self
            .stopped_in_flight
            .remove(campaign)
            .map_or(0, |(_, n)| n);
        match self.campaigns.get_mut(campaign) {
            Some(run) => {
                run.pacer.set_max(limits.cps);
                run.limits = limits;
            }
            None => {
                self.campaigns.insert(
                    campaign.to_string(),
                    Run {
                        pacer: Pacer::new(limits.cps),
                        limits,
                        in_flight: carried,
                        ready: VecDeque::new(),
                        claiming: false,
                        claim_after: None,
                    },
                );
            }
        }
        self.pump(now);
    }

    /// The campaign stops (paused, cancelled, done): no more claims or INVITEs; attempts
    /// waiting here are released. Its calls in flight keep counting on their trunk.
    pub fn stop(&mut self, campaign: &str) {
        let Some(run) = self.campaigns.remove(campaign) else {
            return;
        };
        if run.in_flight > 0 {
            self.stopped_in_flight.insert(
                campaign.to_string(),
                (run.limits.trunk.clone(), run.in_flight),
            );
        }
        if !run.ready.is_empty() {
            self.actions.push_back(Action::Release {
                campaign: campaign.to_string(),
                attempts: run.ready.into_iter().collect(),
            });
        }
    }

    pub fn is_running(&self, campaign: &str) -> bool {
        self.campaigns.contains_key(campaign)
    }

    /// Calls of `campaign` up now.
    pub fn in_flight(&self, campaign: &str) -> usize {
        self.campaigns
            .get(campaign)
            .map(|r| r.in_flight)
            .or_else(|| self.stopped_in_flight.get(campaign).map(|(_, n)| *n))
            .unwrap_or(0)
    }

    /// The answer to an [`Action::Claim`]: the attempts claimed (maybe none).
    pub fn claimed(&mut self, now: Instant, campaign: &str, attempts: Vec<A>) {
        let Some(run) = self.campaigns.get_mut(campaign) else {
            // Stopped while the claim ran: give them back.
            if !attempts.is_empty() {
                self.actions.push_back(Action::Release {
                    campaign: campaign.to_string(),
                    attempts,
                });
            }
            return;
        };
        run.claiming = false;
        let asked = Self::claim_size(run, &self.trunks);
        if attempts.len() < asked.max(1) {
            run.claim_after = Some(now + IDLE_RECLAIM);
        }
        run.ready.extend(attempts);
        self.pump(now);
    }

    /// An attempt's call ended (or never got going), with how its trunk took it.
    pub fn ended(&mut self, now: Instant, campaign: &str, response: TrunkResponse) {
        let trunk_name = match self.campaigns.get_mut(campaign) {
            Some(run) => {
                run.in_flight = run.in_flight.saturating_sub(1);
                Some(run.limits.trunk.clone())
            }
            None => match self.stopped_in_flight.get_mut(campaign) {
                Some((trunk, n)) => {
                    *n = n.saturating_sub(1);
                    let trunk = trunk.clone();
                    if *n == 0 {
                        self.stopped_in_flight.remove(campaign);
                    }
                    Some(trunk)
                }
                None => None,
            },
        };
        if let Some(t) = trunk_name.and_then(|name| self.trunks.get_mut(&name)) {
            t.in_flight = t.in_flight.saturating_sub(1);
            match response {
                TrunkResponse::Congested(retry_after) => t.pacer.congested(now, retry_after),
                TrunkResponse::Took => t.pacer.succeeded(now),
                TrunkResponse::NotSent => {}
            }
        }
        self.pump(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.pump(now);
    }

    /// When the planner has something to do without news: the next INVITE slot of a trunk
    /// with attempts waiting, or the next claim.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut earliest = |at: Instant| next = Some(next.map_or(at, |n: Instant| n.min(at)));
        for run in self.campaigns.values() {
            if !run.ready.is_empty()
                && let Some(t) = self.trunks.get(&run.limits.trunk)
            {
                let slot = match (t.pacer.next_slot(), run.pacer.next_slot()) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                if let Some(slot) = slot {
                    earliest(slot);
                }
            }
            if !run.claiming
                && let Some(at) = run.claim_after
            {
                earliest(at);
            }
        }
        next
    }

    /// Every claimed attempt the planner holds: waiting for its slot, or in an action not yet
    /// taken (the dispatcher uses it to find claims nobody tracks any more).
    pub fn held(&self) -> impl Iterator<Item = &A> + '_ {
        let waiting = self.campaigns.values().flat_map(|run| run.ready.iter());
        let in_actions = self.actions.iter().flat_map(|action| match action {
            Action::Dial { attempt, .. } => std::slice::from_ref(attempt).iter(),
            Action::Release { attempts, .. } => attempts.iter(),
            Action::Claim { .. } => [].iter(),
        });
        waiting.chain(in_actions)
    }

    pub fn poll_action(&mut self) -> Option<Action<A>> {
        self.actions.pop_front()
    }

    /// How many more attempts the campaign should hold: enough for two seconds of its trunk's
    /// pace, within its concurrency and the trunk's free channels.
    fn claim_size(run: &Run<A>, trunks: &HashMap<String, Trunk>) -> usize {
        let Some(t) = trunks.get(&run.limits.trunk) else {
            return 0;
        };
        let pace = (t.pacer.rate().min(run.pacer.rate()) * 2.0).ceil().max(1.0) as usize;
        let room = run.limits.concurrency.saturating_sub(run.in_flight);
        let want = pace.min(room);
        want.saturating_sub(run.ready.len())
    }

    fn pump(&mut self, now: Instant) {
        // Claims.
        for (id, run) in self.campaigns.iter_mut() {
            if run.claiming || run.claim_after.is_some_and(|at| at > now) {
                continue;
            }
            let max = Self::claim_size(run, &self.trunks);
            if max > 0 {
                run.claiming = true;
                run.claim_after = None;
                self.actions.push_back(Action::Claim {
                    campaign: id.clone(),
                    max,
                });
            }
        }
        // INVITEs, trunk by trunk, campaigns taking turns.
        let names: Vec<String> = self.trunks.keys().cloned().collect();
        for name in names {
            while let Some(t) = self.trunks.get(&name) {
                if !t.pacer.may_send(now) || t.in_flight >= t.channels {
                    break;
                }
                let last = t.last.clone();
                let candidates: Vec<&String> = self
                    .campaigns
                    .iter()
                    .filter(|(_, r)| {
                        r.limits.trunk == name
                            && !r.ready.is_empty()
                            && r.in_flight < r.limits.concurrency
                            && r.pacer.may_send(now)
                    })
                    .map(|(id, _)| id)
                    .collect();
                let pick = candidates
                    .iter()
                    .find(|id| last.as_ref().is_some_and(|l| id.as_str() > l.as_str()))
                    .or(candidates.first())
                    .map(|id| (*id).clone());
                let Some(campaign) = pick else { break };
                let Some(run) = self.campaigns.get_mut(&campaign) else {
                    break;
                };
                let Some(attempt) = run.ready.pop_front() else {
                    break;
                };
                run.in_flight += 1;
                run.pacer.sent(now);
                if let Some(t) = self.trunks.get_mut(&name) {
                    t.in_flight += 1;
                    t.pacer.sent(now);
                    t.last = Some(campaign.clone());
                }
                self.actions.push_back(Action::Dial { campaign, attempt });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::t0;

    struct Sim {
        planner: Planner<u32>,
        now: Instant,
        /// Recipients due per campaign.
        due: BTreeMap<String, VecDeque<u32>>,
        /// (campaign, attempt, dialled at ms, ends at).
        calls: Vec<(String, u32, u64, Instant)>,
        released: Vec<u32>,
    }

    impl Sim {
        fn new() -> Sim {
            Sim {
                planner: Planner::new(),
                now: t0(),
                due: BTreeMap::new(),
                calls: Vec::new(),
                released: Vec::new(),
            }
        }

        fn add(&mut self, campaign: &str, ids: std::ops::Range<u32>) {
            self.due.entry(campaign.into()).or_default().extend(ids);
        }

        fn drain(&mut self, call_length: Duration) {
            while let Some(action) = self.planner.poll_action() {
                match action {
                    Action::Claim { campaign, max } => {
                        let queue = self.due.entry(campaign.clone()).or_default();
                        let n = max.min(queue.len());
                        let got: Vec<u32> = queue.drain(..n).collect();
                        self.planner.claimed(self.now, &campaign, got);
                    }
                    Action::Dial { campaign, attempt } => {
                        let ms = self.now.duration_since(t0()).as_millis() as u64;
                        self.calls
                            .push((campaign, attempt, ms, self.now + call_length));
                    }
                    Action::Release { attempts, .. } => self.released.extend(attempts),
                }
            }
        }

        /// Runs for `span`, ending calls as they come due with `response`.
        fn run(
            &mut self,
            span: Duration,
            call_length: Duration,
            response: impl Fn(u32) -> TrunkResponse,
        ) {
            let until = self.now + span;
            let mut ended = std::collections::HashSet::new();
            while self.now < until {
                self.planner.handle_timeout(self.now);
                self.drain(call_length);
                let due: Vec<(String, u32)> = self
                    .calls
                    .iter()
                    .filter(|(_, a, _, end)| *end <= self.now && !ended.contains(a))
                    .map(|(c, a, _, _)| (c.clone(), *a))
                    .collect();
                for (c, a) in due {
                    ended.insert(a);
                    self.planner.ended(self.now, &c, response(a));
                    self.drain(call_length);
                }
                self.now += Duration::from_millis(5);
            }
        }

        fn max_concurrent(&self, campaign: Option<&str>) -> usize {
            self.calls
                .iter()
                .filter(|c| campaign.is_none_or(|x| x == c.0))
                .map(|(_, _, start, _)| {
                    let at = t0() + Duration::from_millis(*start);
                    self.calls
                        .iter()
                        .filter(|c| campaign.is_none_or(|x| x == c.0))
                        .filter(|(_, _, s, end)| {
                            t0() + Duration::from_millis(*s) <= at && *end > at
                        })
                        .count()
                })
                .max()
                .unwrap_or(0)
        }

        fn max_per_second(&self) -> usize {
            let times: Vec<u64> = self.calls.iter().map(|c| c.2).collect();
            times
                .iter()
                .map(|&s| times.iter().filter(|&&t| t >= s && t < s + 1000).count())
                .max()
                .unwrap_or(0)
        }
    }

    fn limits(trunk: &str, concurrency: usize) -> CampaignLimits {
        CampaignLimits {
            trunk: trunk.into(),
            concurrency,
            cps: 1000.0,
        }
    }

    #[test]
    fn a_campaign_keeps_its_own_pace_below_the_trunks() {
        let mut sim = Sim::new();
        sim.planner.set_trunk(
            "t",
            TrunkLimits {
                cps: 50.0,
                channels: 1000,
            },
        );
        sim.add("c", 0..100);
        sim.planner.run(
            sim.now,
            "c",
            CampaignLimits {
                trunk: "t".into(),
                concurrency: 100,
                cps: 5.0,
            },
        );
        sim.run(Duration::from_secs(10), Duration::from_secs(1), |_| {
            TrunkResponse::Took
        });
        assert!(sim.max_per_second() <= 5, "{}", sim.max_per_second());
        assert!(sim.calls.len() >= 45, "{}", sim.calls.len());
    }

    #[test]
    fn concurrency_and_pace_both_hold() {
        let mut sim = Sim::new();
        sim.planner.set_trunk(
            "t",
            TrunkLimits {
                cps: 10.0,
                channels: 1000,
            },
        );
        sim.add("c", 0..300);
        sim.planner.run(sim.now, "c", limits("t", 30));
        sim.run(Duration::from_secs(60), Duration::from_secs(5), |_| {
            TrunkResponse::Took
        });
        assert_eq!(sim.calls.len(), 300, "everyone dialled once");
        assert!(
            sim.max_concurrent(None) <= 30,
            "{}",
            sim.max_concurrent(None)
        );
        assert!(sim.max_per_second() <= 10, "{}", sim.max_per_second());
        // 5 s calls at 10/s would need 50 at once: concurrency is the bound, and it is used.
        assert_eq!(sim.max_concurrent(None), 30);
    }

    #[test]
    fn the_trunks_channel_cap_binds_all_campaigns_together() {
        let mut sim = Sim::new();
        sim.planner.set_trunk(
            "t",
            TrunkLimits {
                cps: 50.0,
                channels: 8,
            },
        );
        sim.add("a", 0..100);
        sim.add("b", 100..200);
        sim.planner.run(sim.now, "a", limits("t", 10));
        sim.planner.run(sim.now, "b", limits("t", 10));
        sim.run(Duration::from_secs(60), Duration::from_secs(2), |_| {
            TrunkResponse::Took
        });
        assert_eq!(sim.calls.len(), 200);
        assert!(sim.max_concurrent(None) <= 8);
        // Both made progress from the start: turns, not one after the other.
        let first_b = sim
            .calls
            .iter()
            .position(|c| c.0 == "b")
            .expect("b dialled");
        assert!(first_b < 4, "b waited for a: first at {first_b}");
    }

    #[test]
    fn a_503_slows_the_trunk_down_and_holds_it() {
        let mut sim = Sim::new();
        sim.planner.set_trunk(
            "t",
            TrunkLimits {
                cps: 10.0,
                channels: 100,
            },
        );
        sim.add("c", 0..1000);
        sim.planner.run(sim.now, "c", limits("t", 100));
        // Attempts 20..40 get 503 (quick answers).
        sim.run(Duration::from_secs(10), Duration::from_millis(50), |a| {
            if (20..40).contains(&a) {
                TrunkResponse::Congested(None)
            } else {
                TrunkResponse::Took
            }
        });
        assert!(sim.planner.trunk_rate("t").expect("trunk") < 10.0);
        // Fewer INVITEs than a full pace would send.
        assert!(sim.calls.len() < 80, "{}", sim.calls.len());
        assert!(sim.max_per_second() <= 10);
    }

    #[test]
    fn stopping_releases_what_waits_and_keeps_calls_counted_on_the_trunk() {
        let mut sim = Sim::new();
        sim.planner.set_trunk(
            "t",
            TrunkLimits {
                cps: 2.0,
                channels: 3,
            },
        );
        sim.add("a", 0..50);
        sim.planner.run(sim.now, "a", limits("t", 10));
        sim.drain(Duration::from_secs(100));
        assert_eq!(sim.calls.len(), 1, "one INVITE now, the rest paced");
        sim.planner.stop("a");
        sim.drain(Duration::from_secs(100));
        assert!(
            !sim.released.is_empty(),
            "claimed but not dialled: released"
        );
        assert_eq!(sim.planner.in_flight("a"), 1);
        // Another campaign on the same trunk still sees that channel taken.
        sim.add("b", 100..150);
        sim.planner.run(sim.now, "b", limits("t", 10));
        sim.run(Duration::from_secs(5), Duration::from_secs(100), |_| {
            TrunkResponse::Took
        });
        let b_calls = sim.calls.iter().filter(|c| c.0 == "b").count();
        assert_eq!(b_calls, 2, "3 channels, one still held by a's call");
        // Claims answered after a stop are released too.
        sim.planner.stop("b");
        sim.planner.claimed(sim.now, "b", vec![7, 8]);
        sim.drain(Duration::from_secs(1));
        assert!(sim.released.contains(&7) && sim.released.contains(&8));
    }

    #[test]
    fn an_idle_campaign_claims_again_only_after_a_pause() {
        let mut sim = Sim::new();
        sim.planner.set_trunk(
            "t",
            TrunkLimits {
                cps: 10.0,
                channels: 10,
            },
        );
        sim.planner.run(sim.now, "c", limits("t", 5));
        let mut claims = 0;
        for _ in 0..100 {
            sim.planner.handle_timeout(sim.now);
            while let Some(action) = sim.planner.poll_action() {
                if let Action::Claim { campaign, .. } = action {
                    claims += 1;
                    sim.planner.claimed(sim.now, &campaign, Vec::new());
                }
            }
            sim.now += Duration::from_millis(50);
        }
        // 5 s of nothing due: about one claim a second, not one per wake-up.
        assert!((4..=6).contains(&claims), "{claims}");
    }
}

//! The broadcast dispatcher (shell): one task that runs every campaign of this node. It claims
//! due recipients from the database with a lease, checks each against the do-not-call list
//! and the recipient's calling window, has the SIP task place the calls the planner releases
//! (`SipCommand::Originate`), and writes each attempt's result with the recipient's next step
//! (retry, done, requeued) as the SIP task reports it.
//!
//! Restart safety (see `store::broadcasts`): a claim is in the database before anything is
//! dialled, and `attempt_dialled` is written before each INVITE goes. At start the node closes
//! the attempts a crash left open: one that was dialled counts and follows the `failed` rule;
//! one that never was is given back uncounted. Leases are renewed while calls run, and attempts
//! whose lease expired (a node that died) are closed the same way by whichever node sees them.
//!
//! The API controls campaigns through [`BroadcastsHandle`]; every other node notices state
//! changes at its next refresh (every [`REFRESH`]).

use crate::broadcast::amd::AmdSettings;
use crate::broadcast::planner::{CampaignLimits, Planner, TrunkLimits, TrunkResponse};
use crate::broadcast::{AmdMode, AttemptResult, Message, Next, Settings, StoredSettings, judge};
use crate::runtime::clock::{Clock, from_timestamp, to_timestamp};
use crate::runtime::events::{Event, EventBus};
use crate::runtime::sip_task::SipCommand;
use crate::store::{AttemptEnd, BroadcastRecord, ClaimedAttempt, RecipientNext, Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

mod repair;

/// How often running campaigns are re-read, leases renewed, expired leases repaired and
/// progress published.
pub const REFRESH: Duration = Duration::from_secs(2);

/// A call for the SIP task to place.
#[derive(Debug, Clone)]
pub struct OriginateRequest {
    pub campaign: String,
    pub attempt_id: String,
    /// 1 for the recipient's first call.
    pub attempt_number: i64,
    /// The call's id (UUIDv7), chosen here so the attempt row names it before the INVITE.
    pub call_id: String,
    /// E.164.
    pub number: String,
    pub name: Option<String>,
    pub trunk: String,
    pub caller_id: Option<String>,
    pub max_ring: Duration,
    pub plan: Arc<CallPlan>,
}

/// What an answered call of a campaign does.
#[derive(Debug, Clone)]
pub struct CallPlan {
    pub message: Message,
    pub amd: AmdMode,
    pub amd_settings: AmdSettings,
    pub answer_flow: Option<String>,
    pub opt_out_digit: Option<char>,
}

/// What the SIP task reports when a broadcast call is over.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    pub campaign: String,
    pub attempt_id: String,
    pub call_id: String,
    /// An INVITE went out.
    pub dialled: bool,
    pub result: AttemptResult,
    pub answered_at: Option<DateTime<Utc>>,
    pub digit: Option<char>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Start,
    Pause,
    Resume,
    Cancel,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no such broadcast")]
    NotFound,
    #[error("the broadcast is {state}; it cannot be {action}")]
    WrongState { state: String, action: &'static str },
    #[error("the broadcast's settings cannot run: {0}")]
    Invalid(String),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("the broadcast dispatcher is not running")]
    Stopped,
}

struct ControlRequest {
    id: String,
    control: Control,
    reply: oneshot::Sender<Result<BroadcastRecord, ControlError>>,
}

/// How the API reaches the dispatcher.
#[derive(Debug, Clone)]
pub struct BroadcastsHandle {
    tx: mpsc::Sender<ControlRequest>,
}

impl BroadcastsHandle {
    /// Starts, pauses, resumes or cancels a campaign; the record as it is afterwards.
    pub async fn control(
        &self,
        id: &str,
        control: Control,
    ) -> Result<BroadcastRecord, ControlError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(ControlRequest {
                id: id.to_string(),
                control,
                reply,
            })
            .await
            .map_err(|_| ControlError::Stopped)?;
        answer.await.map_err(|_| ControlError::Stopped)?
    }
}

#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    pub node_id: String,
    /// How long a claim holds without renewal.
    pub lease: Duration,
    pub trunks: Vec<crate::config::TrunkConfig>,
    pub clock: Clock,
}

/// A running campaign as the dispatcher holds it.
struct Loaded {
    record: BroadcastRecord,
    settings: Settings,
    plan: Arc<CallPlan>,
}

/// A claimed attempt the SIP task is working on.
struct InFlight {
    campaign: String,
    claimed: ClaimedAttempt,
}

struct Dispatcher {
    store: Store,
    config: DispatcherConfig,
    sip: Option<mpsc::Sender<SipCommand>>,
    events: EventBus,
    planner: Planner<ClaimedAttempt>,
    running: HashMap<String, Loaded>,
    in_flight: HashMap<String, InFlight>,
    /// Campaigns whose counts changed since progress was last published.
    dirty: HashSet<String>,
}

/// Creates the handle and starts the dispatcher. It stops claiming when `shutdown` fires and
/// ends once the SIP task has dropped its report sender (every call reported).
pub fn spawn(
    store: Store,
    config: DispatcherConfig,
    sip: mpsc::Sender<SipCommand>,
    reports: mpsc::UnboundedReceiver<AttemptReport>,
    events: EventBus,
    shutdown: CancellationToken,
) -> (BroadcastsHandle, tokio::task::JoinHandle<()>) {
    let (tx, controls) = mpsc::channel(32);
    let mut planner = Planner::new();
    for trunk in &config.trunks {
        planner.set_trunk(
            &trunk.name,
            TrunkLimits {
                cps: trunk.max_cps,
                channels: trunk.max_channels,
            },
        );
    }
    let dispatcher = Dispatcher {
        store,
        config,
        sip: Some(sip),
        events,
        planner,
        running: HashMap::new(),
        in_flight: HashMap::new(),
        dirty: HashSet::new(),
    };
    let task = tokio::spawn(dispatcher.run(controls, reports, shutdown));
    (BroadcastsHandle { tx }, task)
}

impl Dispatcher {
    async fn run(
        mut self,
        mut controls: mpsc::Receiver<ControlRequest>,
        mut reports: mpsc::UnboundedReceiver<AttemptReport>,
        shutdown: CancellationToken,
    ) {
        self.repair(Some(self.config.node_id.clone())).await;
        self.refresh().await;
        let mut tick = tokio::time::interval(REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        let mut controls_open = true;
        loop {
            let wake = self.planner.poll_timeout();
            tokio::select! {
                _ = shutdown.cancelled(), if !stopping => {
                    stopping = true;
                    let ids: Vec<String> = self.running.keys().cloned().collect();
                    for id in ids {
                        self.planner.stop(&id);
                    }
                    self.running.clear();
                }
                report = reports.recv() => match report {
                    Some(report) => self.on_report(report).await,
                    None => break,
                },
                request = controls.recv(), if controls_open && !stopping => match request {
                    Some(request) => {
                        let result = self.control(&request.id, request.control).await;
                        let _ = request.reply.send(result);
                    }
                    None => controls_open = false,
                },
                _ = tick.tick() => {
                    if !stopping {
                        self.refresh().await;
                        self.renew_and_repair().await;
                    }
                    self.publish_progress().await;
                }
                _ = sleep_until(wake) => self.planner.handle_timeout(Instant::now()),
            }
            self.carry_out(stopping).await;
        }
        self.carry_out(true).await;
        self.publish_progress().await;
        tracing::info!("broadcast dispatcher stopped");
    }

    /// Does what the planner asks: claims, INVITEs, releases.
    async fn carry_out(&mut self, stopping: bool) {
        while let Some(action) = self.planner.poll_action() {
            match action {
                crate::broadcast::planner::Action::Claim { campaign, max } => {
                    let claimed = if stopping {
                        Vec::new()
                    } else {
                        self.claim(&campaign, max).await
                    };
                    self.planner.claimed(Instant::now(), &campaign, claimed);
                }
                crate::broadcast::planner::Action::Dial { campaign, attempt } => {
                    self.dial(campaign, attempt).await;
                }
                crate::broadcast::planner::Action::Release { campaign, attempts } => {
                    for attempt in attempts {
                        self.give_back(&attempt, "released", Utc::now()).await;
                    }
                    self.dirty.insert(campaign);
                }
            }
        }
    }

    /// Claims due recipients; the ones on the do-not-call list or outside their window are
    /// settled here and never reach the planner.
    async fn claim(&mut self, campaign: &str, max: usize) -> Vec<ClaimedAttempt> {
        let now = Utc::now();
        let lease_until = now + chrono::Duration::from_std(self.config.lease).unwrap_or_default();
        let claimed = match self
            .store
            .claim_recipients(campaign, &self.config.node_id, now, max as i64, lease_until)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, broadcast = %campaign, "claiming recipients failed");
                return Vec::new();
            }
        };
        let settings = self.running.get(campaign).map(|l| l.settings.clone());
        let mut ready = Vec::with_capacity(claimed.len());
        for attempt in claimed {
            let Some(settings) = settings.as_ref() else {
                self.give_back(&attempt, "released", now).await;
                continue;
            };
            if attempt.do_not_call {
                let end = attempt_end(&attempt, now, "do_not_call");
                self.finish(
                    &end,
                    &RecipientNext::Done {
                        outcome: "do_not_call".into(),
                    },
                    None,
                )
                .await;
                metrics::counter!("openline_broadcast_attempts_total", "outcome" => "do_not_call")
                    .increment(1);
                self.dirty.insert(campaign.to_string());
                continue;
            }
            let zones = settings.zones_for(&attempt.zones);
            let shown = self.config.clock.at(now);
            if !settings.window.is_open(&zones, to_timestamp(shown)) {
                // The window closed between scheduling and the claim: back to its next opening.
                let next = self.next_in_window(settings, &attempt.zones, now);
                match next {
                    Some(at) => {
                        self.finish(
                            &attempt_end(&attempt, now, "outside_window"),
                            &RecipientNext::Requeue { at },
                            None,
                        )
                        .await;
                    }
                    None => {
                        self.finish(
                            &attempt_end(&attempt, now, "outside_window"),
                            &RecipientNext::Done {
                                outcome: "failed".into(),
                            },
                            None,
                        )
                        .await;
                    }
                }
                continue;
            }
            ready.push(attempt);
        }
        ready
    }

    /// The first real instant at or after `from` (real) when the recipient's window is open;
    /// `None` when it never opens.
    fn next_in_window(
        &self,
        settings: &Settings,
        zones: &str,
        from: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let zones = settings.zones_for(zones);
        let shown = to_timestamp(self.config.clock.at(from));
        settings
            .window
            .next_open(&zones, shown)
            .map(|ts| self.config.clock.real(from_timestamp(ts)).max(from))
    }

    async fn dial(&mut self, campaign: String, attempt: ClaimedAttempt) {
        let Some(loaded) = self.running.get(&campaign) else {
            self.give_back(&attempt, "released", Utc::now()).await;
            self.planner
                .ended(Instant::now(), &campaign, TrunkResponse::NotSent);
            return;
        };
        // The window may have closed while the claim waited for a free channel or its slot.
        let now = Utc::now();
        let zones = loaded.settings.zones_for(&attempt.zones);
        if !loaded
            .settings
            .window
            .is_open(&zones, to_timestamp(self.config.clock.at(now)))
        {
            let next = match self.next_in_window(&loaded.settings, &attempt.zones, now) {
                Some(at) => RecipientNext::Requeue { at },
                None => RecipientNext::Done {
                    outcome: "failed".into(),
                },
            };
            self.finish(&attempt_end(&attempt, now, "outside_window"), &next, None)
                .await;
            self.planner
                .ended(Instant::now(), &campaign, TrunkResponse::NotSent);
            return;
        }
        let call_id = uuid::Uuid::now_v7().to_string();
        let request = OriginateRequest {
            campaign: campaign.clone(),
            attempt_id: attempt.attempt_id.clone(),
            attempt_number: attempt.attempt,
            call_id: call_id.clone(),
            number: attempt.e164.clone(),
            name: attempt.name.clone(),
            trunk: loaded.record.trunk.clone(),
            caller_id: loaded.record.caller_id.clone(),
            max_ring: loaded.settings.max_ring,
            plan: loaded.plan.clone(),
        };
        // Written before the INVITE goes: a crash from here on counts this attempt. Refused
        // when the claim is no longer ours (a lease that ran out while this node could not
        // reach the database, the campaign paused or cancelled elsewhere): then no INVITE.
        let dialled = self
            .store
            .attempt_dialled(&attempt.attempt_id, &call_id, &self.config.node_id, now)
            .await;
        if !matches!(dialled, Ok(true)) {
            match dialled {
                Err(e) => {
                    tracing::warn!(error = %e, "cannot mark the attempt dialled; giving it back")
                }
                _ => {
                    tracing::info!(number = %attempt.e164, "the claim is no longer ours or the campaign stopped; not dialled")
                }
            }
            self.give_back(&attempt, "released", Utc::now()).await;
            self.planner
                .ended(Instant::now(), &campaign, TrunkResponse::NotSent);
            return;
        }
        let sent = match &self.sip {
            Some(sip) => sip
                .send(SipCommand::Originate(Box::new(request)))
                .await
                .is_ok(),
            None => false,
        };
        if !sent {
            // The SIP task is gone (shutting down): the INVITE never left.
            self.give_back(&attempt, "released", Utc::now()).await;
            self.planner
                .ended(Instant::now(), &campaign, TrunkResponse::NotSent);
            return;
        }
        self.in_flight.insert(
            attempt.attempt_id.clone(),
            InFlight {
                campaign,
                claimed: attempt,
            },
        );
        metrics::gauge!("openline_broadcast_calls_in_flight").set(self.in_flight.len() as f64);
    }

    async fn on_report(&mut self, report: AttemptReport) {
        let Some(flight) = self.in_flight.remove(&report.attempt_id) else {
            return;
        };
        metrics::gauge!("openline_broadcast_calls_in_flight").set(self.in_flight.len() as f64);
        let now = Utc::now();
        let settings = match self.running.get(&flight.campaign) {
            Some(loaded) => Some(loaded.settings.clone()),
            None => self.load_settings(&flight.campaign).await,
        };
        let Some(settings) = settings else {
            // The campaign's settings are gone or unreadable: end the recipient rather than
            // leave it claimed, and free the call's slot.
            tracing::warn!(broadcast = %flight.campaign, "a report for a campaign without readable settings");
            let end = AttemptEnd {
                call_id: report.dialled.then(|| report.call_id.clone()),
                ..attempt_end(&flight.claimed, now, "failed")
            };
            let next = RecipientNext::Done {
                outcome: "failed".into(),
            };
            self.finish(&end, &next, None).await;
            self.planner
                .ended(Instant::now(), &flight.campaign, TrunkResponse::Took);
            return;
        };
        let attempts = u32::try_from(flight.claimed.attempt).unwrap_or(u32::MAX);
        let verdict = judge(&report.result, settings.amd, &settings.retry, attempts);
        let next = match verdict.next {
            Next::Done(outcome) => RecipientNext::Done {
                outcome: outcome.as_str().into(),
            },
            Next::Retry(delay) | Next::Requeue(delay) => {
                let at = now + chrono::Duration::from_std(delay).unwrap_or_default();
                match self.next_in_window(&settings, &flight.claimed.zones, at) {
                    Some(at) if matches!(verdict.next, Next::Retry(_)) => {
                        RecipientNext::Retry { at }
                    }
                    Some(at) => RecipientNext::Requeue { at },
                    None => RecipientNext::Done {
                        outcome: verdict.code.into(),
                    },
                }
            }
        };
        let (amd, amd_reason, message) = match &report.result {
            AttemptResult::Answered { amd, message, .. } => (
                amd.map(|(v, _)| v.as_str().to_string()),
                amd.map(|(_, r)| r.to_string()),
                Some(message.map_or("none", |m| m.as_str()).to_string()),
            ),
            _ => (None, None, None),
        };
        let sip_status = match report.result {
            AttemptResult::Unanswered(crate::broadcast::Unanswered::Status(s)) => {
                Some(i32::from(s))
            }
            _ => None,
        };
        let end = AttemptEnd {
            attempt_id: report.attempt_id.clone(),
            recipient_id: flight.claimed.recipient_id,
            call_id: report.dialled.then(|| report.call_id.clone()),
            answered_at: report.answered_at,
            ended_at: now,
            outcome: verdict.code.to_string(),
            sip_status,
            amd,
            amd_reason,
            message,
            digit: report.digit.map(|d| d.to_string()),
        };
        let opt_out = verdict
            .opted_out
            .then_some((flight.claimed.e164.as_str(), flight.campaign.as_str()));
        self.finish(&end, &next, opt_out).await;
        metrics::counter!("openline_broadcast_attempts_total", "outcome" => verdict.code)
            .increment(1);
        tracing::info!(broadcast = %flight.campaign, number = %flight.claimed.e164, attempt = flight.claimed.attempt, outcome = verdict.code, next = ?next, "broadcast attempt finished");
        self.planner
            .ended(Instant::now(), &flight.campaign, verdict.trunk);
        if let Some(loaded) = self.running.get(&flight.campaign)
            && let Some(rate) = self.planner.trunk_rate(&loaded.record.trunk)
        {
            metrics::gauge!("openline_broadcast_trunk_cps", "trunk" => loaded.record.trunk.clone())
                .set(rate);
        }
        self.dirty.insert(flight.campaign.clone());
        self.complete_if_done(&flight.campaign).await;
    }

    /// Writes an attempt's end; storage errors are retried a few times, then logged with the
    /// attempt (the lease expires and the repair settles it).
    async fn finish(&self, end: &AttemptEnd, next: &RecipientNext, opt_out: Option<(&str, &str)>) {
        // About a minute of retries (a database failover): the result is what keeps a person
        // from being called again, so it is worth waiting for.
        for attempt in 0..16u32 {
            match self.store.finish_attempt(end, next, opt_out).await {
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "writing a broadcast attempt failed; retrying");
                    tokio::time::sleep(Duration::from_millis((100u64 << attempt.min(6)).min(5000)))
                        .await;
                }
            }
        }
        tracing::error!(attempt = %end.attempt_id, outcome = %end.outcome, "a broadcast attempt could not be written; its lease will expire and be repaired");
    }

    /// A claimed attempt that was never dialled goes back, uncounted, due now.
    async fn give_back(&self, attempt: &ClaimedAttempt, why: &str, now: DateTime<Utc>) {
        self.finish(
            &attempt_end(attempt, now, why),
            &RecipientNext::Requeue { at: now },
            None,
        )
        .await;
    }

    async fn complete_if_done(&mut self, campaign: &str) {
        if !self.running.contains_key(campaign) || self.planner.in_flight(campaign) > 0 {
            return;
        }
        match self.store.broadcast_open_recipients(campaign).await {
            Ok(0) => {}
            _ => return,
        }
        if let Ok(true) = self
            .store
            .set_broadcast_state(campaign, &["running"], "completed", Utc::now())
            .await
        {
            tracing::info!(broadcast = %campaign, "broadcast completed");
            self.planner.stop(campaign);
            self.running.remove(campaign);
            self.dirty.insert(campaign.to_string());
        }
    }

    async fn load_settings(&self, campaign: &str) -> Option<Settings> {
        let record = self.store.broadcast(campaign).await.ok()??;
        load(&record).ok().map(|l| l.settings)
    }

    /// Re-reads the running campaigns: new ones start, stopped ones stop (another node or the
    /// API changed them).
    async fn refresh(&mut self) {
        let records = match self.store.broadcasts(Some("running"), None, 1000).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read running broadcasts");
                return;
            }
        };
        let ids: HashSet<String> = records.iter().map(|r| r.id.clone()).collect();
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|id| !ids.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            self.planner.stop(&id);
            self.running.remove(&id);
        }
        for record in records {
            if self.running.contains_key(&record.id) {
                continue;
            }
            self.start_running(record);
        }
        let ids: Vec<String> = self.running.keys().cloned().collect();
        for id in ids {
            self.complete_if_done(&id).await;
        }
    }

    fn start_running(&mut self, record: BroadcastRecord) {
        match load(&record) {
            Ok(loaded) => {
                if !self.config.trunks.iter().any(|t| t.name == record.trunk) {
                    tracing::error!(broadcast = %record.id, trunk = %record.trunk, "the broadcast's trunk is not configured; not calling");
                    return;
                }
                tracing::info!(broadcast = %record.id, name = %record.name, "broadcast running");
                self.planner.run(
                    Instant::now(),
                    &record.id,
                    CampaignLimits {
                        trunk: record.trunk.clone(),
                        concurrency: usize::try_from(record.concurrency).unwrap_or(1).max(1),
                        cps: record.cps,
                    },
                );
                let id = record.id.clone();
                self.running.insert(id.clone(), loaded);
                self.dirty.insert(id);
            }
            Err(e) => {
                tracing::error!(broadcast = %record.id, error = %e, "a running broadcast's settings do not load; not calling");
            }
        }
    }

    async fn control(
        &mut self,
        id: &str,
        control: Control,
    ) -> Result<BroadcastRecord, ControlError> {
        let record = self
            .store
            .broadcast(id)
            .await?
            .ok_or(ControlError::NotFound)?;
        let now = Utc::now();
        let (from, to, action): (&[&str], &str, &'static str) = match control {
            Control::Start => (&["draft"], "running", "started"),
            Control::Resume => (&["paused"], "running", "resumed"),
            Control::Pause => (&["running"], "paused", "paused"),
            Control::Cancel => (&["draft", "running", "paused"], "cancelled", "cancelled"),
        };
        if to == "running" {
            load(&record).map_err(|e| ControlError::Invalid(e.to_string()))?;
        }
        if !self.store.set_broadcast_state(id, from, to, now).await? {
            return Err(ControlError::WrongState {
                state: record.state,
                action,
            });
        }
        match control {
            Control::Start | Control::Resume => {
                if let Some(record) = self.store.broadcast(id).await? {
                    self.start_running(record);
                }
            }
            Control::Pause => {
                self.planner.stop(id);
                self.running.remove(id);
            }
            Control::Cancel => {
                self.planner.stop(id);
                self.running.remove(id);
                if let Some(sip) = &self.sip {
                    let _ = sip.send(SipCommand::CancelBroadcast(id.to_string())).await;
                }
                self.store.cancel_pending_recipients(id, now).await?;
            }
        }
        tracing::info!(broadcast = %id, action, "broadcast {action}");
        self.dirty.insert(id.to_string());
        self.store
            .broadcast(id)
            .await?
            .ok_or(ControlError::NotFound)
    }

    async fn publish_progress(&mut self) {
        let dirty: Vec<String> = self.dirty.drain().collect();
        for id in dirty {
            let Ok(Some(record)) = self.store.broadcast(&id).await else {
                continue;
            };
            let Ok(progress) = self.store.broadcast_progress(&id, Utc::now()).await else {
                continue;
            };
            self.events.publish(Event::BroadcastProgress {
                broadcast_id: id.clone(),
                state: record.state,
                total: progress.total,
                pending: progress.pending,
                calling: progress.calling,
                done: progress.done,
                in_flight: self.planner.in_flight(&id) as i64,
                outcomes: progress.outcomes,
                at: Utc::now(),
            });
        }
    }
}

/// An attempt closed without a call.
fn attempt_end(attempt: &ClaimedAttempt, now: DateTime<Utc>, outcome: &str) -> AttemptEnd {
    AttemptEnd {
        attempt_id: attempt.attempt_id.clone(),
        recipient_id: attempt.recipient_id,
        ended_at: now,
        outcome: outcome.to_string(),
        ..AttemptEnd::default()
    }
}

/// A stored campaign's settings checked, and the plan its calls run.
fn load(record: &BroadcastRecord) -> Result<Loaded, crate::broadcast::SpecError> {
    let stored: StoredSettings =
        serde_json::from_str(&record.settings).map_err(|e| crate::broadcast::SpecError {
            field: "settings",
            reason: e.to_string(),
        })?;
    let settings = stored.check()?;
    let plan = Arc::new(CallPlan {
        message: settings.message.clone(),
        amd: settings.amd,
        amd_settings: settings.amd_settings,
        answer_flow: settings.answer_flow.clone(),
        opt_out_digit: settings.opt_out_digit,
    });
    Ok(Loaded {
        record: record.clone(),
        settings,
        plan,
    })
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

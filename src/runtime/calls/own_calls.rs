//! Operators' own calls: an authenticated operator's INVITE to a colleague's extension rings
//! that phone directly, and one to the dialplan's external prefix + a number goes out through the
//! trunk. No flow runs; the operator is answered when the far end answers.

use super::*;

/// The dialplan's rule for external numbers: `prefix` + number goes to `trunk`, without the
/// prefix, for the operators and numbers `policy` allows, at most `max_channels` at once.
#[derive(Debug, Clone)]
pub struct ExternalDialing {
    pub prefix: String,
    pub trunk: crate::config::TrunkConfig,
    pub policy: crate::dialplan::Policy,
    pub max_channels: usize,
}

impl ExternalDialing {
    /// From the validated config (patterns that do not parse were refused at start).
    pub fn from_config(
        rule: &crate::config::ExternalRule,
        trunk: &crate::config::TrunkConfig,
        operators: &[crate::config::OperatorConfig],
    ) -> ExternalDialing {
        use crate::dialplan::{OperatorRights, Pattern, Policy, patterns};
        // Start-up refuses patterns that do not parse; should one get here anyway, the policy
        // fails closed (every number denied) rather than open.
        let everything = || vec![Pattern::parse("_!").expect("a valid pattern")];
        let deny = match (patterns(&rule.allow), patterns(&rule.deny)) {
            (Ok(_), Ok(deny)) => deny,
            _ => everything(),
        };
        ExternalDialing {
            prefix: rule.prefix.clone(),
            trunk: trunk.clone(),
            policy: Policy {
                allow: patterns(&rule.allow).unwrap_or_default(),
                deny,
                operators: operators
                    .iter()
                    .map(|o| {
                        let rights = OperatorRights {
                            external: o.dial_external,
                            allow: patterns(&o.dial_allow).unwrap_or_default(),
                        };
                        (o.extension.clone(), rights)
                    })
                    .collect(),
            },
            max_channels: rule.max_channels,
        }
    }
}

impl ExternalDialing {
    /// The number for the trunk when `dialed` is the prefix + a number (the same rule the SIP
    /// layer challenges for, [`crate::sip::endpoint::external_number`]).
    pub fn number<'a>(&self, dialed: &'a str) -> Option<&'a str> {
        crate::sip::endpoint::external_number(&self.prefix, dialed)
    }
}

/// How long an operator's own call (to a colleague, or out through the trunk) rings before it is
/// given up.
const DIRECT_RING_TIMEOUT: Duration = Duration::from_secs(60);

/// Where an incoming call goes (see [`Calls::destination`]).
pub(super) enum Destination {
    /// A colleague's extension, rung directly.
    Colleague,
    /// An external number (the prefix stripped), out through the trunk for the operator.
    External(String),
    /// `[routes]` → a flow.
    Routes,
    /// A supervisor's feature code (`*81101`): onto that operator's call.
    Supervise {
        mode: crate::runtime::call_task::SuperviseMode,
        ext: String,
    },
}

impl Destination {
    /// Whom an operator's own call reaches, for an attended transfer that hands it to a caller
    /// (`None`: not an own call of that kind).
    pub(super) fn own_call_target(&self, called: &str) -> Option<TransferTarget> {
        match self {
            Destination::Colleague => Some(TransferTarget::Operator(called.to_string())),
            Destination::External(number) => Some(TransferTarget::External(number.clone())),
            Destination::Routes | Destination::Supervise { .. } => None,
        }
    }
}

/// An operator's own call: the operator who placed it (proven by digest) and whom it reaches.
#[derive(Debug, Clone)]
pub(super) struct OwnCall {
    pub(super) operator: String,
    pub(super) to: TransferTarget,
}

impl Calls {
    /// Where a new call goes: only an authenticated operator reaches a colleague's phone or a
    /// trunk; everyone else is routed by `[routes]` to a flow.
    pub(super) fn destination(&self, operator: Option<&str>, called: &str) -> Destination {
        let Some(operator) = operator else {
            return Destination::Routes;
        };
        tracing::info!(%operator, %called, "call from an authenticated operator");
        if let Some((mode, ext)) = super::supervise::feature_code(called) {
            return Destination::Supervise {
                mode,
                ext: ext.to_string(),
            };
        }
        if self.acd.is_operator(called) {
            return Destination::Colleague;
        }
        self.config
            .external
            .as_ref()
            .and_then(|x| x.number(called))
            .map_or(Destination::Routes, |n| {
                Destination::External(n.to_string())
            })
    }

    /// An operator calls a colleague's extension: the colleague's phone rings, and the caller is
    /// answered only when it is answered (no flow runs).
    pub(super) fn direct_call(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        call: &IncomingCall,
        ext: &str,
    ) {
        if !self.prepare_media(endpoint, now, call) {
            return;
        }
        match self.ring_operator(endpoint, now, call.leg, ext, None) {
            Ok(out) => {
                endpoint.ring(now, call.leg);
                self.ring_deadlines.insert((now + DIRECT_RING_TIMEOUT, out));
            }
            Err(reason) => {
                tracing::info!(%ext, %reason, "the dialed operator cannot be rung");
                endpoint.reject(now, call.leg, 480, "Temporarily Unavailable");
            }
        }
    }

    /// An operator dials an external number: INVITE to the dialplan's trunk, and the operator is
    /// answered only when the far end answers (no flow runs). Refusals from the far end reach
    /// the operator's phone as the nearest SIP status.
    pub(super) fn trunk_call(
        &mut self,
        endpoint: &mut Endpoint,
        now: Instant,
        call: &IncomingCall,
        operator: &str,
        number: &str,
    ) {
        if let Some((reason, status, text)) = self.external_refusal(operator, number) {
            metrics::counter!("openline_calls_refused_total", "reason" => reason).increment(1);
            tracing::warn!(%operator, %number, reason, "operator's external call refused");
            endpoint.reject(now, call.leg, status, text);
            return;
        }
        if !self.prepare_media(endpoint, now, call) {
            return;
        }
        match self.ring_trunk(endpoint, now, call.leg, number, Some(operator)) {
            Ok(out) => {
                endpoint.ring(now, call.leg);
                self.ring_deadlines.insert((now + DIRECT_RING_TIMEOUT, out));
            }
            Err(reason) => {
                tracing::warn!(%reason, "the trunk cannot be dialed");
                endpoint.reject(now, call.leg, 503, "Service Unavailable");
            }
        }
    }

    /// Why the dialplan refuses `operator`'s call to `number` (metric reason, status, phrase):
    /// the number or the operator is not allowed (403), or the trunk's channels for dialled
    /// calls are all up (503).
    pub(super) fn external_refusal(
        &self,
        operator: &str,
        number: &str,
    ) -> Option<(&'static str, u16, &'static str)> {
        use crate::dialplan::Verdict;
        let external = self.config.external.as_ref()?;
        match external.policy.judge(operator, number) {
            Verdict::Allowed => {}
            Verdict::OperatorBarred => return Some(("operator_barred", 403, "Forbidden")),
            Verdict::Denied(_) | Verdict::NotAllowed => {
                return Some(("number_not_allowed", 403, "Forbidden"));
            }
        }
        (self.trunk_legs_up() >= external.max_channels).then_some((
            "trunk_channels",
            503,
            "Service Unavailable",
        ))
    }

    /// Legs up (ringing or answered) through the dialplan's trunk.
    pub(super) fn trunk_legs_up(&self) -> usize {
        self.outbound.values().filter(|o| o.via_trunk).count()
    }
}

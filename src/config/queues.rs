//! The call-routing sections of the config: `[[queues]]`, `[[trunks]]` and `[dialplan]`, and the
//! checks that tie them to `[[operators]]` and to each other.

use super::{ConfigError, FileConfig, duration_text, optional_duration_text, ten_seconds};
use serde::Deserialize;
use std::time::Duration;

/// How a queue shares callers among its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StrategyName {
    /// The member who has waited longest since their last call.
    #[default]
    Evenly,
    /// Members strictly in their `members` order.
    InOrder,
    /// Every available member at once; the first answer wins.
    All,
}

/// One `[[queues]]` entry as written; [`crate::queue::QueueConfig`] is its typed core.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueFileConfig {
    pub name: String,
    /// Operator extensions, in order.
    pub members: Vec<String>,
    #[serde(default)]
    pub strategy: StrategyName,
    #[serde(with = "duration_text", default = "twenty_seconds")]
    pub ring_timeout: Duration,
    #[serde(with = "duration_text", default = "ten_seconds")]
    pub wrap_up: Duration,
    /// Then `overflow`; none waits for ever.
    #[serde(with = "optional_duration_text", default)]
    pub max_wait: Option<Duration>,
    /// `flow:ID`, `queue:NAME` or `hangup`.
    #[serde(default = "hangup")]
    pub overflow: String,
    /// Record bridged calls (stereo: caller left, operator right).
    #[serde(default)]
    pub record: bool,
    /// A consent prompt played when the caller joins (sounds dir), before any operator talks.
    #[serde(default)]
    pub announce_recording: Option<String>,
    /// After the operator hangs up, the caller goes to this flow (its `rate` node).
    #[serde(default)]
    pub rating_flow: Option<String>,
    /// Looped while the caller waits (sounds dir).
    #[serde(default = "hold_wav")]
    pub hold_music: String,
    /// "You are number N in the queue" every `announce_every`.
    #[serde(default)]
    pub announce_position: bool,
    #[serde(with = "duration_text", default = "thirty_seconds")]
    pub announce_every: Duration,
    /// Missed rings in a row that set an operator `away`; 0 never does.
    #[serde(default = "three")]
    pub missed_rings_to_away: u32,
    /// How long a caller who asked for skills (the flow's `queue` node) waits for a member who has
    /// them all before any member may take the call; none: until `max_wait`.
    #[serde(with = "optional_duration_text", default)]
    pub skills_wait: Option<Duration>,
}

fn twenty_seconds() -> Duration {
    Duration::from_secs(20)
}
fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}
fn hangup() -> String {
    "hangup".into()
}
fn hold_wav() -> String {
    "hold.wav".into()
}
fn three() -> u32 {
    3
}

impl QueueFileConfig {
    /// The queue core's view of this entry.
    pub fn core(&self) -> crate::queue::QueueConfig {
        use crate::queue::{Overflow, Strategy};
        crate::queue::QueueConfig {
            name: self.name.clone(),
            members: self.members.clone(),
            strategy: match self.strategy {
                StrategyName::Evenly => Strategy::Evenly,
                StrategyName::InOrder => Strategy::InOrder,
                StrategyName::All => Strategy::All,
            },
            ring_timeout: self.ring_timeout,
            wrap_up: self.wrap_up,
            max_wait: self.max_wait,
            overflow: parse_overflow(&self.overflow).unwrap_or(Overflow::Hangup),
            announce_every: self.announce_position.then_some(self.announce_every),
            missed_rings_to_away: self.missed_rings_to_away,
            skills_wait: self.skills_wait,
        }
    }
}

/// `flow:ID` | `queue:NAME` | `hangup`.
pub fn parse_overflow(text: &str) -> Option<crate::queue::Overflow> {
    use crate::queue::Overflow;
    match text.split_once(':') {
        Some(("flow", id)) if !id.is_empty() => Some(Overflow::Flow(id.to_string())),
        Some(("queue", name)) if !name.is_empty() => Some(Overflow::Queue(name.to_string())),
        None if text == "hangup" => Some(Overflow::Hangup),
        _ => None,
    }
}

/// A SIP peer for outbound calls. The proxy is an IP address and port: the server never resolves
/// host names it is given (a name in a config or a message is not a place to send to).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    pub name: String,
    pub proxy: std::net::SocketAddr,
    /// Digest credentials, used when the trunk answers 401/407.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// The carrier's digest realm: challenges of any other realm are not answered.
    #[serde(default)]
    pub realm: Option<String>,
    /// The caller id (From user) sent to the trunk; the operator's extension when absent.
    #[serde(default)]
    pub from_user: Option<String>,
    /// Broadcast INVITEs per second towards this trunk (all campaigns together).
    #[serde(default = "default_max_cps")]
    pub max_cps: f64,
    /// Broadcast calls up at once through this trunk (all campaigns together).
    #[serde(default = "default_max_channels")]
    pub max_channels: usize,
}

fn default_max_cps() -> f64 {
    10.0
}

fn default_max_channels() -> usize {
    100
}

/// The password never reaches a log through `{:?}`.
impl std::fmt::Debug for TrunkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkConfig")
            .field("name", &self.name)
            .field("proxy", &self.proxy)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("realm", &self.realm)
            .field("from_user", &self.from_user)
            .field("max_cps", &self.max_cps)
            .field("max_channels", &self.max_channels)
            .finish()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialplanConfig {
    /// `prefix` + digits goes out through `trunk`, without the prefix.
    #[serde(default)]
    pub external: Option<ExternalRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalRule {
    pub prefix: String,
    pub trunk: String,
    /// Numbers (after the prefix) operators may dial, as dial patterns (`crate::dialplan`);
    /// empty: any.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Numbers no operator may dial unless their own `dial_allow` says so (premium rate,
    /// international).
    #[serde(default)]
    pub deny: Vec<String>,
    /// Calls up at once through the trunk from operators and flows (broadcasts have the trunk's
    /// own `max_channels`); past it an operator's call gets 503.
    #[serde(default = "default_dialplan_channels")]
    pub max_channels: usize,
}

fn default_dialplan_channels() -> usize {
    30
}

impl FileConfig {
    /// Queues name configured operators; overflow targets, trunks and the dialplan refer to
    /// things that exist.
    pub(super) fn validate_queues(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: String| Err(ConfigError::Invalid { key, reason });
        let mut names = std::collections::HashSet::new();
        for q in &self.queues {
            if let Err(e) = q.core().validate() {
                return invalid("queues", e.to_string());
            }
            if !names.insert(q.name.as_str()) {
                return invalid("queues.name", format!("queue {:?} is listed twice", q.name));
            }
            if let Some(m) = q
                .members
                .iter()
                .find(|m| !self.operators.iter().any(|o| &o.extension == *m))
            {
                return invalid(
                    "queues.members",
                    format!(
                        "queue {:?}: {m:?} is not an [[operators]] extension",
                        q.name
                    ),
                );
            }
        }
        for q in &self.queues {
            match parse_overflow(&q.overflow) {
                None => {
                    return invalid(
                        "queues.overflow",
                        format!(
                            "queue {:?}: {:?} is not flow:ID, queue:NAME or hangup",
                            q.name, q.overflow
                        ),
                    );
                }
                Some(crate::queue::Overflow::Queue(to)) if !names.contains(to.as_str()) => {
                    return invalid(
                        "queues.overflow",
                        format!("queue {:?} overflows into unknown queue {to:?}", q.name),
                    );
                }
                _ => {}
            }
        }
        let mut trunks = std::collections::HashSet::new();
        for t in &self.trunks {
            if !trunks.insert(t.name.as_str()) {
                return invalid("trunks.name", format!("trunk {:?} is listed twice", t.name));
            }
            if !(t.max_cps.is_finite() && (0.2..=1000.0).contains(&t.max_cps)) {
                return invalid(
                    "trunks.max_cps",
                    format!("trunk {:?}: between 0.2 and 1000 calls per second", t.name),
                );
            }
            if t.max_channels == 0 {
                return invalid(
                    "trunks.max_channels",
                    format!("trunk {:?}: at least 1", t.name),
                );
            }
            if t.username.is_some() != t.password.is_some() {
                return invalid(
                    "trunks.password",
                    format!(
                        "trunk {:?}: give both username and password, or neither",
                        t.name
                    ),
                );
            }
        }
        if let Some(rule) = &self.dialplan.external {
            if rule.prefix.is_empty() || !rule.prefix.bytes().all(|b| b.is_ascii_digit()) {
                return invalid("dialplan.external.prefix", "use one or more digits".into());
            }
            if !trunks.contains(rule.trunk.as_str()) {
                return invalid(
                    "dialplan.external.trunk",
                    format!("no [[trunks]] entry named {:?}", rule.trunk),
                );
            }
            if let Err(e) = crate::dialplan::patterns(&rule.allow) {
                return invalid("dialplan.external.allow", e);
            }
            if let Err(e) = crate::dialplan::patterns(&rule.deny) {
                return invalid("dialplan.external.deny", e);
            }
            if rule.max_channels == 0 {
                return invalid("dialplan.external.max_channels", "at least 1".into());
            }
        }
        Ok(())
    }
}

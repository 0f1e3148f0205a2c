//! The validated flow graph: typed ids, DTMF keys, durations, schedules. Every reference in a
//! [`Flow`] names a node that exists (the loader checked), so the engine follows them without
//! asking twice; the set of flows a call can `goto` is a [`FlowSet`] snapshot.

use super::hours::Schedule;
use super::template::Template;
use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Longest flow or node id.
pub const MAX_ID_LEN: usize = 64;
/// A queue node's `priority` lies within ±this.
pub const MAX_PRIORITY: i32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("an id cannot be empty")]
    Empty,
    #[error("an id is at most {MAX_ID_LEN} characters")]
    TooLong,
    #[error("an id uses letters, digits, `_` and `-` only")]
    BadChar,
}

fn check_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        Err(IdError::Empty)
    } else if s.len() > MAX_ID_LEN {
        Err(IdError::TooLong)
    } else if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Err(IdError::BadChar)
    } else {
        Ok(())
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: &str) -> Result<Self, IdError> {
                check_id(s)?;
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A flow's `id`: what `[routes]`, `goto` and queue overflows name.
    FlowId
);
id_type!(
    /// A node's name inside its flow.
    NodeId
);

/// One telephone key: `0`–`9`, `*`, `#`, `A`–`D` (RFC 4733 events 0–15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dtmf(char);

impl Dtmf {
    /// Accepts the sixteen DTMF symbols; `a`–`d` are taken as `A`–`D`.
    pub fn new(c: char) -> Option<Dtmf> {
        let c = c.to_ascii_uppercase();
        matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(Dtmf(c))
    }

    pub fn as_char(self) -> char {
        self.0
    }

    /// `1`–`5` as a rating.
    pub fn rating(self) -> Option<u8> {
        match self.0 {
            '1'..='5' => Some(self.0 as u8 - b'0'),
            _ => None,
        }
    }
}

impl fmt::Display for Dtmf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a caller hears at a node: recorded files (relative to the sounds dir) or synthesized text.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptSpec {
    Files(Vec<String>),
    Say {
        text: Template,
        voice: Option<String>,
    },
}

/// A node that waits for one key (`menu`, and `rate` with the keys 1–5).
#[derive(Debug, Clone, PartialEq)]
pub struct Menu {
    pub prompt: PromptSpec,
    /// Wait for a key after the prompt ends.
    pub timeout: Duration,
    /// Further tries after the first one; a try fails on a wrong key or the timeout.
    pub retries: u32,
    pub options: BTreeMap<Dtmf, NodeId>,
    pub on_invalid: Option<NodeId>,
    pub on_fail: Option<NodeId>,
    pub barge_in: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gather {
    pub prompt: Option<PromptSpec>,
    pub var: String,
    pub min_digits: u32,
    pub max_digits: u32,
    pub terminator: Option<Dtmf>,
    /// Wait for the first key after the prompt ends.
    pub timeout: Duration,
    pub inter_digit_timeout: Duration,
    pub retries: u32,
    pub next: NodeId,
    pub on_fail: Option<NodeId>,
    pub barge_in: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    pub prompt: PromptSpec,
    pub timeout: Duration,
    pub retries: u32,
    pub next: Option<NodeId>,
    pub on_fail: Option<NodeId>,
    pub barge_in: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    /// `${var}` values are percent-encoded into it.
    pub url: Template,
    pub timeout: Duration,
    /// Extra top-level fields of the request body.
    pub body: Vec<(String, Template)>,
    /// The nodes an answer may pick; `None`: any node of the flow.
    pub choices: Option<Vec<NodeId>>,
    pub next: Option<NodeId>,
    pub on_error: Option<NodeId>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Play {
        files: Vec<String>,
        next: Option<NodeId>,
    },
    Say {
        text: Template,
        voice: Option<String>,
        next: Option<NodeId>,
    },
    Menu(Menu),
    Gather(Gather),
    Rate(Rate),
    Queue {
        queue: String,
        /// Skills a member must have to take the caller (until the queue's `skills_wait`).
        skills: Vec<String>,
        /// The caller's place among waiting callers, higher first; may use `${var}` (a
        /// webhook's answer, a CRM lookup). Not a whole number from -1000 to 1000: 0.
        priority: Option<Template>,
    },
    Dial {
        /// An extension or external number; may use `${var}`.
        target: Template,
        timeout: Duration,
        next: Option<NodeId>,
        on_fail: Option<NodeId>,
    },
    Voicemail {
        greeting: Vec<String>,
        beep: bool,
        max_length: Duration,
        next: Option<NodeId>,
    },
    Hours {
        schedule: Schedule,
        when_open: NodeId,
        when_closed: NodeId,
    },
    Goto {
        flow: FlowId,
        node: Option<NodeId>,
    },
    Set {
        vars: Vec<(String, Template)>,
        next: Option<NodeId>,
    },
    Webhook(Webhook),
    Hangup,
}

impl NodeKind {
    pub fn name(&self) -> &'static str {
        match self {
            NodeKind::Play { .. } => "play",
            NodeKind::Say { .. } => "say",
            NodeKind::Menu(_) => "menu",
            NodeKind::Gather(_) => "gather",
            NodeKind::Rate(_) => "rate",
            NodeKind::Queue { .. } => "queue",
            NodeKind::Dial { .. } => "dial",
            NodeKind::Voicemail { .. } => "voicemail",
            NodeKind::Hours { .. } => "hours",
            NodeKind::Goto { .. } => "goto",
            NodeKind::Set { .. } => "set",
            NodeKind::Webhook(_) => "webhook",
            NodeKind::Hangup => "hangup",
        }
    }

    /// The nodes of this flow this node can lead to (not a webhook answer's free choice).
    pub fn exits(&self) -> Vec<&NodeId> {
        let mut out: Vec<&NodeId> = Vec::new();
        match self {
            NodeKind::Play { next, .. }
            | NodeKind::Say { next, .. }
            | NodeKind::Voicemail { next, .. }
            | NodeKind::Set { next, .. } => out.extend(next),
            NodeKind::Menu(m) => {
                out.extend(m.options.values());
                out.extend(&m.on_invalid);
                out.extend(&m.on_fail);
            }
            NodeKind::Gather(g) => {
                out.push(&g.next);
                out.extend(&g.on_fail);
            }
            NodeKind::Rate(r) => {
                out.extend(&r.next);
                out.extend(&r.on_fail);
            }
            NodeKind::Dial { next, on_fail, .. } => {
                out.extend(next);
                out.extend(on_fail);
            }
            NodeKind::Hours {
                when_open,
                when_closed,
                ..
            } => out.extend([when_open, when_closed]),
            NodeKind::Webhook(w) => {
                out.extend(w.choices.iter().flatten());
                out.extend(&w.next);
                out.extend(&w.on_error);
            }
            NodeKind::Queue { .. } | NodeKind::Goto { .. } | NodeKind::Hangup => {}
        }
        out
    }
}

/// A validated flow. `file` is the file it came from (hot reload replaces flows by file).
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub id: FlowId,
    pub name: Option<String>,
    /// Operators may transfer callers to this flow (`transfer: true`).
    pub transfer: bool,
    pub entry: NodeId,
    pub nodes: BTreeMap<NodeId, NodeKind>,
    pub file: PathBuf,
}

impl Flow {
    pub fn node(&self, id: &NodeId) -> Option<&NodeKind> {
        self.nodes.get(id)
    }
}

/// The flows a call may reach, as they were when it started: a call keeps its snapshot, so a
/// reload never changes a flow under a caller.
#[derive(Debug, Clone, Default)]
pub struct FlowSet {
    flows: BTreeMap<FlowId, Arc<Flow>>,
}

impl FlowSet {
    pub fn new(flows: impl IntoIterator<Item = Flow>) -> FlowSet {
        FlowSet {
            flows: flows
                .into_iter()
                .map(|f| (f.id.clone(), Arc::new(f)))
                .collect(),
        }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Flow>> {
        self.flows.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Flow>> {
        self.flows.values()
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The set after a reload: each file that loaded gives its new flow; a file with errors keeps
    /// the flow it gave before (a broken edit never replaces a good flow); flows of files that are
    /// gone are dropped. On an id clash a freshly loaded flow wins over a kept one.
    pub fn reload(&self, report: &super::load::LoadReport) -> FlowSet {
        let mut flows: BTreeMap<FlowId, Arc<Flow>> = BTreeMap::new();
        for flow in &report.flows {
            flows.insert(flow.id.clone(), Arc::new(flow.clone()));
        }
        for old in self.flows.values() {
            let failed = report.files.contains(&old.file)
                && !report.flows.iter().any(|f| f.file == old.file);
            if failed && !flows.contains_key(&old.id) {
                flows.insert(old.id.clone(), old.clone());
            }
        }
        FlowSet { flows }
    }
}

//! The flow file format (`ivr-flows/*.yaml`), read from the YAML tree into a checked [`Flow`].
//!
//! # The grammar, for admins
//!
//! One flow per file:
//!
//! ```yaml
//! id: main              # unique across files; letters, digits, _ and -
//! name: Main menu       # optional, for people
//! transfer: false       # optional: operators may transfer callers here (a survey, a menu)
//! entry: welcome        # the first node
//! nodes:
//!   welcome:            # a node's name: letters, digits, _ and -
//!     play: welcome.wav
//!     next: hours
//! ```
//!
//! A node is a mapping with exactly one *kind* key. The kind's value is either its short form
//! (text or a list, where the kind has one) or a mapping of its settings. Settings may also be
//! written beside the kind key — `play: hi.wav` and `next: menu` side by side — but not twice.
//! A node without a way on (no `next` where `next` is optional) ends the call after it.
//!
//! | kind | short form | settings (defaults) |
//! |------|------------|---------------------|
//! | `play` | a file or a list of files (`files`) | `next` |
//! | `say` | the text (`text`) | `voice`, `next` |
//! | `menu` | — | prompt (`play` or `say`, `voice`), `timeout` (5s), `retries` (2), `options` (required), `on_invalid`, `on_fail`, `barge_in` (true) |
//! | `gather` | — | prompt (optional), `var` (required), `min_digits` (1), `max_digits` (required, ≤ 32), `terminator` ("#"; `none` for none), `timeout` (5s, for the first key), `inter_digit_timeout` (3s), `retries` (2), `next` (required), `on_fail`, `barge_in` (true) |
//! | `rate` | the prompt file (`play`) | prompt (required), `timeout` (5s), `retries` (2), `next`, `on_fail`, `barge_in` (true) |
//! | `queue` | the queue's name (`name`) | `skills` (a member must have them all, until the queue's `skills_wait`), `priority` (0; higher waits ahead; a number or `${var}`) — the queue decides what happens next |
//! | `dial` | an extension or number (`to`) | `timeout` (30s ringing), `next` (after the other side hangs up), `on_fail` |
//! | `voicemail` | the greeting file(s) (`greeting`) | `beep` (true), `max_length` (2m), `next` |
//! | `hours` | — | `timezone`, `open`, `when_open`, `when_closed` (all required), `holidays` |
//! | `goto` | a flow id (`flow`) | `node` (that flow's entry when absent) |
//! | `set` | a mapping of variables to text | `next` (beside `set:`) |
//! | `webhook` | the URL (`url`) | `timeout` (5s), `body`, `choices`, `next`, `on_error` |
//! | `hangup` | nothing (`hangup:`, `hangup: {}` or `hangup: true`) | — |
//!
//! * **Durations** are a number with a unit: `500ms`, `5s`, `2m`, `1h`, or sums like `1m30s`.
//! * **Sound files** are paths relative to the sounds directory (`.wav`, `.mp3`, `.ogg`, `.flac`);
//!   they must exist when the flow loads.
//! * **Menu options** map one key to a node: `options: { "1": sales, "2": support, "*": menu }`.
//!   Keys are `0`–`9`, `*`, `#`, `A`–`D`; quote `*` and `#` (YAML reads them otherwise). A wrong
//!   key or the `timeout` (counted from the end of the prompt) uses up a try: the menu is repeated,
//!   or `on_invalid` is played first (for a wrong key) and leads back. After `retries` further
//!   tries the call goes to `on_fail` (or ends as `ivr.menu_failed`). The count of tries is kept
//!   while the caller is away in `on_invalid` and back, and starts again after a right key.
//!   With `barge_in` a key stops the prompt; without, keys during the prompt are ignored.
//! * **rate** takes one key 1–5 as the call's rating (also variable `rating`); other keys and the
//!   timeout use up a try like a menu.
//! * **Variables** are text. `${name}` puts one into `say` text, `set` values, a `dial` target, a
//!   webhook's `url` (percent-encoded) and `body`. The call starts with `caller`, `called` and
//!   `call_id`; `gather` sets its `var`, `rate` sets `rating`, a failed webhook sets
//!   `webhook_error`, a failed dial `dial_error`. An unset variable is empty.
//! * **hours**: `timezone` is an IANA name (`Europe/Kyiv`). `open` maps days to local times:
//!   `{ mon-fri: "09:00-18:00", sat: "10:00-14:00" }`. Days are `mon` … `sun`, ranges (`mon-fri`,
//!   `fri-mon`), lists (`"mon,wed"`) and `daily`; each day once. Times are 24-hour `HH:MM`,
//!   end after start, `24:00` allowed as an end; several ranges as a list or
//!   `"09:00-13:00, 14:00-18:00"`. Days not listed are closed. `holidays: ["2026-12-25", "01-01"]`
//!   closes whole local dates, one-off or every year. The local wall clock decides, so DST moves
//!   nothing.
//! * **webhook** POSTs JSON `{"flow": …, "node": …, "variables": {…}}` plus the `body` fields
//!   (text, `${var}` allowed; `flow`, `node` and `variables` are reserved). The answer may be a JSON
//!   object `{"next": "node", "set": {"name": "value"}}`: `set` stores variables, `next` picks the
//!   node (one of `choices` when given); without `next` the node's own `next` is taken. An empty
//!   answer counts as `{}`. HTTP errors, timeouts, other answers, and an answer naming an unknown
//!   node go to `on_error` (or end the call as `ivr.webhook_failed`).
//! * **voicemail** plays the greeting, beeps, and records until `#`, `max_length` or hang-up.
//! * `say`, in a node or as a prompt, needs a text-to-speech engine; without one the flow does not
//!   load.

use super::fields::{Collector, Env, Fields};
use super::flow::{Flow, FlowId, NodeId, NodeKind};
use super::yaml::{Pos, Value, Yaml};
use kinds::parse_kind;
use std::collections::BTreeMap;

pub use kinds::dial_target_ok;

mod kinds;

pub const KINDS: [&str; 13] = [
    "play",
    "say",
    "menu",
    "gather",
    "rate",
    "queue",
    "dial",
    "voicemail",
    "hours",
    "goto",
    "set",
    "webhook",
    "hangup",
];

/// The settings each kind accepts, in the order error messages list them.
fn allowed(kind: &str) -> &'static [&'static str] {
    match kind {
        "play" => &["files", "next"],
        "say" => &["text", "voice", "next"],
        "menu" => &[
            "play",
            "say",
            "voice",
            "timeout",
            "retries",
            "options",
            "on_invalid",
            "on_fail",
            "barge_in",
        ],
        "gather" => &[
            "play",
            "say",
            "voice",
            "var",
            "min_digits",
            "max_digits",
            "terminator",
            "timeout",
            "inter_digit_timeout",
            "retries",
            "next",
            "on_fail",
            "barge_in",
        ],
        "rate" => &[
            "play", "say", "voice", "timeout", "retries", "next", "on_fail", "barge_in",
        ],
        "queue" => &["name", "skills", "priority"],
        "dial" => &["to", "timeout", "next", "on_fail"],
        "voicemail" => &["greeting", "beep", "max_length", "next"],
        "hours" => &["timezone", "open", "holidays", "when_open", "when_closed"],
        "goto" => &["flow", "node"],
        "set" => &["next"],
        "webhook" => &["url", "timeout", "body", "choices", "next", "on_error"],
        _ => &[],
    }
}

/// The setting a short form (text or list as the kind's value) stands for.
fn short_form(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "play" => "files",
        "say" => "text",
        "rate" => "play",
        "queue" => "name",
        "dial" => "to",
        "voicemail" => "greeting",
        "goto" => "flow",
        "webhook" => "url",
        _ => return None,
    })
}

/// A `goto` found in a flow, checked against the other files.
pub struct GotoRef {
    pub flow: FlowId,
    pub flow_pos: Pos,
    pub node: Option<(NodeId, Pos)>,
}

/// One file read: the flow (only when it has no errors), its id (for duplicate checks even when
/// broken), the gotos to check across files, errors and warnings.
pub struct Parsed {
    pub flow: Option<Flow>,
    pub id: Option<(FlowId, Pos)>,
    pub gotos: Vec<GotoRef>,
    pub errors: Vec<(Pos, String)>,
    pub warnings: Vec<(Pos, String)>,
}

/// Reads and checks one flow file's YAML (everything but references to other files).
pub fn parse_flow(doc: &Yaml, env: &Env) -> Parsed {
    let mut c = Collector {
        env,
        errors: Vec::new(),
        refs: Vec::new(),
    };
    let mut parsed = Parsed {
        flow: None,
        id: None,
        gotos: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let Value::Map(entries) = &doc.value else {
        c.error(
            doc.pos,
            "a flow file is a mapping with `id`, `entry` and `nodes`",
        );
        parsed.errors = c.errors;
        return parsed;
    };
    let mut top = Fields::new("", "flow", doc.pos);
    for (k, v) in entries {
        match k.text() {
            Some(name @ ("id" | "name" | "transfer" | "entry" | "nodes")) => {
                top.add(name, k.pos, v);
            }
            _ => c.error(
                k.pos,
                format!(
                    "unknown field {} at the top of a flow (allowed: id, name, transfer, entry, nodes)",
                    k.describe()
                ),
            ),
        }
    }
    let id = match top.take("id") {
        Some(v) => c.text(v, "id").and_then(|t| match FlowId::new(&t) {
            Ok(id) => Some((id, v.pos)),
            Err(e) => {
                c.error(v.pos, format!("bad flow id `{t}`: {e}"));
                None
            }
        }),
        None => {
            c.error(
                doc.pos,
                "missing `id` (the flow's name for routes and goto)",
            );
            None
        }
    };
    parsed.id = id.clone();
    let name = top.take("name").and_then(|v| c.text(v, "name"));
    // Opt-in: a flow can dial out (literal numbers reach the trunk), so an operator may hand a
    // caller only to one its admin meant for it — never as a way round their dialling rights.
    let transfer = c.flag(&mut top, "transfer", false);
    let entry = match top.take("entry") {
        Some(v) => c.text(v, "entry").map(|t| (t, v.pos)),
        None => {
            c.error(doc.pos, "missing `entry` (the name of the first node)");
            None
        }
    };
    let mut nodes: BTreeMap<NodeId, NodeKind> = BTreeMap::new();
    let mut node_pos: BTreeMap<NodeId, Pos> = BTreeMap::new();
    match top.take("nodes") {
        Some(Yaml {
            value: Value::Map(list),
            ..
        }) if !list.is_empty() => {
            for (k, v) in list {
                let Some(text) = k.text() else {
                    c.error(
                        k.pos,
                        format!("a node's name is text, not {}", k.describe()),
                    );
                    continue;
                };
                let node_id = match NodeId::new(text) {
                    Ok(id) => id,
                    Err(e) => {
                        c.error(k.pos, format!("bad node name `{text}`: {e}"));
                        continue;
                    }
                };
                node_pos.insert(node_id.clone(), k.pos);
                if let Some(kind) = parse_node(&mut c, text, k.pos, v, &mut parsed.gotos) {
                    nodes.insert(node_id, kind);
                }
            }
        }
        Some(v) => c.error(
            v.pos,
            format!(
                "`nodes` must be a mapping of node names to nodes, not {}",
                v.describe()
            ),
        ),
        None => c.error(doc.pos, "missing `nodes`"),
    }

    // Every reference names a node of this flow.
    let names = || node_pos.keys().map(NodeId::as_str);
    let hint = |wrong: &str| match super::fields::suggest(wrong, names()) {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    };
    let entry_id = entry.as_ref().and_then(|(text, pos)| {
        match NodeId::new(text).ok().filter(|n| node_pos.contains_key(n)) {
            Some(n) => Some(n),
            None if node_pos.is_empty() => None,
            None => {
                c.error(
                    *pos,
                    format!("entry `{text}` is not a node of this flow{}", hint(text)),
                );
                None
            }
        }
    });
    for r in &c.refs {
        if !node_pos.contains_key(&r.target) {
            let msg = format!(
                "{} of node `{}` points to `{}`, which is not a node of this flow{}",
                r.field,
                r.from,
                r.target,
                hint(r.target.as_str())
            );
            c.errors.push((r.pos, msg));
        }
    }
    for g in &parsed.gotos {
        // A goto into this same flow is checked here; others by the loader.
        if let (Some((own, _)), Some((node, pos))) = (&id, &g.node)
            && *own == g.flow
            && !node_pos.contains_key(node)
        {
            let msg = format!(
                "`goto` names node `{node}`, which is not a node of this flow{}",
                hint(node.as_str())
            );
            c.errors.push((*pos, msg));
        }
    }

    if let (Some(entry), true) = (&entry_id, c.errors.is_empty()) {
        parsed.warnings = unreachable(entry, &nodes, &node_pos, id.as_ref().map(|(i, _)| i));
    }
    if c.errors.is_empty()
        && let (Some((id, _)), Some(entry)) = (id, entry_id)
    {
        parsed.flow = Some(Flow {
            id,
            name,
            transfer,
            entry,
            nodes,
            file: Default::default(),
        });
    }
    c.errors.sort_by_key(|(pos, _)| *pos);
    parsed.errors = c.errors;
    parsed
}

/// Nodes the entry never leads to. A webhook without `choices` may pick any node, so a flow
/// that can reach one has no unreachable nodes.
fn unreachable(
    entry: &NodeId,
    nodes: &BTreeMap<NodeId, NodeKind>,
    pos: &BTreeMap<NodeId, Pos>,
    own: Option<&FlowId>,
) -> Vec<(Pos, String)> {
    let mut seen: BTreeMap<&NodeId, ()> = BTreeMap::new();
    let mut todo = vec![entry];
    while let Some(n) = todo.pop() {
        if seen.insert(n, ()).is_some() {
            continue;
        }
        let Some(kind) = nodes.get(n) else { continue };
        match kind {
            NodeKind::Webhook(w) if w.choices.is_none() => return Vec::new(),
            NodeKind::Goto { flow, node } if Some(flow) == own => {
                todo.push(node.as_ref().unwrap_or(entry));
            }
            _ => {}
        }
        todo.extend(kind.exits());
    }
    pos.iter()
        .filter(|(n, _)| !seen.contains_key(n))
        .map(|(n, p)| {
            (
                *p,
                format!("node `{n}` is never reached from the entry `{entry}`"),
            )
        })
        .collect()
}

fn parse_node<'y>(
    c: &mut Collector,
    name: &str,
    name_pos: Pos,
    v: &'y Yaml,
    gotos: &mut Vec<GotoRef>,
) -> Option<NodeKind> {
    let Value::Map(entries) = &v.value else {
        c.error(
            v.pos,
            format!("node `{name}` must be a mapping with one node kind, like `play: welcome.wav`"),
        );
        return None;
    };
    let mut kind: Option<(&'static str, Pos, &'y Yaml)> = None;
    let mut others: Vec<(&'y str, Pos, &'y Yaml)> = Vec::new();
    let mut bad = false;
    for (k, val) in entries {
        let Some(key) = k.text() else {
            c.error(
                k.pos,
                format!("a setting's name is text, not {}", k.describe()),
            );
            bad = true;
            continue;
        };
        match (KINDS.iter().find(|n| **n == key), &kind) {
            (Some(k2), None) => kind = Some((k2, k.pos, val)),
            (Some(k2), Some((k1, _, _))) => {
                let hint =
                    if matches!(*k1, "menu" | "gather" | "rate") && matches!(*k2, "play" | "say") {
                        format!(" (the prompt of a `{k1}` goes inside `{k1}:`)")
                    } else {
                        String::new()
                    };
                c.error(k.pos, format!("node `{name}` has two kinds, `{k1}` and `{k2}`; a node has exactly one{hint}"));
                bad = true;
            }
            (None, _) => others.push((key, k.pos, val)),
        }
    }
    if bad {
        return None;
    }
    let Some((kind, kind_pos, kind_value)) = kind else {
        let all = KINDS.join(", ");
        let known_setting = |k: &str| KINDS.iter().any(|kind| allowed(kind).contains(&k));
        match others.iter().find(|(k, _, _)| !known_setting(k)) {
            Some((k, pos, _)) => {
                c.error(*pos, format!("unknown node kind `{k}` (node kinds: {all})"))
            }
            None => c.error(
                name_pos,
                format!("node `{name}` has no node kind (one of: {all})"),
            ),
        }
        return None;
    };
    let mut f = Fields::new(name, kind, kind_pos);
    match (&kind_value.value, kind) {
        (_, "set") => {}
        (Value::Map(settings), _) => {
            for (k, val) in settings {
                match k.text() {
                    Some(key) => {
                        f.add(key, k.pos, val);
                    }
                    None => {
                        c.error(
                            k.pos,
                            format!("a setting's name is text, not {}", k.describe()),
                        );
                        bad = true;
                    }
                }
            }
        }
        (Value::Null, _) => {}
        (_, "hangup") => {
            if !matches!(kind_value.text(), Some("true")) {
                c.error(
                    kind_value.pos,
                    "`hangup` takes no value: write `hangup:` or `hangup: {}`",
                );
                bad = true;
            }
        }
        (_, _) => match short_form(kind) {
            Some(short) => {
                f.add(short, kind_value.pos, kind_value);
            }
            None => {
                c.error(
                    kind_value.pos,
                    format!(
                        "`{kind}` takes a mapping of settings, not {}",
                        kind_value.describe()
                    ),
                );
                return None;
            }
        },
    }
    for (key, pos, val) in others {
        if !f.add(key, pos, val) {
            c.error(pos, format!("`{key}` is given twice in node `{name}`"));
            bad = true;
        }
    }
    let before = c.errors.len();
    let node = parse_kind(c, &mut f, kind_value, gotos);
    for extra in f.unused() {
        let list = allowed(kind).join(", ");
        let msg = if list.is_empty() {
            format!(
                "unknown field `{}` in `{kind}` node `{name}` (it takes none)",
                extra.name
            )
        } else {
            format!(
                "unknown field `{}` in `{kind}` node `{name}` (allowed: {list})",
                extra.name
            )
        };
        c.error(extra.pos, msg);
    }
    if bad || c.errors.len() > before {
        return None;
    }
    node
}

//! The settings of each node kind, from a node's merged [`Fields`] to a [`NodeKind`].

use super::GotoRef;
use crate::ivr::fields::{Collector, Fields, NodeRef};
use crate::ivr::flow::{
    Dtmf, FlowId, Gather, MAX_PRIORITY, Menu, NodeId, NodeKind, PromptSpec, Rate, Webhook,
};
use crate::ivr::hours::{self, Schedule};
use crate::ivr::template::{Template, is_var_name};
use crate::ivr::yaml::{ScalarKind, Value, Yaml};
use std::collections::BTreeMap;
use std::time::Duration;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: u32 = 2;
const MAX_RETRIES: u32 = 20;

pub(super) fn parse_kind<'y>(
    c: &mut Collector,
    f: &mut Fields<'y>,
    kind_value: &'y Yaml,
    gotos: &mut Vec<GotoRef>,
) -> Option<NodeKind> {
    Some(match f.kind {
        "play" => {
            let files = f.take("files").and_then(|v| c.files(v, "play"));
            let next = c.node_ref(f, "next");
            NodeKind::Play {
                files: files?,
                next,
            }
        }
        "say" => {
            let voice = f.take("voice");
            let text = match f.take("text") {
                Some(t) => c.say(t, voice),
                None => {
                    c.missing(f, "text");
                    None
                }
            };
            let next = c.node_ref(f, "next");
            let Some(PromptSpec::Say { text, voice }) = text else {
                return None;
            };
            NodeKind::Say { text, voice, next }
        }
        "menu" => NodeKind::Menu(menu(c, f)?),
        "gather" => NodeKind::Gather(gather(c, f)?),
        "rate" => {
            let prompt = c.prompt(f, true);
            let rate = Rate {
                timeout: c.duration(f, "timeout", DEFAULT_TIMEOUT),
                retries: c.count(f, "retries", DEFAULT_RETRIES, (0, MAX_RETRIES)),
                next: c.node_ref(f, "next"),
                on_fail: c.node_ref(f, "on_fail"),
                barge_in: c.flag(f, "barge_in", true),
                prompt: prompt?,
            };
            NodeKind::Rate(rate)
        }
        "queue" => {
            let (queue, pos) = c.required_text(f, "name")?;
            if !plain_name(&queue) {
                c.error(
                    pos,
                    format!("queue name `{queue}` must be letters, digits, `_` and `-`"),
                );
                return None;
            }
            let skills = match f.take("skills") {
                Some(v) => skill_names(c, v)?,
                None => Vec::new(),
            };
            let priority = match f.take("priority") {
                Some(v) => Some(priority(c, v)?),
                None => None,
            };
            NodeKind::Queue {
                queue,
                skills,
                priority,
            }
        }
        "dial" => {
            let to = f.take("to");
            let target = match to {
                Some(v) => c.template(v, "dial"),
                None => {
                    c.missing(f, "to");
                    None
                }
            };
            if let (Some(t), Some(v)) = (&target, to)
                && let Some(literal) = t.as_literal()
                && !dial_target_ok(&literal)
            {
                c.error(
                    v.pos,
                    format!("`{literal}` is not an extension or number to dial (letters, digits, + * # . _ -)"),
                );
            }
            NodeKind::Dial {
                timeout: c.duration(f, "timeout", Duration::from_secs(30)),
                next: c.node_ref(f, "next"),
                on_fail: c.node_ref(f, "on_fail"),
                target: target?,
            }
        }
        "voicemail" => NodeKind::Voicemail {
            greeting: match f.take("greeting") {
                Some(v) => c.files(v, "greeting")?,
                None => Vec::new(),
            },
            beep: c.flag(f, "beep", true),
            max_length: c.duration(f, "max_length", Duration::from_secs(120)),
            next: c.node_ref(f, "next"),
        },
        "hours" => {
            let schedule = schedule(c, f);
            let when_open = c.required_ref(f, "when_open");
            let when_closed = c.required_ref(f, "when_closed");
            NodeKind::Hours {
                schedule: schedule?,
                when_open: when_open?,
                when_closed: when_closed?,
            }
        }
        "goto" => goto(c, f, gotos)?,
        "set" => {
            let mut vars = Vec::new();
            match &kind_value.value {
                Value::Map(entries) if !entries.is_empty() => {
                    for (k, v) in entries {
                        let name = k.text().unwrap_or_default();
                        if !is_var_name(name) {
                            c.error(
                                k.pos,
                                format!("`{name}` is not a variable name (letters, digits and `_`, not starting with a digit)"),
                            );
                            continue;
                        }
                        if let Some(t) = c.template(v, name) {
                            vars.push((name.to_owned(), t));
                        }
                    }
                }
                _ => c.error(
                    kind_value.pos,
                    format!(
                        "`set` takes a mapping of variables to values, not {}",
                        kind_value.describe()
                    ),
                ),
            }
            NodeKind::Set {
                vars,
                next: c.node_ref(f, "next"),
            }
        }
        "webhook" => NodeKind::Webhook(webhook(c, f)?),
        _ => NodeKind::Hangup,
    })
}

fn goto<'y>(c: &mut Collector, f: &mut Fields<'y>, gotos: &mut Vec<GotoRef>) -> Option<NodeKind> {
    let flow = f.take("flow");
    let node = f.take("node");
    let Some(flow_v) = flow else {
        c.missing(f, "flow");
        return None;
    };
    let flow_text = c.text(flow_v, "flow")?;
    let flow = match FlowId::new(&flow_text) {
        Ok(id) => id,
        Err(e) => {
            c.error(flow_v.pos, format!("`{flow_text}` is not a flow id: {e}"));
            return None;
        }
    };
    let node = match node {
        Some(v) => {
            let t = c.text(v, "node")?;
            match NodeId::new(&t) {
                Ok(id) => Some((id, v.pos)),
                Err(e) => {
                    c.error(v.pos, format!("`node`: `{t}` is not a node name: {e}"));
                    return None;
                }
            }
        }
        None => None,
    };
    gotos.push(GotoRef {
        flow: flow.clone(),
        flow_pos: flow_v.pos,
        node: node.clone(),
    });
    Some(NodeKind::Goto {
        flow,
        node: node.map(|(n, _)| n),
    })
}

/// `skills: [ukrainian, billing]` (or one name): plain names, each once, compared in lower case.
fn skill_names(c: &mut Collector<'_>, v: &Yaml) -> Option<Vec<String>> {
    let items: Vec<&Yaml> = match &v.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![v],
    };
    let mut names = Vec::new();
    for item in items {
        let name = c.text(item, "skills")?.to_lowercase();
        if !plain_name(&name) {
            c.error(
                item.pos,
                format!("skill `{name}` must be letters, digits, `_` and `-`"),
            );
            return None;
        }
        if names.contains(&name) {
            c.error(item.pos, format!("skill `{name}` is listed twice"));
            return None;
        }
        names.push(name);
    }
    Some(names)
}

/// `priority: 10` (-1000 to 1000) or a template such as `"${vip_priority}"`, read when the caller
/// joins.
fn priority(c: &mut Collector<'_>, v: &Yaml) -> Option<Template> {
    if let Value::Scalar {
        kind: ScalarKind::Int(n),
        ..
    } = &v.value
    {
        if (-i64::from(MAX_PRIORITY)..=i64::from(MAX_PRIORITY)).contains(n) {
            return Some(Template::literal(&n.to_string()));
        }
        c.error(
            v.pos,
            format!("`priority` must be from -{MAX_PRIORITY} to {MAX_PRIORITY}, not {n}"),
        );
        return None;
    }
    let template = c.template(v, "priority")?;
    if let Some(text) = template.as_literal() {
        let message = match text.trim().parse::<i32>() {
            Ok(n) if (-MAX_PRIORITY..=MAX_PRIORITY).contains(&n) => return Some(template),
            Ok(n) => format!("`priority` must be from -{MAX_PRIORITY} to {MAX_PRIORITY}, not {n}"),
            Err(_) => format!("`priority` must be a whole number or `${{variable}}`, not `{text}`"),
        };
        c.error(v.pos, message);
        return None;
    }
    Some(template)
}

fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// An extension or number: what the shell may put in a Request-URI user part.
pub fn dial_target_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '*' | '#' | '.' | '_' | '-'))
}

fn menu<'y>(c: &mut Collector, f: &mut Fields<'y>) -> Option<Menu> {
    let prompt = c.prompt(f, true);
    let mut options = BTreeMap::new();
    match f.take("options") {
        Some(Yaml {
            value: Value::Map(entries),
            pos,
        }) => {
            for (k, v) in entries {
                let key = k.text().unwrap_or_default();
                let mut chars = key.chars();
                let digit = match (chars.next(), chars.next()) {
                    (Some(ch), None) => Dtmf::new(ch),
                    _ => None,
                };
                let Some(digit) = digit else {
                    c.error(
                        k.pos,
                        format!("menu option {} is not a DTMF key: use one of 0-9, *, #, A-D (quote * and #)", k.describe()),
                    );
                    continue;
                };
                let target = c.text(v, "option").and_then(|t| match NodeId::new(&t) {
                    Ok(id) => Some(id),
                    Err(e) => {
                        c.error(
                            v.pos,
                            format!("option `{digit}`: `{t}` is not a node name: {e}"),
                        );
                        None
                    }
                });
                if let Some(target) = target {
                    c.refs.push(NodeRef {
                        target: target.clone(),
                        pos: v.pos,
                        field: format!("option `{digit}`"),
                        from: f.node.clone(),
                    });
                    if options.insert(digit, target).is_some() {
                        c.error(k.pos, format!("menu option `{digit}` is given twice"));
                    }
                }
            }
            if entries.is_empty() {
                c.error(*pos, "`options` is empty; a menu needs at least one");
            }
        }
        Some(v) => c.error(
            v.pos,
            format!(
                "`options` must be a mapping of keys to nodes, like {{ \"1\": sales }}, not {}",
                v.describe()
            ),
        ),
        None => c.missing(f, "options"),
    }
    Some(Menu {
        timeout: c.duration(f, "timeout", DEFAULT_TIMEOUT),
        retries: c.count(f, "retries", DEFAULT_RETRIES, (0, MAX_RETRIES)),
        on_invalid: c.node_ref(f, "on_invalid"),
        on_fail: c.node_ref(f, "on_fail"),
        barge_in: c.flag(f, "barge_in", true),
        options,
        prompt: prompt?,
    })
}

fn gather<'y>(c: &mut Collector, f: &mut Fields<'y>) -> Option<Gather> {
    let prompt = c.prompt(f, false);
    let var = c.required_text(f, "var").and_then(|(v, pos)| {
        if is_var_name(&v) {
            Some(v)
        } else {
            c.error(
                pos,
                format!("`var`: `{v}` is not a variable name (letters, digits and `_`, not starting with a digit)"),
            );
            None
        }
    });
    let min_digits = c.count(f, "min_digits", 1, (0, 32));
    let max_digits = if f.has("max_digits") {
        c.count(f, "max_digits", 32, (1, 32))
    } else {
        c.missing(f, "max_digits");
        32
    };
    if min_digits > max_digits {
        let msg = format!("`min_digits` ({min_digits}) is more than `max_digits` ({max_digits})");
        c.error(f.pos, msg);
    }
    let terminator = match f.take("terminator") {
        None => Some(Dtmf::new('#')),
        Some(v) => match v.text() {
            None | Some("none") => Some(None),
            Some(t) if t.chars().count() == 1 => t.chars().next().and_then(Dtmf::new).map(Some),
            Some(_) => None,
        }
        .or_else(|| {
            c.error(
                v.pos,
                format!(
                    "`terminator` must be one DTMF key (quote * and #) or `none`, not {}",
                    v.describe()
                ),
            );
            None
        }),
    };
    let gather = Gather {
        timeout: c.duration(f, "timeout", DEFAULT_TIMEOUT),
        inter_digit_timeout: c.duration(f, "inter_digit_timeout", Duration::from_secs(3)),
        retries: c.count(f, "retries", DEFAULT_RETRIES, (0, MAX_RETRIES)),
        next: c.required_ref(f, "next")?,
        on_fail: c.node_ref(f, "on_fail"),
        barge_in: c.flag(f, "barge_in", true),
        prompt,
        var: var?,
        min_digits,
        max_digits,
        terminator: terminator?,
    };
    Some(gather)
}

fn schedule<'y>(c: &mut Collector, f: &mut Fields<'y>) -> Option<Schedule> {
    let tz = c.required_text(f, "timezone").and_then(|(name, pos)| {
        match jiff::tz::TimeZone::get(&name) {
            Ok(tz) => Some(tz),
            Err(_) => {
                c.error(
                    pos,
                    format!("unknown time zone `{name}` (use an IANA name like Europe/Kyiv)"),
                );
                None
            }
        }
    });
    let mut s = Schedule::new(jiff::tz::TimeZone::UTC);
    let mut given: [Option<String>; 7] = Default::default();
    match f.take("open") {
        Some(Yaml {
            value: Value::Map(days),
            ..
        }) => {
            for (k, v) in days {
                let spec = k.text().unwrap_or_default();
                let day_list = match hours::parse_days(spec) {
                    Ok(d) => d,
                    Err(e) => {
                        c.error(k.pos, e.to_string());
                        continue;
                    }
                };
                let ranges = match &v.value {
                    Value::Seq(items) => items
                        .iter()
                        .map(|i| {
                            hours::parse_ranges(i.text().unwrap_or_default())
                                .map_err(|e| (i.pos, e))
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map(|r| r.concat()),
                    _ => hours::parse_ranges(v.text().unwrap_or_default()).map_err(|e| (v.pos, e)),
                };
                let ranges = match ranges {
                    Ok(r) => r,
                    Err((pos, e)) => {
                        c.error(pos, e.to_string());
                        continue;
                    }
                };
                for day in day_list {
                    if let Some(Some(earlier)) = given.get(day) {
                        let msg =
                            format!("`{}` is already given by `{earlier}`", hours::day_name(day));
                        c.error(k.pos, msg);
                        break;
                    }
                    if let (Some(slot), Some(g)) = (s.week.get_mut(day), given.get_mut(day)) {
                        *slot = ranges.clone();
                        *g = Some(spec.to_owned());
                    }
                }
            }
        }
        Some(v) => c.error(
            v.pos,
            format!(
                "`open` must map days to times, like {{ mon-fri: \"09:00-18:00\" }}, not {}",
                v.describe()
            ),
        ),
        None => c.missing(f, "open"),
    }
    match f.take("holidays") {
        Some(Yaml {
            value: Value::Seq(items),
            ..
        }) => {
            for item in items {
                match hours::parse_holiday(item.text().unwrap_or_default()) {
                    Ok(h) => s.holidays.push(h),
                    Err(e) => c.error(item.pos, e.to_string()),
                }
            }
        }
        Some(Yaml {
            value: Value::Null, ..
        })
        | None => {}
        Some(v) => c.error(
            v.pos,
            format!(
                "`holidays` must be a list of dates, like [\"2026-12-25\"], not {}",
                v.describe()
            ),
        ),
    }
    s.tz = tz?;
    Some(s)
}

fn webhook<'y>(c: &mut Collector, f: &mut Fields<'y>) -> Option<Webhook> {
    let url_v = f.take("url");
    let url = match url_v {
        Some(v) => c.template(v, "url"),
        None => {
            c.missing(f, "url");
            None
        }
    };
    if let (Some(t), Some(v)) = (&url, url_v) {
        let start = t.render(&BTreeMap::new());
        if !(start.starts_with("http://") || start.starts_with("https://")) {
            c.error(v.pos, "webhook `url` must start with http:// or https://");
        }
    }
    let mut body = Vec::new();
    match f.take("body") {
        Some(Yaml {
            value: Value::Map(entries),
            ..
        }) => {
            for (k, v) in entries {
                let name = k.text().unwrap_or_default();
                if matches!(name, "flow" | "node" | "variables") {
                    c.error(
                        k.pos,
                        format!("body field `{name}` is reserved (every request has flow, node and variables)"),
                    );
                } else if matches!(v.value, Value::Seq(_) | Value::Map(_)) {
                    c.error(
                        v.pos,
                        format!(
                            "body field `{name}` must be text (use ${{var}} to insert a variable)"
                        ),
                    );
                } else if let Some(t) = c.template(v, name) {
                    body.push((name.to_owned(), t));
                }
            }
        }
        Some(v) => c.error(
            v.pos,
            format!(
                "`body` must be a mapping of field names to text, not {}",
                v.describe()
            ),
        ),
        None => {}
    }
    let choices = match f.take("choices") {
        Some(Yaml {
            value: Value::Seq(items),
            ..
        }) => {
            let mut out = Vec::new();
            for item in items {
                let text = item.text().unwrap_or_default();
                match NodeId::new(text) {
                    Ok(id) => {
                        c.refs.push(NodeRef {
                            target: id.clone(),
                            pos: item.pos,
                            field: "`choices`".to_owned(),
                            from: f.node.clone(),
                        });
                        out.push(id);
                    }
                    Err(e) => c.error(
                        item.pos,
                        format!("`choices`: {} is not a node name: {e}", item.describe()),
                    ),
                }
            }
            Some(out)
        }
        Some(v) => {
            c.error(
                v.pos,
                format!(
                    "`choices` must be a list of node names, not {}",
                    v.describe()
                ),
            );
            None
        }
        None => None,
    };
    Some(Webhook {
        timeout: c.duration(f, "timeout", DEFAULT_TIMEOUT),
        next: c.node_ref(f, "next"),
        on_error: c.node_ref(f, "on_error"),
        url: url?,
        body,
        choices,
    })
}

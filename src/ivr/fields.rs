//! Reading a node's settings out of the YAML tree: each setting is taken once by name, typed
//! (durations, counts, flags, sound files, prompts, templates, node references), and every
//! problem is recorded at the line and column of the offending key or value.

use super::flow::{NodeId, PromptSpec};
use super::template::Template;
use super::yaml::{Pos, ScalarKind, Value, Yaml};
use std::time::Duration;

/// Sound formats the prompt decoder reads.
pub const SOUND_FORMATS: [&str; 4] = ["wav", "mp3", "ogg", "flac"];
/// Longest duration a flow may set (timeouts, voicemail length).
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// What validation needs from outside: which sound files exist, and whether `say` can work.
pub struct Env<'a> {
    pub sound_exists: &'a dyn Fn(&str) -> bool,
    pub tts_available: bool,
}

/// A reference to a node of the same flow, checked once all nodes are known.
pub struct NodeRef {
    pub target: NodeId,
    pub pos: Pos,
    pub field: String,
    pub from: String,
}

/// Problems found in one file, and the references still to check.
pub struct Collector<'a> {
    pub env: &'a Env<'a>,
    pub errors: Vec<(Pos, String)>,
    pub refs: Vec<NodeRef>,
}

impl Collector<'_> {
    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push((pos, message.into()));
    }
}

pub struct Field<'y> {
    pub name: String,
    pub pos: Pos,
    pub value: &'y Yaml,
    used: bool,
}

/// The settings of one node: its kind's mapping and the keys beside the kind key, merged.
pub struct Fields<'y> {
    /// The node's name.
    pub node: String,
    pub kind: &'static str,
    /// Where the kind key is (for "needs `x`" errors).
    pub pos: Pos,
    items: Vec<Field<'y>>,
}

impl<'y> Fields<'y> {
    pub fn new(node: &str, kind: &'static str, pos: Pos) -> Fields<'y> {
        Fields {
            node: node.to_owned(),
            kind,
            pos,
            items: Vec::new(),
        }
    }

    /// Adds a setting; `false` when it is already there.
    pub fn add(&mut self, name: &str, pos: Pos, value: &'y Yaml) -> bool {
        if self.items.iter().any(|f| f.name == name) {
            return false;
        }
        self.items.push(Field {
            name: name.to_owned(),
            pos,
            value,
            used: false,
        });
        true
    }

    pub fn take(&mut self, name: &str) -> Option<&'y Yaml> {
        let field = self.items.iter_mut().find(|f| f.name == name)?;
        field.used = true;
        Some(field.value)
    }

    pub fn has(&self, name: &str) -> bool {
        self.items.iter().any(|f| f.name == name)
    }

    /// Settings nobody took.
    pub fn unused(&self) -> impl Iterator<Item = &Field<'y>> {
        self.items.iter().filter(|f| !f.used)
    }

    fn describe(&self) -> String {
        format!("`{}` node `{}`", self.kind, self.node)
    }
}

impl<'y> Collector<'_> {
    pub fn missing(&mut self, f: &Fields<'y>, name: &str) {
        let msg = format!("{} needs `{name}`", f.describe());
        self.error(f.pos, msg);
    }

    /// A scalar's text.
    pub fn text(&mut self, v: &Yaml, name: &str) -> Option<String> {
        match v.text() {
            Some(t) => Some(t.to_owned()),
            None => {
                self.error(
                    v.pos,
                    format!("`{name}` must be text, not {}", v.describe()),
                );
                None
            }
        }
    }

    pub fn required_text(&mut self, f: &mut Fields<'y>, name: &str) -> Option<(String, Pos)> {
        match f.take(name) {
            Some(v) => self.text(v, name).map(|t| (t, v.pos)),
            None => {
                self.missing(f, name);
                None
            }
        }
    }

    pub fn template(&mut self, v: &Yaml, name: &str) -> Option<Template> {
        let text = match &v.value {
            Value::Null => String::new(),
            _ => self.text(v, name)?,
        };
        match Template::parse(&text) {
            Ok(t) => Some(t),
            Err(e) => {
                self.error(v.pos, format!("`{name}`: {e}"));
                None
            }
        }
    }

    /// A reference to another node of this flow, checked later.
    pub fn node_ref(&mut self, f: &mut Fields<'y>, name: &str) -> Option<NodeId> {
        let v = f.take(name)?;
        let text = self.text(v, name)?;
        match NodeId::new(&text) {
            Ok(id) => {
                self.refs.push(NodeRef {
                    target: id.clone(),
                    pos: v.pos,
                    field: format!("`{name}`"),
                    from: f.node.clone(),
                });
                Some(id)
            }
            Err(e) => {
                self.error(v.pos, format!("`{name}`: `{text}` is not a node name: {e}"));
                None
            }
        }
    }

    pub fn required_ref(&mut self, f: &mut Fields<'y>, name: &str) -> Option<NodeId> {
        if !f.has(name) {
            self.missing(f, name);
            return None;
        }
        self.node_ref(f, name)
    }

    pub fn duration(&mut self, f: &mut Fields<'y>, name: &str, default: Duration) -> Duration {
        let Some(v) = f.take(name) else {
            return default;
        };
        let text = v.text().unwrap_or_default();
        match parse_duration(text) {
            Some(d) if d.is_zero() => {
                self.error(v.pos, format!("`{name}` must be longer than 0"));
                default
            }
            Some(d) if d <= MAX_DURATION => d,
            Some(_) => {
                self.error(v.pos, format!("`{name}` is at most 24h"));
                default
            }
            None => {
                let shown = v.text().map_or_else(|| v.describe(), |t| format!("`{t}`"));
                self.error(
                    v.pos,
                    format!("`{name}`: {shown} is not a duration: write a number with a unit, like 5s, 500ms or 2m"),
                );
                default
            }
        }
    }

    pub fn count(
        &mut self,
        f: &mut Fields<'y>,
        name: &str,
        default: u32,
        range: (u32, u32),
    ) -> u32 {
        let Some(v) = f.take(name) else {
            return default;
        };
        match &v.value {
            Value::Scalar {
                kind: ScalarKind::Int(n),
                ..
            } if *n >= i64::from(range.0) && *n <= i64::from(range.1) => {
                u32::try_from(*n).unwrap_or(default)
            }
            _ => {
                let shown = v.text().map_or_else(|| v.describe(), |t| format!("`{t}`"));
                self.error(
                    v.pos,
                    format!(
                        "`{name}` must be a whole number from {} to {}, not {shown}",
                        range.0, range.1
                    ),
                );
                default
            }
        }
    }

    pub fn flag(&mut self, f: &mut Fields<'y>, name: &str, default: bool) -> bool {
        match f.take(name) {
            None => default,
            Some(Yaml {
                value:
                    Value::Scalar {
                        kind: ScalarKind::Bool(b),
                        ..
                    },
                ..
            }) => *b,
            Some(v) => {
                self.error(
                    v.pos,
                    format!("`{name}` must be true or false, not {}", v.describe()),
                );
                default
            }
        }
    }

    /// One sound file or a list of them, each checked to exist.
    pub fn files(&mut self, v: &Yaml, name: &str) -> Option<Vec<String>> {
        let items: Vec<&Yaml> = match &v.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![v],
        };
        if items.is_empty() {
            self.error(v.pos, format!("`{name}` needs at least one sound file"));
            return None;
        }
        let before = self.errors.len();
        let mut out = Vec::new();
        for item in items {
            let Some(file) = item.text() else {
                self.error(
                    item.pos,
                    format!("`{name}` takes sound file names, not {}", item.describe()),
                );
                continue;
            };
            if let Some(problem) = sound_path_problem(file) {
                self.error(item.pos, format!("sound file `{file}` {problem}"));
            } else if !(self.env.sound_exists)(file) {
                self.error(
                    item.pos,
                    format!("sound file `{file}` not found in the sounds directory"),
                );
            }
            out.push(file.to_owned());
        }
        (self.errors.len() == before).then_some(out)
    }

    /// A voice name for the TTS engine (passed to it as an argument, so kept to a safe alphabet).
    pub fn voice(&mut self, v: &Yaml) -> Option<String> {
        let text = self.text(v, "voice")?;
        let ok = !text.is_empty()
            && text.len() <= 32
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+'));
        if !ok {
            self.error(
                v.pos,
                format!("voice `{text}` must be letters, digits, `-`, `_` or `+`"),
            );
            return None;
        }
        Some(text)
    }

    pub fn tts_needed(&mut self, pos: Pos) {
        if !self.env.tts_available {
            self.error(
                pos,
                "`say` needs a text-to-speech engine and none is available (install espeak-ng, or use `play` with a recorded prompt)",
            );
        }
    }

    /// Text to speak: `"text"` or `{ text, voice }`, with `voice` also allowed beside it.
    pub fn say(&mut self, v: &Yaml, voice: Option<&Yaml>) -> Option<PromptSpec> {
        self.tts_needed(v.pos);
        let (text, inner_voice) = match &v.value {
            Value::Map(entries) => {
                let mut inner = Fields::new("", "say", v.pos);
                for (k, val) in entries {
                    if let Some(name) = k.text() {
                        inner.add(name, k.pos, val);
                    }
                }
                let text = inner.take("text");
                let inner_voice = inner.take("voice");
                for extra in inner.unused() {
                    self.error(
                        extra.pos,
                        format!(
                            "unknown field `{}` in `say` (allowed: text, voice)",
                            extra.name
                        ),
                    );
                }
                let Some(text) = text else {
                    self.error(v.pos, "`say` needs `text`");
                    return None;
                };
                (text, inner_voice)
            }
            _ => (v, None),
        };
        let voice = match (inner_voice, voice) {
            (Some(a), Some(_)) => {
                self.error(a.pos, "`voice` is given twice");
                None
            }
            (Some(x), None) | (None, Some(x)) => Some(self.voice(x)?),
            (None, None) => None,
        };
        let text = self.template(text, "say")?;
        Some(PromptSpec::Say { text, voice })
    }

    /// The prompt of a menu, gather or rate node: `play` (files) or `say` (text), not both.
    pub fn prompt(&mut self, f: &mut Fields<'y>, required: bool) -> Option<PromptSpec> {
        let play = f.take("play");
        let say = f.take("say");
        let voice = f.take("voice");
        match (play, say) {
            (Some(_), Some(s)) => {
                self.error(
                    s.pos,
                    format!(
                        "{} has both `play` and `say`; a prompt is one of them",
                        f.describe()
                    ),
                );
                None
            }
            (Some(p), None) => {
                if let Some(v) = voice {
                    self.error(v.pos, "`voice` goes with `say`, not `play`");
                }
                self.files(p, "play").map(PromptSpec::Files)
            }
            (None, Some(s)) => self.say(s, voice),
            (None, None) => {
                if required {
                    let msg = format!("{} needs a prompt: `play` or `say`", f.describe());
                    self.error(f.pos, msg);
                }
                None
            }
        }
    }
}

/// Why a sound path is unusable, if it is.
fn sound_path_problem(file: &str) -> Option<String> {
    let inside = !file.is_empty()
        && !file.starts_with('/')
        && !file.contains('\\')
        && !file.contains(':')
        && file.split('/').all(|part| !part.is_empty() && part != "..");
    if !inside {
        return Some("must be a relative path inside the sounds directory".to_owned());
    }
    let ext = file.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext {
        Some(e) if SOUND_FORMATS.contains(&e.as_str()) => None,
        _ => Some("has an unsupported format (use .wav, .mp3, .ogg or .flac)".to_owned()),
    }
}

/// `500ms`, `5s`, `2m`, `1h`, and sums like `1m30s`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 || digits > 9 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// The nearest name within two edits, for "did you mean" hints.
pub fn suggest<'n>(wrong: &str, names: impl Iterator<Item = &'n str>) -> Option<&'n str> {
    names
        .map(|n| (edit_distance(wrong, n), n))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("5s", 5_000),
            ("500ms", 500),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("1m30s", 90_000),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Some(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in ["", "5", "s", "5 s", "1.5s", "5sec", "-1s", "99999999999s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn sound_paths() {
        assert_eq!(sound_path_problem("prompts/welcome.WAV"), None);
        for bad in [
            "/etc/x.wav",
            "../x.wav",
            "a//b.wav",
            "c:x.wav",
            "x.aiff",
            "noext",
        ] {
            assert!(sound_path_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn suggestions() {
        let names = ["welcome", "hours", "menu"];
        assert_eq!(suggest("welcom", names.into_iter()), Some("welcome"));
        assert_eq!(suggest("xyzzy", names.into_iter()), None);
    }
}

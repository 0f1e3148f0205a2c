//! The YAML boundary: text to a tree of values that each know their line and column, through
//! serde-saphyr's `Spanned` (YAML 1.2 with the usual 1.1 booleans). Scalars keep the text the admin
//! wrote (`01`, `no`, `1.50`), so node names and digits are never reinterpreted as numbers.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, MessageFormatter, Spanned, UserMessageFormatter};
use std::fmt;

/// A place in a flow file, 1-based; column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, column: 1 };

    fn from_location(location: &Location) -> Pos {
        if location.line() == 0 {
            return Pos::START;
        }
        Pos {
            line: u32::try_from(location.line()).unwrap_or(u32::MAX),
            column: u32::try_from(location.column()).unwrap_or(u32::MAX).max(1),
        }
    }
}

/// What a scalar looked like to YAML, besides its text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScalarKind {
    Str,
    Bool(bool),
    Int(i64),
    Float,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing after the colon.
    Null,
    Scalar {
        text: String,
        kind: ScalarKind,
    },
    Seq(Vec<Yaml>),
    Map(Vec<(Yaml, Yaml)>),
}

/// One YAML node and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Yaml {
    pub pos: Pos,
    pub value: Value,
}

impl Yaml {
    /// The text of a scalar as written (quotes removed); `None` for null and collections.
    pub fn text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// A short description for messages: "a list", "a mapping", "nothing", "`abc`".
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "nothing".to_owned(),
            Value::Scalar { text, .. } => format!("`{text}`"),
            Value::Seq(_) => "a list".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
        }
    }
}

/// A YAML syntax error (or a document too large or deep).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses one YAML document.
pub fn parse(text: &str) -> Result<Yaml, SyntaxError> {
    let options = serde_saphyr::options! { with_snippet: false };
    match serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, options) {
        Ok(raw) => Ok(convert(raw, text)),
        Err(e) => {
            let inner = e.without_snippet();
            let message = UserMessageFormatter.format_message(inner);
            let message: String = message
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            Err(SyntaxError {
                pos: e
                    .location()
                    .map(|l| Pos::from_location(&l))
                    .unwrap_or(Pos::START),
                message: format!("YAML syntax: {message}"),
            })
        }
    }
}

/// What serde-saphyr hands us: typed scalars, collections of spanned children.
enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float,
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

fn convert(raw: Spanned<Raw>, source: &str) -> Yaml {
    let pos = Pos::from_location(&raw.referenced);
    // Typed scalars keep their source text (`01` stays `01`, `no` stays `no`).
    let written = || {
        let span = raw.defined.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        source
            .get(start..start.checked_add(len)?)
            .map(str::to_owned)
    };
    let value = match raw.value {
        Raw::Null => Value::Null,
        Raw::Str(text) => Value::Scalar {
            text,
            kind: ScalarKind::Str,
        },
        Raw::Bool(b) => Value::Scalar {
            text: written().unwrap_or_else(|| b.to_string()),
            kind: ScalarKind::Bool(b),
        },
        Raw::Int(i) => Value::Scalar {
            text: written().unwrap_or_else(|| i.to_string()),
            kind: ScalarKind::Int(i),
        },
        Raw::Float => Value::Scalar {
            text: written().unwrap_or_default(),
            kind: ScalarKind::Float,
        },
        Raw::Seq(items) => Value::Seq(items.into_iter().map(|i| convert(i, source)).collect()),
        Raw::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (convert(k, source), convert(v, source)))
                .collect(),
        ),
    };
    Yaml { pos, value }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(i64::try_from(v).map_or(Raw::Float, Raw::Int))
    }
    fn visit_i128<E>(self, _: i128) -> Result<Raw, E> {
        Ok(Raw::Float)
    }
    fn visit_u128<E>(self, _: u128) -> Result<Raw, E> {
        Ok(Raw::Float)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Raw, E> {
        Ok(Raw::Float)
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Raw, E> {
        Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Raw>>()? {
            let value = map.next_value::<Spanned<Raw>>()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_keep_their_text_and_positions() {
        let doc = parse("a: { 01: no, \"*\": 1.50 }\nb: ~\n").unwrap();
        let Value::Map(top) = &doc.value else {
            panic!("not a map")
        };
        let Value::Map(inner) = &top[0].1.value else {
            panic!("not a map")
        };
        assert_eq!(inner[0].0.text(), Some("01"));
        assert_eq!(inner[0].1.text(), Some("no"));
        assert_eq!(
            inner[0].1.pos,
            Pos {
                line: 1,
                column: 10
            }
        );
        assert_eq!(inner[1].0.text(), Some("*"));
        assert_eq!(inner[1].1.text(), Some("1.50"));
        assert_eq!(top[1].1.value, Value::Null);
        assert_eq!(top[1].1.pos, Pos { line: 2, column: 4 });
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert_eq!(e.pos, Pos { line: 3, column: 2 });
        assert!(e.message.starts_with("YAML syntax: "), "{}", e.message);
    }

    #[test]
    fn hostile_documents_are_errors_not_crashes() {
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(parse(&deep).is_err());
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse(&bomb).is_err());
    }
}

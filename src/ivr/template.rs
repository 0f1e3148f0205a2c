//! `${var}` interpolation for flow text (`say`, `set`, `dial`, `webhook` url and body): a
//! template is parsed once at load time and rendered against the call's variables.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(String),
}

/// Text with `${name}` holes. A `$` not followed by `{` is itself; an unset variable is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("`${{` without a closing `}}`")]
    Unclosed,
    #[error(
        "`${{{0}}}` is not a variable name (letters, digits and `_`, not starting with a digit)"
    )]
    BadName(String),
}

/// Variable names: `[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters.
pub fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or(TemplateError::Unclosed)?;
            let name = &after[..end];
            if !is_var_name(name) {
                return Err(TemplateError::BadName(name.to_owned()));
            }
            parts.push(Part::Var(name.to_owned()));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// A template without holes.
    pub fn literal(text: &str) -> Template {
        Template {
            parts: vec![Part::Text(text.to_owned())],
        }
    }

    /// The text when there are no variables in it.
    pub fn as_literal(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(_) => return None,
            }
        }
        Some(out)
    }

    pub fn render(&self, vars: &BTreeMap<String, String>) -> String {
        self.render_with(vars, |v, out| out.push_str(v))
    }

    /// Renders with each variable's value passed through `escape` (e.g. URL encoding).
    pub fn render_with(
        &self,
        vars: &BTreeMap<String, String>,
        escape: impl Fn(&str, &mut String),
    ) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(name) => {
                    if let Some(value) = vars.get(name) {
                        escape(value, &mut out);
                    }
                }
            }
        }
        out
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(value: &str, out: &mut String) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_variables_and_keeps_lone_dollars() {
        let vars: BTreeMap<String, String> = [("name", "Olena"), ("n", "3")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let t = Template::parse("Hi ${name}, $5 for ${n} ${missing}!").unwrap();
        assert_eq!(t.render(&vars), "Hi Olena, $5 for 3 !");
        assert_eq!(
            Template::parse("plain").unwrap().as_literal().unwrap(),
            "plain"
        );
        assert_eq!(t.as_literal(), None);
    }

    #[test]
    fn rejects_bad_holes() {
        assert_eq!(Template::parse("a ${b"), Err(TemplateError::Unclosed));
        assert_eq!(
            Template::parse("${1x}"),
            Err(TemplateError::BadName("1x".into()))
        );
        assert_eq!(
            Template::parse("${}"),
            Err(TemplateError::BadName("".into()))
        );
    }

    #[test]
    fn url_values_are_encoded() {
        let vars: BTreeMap<String, String> = [("q".to_owned(), "a b&c/é".to_owned())].into();
        let t = Template::parse("http://x/?q=${q}").unwrap();
        assert_eq!(
            t.render_with(&vars, percent_encode),
            "http://x/?q=a%20b%26c%2F%C3%A9"
        );
    }
}

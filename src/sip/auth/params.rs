//! The `Digest` auth-param list grammar shared by challenges and credentials (RFC 3261 §25.1, RFC 7616 §3.3–3.4).
//!
//! `Digest LWS name EQUAL value *(COMMA name EQUAL value)` where `EQUAL` and `COMMA` allow whitespace on
//! both sides, names are case-insensitive tokens, and values are tokens or quoted-strings with backslash
//! escapes. The header is expected already unfolded, so CR and LF are rejected everywhere except as
//! surrounding whitespace.

use super::{AuthError, clip};

/// Parsed auth-params: lowercased names with unescaped values, in header order, no duplicates.
#[derive(Debug, Default)]
pub(crate) struct Params {
    items: Vec<(String, String)>,
}

impl Params {
    /// Value of parameter `name` (lowercase).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Value of a required parameter.
    pub(crate) fn require(&self, name: &'static str) -> Result<&str, AuthError> {
        self.get(name).ok_or(AuthError::MissingParam(name))
    }
}

/// RFC 3261 `token` character.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Byte cursor over the header value; every access is bounds-checked.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    /// Consumes a (possibly empty) run of token characters.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_token) {
            self.pos += 1;
        }
        // Token characters are ASCII, so both ends are char boundaries.
        self.s.get(start..self.pos).unwrap_or_default()
    }

    /// Consumes a quoted-string starting at the opening quote and returns its unescaped content.
    fn quoted(&mut self) -> Result<String, AuthError> {
        const UNTERMINATED: AuthError = AuthError::Malformed {
            reason: "unterminated quoted string",
        };
        self.pos += 1; // opening quote
        let mut buf = Vec::new();
        loop {
            let b = self.peek().ok_or(UNTERMINATED)?;
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let escaped = self.peek().ok_or(UNTERMINATED)?;
                    if escaped == b'\r' || escaped == b'\n' {
                        return Err(AuthError::Malformed {
                            reason: "line break in quoted string",
                        });
                    }
                    buf.push(escaped);
                    self.pos += 1;
                }
                b if b != b'\t' && b.is_ascii_control() => {
                    return Err(AuthError::Malformed {
                        reason: "control character in quoted string",
                    });
                }
                b => buf.push(b),
            }
        }
        String::from_utf8(buf).map_err(|_| AuthError::Malformed {
            reason: "invalid UTF-8 in quoted string",
        })
    }
}

/// Parses `Digest <auth-params>`. The scheme is matched case-insensitively; others give
/// [`AuthError::UnsupportedScheme`]. An empty parameter list is returned as empty [`Params`]
/// (the caller reports the first missing required parameter).
pub(crate) fn parse_digest(value: &str) -> Result<Params, AuthError> {
    let mut c = Cursor { s: value, pos: 0 };
    c.skip_ws();
    if c.at_end() {
        return Err(AuthError::Empty);
    }
    let scheme = c.token();
    if scheme.is_empty() {
        return Err(AuthError::Malformed {
            reason: "missing authentication scheme",
        });
    }
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthError::UnsupportedScheme(clip(scheme)));
    }
    let mut params = Params::default();
    if c.at_end() {
        return Ok(params);
    }
    if !c.peek().is_some_and(is_ws) {
        return Err(AuthError::Malformed {
            reason: "scheme must be followed by whitespace",
        });
    }
    c.skip_ws();
    if c.at_end() {
        return Ok(params);
    }
    loop {
        let name = c.token().to_ascii_lowercase();
        if name.is_empty() {
            return Err(AuthError::Malformed {
                reason: "expected parameter name",
            });
        }
        c.skip_ws();
        if c.peek() != Some(b'=') {
            return Err(AuthError::Malformed {
                reason: "expected '=' after parameter name",
            });
        }
        c.pos += 1;
        c.skip_ws();
        let val = if c.peek() == Some(b'"') {
            c.quoted()?
        } else {
            let t = c.token();
            if t.is_empty() {
                return Err(AuthError::Malformed {
                    reason: "empty or invalid parameter value",
                });
            }
            t.to_owned()
        };
        if params.get(&name).is_some() {
            return Err(AuthError::DuplicateParam(clip(&name)));
        }
        params.items.push((name, val));
        c.skip_ws();
        if c.at_end() {
            return Ok(params);
        }
        if c.peek() != Some(b',') {
            return Err(AuthError::Malformed {
                reason: "expected ',' between parameters",
            });
        }
        c.pos += 1;
        c.skip_ws();
        if c.at_end() {
            return Err(AuthError::Malformed {
                reason: "trailing ','",
            });
        }
    }
}

/// Writes `s` as a quoted-string: `"` and `\` escaped, ASCII control characters other than tab dropped
/// (they cannot appear in a header and would allow header injection).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            '\t' => out.push(ch),
            c if c.is_ascii_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &str) -> Params {
        parse_digest(v).unwrap_or_else(|e| panic!("{v:?}: {e}"))
    }

    #[test]
    fn scheme_is_case_insensitive() {
        for v in [
            "Digest a=b",
            "digest a=b",
            "DIGEST a=b",
            "  \tDiGeSt\t a=b  ",
        ] {
            assert_eq!(p(v).get("a"), Some("b"), "{v}");
        }
    }

    #[test]
    fn other_schemes_rejected() {
        assert_eq!(
            parse_digest("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap_err(),
            AuthError::UnsupportedScheme("Basic".into())
        );
        assert_eq!(
            parse_digest("Bearer x").unwrap_err(),
            AuthError::UnsupportedScheme("Bearer".into())
        );
        assert_eq!(
            parse_digest("DigestX a=b").unwrap_err(),
            AuthError::UnsupportedScheme("DigestX".into())
        );
    }

    #[test]
    fn empty_and_bare_scheme() {
        assert_eq!(parse_digest("").unwrap_err(), AuthError::Empty);
        assert_eq!(parse_digest(" \t ").unwrap_err(), AuthError::Empty);
        assert!(p("Digest").items.is_empty());
        assert!(p("Digest   ").items.is_empty());
        assert!(matches!(
            parse_digest("=x").unwrap_err(),
            AuthError::Malformed { .. }
        ));
        assert!(matches!(
            parse_digest("Digest,a=b").unwrap_err(),
            AuthError::Malformed { .. }
        ));
    }

    #[test]
    fn lws_around_equals_and_commas() {
        for v in [
            r#"Digest a="1",b=2"#,
            r#"Digest a = "1" , b = 2"#,
            "Digest\ta\t=\t\"1\"\t,\tb\t=\t2\t",
            "Digest a=\"1\"   ,\r\n b=2",
            "Digest  A=\"1\",B=2",
        ] {
            let params = p(v);
            assert_eq!(params.get("a"), Some("1"), "{v}");
            assert_eq!(params.get("b"), Some("2"), "{v}");
        }
    }

    #[test]
    fn quoted_string_escapes_commas_and_equals() {
        let params = p(r#"Digest realm="a \"quoted\", realm=x", nonce="back\\slash", o="=,=""#);
        assert_eq!(params.get("realm"), Some(r#"a "quoted", realm=x"#));
        assert_eq!(params.get("nonce"), Some(r"back\slash"));
        assert_eq!(params.get("o"), Some("=,="));
        assert_eq!(p(r#"Digest e="""#).get("e"), Some(""));
        assert_eq!(p("Digest u=\"José\"").get("u"), Some("José"));
    }

    #[test]
    fn grammar_errors() {
        for v in [
            r#"Digest a="unterminated"#,
            r#"Digest a="ends with backslash\"#,
            "Digest a=\"line\nbreak\"",
            "Digest a=\"nul\0\"",
            "Digest a=\"esc\\\nlf\"",
            "Digest a=",
            "Digest a= ,b=1",
            "Digest a",
            "Digest a b=1",
            "Digest a=1 b=2",
            "Digest a=1,",
            "Digest a=1, ",
            "Digest a=1,,b=2",
            "Digest a=x/y",
            "Digest =1",
            r#"Digest a="1"b=2"#,
        ] {
            assert!(
                matches!(parse_digest(v), Err(AuthError::Malformed { .. })),
                "{v:?} -> {:?}",
                parse_digest(v)
            );
        }
    }

    #[test]
    fn duplicates_rejected_case_insensitively() {
        assert_eq!(
            parse_digest("Digest a=1, b=2, A=3").unwrap_err(),
            AuthError::DuplicateParam("a".into())
        );
        assert_eq!(
            parse_digest(r#"Digest nonce="x", nonce="x""#).unwrap_err(),
            AuthError::DuplicateParam("nonce".into())
        );
    }

    #[test]
    fn quote_round_trips_and_strips_controls() {
        for s in ["plain", r#"q"uote"#, r"back\slash", "", "tab\there", "ünï"] {
            let v = format!("Digest x={}", quote(s));
            assert_eq!(p(&v).get("x"), Some(s));
        }
        assert_eq!(quote("a\r\nInjected: 1"), "\"aInjected: 1\"");
    }
}

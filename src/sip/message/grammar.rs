//! Strict parsers for the header values the server acts on: name-addr / addr-spec (From, To, Contact),
//! Via and CSeq (RFC 3261 §20, §25.1).
//!
//! `rsip` 0.4 is lenient here (it accepts unbalanced quotes, spaces inside `<…>` and non-token display
//! names that RFC 4475 §3.1.2 says to reject), so these few productions are ours; URIs themselves are
//! kept as text and checked by `uri_scheme` and `rsip::Uri` where their parts matter.

/// A generic `;name[=value]` parameter.
pub type Param = (String, Option<String>);

/// `[display-name] <uri> *(;param)` or `uri *(;param)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display_name: Option<String>,
    pub uri: String,
    pub params: Vec<Param>,
}

impl NameAddr {
    pub fn parse(value: &str) -> Result<NameAddr, &'static str> {
        let value = value.trim();
        match find_outside_quotes(value, '<') {
            Some(lt) => {
                let display = value[..lt].trim();
                let display_name = parse_display_name(display)?;
                let rest = &value[lt + 1..];
                let gt = rest.find('>').ok_or("unterminated '<' in address")?;
                let uri = &rest[..gt];
                if uri.is_empty() || uri.chars().any(char::is_whitespace) {
                    return Err("whitespace inside <addr-spec>");
                }
                check_uri_shape(uri)?;
                let params = parse_params(&rest[gt + 1..])?;
                Ok(NameAddr {
                    display_name,
                    uri: uri.to_string(),
                    params,
                })
            }
            None => {
                if value.contains('"') {
                    return Err("unterminated quoted display name");
                }
                let end = value.find(';').unwrap_or(value.len());
                let uri = value[..end].trim();
                if uri.is_empty() || uri.chars().any(char::is_whitespace) {
                    return Err("malformed addr-spec");
                }
                // RFC 3261 §20: a URI with headers or commas must be in name-addr form.
                if uri.contains('?') || uri.contains(',') {
                    return Err("URI with '?' or ',' must be enclosed in <>");
                }
                check_uri_shape(uri)?;
                let params = parse_params(&value[end..])?;
                Ok(NameAddr {
                    display_name: None,
                    uri: uri.to_string(),
                    params,
                })
            }
        }
    }

    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }

    /// The user part of a sip/sips/tel URI (`sip:101@host` → `101`), unescaped is not needed for routing.
    pub fn user(&self) -> Option<&str> {
        uri_user(&self.uri)
    }
}

/// The user part of a SIP URI, or the number of a tel: URI.
pub fn uri_user(uri: &str) -> Option<&str> {
    let (scheme, rest) = uri.split_once(':')?;
    if scheme.eq_ignore_ascii_case("tel") {
        return Some(rest.split(';').next().unwrap_or(rest));
    }
    let at = rest.rfind('@')?;
    let user = &rest[..at];
    Some(user.split(':').next().unwrap_or(user))
}

/// The scheme of a URI, lowercased (`sip`, `sips`, `tel`, …).
pub fn uri_scheme(uri: &str) -> Option<String> {
    let (scheme, _) = uri.split_once(':')?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    (first_ok && rest_ok).then(|| scheme.to_ascii_lowercase())
}

fn check_uri_shape(uri: &str) -> Result<(), &'static str> {
    match uri_scheme(uri) {
        Some(_) => Ok(()),
        None => Err("URI has no scheme"),
    }
}

fn parse_display_name(display: &str) -> Result<Option<String>, &'static str> {
    if display.is_empty() {
        return Ok(None);
    }
    if let Some(inner) = display.strip_prefix('"') {
        let (text, rest) = take_quoted(inner).ok_or("unterminated quoted display name")?;
        if !rest.trim().is_empty() {
            return Err("text after quoted display name");
        }
        return Ok(Some(text));
    }
    // Unquoted: *(token LWS)
    if display
        .split_whitespace()
        .all(|word| word.chars().all(is_token_char))
    {
        Ok(Some(
            display.split_whitespace().collect::<Vec<_>>().join(" "),
        ))
    } else {
        Err("display name with non-token characters must be quoted")
    }
}

/// Reads a quoted string body (after the opening quote); returns the unescaped text and what follows.
fn take_quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                let (_, escaped) = chars.next()?;
                out.push(escaped);
            }
            '"' => return Some((out, &s[i + 1..])),
            _ => out.push(c),
        }
    }
    None
}

fn find_outside_quotes(s: &str, needle: char) -> Option<usize> {
    let (mut in_quotes, mut escaped) = (false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            c if c == needle && !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

/// RFC 3261 §25.1 `token` characters.
pub fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

/// Parses `*( SWS ";" SWS name [ SWS "=" SWS value ] )`.
pub fn parse_params(s: &str) -> Result<Vec<Param>, &'static str> {
    let mut params = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        rest = rest
            .strip_prefix(';')
            .ok_or("unexpected text after address")?
            .trim_start();
        let name_len = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        if name_len == 0 {
            return Err("empty parameter");
        }
        let name = rest[..name_len].to_string();
        rest = rest[name_len..].trim_start();
        let mut value = None;
        if let Some(after_eq) = rest.strip_prefix('=') {
            let after_eq = after_eq.trim_start();
            if let Some(inner) = after_eq.strip_prefix('"') {
                let (text, tail) = take_quoted(inner).ok_or("unterminated quoted parameter")?;
                value = Some(text);
                rest = tail.trim_start();
            } else {
                let len = after_eq
                    .find(|c: char| !(is_token_char(c) || "[]:".contains(c)))
                    .unwrap_or(after_eq.len());
                if len == 0 {
                    return Err("empty parameter value");
                }
                value = Some(after_eq[..len].to_string());
                rest = after_eq[len..].trim_start();
            }
        }
        params.push((name, value));
    }
    Ok(params)
}

/// One Via value: `SIP/2.0/UDP host[:port] *(;param)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<Param>,
}

impl Via {
    pub fn parse(value: &str) -> Result<Via, &'static str> {
        let mut parts = value.trim().splitn(3, '/');
        let protocol = parts.next().unwrap_or("").trim();
        let version = parts.next().ok_or("Via without protocol version")?.trim();
        let rest = parts.next().ok_or("Via without transport")?.trim_start();
        if !protocol.eq_ignore_ascii_case("SIP") || !is_token(version) {
            return Err("malformed Via protocol");
        }
        if version != "2.0" {
            return Err("unsupported SIP version in Via");
        }
        let transport_len = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        if transport_len == 0 {
            return Err("Via without transport");
        }
        let transport = rest[..transport_len].to_ascii_uppercase();
        let rest = rest[transport_len..].trim_start();
        let (host, rest) = take_host(rest).ok_or("malformed Via sent-by host")?;
        let rest = rest.trim_start();
        let (port, rest) = match rest.strip_prefix(':') {
            Some(p) => {
                let p = p.trim_start();
                let len = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
                let port = p[..len].parse::<u16>().map_err(|_| "bad Via port")?;
                (Some(port), &p[len..])
            }
            None => (None, rest),
        };
        let params = parse_params(rest)?;
        Ok(Via {
            transport,
            host,
            port,
            params,
        })
    }

    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// `host:port` as written, for transaction matching (§17.2.3 sent-by).
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

fn take_host(s: &str) -> Option<(String, &str)> {
    if let Some(inner) = s.strip_prefix('[') {
        let end = inner.find(']')?;
        let addr = &inner[..end];
        addr.parse::<std::net::Ipv6Addr>().ok()?;
        return Some((format!("[{addr}]"), &inner[end + 1..]));
    }
    let len = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        .unwrap_or(s.len());
    (len > 0).then(|| (s[..len].to_string(), &s[len..]))
}

/// `CSeq: 1*DIGIT LWS Method`, the number limited to 2^31 - 1 (RFC 3261 §8.1.1.5).
pub fn parse_cseq(value: &str) -> Result<(u32, &str), &'static str> {
    let value = value.trim();
    let digits_len = value
        .find(|c: char| !c.is_ascii_digit())
        .ok_or("CSeq without method")?;
    if digits_len == 0 {
        return Err("CSeq without sequence number");
    }
    let number: u32 = value[..digits_len]
        .parse()
        .ok()
        .filter(|n| *n <= 0x7fff_ffff)
        .ok_or("CSeq number too large")?;
    let method = value[digits_len..].trim();
    if !is_token(method) {
        return Err("malformed CSeq method");
    }
    Ok((number, method))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse(r#""J Rosenberg \\\""  <sip:jdrosen@example.com> ; tag = 98asjd8"#)
            .unwrap();
        assert_eq!(a.display_name.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(a.tag(), Some("98asjd8"));
        let b = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(b.display_name.as_deref(), Some("caller"));
        let c = NameAddr::parse("sip:+1303@ift.example.net;user=phone").unwrap();
        assert_eq!(c.uri, "sip:+1303@ift.example.net");
        assert_eq!(c.param("user"), Some(Some("phone")));
        assert_eq!(c.user(), Some("+1303"));
        assert!(NameAddr::parse("isbn:2983792873").is_ok());
    }

    #[test]
    fn name_addr_rejects_rfc4475_cases() {
        assert!(NameAddr::parse(r#""Mr. J. User <sip:j.user@example.com>"#).is_err());
        assert!(NameAddr::parse(r#""Watson, Thomas" < sip:t.watson@example.org >"#).is_err());
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(NameAddr::parse(r#""Joe" <sip:joe@example.org>;;;;"#).is_err());
    }

    #[test]
    fn via_forms() {
        let v = Via::parse(
            "SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw"
                .replace("\r\n", "")
                .as_str(),
        )
        .unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.branch(), Some("390skdjuw"));
        let v = Via::parse("SIP/2.0/TCP [2001:db8::9:1]:5070;rport;branch=z9hG4bKx").unwrap();
        assert_eq!(v.sent_by(), "[2001:db8::9:1]:5070");
        assert_eq!(v.param("rport"), Some(None));
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/7.0/UDP c.example.com").is_err());
    }

    #[test]
    fn cseq_limits() {
        assert_eq!(parse_cseq("0009 INVITE").unwrap(), (9, "INVITE"));
        assert!(parse_cseq("36893488147419103232 REGISTER").is_err());
        assert!(parse_cseq("2147483648 INVITE").is_err());
        assert!(parse_cseq("INVITE").is_err());
    }
}

//! Header names and the header list of a SIP message (RFC 3261 §7.3, compact forms §7.3.3).
//!
//! `rsip` 0.4 does not know the compact forms, so every name is expanded here once, at parse time; the
//! rest of the server only ever sees full names.

/// Compact header forms from RFC 3261 §7.3.3 and later RFCs (IANA "Header Fields" registry).
const COMPACT: &[(u8, &str)] = &[
    (b'a', "Accept-Contact"),
    (b'b', "Referred-By"),
    (b'c', "Content-Type"),
    (b'd', "Request-Disposition"),
    (b'e', "Content-Encoding"),
    (b'f', "From"),
    (b'i', "Call-ID"),
    (b'j', "Reject-Contact"),
    (b'k', "Supported"),
    (b'l', "Content-Length"),
    (b'm', "Contact"),
    (b'n', "Identity-Info"),
    (b'o', "Event"),
    (b'r', "Refer-To"),
    (b's', "Subject"),
    (b't', "To"),
    (b'u', "Allow-Events"),
    (b'v', "Via"),
    (b'x', "Session-Expires"),
    (b'y', "Identity"),
];

/// Canonical spelling of the headers we read, so messages we print look conventional.
const CANONICAL: &[&str] = &[
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Contact",
    "Content-Length",
    "Content-Type",
    "Expires",
    "Min-Expires",
    "Authorization",
    "Proxy-Authorization",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Require",
    "Proxy-Require",
    "Supported",
    "Accept",
    "Allow",
    "User-Agent",
    "Server",
    "Route",
    "Record-Route",
    "Reason",
    "Unsupported",
];

/// Headers that may appear at most once (RFC 3261 §7.3.1 and the header grammar in §25).
pub const SINGLE_VALUED: &[&str] = &[
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Expires",
];

/// Expands a compact name and gives known names their canonical spelling.
pub fn canonical_name(name: &str) -> String {
    if name.len() == 1 {
        let c = name.as_bytes()[0].to_ascii_lowercase();
        if let Some((_, full)) = COMPACT.iter().find(|(short, _)| *short == c) {
            return (*full).to_string();
        }
    }
    match CANONICAL
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
    {
        Some(known) => (*known).to_string(),
        None => name.to_string(),
    }
}

/// One header line, unfolded, with its name expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// The headers of a message in arrival order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// How many header fields (list elements of Via, Contact and Route count one each).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first value of a header (names compare case-insensitively).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every value of a header, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }

    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push(Header {
            name: canonical_name(name),
            value: value.into(),
        });
    }

    /// Comma-separated list values across every line of a header (Require, Supported, Allow…).
    pub fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }
}

/// Splits a header value at commas that are outside quoted strings and angle brackets
/// (Via, Contact, Route and Record-Route may carry several values on one line).
pub fn split_list(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut in_quotes, mut in_angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => in_angle = true,
            '>' if !in_quotes => in_angle = false,
            ',' if !in_quotes && !in_angle => {
                parts.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compact_form_expands() {
        for (short, full) in COMPACT {
            let lower = (*short as char).to_string();
            assert_eq!(canonical_name(&lower), *full);
            assert_eq!(canonical_name(&lower.to_ascii_uppercase()), *full);
        }
        assert_eq!(canonical_name("cAlL-iD"), "Call-ID");
        assert_eq!(canonical_name("X-Custom"), "X-Custom");
    }

    #[test]
    fn split_list_respects_quotes_and_brackets() {
        assert_eq!(
            split_list(r#""Doe, J" <sip:a@b;x=1,2>, <sip:c@d>"#),
            vec![r#""Doe, J" <sip:a@b;x=1,2>"#, "<sip:c@d>"]
        );
        assert_eq!(split_list("a , b"), vec!["a", "b"]);
    }
}

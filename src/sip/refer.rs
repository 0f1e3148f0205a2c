//! Call transfer's headers: REFER's `Refer-To` (RFC 3515 §2.1) with the `Replaces` an attended
//! transfer puts in its URI (RFC 3891 §6.1), and the `message/sipfrag` bodies of the NOTIFYs that
//! report the transfer back (RFC 3515 §2.4.4).
//!
//! Pure text in, values out: the endpoint answers a bad Refer-To with 400, the call layer decides
//! what the target means (an operator, a queue, a number).

use super::message::grammar::{NameAddr, uri_scheme, uri_user};

/// Where a REFER asks the call to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferTo {
    /// The target URI without its `?headers` part (`sip:1002@pbx`).
    pub uri: String,
    /// Its user part (`1002`): what the call layer resolves.
    pub user: Option<String>,
    /// An attended transfer: the dialog the target should replace.
    pub replaces: Option<Replaces>,
}

/// `Replaces: call-id;to-tag=…;from-tag=…` (RFC 3891 §6.1): a dialog named from the side of the
/// one that sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
    pub early_only: bool,
}

/// Why a Refer-To cannot be used (the text of the 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReferError {
    #[error("REFER without Refer-To")]
    Missing,
    #[error("REFER with more than one Refer-To")]
    Several,
    #[error("Refer-To is not an address: {0}")]
    Malformed(&'static str),
    #[error("Refer-To is not a SIP or tel URI")]
    NotSip,
    #[error("Replaces in Refer-To lacks a call-id, to-tag or from-tag")]
    BadReplaces,
}

impl ReferError {
    /// The 400's reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            ReferError::Missing => "Missing Refer-To",
            ReferError::BadReplaces => "Bad Replaces",
            _ => "Bad Refer-To",
        }
    }
}

/// Reads the Refer-To values of a REFER (exactly one, RFC 3515 §2.4.1).
pub fn parse_refer_to<'a>(
    mut values: impl Iterator<Item = &'a str>,
) -> Result<ReferTo, ReferError> {
    let value = values.next().ok_or(ReferError::Missing)?;
    if values.next().is_some() {
        return Err(ReferError::Several);
    }
    let address = NameAddr::parse(value).map_err(ReferError::Malformed)?;
    if !matches!(
        uri_scheme(&address.uri).as_deref(),
        Some("sip" | "sips" | "tel")
    ) {
        return Err(ReferError::NotSip);
    }
    let (uri, headers) = match address.uri.split_once('?') {
        Some((uri, headers)) => (uri.to_string(), Some(headers)),
        None => (address.uri.clone(), None),
    };
    let replaces = match headers {
        Some(headers) => uri_header(headers, "Replaces")
            .map(|v| parse_replaces(&v))
            .transpose()?,
        None => None,
    };
    let user = uri_user(&uri).map(|u| percent_decode(u).unwrap_or_else(|| u.to_string()));
    Ok(ReferTo {
        uri,
        user: user.filter(|u| !u.is_empty()),
        replaces,
    })
}

/// A `Replaces` header value (already unescaped from the URI).
pub fn parse_replaces(value: &str) -> Result<Replaces, ReferError> {
    let mut parts = value.split(';').map(str::trim);
    let call_id = parts
        .next()
        .filter(|c| !c.is_empty())
        .ok_or(ReferError::BadReplaces)?;
    let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
    for part in parts {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "to-tag" => to_tag = Some(value.trim().to_string()),
            "from-tag" => from_tag = Some(value.trim().to_string()),
            "early-only" => early_only = true,
            _ => {}
        }
    }
    match (to_tag, from_tag) {
        (Some(to_tag), Some(from_tag)) if !to_tag.is_empty() && !from_tag.is_empty() => {
            Ok(Replaces {
                call_id: call_id.to_string(),
                to_tag,
                from_tag,
                early_only,
            })
        }
        _ => Err(ReferError::BadReplaces),
    }
}

/// The value of one `name=value` header of a URI's `?a=b&c=d` part, unescaped.
fn uri_header(headers: &str, name: &str) -> Option<String> {
    headers.split('&').find_map(|pair| {
        let (n, v) = pair.split_once('=')?;
        n.eq_ignore_ascii_case(name).then(|| percent_decode(v))?
    })
}

/// `%40` → `@`; `None` when an escape is broken or the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The body of a NOTIFY about a transfer: the status line of what the target said.
pub fn sipfrag(status: u16, reason: &str) -> String {
    format!("SIP/2.0 {status} {reason}\r\n")
}

/// The NOTIFY's `Content-Type`.
pub const SIPFRAG_TYPE: &str = "message/sipfrag;version=2.0";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<ReferTo, ReferError> {
        parse_refer_to(std::iter::once(value))
    }

    #[test]
    fn refer_to_values_are_read_as_rfc_3515_writes_them() {
        type Row = (
            &'static str,
            Result<(&'static str, Option<&'static str>), ReferError>,
        );
        let table: [Row; 9] = [
            (
                "<sip:1002@127.0.0.1>",
                Ok(("sip:1002@127.0.0.1", Some("1002"))),
            ),
            (
                "sip:1002@127.0.0.1",
                Ok(("sip:1002@127.0.0.1", Some("1002"))),
            ),
            (
                "\"Sales\" <sip:sales@pbx.example.com;transport=udp>",
                Ok(("sip:sales@pbx.example.com;transport=udp", Some("sales"))),
            ),
            (
                "<tel:+380441234567>",
                Ok(("tel:+380441234567", Some("+380441234567"))),
            ),
            ("<sip:pbx.example.com>", Ok(("sip:pbx.example.com", None))),
            ("<http://example.com/>", Err(ReferError::NotSip)),
            (
                "<sip:1002@127.0.0.1",
                Err(ReferError::Malformed("unterminated '<' in address")),
            ),
            ("", Err(ReferError::Malformed("malformed addr-spec"))),
            (
                "<sip:1002@h?Replaces=abc%3Bto-tag%3D1>",
                Err(ReferError::BadReplaces),
            ),
        ];
        for (value, expected) in table {
            let got = parse(value).map(|r| (r.uri, r.user));
            let expected = expected.map(|(u, user)| (u.to_string(), user.map(str::to_string)));
            assert_eq!(got, expected, "{value}");
        }
    }

    #[test]
    fn an_attended_transfers_replaces_is_unescaped_from_the_uri() {
        let r = parse(
            "<sip:1002@10.0.0.1?Replaces=7a9f%4010.0.0.2%3Bto-tag%3D314159%3Bfrom-tag%3Dabc&Require=replaces>",
        )
        .expect("parses");
        assert_eq!(r.uri, "sip:1002@10.0.0.1");
        assert_eq!(
            r.replaces,
            Some(Replaces {
                call_id: "7a9f@10.0.0.2".into(),
                to_tag: "314159".into(),
                from_tag: "abc".into(),
                early_only: false,
            })
        );
    }

    #[test]
    fn exactly_one_refer_to_is_taken() {
        assert_eq!(parse_refer_to(std::iter::empty()), Err(ReferError::Missing));
        let two = ["<sip:1@h>", "<sip:2@h>"];
        assert_eq!(parse_refer_to(two.into_iter()), Err(ReferError::Several));
        assert_eq!(ReferError::Missing.reason(), "Missing Refer-To");
        assert_eq!(ReferError::Several.reason(), "Bad Refer-To");
    }

    #[test]
    fn a_notify_body_is_one_status_line() {
        assert_eq!(sipfrag(200, "OK"), "SIP/2.0 200 OK\r\n");
    }
}

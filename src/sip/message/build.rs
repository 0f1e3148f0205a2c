//! Writing SIP messages: responses that mirror their request (RFC 3261 §8.2.6) and requests we send
//! inside a dialog (§12.2.1). Written straight to text: every field is already typed or copied.

use super::Headers;
use bytes::Bytes;
use std::fmt::Write;
use std::net::SocketAddr;

/// Product token sent in `Server` / `User-Agent`.
pub const PRODUCT: &str = concat!("Openline/", env!("CARGO_PKG_VERSION"));

/// A body with its content type.
pub struct Body<'a> {
    pub content_type: &'a str,
    pub bytes: &'a [u8],
}

/// Everything that varies between responses to one request.
pub struct ResponseSpec<'a> {
    pub status: u16,
    pub reason: &'a str,
    /// Our tag for the To header when the request's To has none (§8.2.6.2).
    pub to_tag: Option<&'a str>,
    /// Where the request came from: fills `received`/`rport` in the top Via (§18.2.1, RFC 3581).
    pub source: Option<SocketAddr>,
    pub extra: &'a [(&'a str, &'a str)],
    pub body: Option<Body<'a>>,
}

/// Builds a response copying Via, From, To, Call-ID and CSeq from the request's headers.
pub fn response(request: &Headers, spec: &ResponseSpec<'_>) -> Bytes {
    let mut out = String::with_capacity(512);
    let _ = write!(out, "SIP/2.0 {} {}\r\n", spec.status, spec.reason);
    for (i, via) in request.get_all("Via").enumerate() {
        if i == 0 {
            let _ = write!(out, "Via: {}\r\n", stamp_via(via, spec.source));
        } else {
            let _ = write!(out, "Via: {via}\r\n");
        }
    }
    if let Some(from) = request.get("From") {
        let _ = write!(out, "From: {from}\r\n");
    }
    if let Some(to) = request.get("To") {
        match spec.to_tag {
            Some(tag) if !has_tag(to) => {
                let _ = write!(out, "To: {to};tag={tag}\r\n");
            }
            _ => {
                let _ = write!(out, "To: {to}\r\n");
            }
        }
    }
    if let Some(call_id) = request.get("Call-ID") {
        let _ = write!(out, "Call-ID: {call_id}\r\n");
    }
    if let Some(cseq) = request.get("CSeq") {
        let _ = write!(out, "CSeq: {cseq}\r\n");
    }
    finish(out, spec.extra, spec.body.as_ref(), "Server")
}

/// Everything in a request we originate.
pub struct RequestSpec<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    pub via: &'a str,
    pub max_forwards: u8,
    pub from: &'a str,
    pub to: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    pub extra: &'a [(&'a str, &'a str)],
    pub body: Option<Body<'a>>,
}

pub fn request(spec: &RequestSpec<'_>) -> Bytes {
    let mut out = String::with_capacity(512);
    let _ = write!(
        out,
        "{} {} SIP/2.0\r\nVia: {}\r\nMax-Forwards: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n",
        spec.method,
        spec.uri,
        spec.via,
        spec.max_forwards,
        spec.from,
        spec.to,
        spec.call_id,
        spec.cseq,
        spec.method
    );
    finish(out, spec.extra, spec.body.as_ref(), "User-Agent")
}

/// Writes the extra headers, the product token, Content-Length and the body (bytes kept as they are).
fn finish(
    mut out: String,
    extra: &[(&str, &str)],
    body: Option<&Body<'_>>,
    product_header: &str,
) -> Bytes {
    for (name, value) in extra {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    let _ = write!(out, "{product_header}: {PRODUCT}\r\n");
    match body {
        Some(body) => {
            let _ = write!(
                out,
                "Content-Type: {}\r\nContent-Length: {}\r\n\r\n",
                body.content_type,
                body.bytes.len()
            );
            let mut bytes = out.into_bytes();
            bytes.extend_from_slice(body.bytes);
            Bytes::from(bytes)
        }
        None => {
            out.push_str("Content-Length: 0\r\n\r\n");
            Bytes::from(out)
        }
    }
}

fn has_tag(to: &str) -> bool {
    super::NameAddr::parse(to)
        .map(|a| a.tag().is_some())
        .unwrap_or(false)
}

/// Adds `received` and fills `rport` in the top Via (RFC 3581 §4).
fn stamp_via(via: &str, source: Option<SocketAddr>) -> String {
    let Some(source) = source else {
        return via.to_string();
    };
    let mut out = String::with_capacity(via.len() + 40);
    for (i, part) in via.split(';').enumerate() {
        let name = part.split('=').next().unwrap_or("").trim();
        if i > 0 && name.eq_ignore_ascii_case("received") {
            continue; // replaced by the address we really saw
        }
        if i > 0 {
            out.push(';');
        }
        if i > 0 && name.eq_ignore_ascii_case("rport") {
            let _ = write!(out, "rport={}", source.port());
        } else {
            out.push_str(part);
        }
    }
    let _ = write!(out, ";received={}", source.ip());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_gets_received_and_rport() {
        let source: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(
            stamp_via("SIP/2.0/UDP host:5060;rport;branch=z9hG4bK1", Some(source)),
            "SIP/2.0/UDP host:5060;rport=40000;branch=z9hG4bK1;received=127.0.0.1"
        );
        assert_eq!(
            stamp_via("SIP/2.0/UDP host;branch=z9hG4bK1", Some(source)),
            "SIP/2.0/UDP host;branch=z9hG4bK1;received=127.0.0.1"
        );
        assert_eq!(
            stamp_via(
                "SIP/2.0/UDP host;received=192.0.2.5;branch=z9hG4bK1",
                Some(source)
            ),
            "SIP/2.0/UDP host;branch=z9hG4bK1;received=127.0.0.1"
        );
    }

    #[test]
    fn response_adds_to_tag_once() {
        let mut head = Headers::default();
        head.push("Via", "SIP/2.0/UDP a;branch=z9hG4bK1");
        head.push("From", "<sip:a@b>;tag=1");
        head.push("To", "<sip:c@d>");
        head.push("Call-ID", "x");
        head.push("CSeq", "1 OPTIONS");
        let spec = ResponseSpec {
            status: 200,
            reason: "OK",
            to_tag: Some("t9"),
            source: None,
            extra: &[],
            body: None,
        };
        let text = String::from_utf8(response(&head, &spec).to_vec()).unwrap();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"));
        assert!(text.contains("To: <sip:c@d>;tag=t9\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
    }
}

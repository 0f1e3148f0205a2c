//! A hand-driven operator phone over UDP: registers an extension with digest auth, then lets a
//! test ring, answer, ignore or hang up the INVITEs the server sends it, and keeps every request
//! it received in order (so a test can check a CANCEL's Reason, or that no INVITE came later).

use super::{UdpPeer, header};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub struct Phone {
    pub sip: UdpPeer,
    pub ext: String,
    /// Every request received, in arrival order (first line and full text).
    pub requests: Vec<String>,
}

impl Phone {
    /// Registers `ext` from a fresh socket: 401, then the digest answer, then 200.
    pub fn register(server: SocketAddr, ext: &str, password: &str) -> Phone {
        Self::register_from(server, "127.0.0.1", ext, password)
    }

    /// [`Phone::register`] from a socket on another loopback address (`127.0.0.2`: "another
    /// source" for the per-source limits).
    pub fn register_from(server: SocketAddr, local_ip: &str, ext: &str, password: &str) -> Phone {
        let sip = UdpPeer::bound(local_ip, server);
        let answer = Self::register_on(&sip, local_ip, ext, password);
        assert!(
            answer.starts_with("SIP/2.0 200"),
            "{ext} not registered: {answer}"
        );
        sip.socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Phone {
            sip,
            ext: ext.to_string(),
            requests: Vec::new(),
        }
    }

    /// The status line the server answers a REGISTER of `ext` with `password` (after its
    /// challenge; the first answer when there is none).
    pub fn register_status(server: SocketAddr, ext: &str, password: &str) -> String {
        let sip = UdpPeer::new(server);
        let answer = Self::register_on(&sip, "127.0.0.1", ext, password);
        answer.lines().next().unwrap_or("").to_string()
    }

    /// REGISTER, then REGISTER with the MD5 challenge answered: the last answer.
    fn register_on(sip: &UdpPeer, local_ip: &str, ext: &str, password: &str) -> String {
        use openline::sip::auth::{self, Algorithm, Challenge};
        let port = sip.port();
        let register = |cseq: u32, authz: Option<&str>| {
            let authz = authz
                .map(|a| format!("Authorization: {a}\r\n"))
                .unwrap_or_default();
            format!(
                "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local_ip}:{port};branch=z9hG4bKreg{ext}{cseq};rport\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:{ext}@127.0.0.1>;tag=r{ext}\r\nTo: <sip:{ext}@127.0.0.1>\r\nCall-ID: reg-{ext}-{port}\r\n\
                 CSeq: {cseq} REGISTER\r\nContact: <sip:{ext}@{local_ip}:{port}>\r\nExpires: 600\r\n{authz}Content-Length: 0\r\n\r\n"
            )
        };
        let challenge = sip.request(&register(1, None), "SIP/2.0 ");
        if !challenge.starts_with("SIP/2.0 401") {
            return challenge;
        }
        let md5 = challenge
            .lines()
            .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
            .map(|v| Challenge::parse(v).unwrap())
            .find(|c| c.algorithm == Algorithm::Md5)
            .unwrap();
        let authz = auth::authorize(&md5, ext, password, "REGISTER", "sip:127.0.0.1", 1, "feed");
        sip.request(&register(2, Some(&authz)), "SIP/2.0 ")
    }

    /// Reads one message (≤ 100 ms); requests are kept, and a CANCEL or BYE is answered the way
    /// a phone does (200, and 487 for the cancelled INVITE).
    pub fn poll(&mut self) -> Option<String> {
        let msg = self.sip.recv()?;
        if msg.starts_with("SIP/2.0") {
            return Some(msg);
        }
        self.requests.push(msg.clone());
        if msg.starts_with("CANCEL ") {
            self.reply(&msg, "200 OK", "", "");
            let invite = self
                .requests
                .iter()
                .rev()
                .find(|r| {
                    r.starts_with("INVITE ") && header(r, "Call-ID") == header(&msg, "Call-ID")
                })
                .cloned();
            if let Some(invite) = invite {
                self.reply(&invite, "487 Request Terminated", "", "");
            }
        } else if msg.starts_with("BYE ") {
            self.reply(&msg, "200 OK", "", "");
        }
        Some(msg)
    }

    /// Waits for a request whose first line starts with `method` (e.g. "INVITE ").
    pub fn wait_for(&mut self, method: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(msg) = self.poll()
                && msg.starts_with(method)
            {
                return Some(msg);
            }
        }
        None
    }

    /// Reads whatever arrives for `within` (to see what a phone got, e.g. no INVITE).
    pub fn drain(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            self.poll();
        }
    }

    pub fn invites(&self) -> usize {
        self.requests
            .iter()
            .filter(|r| r.starts_with("INVITE "))
            .count()
    }

    /// A response to `request` with our To tag.
    pub fn reply(&self, request: &str, status: &str, extra: &str, body: &str) {
        let mut out = format!("SIP/2.0 {status}\r\n");
        for name in ["Via", "From", "Call-ID", "CSeq"] {
            if let Some(v) = header(request, name) {
                out.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        let to = header(request, "To").unwrap_or_default();
        let to = if to.contains("tag=") {
            to.to_string()
        } else {
            format!("{to};tag=ph{}", self.ext)
        };
        out.push_str(&format!("To: {to}\r\n{extra}"));
        out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        self.sip.send(out.as_bytes());
    }

    pub fn ringing(&self, invite: &str) {
        self.reply(invite, "180 Ringing", "", "");
    }

    /// 200 with our RTP port, re-sent until the ACK.
    pub fn answer(&mut self, invite: &str, rtp_port: u16) {
        let sdp = super::offer(rtp_port, 101);
        let contact = format!(
            "Contact: <sip:{}@127.0.0.1:{}>\r\nContent-Type: application/sdp\r\n",
            self.ext,
            self.sip.port()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "no ACK for {}'s 200", self.ext);
            self.reply(invite, "200 OK", &contact, &sdp);
            if self.wait_for("ACK ", Duration::from_millis(300)).is_some() {
                return;
            }
        }
    }

    /// Hangs up the dialog `invite` created (after `answer`).
    pub fn bye(&mut self, invite: &str) {
        self.in_dialog(invite, "BYE", 10, "", "");
    }

    /// Sends `method` in the dialog `invite` created (after `answer`), re-sent until a final
    /// response, which it returns.
    pub fn in_dialog(
        &mut self,
        invite: &str,
        method: &str,
        cseq: u32,
        extra: &str,
        body: &str,
    ) -> String {
        let port = self.sip.port();
        let from = header(invite, "From").unwrap();
        let to = header(invite, "To").unwrap();
        let call_id = header(invite, "Call-ID").unwrap();
        let target = header(invite, "Contact")
            .and_then(|c| c.split('<').nth(1))
            .and_then(|c| c.split('>').next())
            .unwrap()
            .to_string();
        let branch: String = call_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let request = format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{method}{cseq}{branch};rport\r\nMax-Forwards: 70\r\n\
             From: {to};tag=ph{}\r\nTo: {from}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            self.ext,
            body.len()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(
                Instant::now() < deadline,
                "no final answer to {}'s {method}",
                self.ext
            );
            self.sip.send(request.as_bytes());
            let got = self.poll();
            if let Some(m) = got.filter(|m| {
                m.starts_with("SIP/2.0 ")
                    && !m.starts_with("SIP/2.0 1")
                    && m.contains(&format!("{cseq} {method}"))
            }) {
                return m;
            }
        }
    }
}

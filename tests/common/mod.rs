//! Test harness: starts the real `openline` binary on free ports with its own data directory, talks
//! HTTP to it with a minimal client, and runs SIPp, baresip and linphonec against it.
#![allow(dead_code)]

pub mod baresip;
pub mod linphone;
pub mod phone;
pub mod rtp;
pub mod trunk;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
pub const MANAGER_TOKEN: &str = "test-manager-token-0123456789abcdef";
pub const OPERATOR_TOKEN: &str = "test-operator-token-0123456789abcdef";

/// The test server's config: [`BASE_CONFIG`], then the test's own. The overload lag gate is
/// off unless a test sets `overload_lag`: the suite runs many servers on two cores at once, and
/// their lateness is the other tests' doing, not the server's overload (tests/overload.rs turns
/// it on).
pub fn test_config(extra: &str) -> String {
    let mut extra = extra.to_string();
    if !extra.contains("overload_lag") {
        match extra.find("[calls]\n") {
            Some(at) => extra.insert_str(at + "[calls]\n".len(), "overload_lag = \"0s\"\n"),
            None => extra.push_str("\n[calls]\noverload_lag = \"0s\"\n"),
        }
    }
    format!("{BASE_CONFIG}\n{extra}")
}

/// Operators every test server knows.
pub const BASE_CONFIG: &str = r#"
[[operators]]
extension = "101"
name = "Olena"
password = "s3cret-101"

[[operators]]
extension = "102"
name = "Taras"
password = "s3cret-102"

[[api_tokens]]
token = "test-admin-token-0123456789abcdef"
role = "admin"

[[api_tokens]]
token = "test-manager-token-0123456789abcdef"
role = "manager"

[[api_tokens]]
token = "test-operator-token-0123456789abcdef"
role = "operator"
extension = "101"
"#;

pub struct Server {
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub dir: PathBuf,
    child: Option<Child>,
    _temp: Option<tempfile::TempDir>,
}

pub fn free_port() -> u16 {
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    udp.local_addr().expect("addr").port()
}

/// An even port with the odd one above it free too (SIPp media ports).
pub fn free_media_port() -> u16 {
    loop {
        let p = free_port();
        if p.is_multiple_of(2) && p < 65000 && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

impl Server {
    /// A server with `BASE_CONFIG` plus `extra_config`, in a fresh temporary data directory.
    pub fn start(extra_config: &str) -> Server {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().to_path_buf();
        let mut server = Server::start_in(&dir, extra_config, &[]);
        server._temp = Some(temp);
        server
    }

    /// A server on an existing data directory (restarts keep the database and node id).
    pub fn start_in(dir: &Path, extra_config: &str, extra_args: &[&str]) -> Server {
        Self::start_with_database(dir, extra_config, extra_args, None)
    }

    pub fn start_with_database(
        dir: &Path,
        extra_config: &str,
        extra_args: &[&str],
        database: Option<&str>,
    ) -> Server {
        let config = dir.join("openline.toml");
        std::fs::write(&config, test_config(extra_config)).expect("config");
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("log file");
        let rtp_low = 20000 + (free_port() % 20000);
        let mut command = Command::new(env!("CARGO_BIN_EXE_openline"));
        command
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--sip", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--rtp-ports")
            .arg(format!("{rtp_low}-{}", rtp_low + 2000))
            .args(extra_args)
            .env(
                "RUST_LOG",
                std::env::var("OPENLINE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        if let Some(url) = database {
            command.arg("--database").arg(url);
        }
        // The shipped flows and prompts unless the test brings its own.
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        if !extra_args.contains(&"--flows") {
            command.arg("--flows").arg(repo.join("ivr-flows"));
        }
        if !extra_args.contains(&"--sounds") {
            command.arg("--sounds").arg(repo.join("sounds"));
        }
        let mut child = command.spawn().expect("spawn openline");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("openline ready ") => {
                    let field = |name: &str| -> SocketAddr {
                        line.split_whitespace()
                            .find_map(|w| w.strip_prefix(name))
                            .and_then(|a| a.parse().ok())
                            .unwrap_or_else(|| panic!("bad ready line {line}"))
                    };
                    return Server {
                        sip: field("sip="),
                        http: field("http="),
                        dir: dir.to_path_buf(),
                        child: Some(child),
                        _temp: None,
                    };
                }
                Ok(_) => continue,
                Err(_) => {
                    let _ = child.kill();
                    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                    panic!("server did not become ready; log:\n{log}");
                }
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL: the crash case.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a graceful exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not exit after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET with the admin token; (status, parsed JSON or Null).
    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.request("GET", path, Some(ADMIN_TOKEN))
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let (status, body) = http(self.http, method, path, token);
        (
            status,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    pub fn text(&self, path: &str) -> (u16, String) {
        http(self.http, "GET", path, None)
    }

    /// The first sample of a metric whose line starts with `name` (labels included if given);
    /// 0 when it is not exported (yet).
    pub fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.text("/metrics");
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// The finished call whose first leg has this SIP Call-ID, with its legs (waits up to 30 s).
    pub fn finished_call(&self, sip_call_id: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, body) = self.get("/api/v1/calls?limit=20");
            for c in body["calls"].as_array().cloned().unwrap_or_default() {
                let (_, call) = self.get(&format!("/api/v1/calls/{}", c["id"].as_str().unwrap()));
                if call["legs"][0]["sip_call_id"] == sip_call_id && !call["ended_at"].is_null() {
                    return call;
                }
            }
            assert!(
                Instant::now() < deadline,
                "call {sip_call_id} did not finish"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls the call list until `predicate` holds or the deadline passes.
    pub fn wait_for_calls(
        &self,
        query: &str,
        what: &str,
        predicate: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.get(&format!("/api/v1/calls?limit=1000{query}"));
            assert_eq!(status, 200, "{body}");
            let calls = body["calls"].as_array().cloned().unwrap_or_default();
            if predicate(&calls) {
                return calls;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; calls: {calls:#?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- server log ----\n{}", self.log());
        }
    }
}

/// A minimal HTTP/1.1 client (Connection: close), enough for JSON and text endpoints.
pub fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect http");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Runs SIPp to completion in `cwd`; returns (exit code, stdout+stderr).
pub fn sipp(cwd: &Path, args: &[String]) -> (i32, String) {
    let output = Command::new("sipp")
        .current_dir(cwd)
        .args(args)
        .args([
            "-nostdin",
            "-timeout",
            "120",
            "-timeout_error",
            "-trace_err",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("sipp must be installed (scripts/test.sh installs Debian's sip-tester)");
    let mut text = String::from_utf8_lossy(&output.stdout).to_string();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    for entry in std::fs::read_dir(cwd).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with("_errors.log") {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    (output.status.code().unwrap_or(-1), text)
}

pub fn data_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A UDP SIP peer for hand-written messages.
pub struct UdpPeer {
    pub socket: UdpSocket,
    pub server: SocketAddr,
}

impl UdpPeer {
    pub fn new(server: SocketAddr) -> UdpPeer {
        Self::bound("127.0.0.1", server)
    }

    /// A peer on another loopback address (any of 127.0.0.0/8 works on Linux).
    pub fn bound(local_ip: &str, server: SocketAddr) -> UdpPeer {
        let socket = UdpSocket::bind((local_ip, 0)).expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        UdpPeer { socket, server }
    }

    /// A peer sending from another loopback address (127.0.0.2, …): another source to the server.
    pub fn from_ip(server: SocketAddr, ip: &str) -> UdpPeer {
        let socket = UdpSocket::bind((ip, 0)).expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        UdpPeer { socket, server }
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().expect("addr").port()
    }

    pub fn send(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).expect("send");
    }

    /// The next message, or None after the read timeout.
    pub fn recv(&self) -> Option<String> {
        let mut buf = vec![0u8; 65535];
        let (n, _) = self.socket.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).to_string())
    }

    /// Sends `request` and retransmits it every 500 ms, as a UAC's Timer E would, until a message whose
    /// first line contains `status` arrives (UDP may drop a datagram under load).
    pub fn request(&self, request: &str, status: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let original = self.socket.read_timeout().ok().flatten();
        let _ = self
            .socket
            .set_read_timeout(Some(Duration::from_millis(500)));
        let found = loop {
            if Instant::now() > deadline {
                break None;
            }
            self.send(request.as_bytes());
            if let Some(msg) = self.recv()
                && msg.lines().next().unwrap_or("").contains(status)
            {
                break Some(msg);
            }
        };
        let _ = self.socket.set_read_timeout(original);
        found.unwrap_or_else(|| panic!("no {status} from server"))
    }

    /// Reads until a message whose first line contains `status` (skipping provisional noise).
    pub fn expect(&self, status: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(msg) = self.recv()
                && msg.lines().next().unwrap_or("").contains(status)
            {
                return msg;
            }
        }
        panic!("no {status} from server");
    }
}

/// An OPTIONS request from `port` over UDP (with rport, so the answer comes back to us).
pub fn options(port: u16, branch: &str) -> String {
    format!(
        "OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag={branch}\r\nTo: <sip:ping@127.0.0.1>\r\n\
         Call-ID: {branch}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

pub fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A G.711 µ-law offer with telephone-event on `event_pt`, receiving on `rtp_port`.
pub fn offer(rtp_port: u16, event_pt: u8) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp_port} RTP/AVP 0 {event_pt}\r\na=rtpmap:{event_pt} telephone-event/8000\r\n\
         a=fmtp:{event_pt} 0-16\r\na=sendrecv\r\n"
    )
}

/// The RTP address in an SDP body.
pub fn sdp_media_addr(message: &str) -> SocketAddr {
    let body = message.split("\r\n\r\n").nth(1).expect("body");
    let ip = body
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .expect("c= line");
    let port = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split_whitespace().next())
        .expect("m= line");
    format!("{}:{}", ip.trim(), port).parse().expect("address")
}

/// A minimal UAC over UDP: INVITE with a G.711 offer, returns the 200 OK it got.
pub fn invite(peer: &UdpPeer, call_id: &str, user: &str) -> String {
    invite_with(peer, call_id, user, &offer(7078, 101))
}

pub fn invite_with(peer: &UdpPeer, call_id: &str, user: &str, sdp: &str) -> String {
    invite_expect(peer, call_id, user, sdp, "200 OK")
}

/// An INVITE from `peer`; the first response whose status line contains `status`.
pub fn invite_expect(peer: &UdpPeer, call_id: &str, user: &str, sdp: &str, status: &str) -> String {
    let port = peer.port();
    let msg = format!(
        "INVITE sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}i;rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Test\" <sip:caller@127.0.0.1>;tag=uac{call_id}\r\nTo: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:{port}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    peer.send(msg.as_bytes());
    peer.expect(status)
}

/// BYE from the caller in the dialog the 200 created; waits for its 200.
pub fn bye(peer: &UdpPeer, call_id: &str, ok: &str) {
    let port = peer.port();
    let to = header(ok, "To").expect("To in 200");
    let msg = format!(
        "BYE sip:openline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}b;rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Test\" <sip:caller@127.0.0.1>;tag=uac{call_id}\r\nTo: {to}\r\n\
         Call-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    peer.request(&msg, "200 OK");
}

/// An INFO in the caller's dialog with `body` of `content_type`; returns the final response.
pub fn info(
    peer: &UdpPeer,
    call_id: &str,
    ok: &str,
    cseq: u32,
    content_type: &str,
    body: &str,
) -> String {
    let port = peer.port();
    let to = header(ok, "To").expect("To in 200");
    let msg = format!(
        "INFO sip:openline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}i{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Test\" <sip:caller@127.0.0.1>;tag=uac{call_id}\r\nTo: {to}\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} INFO\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    peer.request(&msg, "SIP/2.0 ")
}

/// ACK for a 2xx (a new transaction, §13.2.2.4) — the To comes from the 200.
pub fn ack(peer: &UdpPeer, call_id: &str, ok: &str) {
    let port = peer.port();
    let to = header(ok, "To").expect("To in 200");
    let msg = format!(
        "ACK sip:openline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}a;rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Test\" <sip:caller@127.0.0.1>;tag=uac{call_id}\r\nTo: {to}\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    peer.send(msg.as_bytes());
}

/// Waits (up to 30 s) for the server's BYE to a caller whose RTP keeps flowing, and answers it.
pub fn answer_server_bye(sip: &UdpPeer, rtp: &mut rtp::RtpPeer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        rtp.converse(&[0; 160], &[]);
        if let Some(msg) = sip.recv()
            && msg.starts_with("BYE ")
        {
            answer_ok(sip, &msg);
            return;
        }
    }
    panic!("the server did not hang up on the caller");
}

/// Answers a request the server sent us (e.g. its BYE) with 200, mirroring its headers.
pub fn answer_ok(peer: &UdpPeer, request: &str) {
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for line in request.lines() {
            if let Some((n, v)) = line.split_once(':')
                && n.trim().eq_ignore_ascii_case(name)
            {
                out.push_str(&format!("{name}: {}\r\n", v.trim()));
            }
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    peer.send(out.as_bytes());
}

/// A fresh PostgreSQL database on the test cluster (`OPENLINE_TEST_POSTGRES_URL`), or None when no
/// cluster is configured — which fails instead when `OPENLINE_REQUIRE_POSTGRES=1` (CI).
pub fn postgres_database() -> Option<String> {
    use sqlx::Connection;
    let Ok(base) = std::env::var("OPENLINE_TEST_POSTGRES_URL") else {
        assert_ne!(
            std::env::var("OPENLINE_REQUIRE_POSTGRES").as_deref(),
            Ok("1"),
            "OPENLINE_REQUIRE_POSTGRES=1 but OPENLINE_TEST_POSTGRES_URL is not set"
        );
        eprintln!("skipped: OPENLINE_TEST_POSTGRES_URL is not set");
        return None;
    };
    let name = format!("openline_e2e_{}", uuid::Uuid::now_v7().simple());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut admin = sqlx::PgConnection::connect(&base).await.expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create database");
    });
    let (prefix, _) = base.rsplit_once('/').expect("URL with a database");
    Some(format!("{prefix}/{name}"))
}

/// Runs `test` on a fresh SQLite file and on a fresh PostgreSQL database (when one is
/// configured, see [`postgres_database`]); a failure panics naming the backend.
pub async fn on_both<F, Fut>(test: F)
where
    F: Fn(openline::store::Store, PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
{
    use openline::store::Store;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("openline.db").display());
    let store = Store::connect(&url).await.expect("sqlite");
    let result = test(store.clone(), dir.path().to_path_buf()).await;
    store.close().await;
    result.unwrap_or_else(|e| panic!("sqlite: {e}"));

    let Some(url) = tokio::task::spawn_blocking(postgres_database)
        .await
        .expect("join")
    else {
        return;
    };
    let store = Store::connect(&url).await.expect("postgres");
    let result = test(store.clone(), dir.path().to_path_buf()).await;
    store.close().await;
    result.unwrap_or_else(|e| panic!("postgres: {e}"));
}

/// A whole HTTP answer: status, headers (names lower-case) and the raw body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

/// One HTTP/1.1 request with arbitrary headers and body (Connection: close); the body is kept as
/// bytes (recordings) and de-chunked.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).expect("connect http");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw.get(split + 4..).unwrap_or_default().to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk_bytes(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk_bytes(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&body[..eol]);
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let rest = &body[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        body = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// A whole inbound call over UDP from `from_user` (with a quoted display name) to `to_user`:
/// INVITE, ACK, then our BYE after `hold`.
pub fn place_call(
    server: SocketAddr,
    call_id: &str,
    from_user: &str,
    display: &str,
    to_user: &str,
) {
    let peer = UdpPeer::new(server);
    let port = peer.port();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7078 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    let display = display.replace('\\', "\\\\").replace('"', "\\\"");
    let from = format!("\"{display}\" <sip:{from_user}@127.0.0.1>;tag=uac{call_id}");
    let invite = format!(
        "INVITE sip:{to_user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}i;rport\r\n\
         Max-Forwards: 70\r\nFrom: {from}\r\nTo: <sip:{to_user}@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:{from_user}@127.0.0.1:{port}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    let ok = peer.request(&invite, "200 OK");
    let to = header(&ok, "To").expect("To in 200").to_string();
    let ack = format!(
        "ACK sip:openline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}a;rport\r\n\
         Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    peer.send(ack.as_bytes());
    let bye = format!(
        "BYE sip:openline@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}b;rport\r\n\
         Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    peer.request(&bye, "200 OK");
}

/// Polls `path` (admin token) until `predicate` holds on the JSON answer.
pub fn wait_for_json(
    server: &Server,
    path: &str,
    what: &str,
    predicate: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = server.get(path);
        if status == 200 && predicate(&body) {
            return body;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}; last answer {status}: {body}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A small mono 16-bit 8 kHz WAV: `seconds` of a 440 Hz tone.
pub fn wav_bytes(seconds: u32) -> Vec<u8> {
    let rate = 8000u32;
    let samples = rate * seconds;
    let mut out = Vec::with_capacity(44 + samples as usize * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + samples * 2).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(samples * 2).to_le_bytes());
    for i in 0..samples {
        let t = i as f32 / rate as f32;
        let v = (t * 440.0 * std::f32::consts::TAU).sin() * 8000.0;
        out.extend_from_slice(&(v as i16).to_le_bytes());
    }
    out
}

/// Writes a WAV under the server's data directory and registers it as a complete recording of
/// `call_id` through the store (as the media engine will). Returns the recording id.
pub fn add_recording(
    server: &Server,
    call_id: &str,
    seconds: u32,
    database: Option<&str>,
) -> String {
    let data = server.dir.join("data");
    let id = uuid::Uuid::now_v7().to_string();
    let rel = format!("recordings/{id}.wav");
    std::fs::create_dir_all(data.join("recordings")).expect("mkdir");
    let bytes = wav_bytes(seconds);
    std::fs::write(data.join(&rel), &bytes).expect("write wav");
    let rec_id = id.clone();
    with_store(server, database, |store| async move {
        store
            .insert_recording(&openline::store::NewRecording {
                id: rec_id.clone(),
                call_id: call_id.into(),
                path: rel,
                format: "wav".into(),
                channels: 1,
                sample_rate: 8000,
                created_at: chrono::Utc::now(),
            })
            .await
            .expect("insert recording");
        store
            .recording_completed(
                &rec_id,
                i64::from(seconds) * 1000,
                bytes.len() as i64,
                chrono::Utc::now(),
            )
            .await
            .expect("complete recording");
    });
    id
}

/// Runs `f` on the running server's database (its SQLite file, or `database`) the way the runtime
/// writes to it, to seed rows the API then reads; returns what `f` returns.
pub fn with_store<T, Fut>(
    server: &Server,
    database: Option<&str>,
    f: impl FnOnce(openline::store::Store) -> Fut,
) -> T
where
    Fut: std::future::Future<Output = T>,
{
    let url = database.map(str::to_owned).unwrap_or_else(|| {
        let file = server.dir.join("data").join("openline.db");
        format!("sqlite://{}", file.display())
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = openline::store::Store::connect(&url).await.expect("store");
        let out = f(store.clone()).await;
        store.close().await;
        out
    })
}

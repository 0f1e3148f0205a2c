//! A second real softphone for whole-server tests: Linphone's console client (`linphonec` from
//! Debian's `linphone-cli`, liblinphone 5.1) as an operator. It does what baresip 1.0.0 cannot:
//! an attended transfer from the phone (`transfer <call> --to-call <call>` sends REFER with
//! `Replaces`, RFC 3891, on the first call naming the second).
//!
//! What running it headless takes, and why:
//! - liblinphone stays in `LinphoneGlobalStartup`, with no SIP socket at all, until its database
//!   directory exists: every instance gets its own `HOME` with `.local/share/linphone` in it.
//! - Commands go to linphonec's stdin, one per line; replies and call progress come on stdout
//!   (`stdbuf` keeps it line-buffered on a pipe), liblinphone's own log on stderr.
//! - `soundcard use files`: there is no sound device; the phone sends silence (the tests check
//!   the audio of the parties it connects, not its own).
//! - `autoanswer enable`: incoming calls are answered at once.
//! - A second call while one is up is refused ("Terminate or hold on the current call first"):
//!   `pause <id>` first, as a person would press *hold*.
//! - `calls` prints a table whose rows start with the call's id and name its state
//!   (`StreamsRunning`, `Paused`, …), or `No active call.`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Linphone {
    pub extension: String,
    home: tempfile::TempDir,
    child: Child,
    stdin: ChildStdin,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Linphone {
    /// Starts linphonec as `extension` and returns once the server says it is registered.
    /// Panics with its output when it is not registered within 20 s.
    pub fn start(extension: &str, password: &str, server_sip: SocketAddr) -> Linphone {
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(home.path().join(".local/share/linphone")).expect("mkdir db");
        let rc = home.path().join("linphonerc");
        std::fs::write(&rc, rc_file(free_udp_port(), free_rtp_port())).expect("write rc");
        let mut child = Command::new("stdbuf")
            .args(["-oL", "-eL", &linphonec_binary(), "-c"])
            .arg(&rc)
            .env("HOME", home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn stdbuf (coreutils)");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        read_lines(child.stdout.take().expect("stdout"), &lines);
        read_lines(child.stderr.take().expect("stderr"), &lines);
        let stdin = child.stdin.take().expect("stdin");
        let mut phone = Linphone {
            extension: extension.to_string(),
            home,
            child,
            stdin,
            lines,
        };
        phone.command("soundcard use files");
        phone.command("autoanswer enable");
        phone.command(&format!(
            "register sip:{extension}@{server_sip} sip:{server_sip} {password}"
        ));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen = phone.line_count();
            phone.command("proxy list");
            std::thread::sleep(Duration::from_millis(300));
            if phone
                .lines_since(seen)
                .iter()
                .any(|l| l.contains("registered: yes"))
            {
                return phone;
            }
            assert!(
                Instant::now() < deadline,
                "linphonec {extension} did not register; output:\n{}",
                phone.output()
            );
        }
    }

    /// Sends one command line to linphonec.
    pub fn command(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to linphonec");
        self.stdin.flush().expect("flush linphonec");
    }

    /// Waits until `calls` shows call `id` in `state` (e.g. `StreamsRunning`, `Paused`).
    pub fn wait_for_call(&mut self, id: u32, state: &str) {
        let prefix = format!("{id} ");
        self.wait_for_calls(&format!("call {id} {state}"), |rows| {
            rows.iter()
                .any(|r| r.starts_with(&prefix) && r.contains(state))
        });
    }

    /// Waits until the phone has no call left.
    pub fn wait_for_no_calls(&mut self) {
        self.wait_for_calls("no call", |rows| {
            rows.iter().any(|r| r.contains("No active call"))
        });
    }

    /// Polls `calls` (up to 30 s) until `done` holds for the lines it printed.
    fn wait_for_calls(&mut self, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = self.line_count();
            self.command("calls");
            std::thread::sleep(Duration::from_millis(300));
            let rows: Vec<String> = self
                .lines_since(seen)
                .iter()
                .map(|l| l.trim_start_matches("linphonec>").trim().to_string())
                .collect();
            if done(&rows) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "linphonec {}: no {what} within 30 s; output:\n{}",
                self.extension,
                self.output()
            );
        }
    }

    fn line_count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    fn lines_since(&self, from: usize) -> Vec<String> {
        self.lines.lock().unwrap()[from..].to_vec()
    }

    /// Everything linphonec printed so far, liblinphone's log lines left out.
    pub fn output(&self) -> String {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| !l.contains("-message-") && !l.contains("-warning-"))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        let _ = self.command_quietly("quit");
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- linphonec {} output ({}) ----\n{}",
                self.extension,
                self.home.path().display(),
                self.output()
            );
        }
    }
}

impl Linphone {
    fn command_quietly(&mut self, line: &str) -> std::io::Result<()> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()
    }
}

/// UDP SIP only, on `sip_port`; RTP from `rtp_port`, clear of the server's (20000-42000) and
/// baresip's (44000-49998) ranges; no video; no echo canceller (no sound device).
fn rc_file(sip_port: u16, rtp_port: u16) -> String {
    format!(
        "[sip]\nsip_port={sip_port}\nsip_tcp_port=0\nsip_tls_port=0\nregister_only_when_network_is_up=0\n\
         [rtp]\naudio_rtp_port={rtp_port}\n\
         [video]\nenabled=0\ncapture=0\ndisplay=0\nautomatically_initiate=0\nautomatically_accept=0\n\
         [sound]\nechocancellation=0\n"
    )
}

fn read_lines(stream: impl Read + Send + 'static, lines: &Arc<Mutex<Vec<String>>>) {
    let lines = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
}

/// linphonec's path, or a panic saying how to install it.
fn linphonec_binary() -> String {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("linphonec"))
        .find(|path| path.is_file())
        .map(|path| path.display().to_string())
        .expect("linphonec must be installed (scripts/test.sh installs Debian's linphone-cli)")
}

fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").port()
}

/// An even port with its odd neighbour free (RTP and RTCP), in 50000-59998.
fn free_rtp_port() -> u16 {
    loop {
        let port = 50000 + (rand_u16() % 5000) * 2;
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port + 1)).is_ok()
        {
            return port;
        }
    }
}

fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    (nanos ^ std::process::id()) as u16
}

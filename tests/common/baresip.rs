//! A real softphone for whole-server tests: baresip (Debian bookworm ships 1.0.0) as an operator,
//! headless. Each instance gets its own config directory, SIP port and control port; it registers
//! with digest auth, plays a WAV as its microphone and writes what it hears to a WAV per call.
//!
//! What works in baresip 1.0.0 and why:
//! - Modules are listed one by one from `module_path` (no `alsa`, `pulse` or video): `g711` (PCMU,
//!   PCMA), `aufile` (a WAV as the audio *source*; this version has no aufile player), `sndfile`
//!   (an audio filter that dumps every call's encoded and decoded audio to
//!   `dump-<time>-enc.wav` / `-dec.wav`, which is our recorder), `account`, `menu` (the commands and
//!   the answer modes) and `ctrl_tcp` (commands and JSON events as netstrings over TCP). No audio
//!   player is configured: decoding and the sndfile filter run without one. `stdio` is left out: it
//!   fails on a stdin that is not a terminal.
//! - `aufile` accepts only 16-bit mono WAVs at the codec rate (8 kHz for G.711) and does not loop:
//!   at the end of the file `menu` hangs the call up. The harness therefore repeats the WAV to
//!   `MIC_SECONDS`.
//! - libre 1.1.0 gives up on a REGISTER challenge it cannot answer (ENOSYS on `algorithm=SHA-256`)
//!   even when an MD5 challenge is also offered, so the server under test must offer MD5 only:
//!   `[sip] digest_algorithms = ["MD5"]` (`BARESIP_SERVER_CONFIG`).
//! - Registration shows on stdout as `101@127.0.0.1: {0/UDP/v4} 200 OK (…) [1 binding]`; a failure
//!   as `reg: sip:…: 403 Forbidden`. Call events come from `ctrl_tcp`, which only reaches clients
//!   connected at the time, so the harness connects before it reports the phone as ready.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Server configuration every test with baresip needs (see the module notes on libre's digest).
pub const BARESIP_SERVER_CONFIG: &str = "[sip]\ndigest_algorithms = [\"MD5\"]\n";

/// How long the looped microphone WAV lasts; a call must end before it runs out.
const MIC_SECONDS: usize = 300;

/// How the phone answers an incoming call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// At once, with 200 OK.
    Auto,
    /// It rings (180) until `Baresip::answer` or a CANCEL.
    Manual,
}

#[derive(Debug, Clone)]
pub struct BaresipConfig {
    pub extension: String,
    pub password: String,
    /// The server's SIP address; the phone registers there and sends everything there.
    pub server_sip: SocketAddr,
    /// 8 kHz mono 16-bit WAV, played as the microphone, repeated while the call lasts.
    pub play_wav: PathBuf,
    pub answer: Answer,
}

/// One `ctrl_tcp` event. Calls go `CALL_INCOMING` (manual answer only; an auto-answered call starts
/// at `CALL_ESTABLISHED`), `CALL_ESTABLISHED`, `CALL_CLOSED`, whose `param` is the reason:
/// `Connection reset by peer` for the other side's BYE *and* CANCEL (look at `received_requests` to
/// tell them apart), `Connection reset by user` after our own `hangup`.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: String,
    pub param: String,
    /// The SIP Call-ID of the call the event is about (empty for others).
    pub call_id: String,
}

#[derive(Default)]
struct Shared {
    /// stdout and stderr, ANSI colours removed.
    lines: Vec<String>,
    events: Vec<Event>,
    responses: Vec<serde_json::Value>,
    /// Either output stream ended: the process is gone.
    exited: bool,
}

type Log = Arc<(Mutex<Shared>, Condvar)>;

pub struct Baresip {
    pub config: BaresipConfig,
    /// Where baresip listens for SIP (UDP and TCP).
    pub sip: SocketAddr,
    dir: tempfile::TempDir,
    child: Child,
    control: TcpStream,
    log: Log,
    next_token: u32,
}

impl Baresip {
    /// Starts baresip and returns once it is registered and its control channel is connected.
    /// Panics with baresip's output when it is not registered within 20 s.
    pub fn start(config: BaresipConfig) -> Baresip {
        // Ports are picked free and released before baresip binds them: on the rare clash with
        // another test, baresip exits at once and we try again on new ports.
        let mut attempt = 1;
        loop {
            match Self::try_start(&config) {
                Ok(phone) => return phone,
                Err(output) if attempt < 3 && output.contains("Address already in use") => {
                    attempt += 1;
                }
                Err(output) => {
                    let hint = if output.contains("Register: Function not implemented") {
                        "\n(a SHA-256 digest challenge? the server needs BARESIP_SERVER_CONFIG)"
                    } else {
                        ""
                    };
                    panic!("baresip did not start{hint}; output:\n{output}")
                }
            }
        }
    }

    fn try_start(config: &BaresipConfig) -> Result<Baresip, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let sip_port = free_udp_and_tcp_port();
        let ctrl_port = free_tcp_port();
        let mic = dir.path().join("mic.wav");
        loop_wav(&config.play_wav, &mic, MIC_SECONDS);
        let records = dir.path().join("records");
        std::fs::create_dir_all(&records).expect("mkdir records");
        std::fs::write(
            dir.path().join("config"),
            config_file(sip_port, ctrl_port, &mic, &records),
        )
        .expect("write config");
        let answer = match config.answer {
            Answer::Auto => "auto",
            Answer::Manual => "manual",
        };
        std::fs::write(
            dir.path().join("accounts"),
            format!(
                "<sip:{}@{}>;auth_pass={};answermode={answer};regint=600;audio_codecs=pcmu,pcma;ptime=20\n",
                config.extension, config.server_sip, config.password
            ),
        )
        .expect("write accounts");

        // baresip logs through stdio without flushing: on a pipe its lines would sit in a 4 KiB
        // buffer, so stdbuf makes stdout line-buffered. -v: debug lines (media set-up); -s: every
        // SIP message sent and received.
        let mut child = Command::new("stdbuf")
            .args(["-oL", "-eL", &baresip_binary(), "-v", "-s", "-f"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn stdbuf (coreutils)");
        let log: Log = Arc::default();
        read_lines(child.stdout.take().expect("stdout"), &log);
        read_lines(child.stderr.take().expect("stderr"), &log);

        let registered = wait(&log, Duration::from_secs(20), |s| {
            if let Some(line) = s.lines.iter().find(|l| l.starts_with("reg: ")) {
                return Some(Err(line.clone()));
            }
            if s.lines.iter().any(|l| l.contains("} 200 ")) {
                return Some(Ok(()));
            }
            s.exited.then(|| Err("baresip exited".to_string()))
        });
        let fail = |child: &mut Child, why: &str| {
            let _ = child.kill();
            let _ = child.wait();
            format!("{why}\n{}", output_of(&log))
        };
        match registered {
            Some(Ok(())) => {}
            Some(Err(why)) => return Err(fail(&mut child, &why)),
            None => return Err(fail(&mut child, "not registered within 20 s")),
        }
        let control = match TcpStream::connect(("127.0.0.1", ctrl_port)) {
            Ok(stream) => stream,
            Err(e) => return Err(fail(&mut child, &format!("ctrl_tcp: {e}"))),
        };
        read_netstrings(control.try_clone().expect("clone"), &log);
        Ok(Baresip {
            config: config.clone(),
            sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
            dir,
            child,
            control,
            log,
            next_token: 0,
        })
    }

    /// Sends a `ctrl_tcp` command (`hangup`, `accept`, `dial sip:…`) and returns its response's
    /// `data` text; panics when baresip answers `ok: false` or not at all.
    pub fn command(&mut self, command: &str, params: &str) -> String {
        self.next_token += 1;
        let token = format!("t{}", self.next_token);
        let body =
            serde_json::json!({ "command": command, "params": params, "token": token }).to_string();
        self.control
            .write_all(format!("{}:{body},", body.len()).as_bytes())
            .expect("write ctrl_tcp");
        let response = wait(&self.log, Duration::from_secs(10), |s| {
            s.responses.iter().find(|r| r["token"] == token).cloned()
        })
        .unwrap_or_else(|| panic!("no answer to `{command}`; output:\n{}", self.output()));
        assert_eq!(
            response["ok"],
            true,
            "`{command}` failed: {response}; output:\n{}",
            self.output()
        );
        response["data"].as_str().unwrap_or_default().to_string()
    }

    /// Hangs up the current call (BYE, or CANCEL/486 while it rings) and waits for it to close.
    pub fn hangup(&mut self) {
        let closed = self.count("CALL_CLOSED");
        self.command("hangup", "");
        self.wait_for_event_after("CALL_CLOSED", closed);
    }

    /// Answers the ringing call (manual answer mode) and waits until it is established.
    pub fn answer(&mut self) {
        let established = self.count("CALL_ESTABLISHED");
        self.command("accept", "");
        self.wait_for_event_after("CALL_ESTABLISHED", established);
    }

    /// Every `ctrl_tcp` event so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.log.0.lock().expect("log").events.clone()
    }

    /// The kinds of the call-state events so far, e.g. `["CALL_INCOMING", "CALL_CLOSED"]` (media
    /// events such as `CALL_RTPESTAB`, `CALL_RTCP` and `CALL_LOCAL_SDP` left out).
    pub fn call_events(&self) -> Vec<String> {
        const STATES: [&str; 5] = [
            "CALL_INCOMING",
            "CALL_RINGING",
            "CALL_PROGRESS",
            "CALL_ESTABLISHED",
            "CALL_CLOSED",
        ];
        self.events()
            .into_iter()
            .filter(|e| STATES.contains(&e.kind.as_str()))
            .map(|e| e.kind)
            .collect()
    }

    /// The start lines of the SIP requests the phone received, in order (from baresip's `-s`
    /// trace), e.g. `["INVITE sip:101@127.0.0.1:5062 SIP/2.0", "CANCEL sip:… SIP/2.0"]`.
    pub fn received_requests(&self) -> Vec<String> {
        requests_to(&self.log.0.lock().expect("log").lines, self.sip)
    }

    /// Waits (up to 30 s) until the phone has received a `method` request; returns its start line.
    /// The trace comes on stdout, which may lag behind `ctrl_tcp`'s events.
    pub fn wait_for_request(&self, method: &str) -> String {
        let prefix = format!("{method} ");
        wait(&self.log, Duration::from_secs(30), |s| {
            requests_to(&s.lines, self.sip)
                .into_iter()
                .find(|r| r.starts_with(&prefix))
        })
        .unwrap_or_else(|| {
            panic!(
                "baresip {}: no {method} received; requests {:?}",
                self.config.extension,
                self.received_requests()
            )
        })
    }

    fn count(&self, kind: &str) -> usize {
        self.events().iter().filter(|e| e.kind == kind).count()
    }

    /// Waits (up to 30 s) for the first event of `kind`, including one that already came.
    pub fn wait_for_event(&self, kind: &str) -> Event {
        self.wait_for_event_after(kind, 0)
    }

    /// Waits (up to 30 s) for an event of `kind` beyond the first `seen` ones.
    pub fn wait_for_event_after(&self, kind: &str, seen: usize) -> Event {
        wait(&self.log, Duration::from_secs(30), |s| {
            s.events
                .iter()
                .filter(|e| e.kind == kind)
                .nth(seen)
                .cloned()
        })
        .unwrap_or_else(|| {
            panic!(
                "baresip {}: no {kind} event; events {:?}; output:\n{}",
                self.config.extension,
                self.call_events(),
                self.output()
            )
        })
    }

    /// What the phone heard on its last call (sndfile's decode dump). Complete once the call is
    /// closed: libsndfile writes the WAV header when the call ends. The file is named after the
    /// second the call started, so two calls started within one second share it.
    pub fn received_wav(&self) -> PathBuf {
        self.last_dump("decode")
    }

    /// What the phone sent on its last call (sndfile's encode dump, before G.711).
    pub fn sent_wav(&self) -> PathBuf {
        self.last_dump("encode")
    }

    fn last_dump(&self, which: &str) -> PathBuf {
        let prefix = format!("sndfile: dumping {which} audio to ");
        let log = self.log.0.lock().expect("log");
        log.lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("no call was recorded; output:\n{}", joined(&log.lines)))
    }

    /// Everything baresip printed so far.
    pub fn output(&self) -> String {
        output_of(&self.log)
    }

    /// The instance's config directory (config, accounts, mic.wav, records/).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- baresip {} output ----\n{}",
                self.config.extension,
                self.output()
            );
        }
    }
}

fn config_file(sip_port: u16, ctrl_port: u16, mic: &Path, records: &Path) -> String {
    let module_path = ["/usr/lib/baresip/modules", "/usr/local/lib/baresip/modules"]
        .into_iter()
        .find(|p| Path::new(p).join("g711.so").exists())
        .unwrap_or("/usr/lib/baresip/modules");
    // `net_interface` takes an address here: it keeps SDP and Contact on 127.0.0.1. RTP ports
    // stay clear of the server's (20000-42000, see `Server::start`).
    format!(
        "poll_method\t\tepoll
sip_listen\t\t127.0.0.1:{sip_port}
net_interface\t\t127.0.0.1
call_local_timeout\t120
call_max_calls\t\t4
audio_source\t\taufile,{mic}
ausrc_format\t\ts16
auplay_format\t\ts16
auenc_format\t\ts16
audec_format\t\ts16
rtp_ports\t\t44000-49998
rtcp_mux\t\tno
jitter_buffer_delay\t1-10
module_path\t\t{module_path}
module\t\t\tg711.so
module\t\t\taufile.so
module\t\t\tsndfile.so
module_tmp\t\taccount.so
module_app\t\tmenu.so
module_app\t\tctrl_tcp.so
ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}
snd_path\t\t{records}
statmode_default\toff
ringback_disabled\tyes
",
        mic = mic.display(),
        records = records.display(),
    )
}

/// Repeats an 8 kHz mono 16-bit WAV to at least `seconds` (aufile stops at the end of its file).
fn loop_wav(source: &Path, target: &Path, seconds: usize) {
    let reader = hound::WavReader::open(source)
        .unwrap_or_else(|e| panic!("play_wav {}: {e}", source.display()));
    let spec = reader.spec();
    assert!(
        spec.sample_rate == 8000
            && spec.channels == 1
            && spec.bits_per_sample == 16
            && spec.sample_format == hound::SampleFormat::Int,
        "baresip's aufile plays only 8 kHz mono 16-bit WAVs; {} is {spec:?}",
        source.display()
    );
    let samples: Vec<i16> = reader
        .into_samples::<i16>()
        .collect::<Result<_, _>>()
        .expect("read play_wav");
    assert!(!samples.is_empty(), "{} is empty", source.display());
    let looped: Vec<i16> = samples
        .iter()
        .copied()
        .cycle()
        .take((8000 * seconds).div_ceil(samples.len()) * samples.len())
        .collect();
    write_wav(target, &looped);
}

/// Writes 8 kHz mono 16-bit samples as a WAV (what baresip's aufile plays).
pub fn write_wav(path: &Path, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create wav");
    for s in samples {
        writer.write_sample(*s).expect("write sample");
    }
    writer.finalize().expect("finalize wav");
}

/// The samples of a mono 16-bit WAV (e.g. `Baresip::received_wav`).
pub fn read_wav(path: &Path) -> Vec<i16> {
    hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_samples::<i16>()
        .collect::<Result<_, _>>()
        .expect("read wav")
}

/// baresip's path, or a panic saying how to install it.
fn baresip_binary() -> String {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("baresip"))
        .find(|path| path.is_file())
        .map(|path| path.display().to_string())
        .expect("baresip must be installed (scripts/test.sh installs Debian's baresip-core)")
}

/// A port free for both UDP and TCP (baresip listens for SIP on both).
fn free_udp_and_tcp_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn free_tcp_port() -> u16 {
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind");
    tcp.local_addr().expect("addr").port()
}

/// Waits until `check` returns something, re-checking whenever the log changes.
fn wait<T>(log: &Log, timeout: Duration, mut check: impl FnMut(&Shared) -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let (lock, changed) = &**log;
    let mut shared = lock.lock().expect("log");
    loop {
        if let Some(found) = check(&shared) {
            return Some(found);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        shared = changed.wait_timeout(shared, left).expect("log").0;
    }
}

fn update(log: &Log, change: impl FnOnce(&mut Shared)) {
    let (lock, changed) = &**log;
    change(&mut lock.lock().expect("log"));
    changed.notify_all();
}

fn read_lines(stream: impl Read + Send + 'static, log: &Log) {
    let log = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).split(b'\n').map_while(Result::ok) {
            let line = strip_ansi(&String::from_utf8_lossy(&line));
            update(&log, |s| s.lines.push(line));
        }
        update(&log, |s| s.exited = true);
    });
}

/// Reads `ctrl_tcp`'s netstrings (`<length>:<json>,`): events and command responses.
fn read_netstrings(stream: TcpStream, log: &Log) {
    let log = log.clone();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        loop {
            let mut length = Vec::new();
            if reader.read_until(b':', &mut length).unwrap_or(0) == 0 {
                return;
            }
            let Ok(n) = String::from_utf8_lossy(&length)
                .trim_end_matches(':')
                .trim()
                .parse::<usize>()
            else {
                return;
            };
            let mut body = vec![0u8; n + 1];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let Ok(message) = serde_json::from_slice::<serde_json::Value>(&body[..n]) else {
                continue;
            };
            let text = |key: &str| message[key].as_str().unwrap_or_default().to_string();
            if message["event"] == true {
                let event = Event {
                    kind: text("type"),
                    param: text("param"),
                    call_id: text("id"),
                };
                update(&log, |s| s.events.push(event));
            } else if message["response"] == true {
                update(&log, |s| s.responses.push(message));
            }
        }
    });
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC '[' parameters, then one final byte in '@'..='~'.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

/// Start lines of the requests in a `-s` trace that went to `us` (each message follows a line
/// `UDP <from> -> <to>`).
fn requests_to(lines: &[String], us: SocketAddr) -> Vec<String> {
    let to_us = format!(" -> {us}");
    lines
        .windows(2)
        .filter(|w| w[0].starts_with("UDP ") && w[0].ends_with(&to_us))
        .map(|w| w[1].clone())
        .filter(|start| !start.starts_with("SIP/2.0 "))
        .collect()
}

fn output_of(log: &Log) -> String {
    joined(&log.0.lock().expect("log").lines)
}

fn joined(lines: &[String]) -> String {
    lines.join("\n")
}

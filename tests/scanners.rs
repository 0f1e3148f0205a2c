//! Scanners and brute force with the tools attackers use: SIPVicious svwar (extension
//! enumeration by REGISTER, INVITE and OPTIONS) and svcrack (password guessing), both as they
//! ship ("friendly-scanner") and disguised as a softphone. scripts/test.sh installs SIPVicious
//! 0.3.8 into a virtualenv and names its python in `OPENLINE_SIPVICIOUS_PYTHON`.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::process::Command;

/// The python that has SIPVicious.
fn python() -> String {
    let python = std::env::var("OPENLINE_SIPVICIOUS_PYTHON").unwrap_or_else(|_| "python3".into());
    let found = Command::new(&python)
        .args(["-c", "import sipvicious"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "SIPVicious is missing: scripts/test.sh installs it (pip install sipvicious==0.3.8)"
    );
    python
}

/// Runs `tool` (svwar, svcrack) against the server; `disguised` swaps its User-Agent.
fn sipvicious(server: &Server, disguised: bool, tool: &str, args: &[&str]) -> String {
    let target = format!("udp://{}", server.sip);
    let mut command = Command::new(python());
    if disguised {
        command.arg(data_path("sipvicious/disguised.py")).arg(tool);
    } else {
        command.args(["-m", &format!("sipvicious.{tool}")]);
    }
    let output = command
        .args(args)
        .arg(&target)
        // Its session files (-s) and dbm caches go to a scratch HOME.
        .env("HOME", server.dir.join("sipvicious-home"))
        .output()
        .expect("run sipvicious");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    eprintln!("--- {tool} {args:?} (disguised: {disguised})\n{text}");
    text
}

/// The rows of a SIPVicious result table: `| 101 | reqauth |` → ("101", "reqauth").
fn table(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            match cells.as_slice() {
                ["", first, second, ""] if first.chars().all(|c| c.is_ascii_digit()) => {
                    Some((first.to_string(), second.to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

/// 101 and 102 exist; 100, 103–110 and 999 do not. Whatever svwar finds must be the same for
/// all of them: nothing, or every one with the same answer.
#[test]
fn svwar_cannot_tell_existing_extensions_from_missing_ones() {
    let server = Server::start("");
    let range = "100-110,999";
    let scanned: Vec<String> = (100..=110)
        .map(|n| n.to_string())
        .chain(["999".into()])
        .collect();
    for method in ["REGISTER", "INVITE", "OPTIONS"] {
        for disguised in [false, true] {
            let sent = |s: &Server| s.metric("openline_sip_messages_sent_total{transport=\"udp\"}");
            let before = sent(&server);
            let out = sipvicious(
                &server,
                disguised,
                "svwar",
                &["--force", "-e", range, "-m", method],
            );
            assert!(!out.contains("Traceback"), "svwar crashed: {out}");
            // Disguised, it is answered (so "nothing found" means the answers could not tell
            // extensions apart, not that it heard nothing; for REGISTER svwar sees its bogus
            // extension challenged like any other and stops after two requests).
            if disguised {
                let answers = sent(&server) - before;
                assert!(answers >= 2.0, "{method}: only {answers} answers to svwar");
            }
            let found = table(&out);
            let kinds: std::collections::BTreeSet<&String> = found.values().collect();
            let all = found.keys().cloned().collect::<Vec<_>>() == scanned;
            assert!(
                found.is_empty() || (all && kinds.len() == 1),
                "{method} (disguised: {disguised}): svwar told extensions apart: {found:?}"
            );
        }
    }
    // Every request above was answered the same or not at all: the server is still fine.
    let peer = UdpPeer::new(server.sip);
    peer.request(&options(peer.port(), "after-svwar"), "SIP/2.0 200 OK");
}

/// A password list of 30 wrong guesses and then the right one: svcrack never gets to it. The
/// fifth failure for (source, 101) gets 403, and from then on that pair gets no answer at all
/// (svcrack gives up instead of spinning on 403s); the block is in the API and the metrics; the
/// operator registers from another address meanwhile, and after an admin lifts the block, from
/// this one again.
#[test]
fn svcrack_is_cut_off_and_the_operator_still_registers() {
    let server = Server::start("");
    let dictionary = server.dir.join("passwords.txt");
    let mut words: Vec<String> = (1..=30).map(|i| format!("guess-{i}")).collect();
    words.push("s3cret-101".into());
    std::fs::write(&dictionary, words.join("\n") + "\n").unwrap();
    let dictionary = dictionary.display().to_string();

    // As shipped, its REGISTERs are not even answered.
    let out = sipvicious(&server, false, "svcrack", &["-u", "101", "-d", &dictionary]);
    assert!(table(&out).is_empty(), "{out}");
    // Disguised, it gets five challenges' worth of tries, then 403s.
    let out = sipvicious(&server, true, "svcrack", &["-u", "101", "-d", &dictionary]);
    assert!(
        !out.contains("s3cret-101"),
        "svcrack found the password: {out}"
    );
    assert!(table(&out).is_empty(), "{out}");

    let (status, blocks) = server.get("/api/v1/sip/blocks");
    assert_eq!(status, 200, "{blocks}");
    let items = blocks["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|b| b["ip"] == "127.0.0.1" && b["user"] == "101" && b["until"].is_string()),
        "{blocks}"
    );
    assert_eq!(
        server.metric("openline_sip_auth_blocks{kind=\"user\"}"),
        1.0
    );
    // A REGISTER for 101 from the blocked source gets no challenge, nor any answer.
    let peer = UdpPeer::new(server.sip);
    peer.send(register_request(&peer, "101", 1).as_bytes());
    assert_eq!(peer.recv(), None, "a blocked pair gets no answer");
    // Its other users are not blocked: 102 is still challenged.
    let answer = peer.request(&register_request(&peer, "102", 2), "SIP/2.0");
    assert!(answer.starts_with("SIP/2.0 401"), "{answer}");
    // The operator's phone at another address is not affected.
    common::phone::Phone::register_from(server.sip, "127.0.0.2", "101", "s3cret-101");

    let (status, _) = server.request("DELETE", "/api/v1/sip/blocks/127.0.0.1", Some(ADMIN_TOKEN));
    assert_eq!(status, 204);
    let (status, body) =
        server.request("DELETE", "/api/v1/sip/blocks/127.0.0.1", Some(ADMIN_TOKEN));
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &"sip.not_blocked".into())
    );
    common::phone::Phone::register(server.sip, "101", "s3cret-101");
}

/// svcrack walking extensions from one address: once wrong passwords were given for
/// `max_failed_users_per_source` users (5 here, 20 by default) the whole address is ignored (no
/// answer, no transaction), whatever it asks; other addresses are served.
#[test]
fn a_source_guessing_many_extensions_is_ignored_as_a_whole() {
    let server = Server::start("[sip]\nmax_failed_users_per_source = 5\n");
    let dictionary = server.dir.join("passwords.txt");
    let words: Vec<String> = (1..=2).map(|i| format!("guess-{i}")).collect();
    std::fs::write(&dictionary, words.join("\n") + "\n").unwrap();
    let dictionary = dictionary.display().to_string();
    // Five extensions × two guesses: five users, none reaching the per-user limit of five tries.
    for user in ["101", "102", "103", "104", "105"] {
        sipvicious(&server, true, "svcrack", &["-u", user, "-d", &dictionary]);
    }
    let (_, blocks) = server.get("/api/v1/sip/blocks");
    assert!(
        blocks["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["ip"] == "127.0.0.1" && b["user"].is_null()),
        "{blocks}"
    );
    let peer = UdpPeer::new(server.sip);
    peer.send(options(peer.port(), "from-blocked").as_bytes());
    assert_eq!(peer.recv(), None, "a blocked source gets no answer");
    assert!(server.metric("openline_sip_blocked_dropped_total ") >= 1.0);
    let other = UdpPeer::bound("127.0.0.2", server.sip);
    other.request(&options(other.port(), "from-elsewhere"), "SIP/2.0 200 OK");
}

/// A REGISTER for `ext` without credentials from `peer`.
fn register_request(peer: &UdpPeer, ext: &str, cseq: u32) -> String {
    let port = peer.port();
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKsv{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{ext}@127.0.0.1>;tag=sv{cseq}\r\nTo: <sip:{ext}@127.0.0.1>\r\n\
         Call-ID: sv-{port}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{ext}@127.0.0.1:{port}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

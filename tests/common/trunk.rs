//! SIPp standing in for a carrier's trunk (`tests/data/trunk_uas_auth.xml`): it challenges the
//! first INVITE, takes the second with the right credentials, rings 2 s, answers, echoes the
//! audio back, and ends at our BYE.

use super::{data_path, free_media_port, free_port};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// SIPp standing in for the carrier, logging every message it gets to `trunk_messages.log`.
pub struct Trunk {
    sipp: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Trunk {
    pub fn start(dir: &std::path::Path) -> Trunk {
        let port = free_port();
        let media = free_media_port();
        let log = dir.join("trunk_messages.log");
        let sipp = Command::new("sipp")
            .current_dir(dir)
            .args(["-sf", data_path("trunk_uas_auth.xml").to_str().unwrap()])
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-mp", &media.to_string(), "-rtp_echo", "-m", "1"])
            .args(["-nostdin", "-timeout", "60", "-timeout_error"])
            .args(["-trace_msg", "-message_file"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp must be installed (scripts/test.sh installs Debian's sip-tester)");
        Trunk { sipp, port, log }
    }

    pub fn config(&self) -> String {
        format!(
            "[[trunks]]\nname = \"carrier\"\nproxy = \"127.0.0.1:{}\"\n\
             username = \"acme\"\npassword = \"trunk-pass\"\nrealm = \"carrier\"\nfrom_user = \"442071234567\"\n\n\
             [dialplan]\nexternal = {{ prefix = \"9\", trunk = \"carrier\" }}\n",
            self.port
        )
    }

    pub fn seen(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the scenario's end and checks what the trunk saw: a challenged INVITE for
    /// `number` (without the prefix), then one with the right credentials.
    pub fn check_finished(&mut self, number: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.sipp.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the trunk stand-in did not finish"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let seen = self.seen();
        assert!(
            status.success(),
            "the trunk's scenario failed ({status}):\n{seen}"
        );
        let request_line = format!("INVITE sip:{number}@127.0.0.1:{} SIP/2.0", self.port);
        // One INVITE per CSeq (a UDP retransmission of one is the same request).
        let mut invites: Vec<&str> = seen
            .split("\n\n")
            .filter(|m| m.contains(&request_line))
            .collect();
        invites.dedup_by_key(|m| m.lines().find(|l| l.starts_with("CSeq:")));
        assert_eq!(invites.len(), 2, "challenged once, answered once:\n{seen}");
        assert!(!invites[0].contains("Authorization:"), "{}", invites[0]);
        let second = invites[1];
        assert!(
            second.contains("Authorization: Digest username=\"acme\""),
            "{second}"
        );
        assert!(second.contains("opaque=\"op42\""), "{second}");
        assert!(second.contains("CSeq: 2 INVITE"), "{second}");
        assert!(
            second.contains("<sip:442071234567@"),
            "the trunk's caller id:\n{second}"
        );
    }
}

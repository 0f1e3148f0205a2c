//! Known SIP scanner and attack-tool User-Agents (RFC 3261 §20.41 User-Agent): such requests get no challenge.

/// Lowercase substrings identifying scanners and attack tools:
///
/// - `friendly-scanner`: SIPVicious svmap/svwar default User-Agent.
/// - `sipvicious`: SIPVicious (newer versions name themselves).
/// - `sipcli/`: sipcli brute-forcer (`sipcli/v1.8`); with the slash so "SipClient" apps are not caught.
/// - `sip-scan`, `sipscan`: sip-scan and similar sweepers.
/// - `vaxsipuseragent`: VaxSIP SDK as used by brute-force tools.
/// - `iwar`: iWar war-dialer.
/// - `sundayddr`: scanner seen in honeypot logs.
/// - `sipexploiter`: SIPExploiter.
/// - `pplsip`: PPLSIP scanner.
/// - `siparmyknife`: SIP Army Knife fuzzer.
/// - `sivus`: SiVuS vulnerability scanner.
///
/// Deliberately absent: `sipsak` (a legitimate test tool) and generic names such as
/// `Cisco-SIPGateway/IOS-12.x` or `Asterisk PBX` that real equipment sends.
const SCANNER_USER_AGENTS: &[&str] = &[
    "friendly-scanner",
    "sipvicious",
    "sipcli/",
    "sip-scan",
    "sipscan",
    "vaxsipuseragent",
    "iwar",
    "sundayddr",
    "sipexploiter",
    "pplsip",
    "siparmyknife",
    "sivus",
];

/// True if `user_agent` contains, case-insensitively, one of the known scanner names above.
pub fn is_scanner_user_agent(user_agent: &str) -> bool {
    let ua = user_agent.to_ascii_lowercase();
    SCANNER_USER_AGENTS.iter().any(|s| ua.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanners_detected() {
        for ua in [
            "friendly-scanner",
            "Friendly-Scanner",
            "sipvicious",
            "SIPVicious/0.3.4",
            "sipcli/v1.8",
            "sip-scan",
            "VaxSIPUserAgent/3.1",
            "iWar",
            "sundayddr",
            "SIPExploiter",
            "pplsip",
            "  friendly-scanner  ",
        ] {
            assert!(is_scanner_user_agent(ua), "{ua}");
        }
    }

    #[test]
    fn legitimate_agents_pass() {
        for ua in [
            "",
            "Linphone/5.0",
            "baresip v2.0",
            "PolycomVVX-VVX_411-UA/6.3.0",
            "Cisco-SIPGateway/IOS-12.x",
            "sipsak 0.9.8",
            "MicroSIP/3.21.3",
            "Zoiper rv2.10",
            "Yealink SIP-T46S 66.86.0.15",
            "Grandstream GXP2170 1.0.11",
            "Asterisk PBX 20.5.0",
            "FreeSWITCH-mod_sofia/1.10",
            "MySipClient 1.0",
            "Bria 6 release 6.5",
            "ünïcødé",
        ] {
            assert!(!is_scanner_user_agent(ua), "{ua}");
        }
    }
}

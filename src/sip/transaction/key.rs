//! Keys that match messages to transactions: RFC 3261 §17.1.3 (client side) and §17.2.3 (server side,
//! including the fallback for RFC 2543 peers whose branch lacks the magic cookie).

/// Prefix of every RFC 3261 branch (§8.1.1.7). A branch without it comes from an RFC 2543 peer.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Identifies one transaction in the owner's table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    /// The top Via branch, compared exactly (case-sensitive). For RFC 2543 keys, the fields that stand in
    /// for it.
    pub branch: String,
    /// The top Via sent-by, lowercased (hosts are case-insensitive; ports are digits). Empty on client keys:
    /// we generated the branch, so it is unique on its own. For RFC 2543 keys, the whole top Via.
    pub sent_by: String,
    pub method: KeyMethod,
}

/// The method part of a key. ACK never has a transaction of its own: on the server side it maps to the
/// INVITE it acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyMethod {
    Invite,
    Other(String),
}

impl KeyMethod {
    /// Methods are case-sensitive (§7.1): only `INVITE` is INVITE.
    pub fn of(method: &str) -> Self {
        match method {
            "INVITE" => Self::Invite,
            other => Self::Other(other.to_owned()),
        }
    }

    /// §17.2.3: a request matches a server transaction by method, except that an ACK matches the INVITE.
    fn of_server_request(method: &str) -> Self {
        match method {
            "ACK" => Self::Invite,
            other => Self::of(other),
        }
    }
}

impl TransactionKey {
    /// Server side key of an incoming request (§17.2.3). ACK maps to the INVITE key, so an ACK for a non-2xx
    /// finds its INVITE server transaction. CANCEL keeps its own key (it is its own non-INVITE transaction);
    /// the owner finds the INVITE it cancels with [`Self::for_cancel_target`].
    pub fn server(branch: &str, sent_by: &str, method: &str) -> Self {
        Self {
            branch: branch.to_owned(),
            sent_by: sent_by.trim().to_ascii_lowercase(),
            method: KeyMethod::of_server_request(method),
        }
    }

    /// The key of the INVITE server transaction a CANCEL with this key targets (§9.2): same branch and
    /// sent-by, method INVITE. Works for RFC 2543 keys too, since a CANCEL repeats the INVITE's CSeq number.
    pub fn for_cancel_target(&self) -> Self {
        Self {
            method: KeyMethod::Invite,
            ..self.clone()
        }
    }

    /// Client side key (§17.1.3): a response matches on its top Via branch and its CSeq method, so the
    /// owner calls this with the branch it generated and the request method (or, for a response, the CSeq
    /// method). `sent_by` is left empty.
    pub fn client(branch: &str, method: &str) -> Self {
        Self {
            branch: branch.to_owned(),
            sent_by: String::new(),
            method: KeyMethod::of(method),
        }
    }

    /// The §17.2.3 fallback for requests whose branch lacks [`MAGIC_COOKIE`] (RFC 2543 peers): match on
    /// Request-URI, Call-ID, From tag, CSeq number and top Via. The To tag is left out so that the ACK, which
    /// carries the To tag of our response, finds the INVITE; as with [`Self::server`], ACK maps to INVITE.
    /// The owner passes the Request-URI and Via in a canonical form; Call-ID and From tag are compared as
    /// given, the Via is trimmed and lowercased like a sent-by.
    pub fn server_rfc2543(
        request_uri: &str,
        call_id: &str,
        from_tag: &str,
        cseq_num: u32,
        top_via: &str,
        method: &str,
    ) -> Self {
        // Line feeds cannot occur inside parsed header values, so the fields cannot run into each other;
        // the prefix cannot start a branch that carries the magic cookie.
        Self {
            branch: format!("rfc2543\n{request_uri}\n{call_id}\n{from_tag}\n{cseq_num}"),
            sent_by: top_via.trim().to_ascii_lowercase(),
            method: KeyMethod::of_server_request(method),
        }
    }

    /// Whether a branch is an RFC 3261 one (use [`Self::server`]) or not (use [`Self::server_rfc2543`]).
    pub fn is_rfc3261_branch(branch: &str) -> bool {
        branch.starts_with(MAGIC_COOKIE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const BRANCH: &str = "z9hG4bK776asdhds";

    #[test]
    fn ack_finds_the_invite_server_transaction() {
        let invite = TransactionKey::server(BRANCH, "pc33.atlanta.com:5060", "INVITE");
        let ack = TransactionKey::server(BRANCH, "PC33.Atlanta.COM:5060", "ACK");
        assert_eq!(ack, invite);
        assert_eq!(ack.method, KeyMethod::Invite);
        let table = HashMap::from([(invite, "the INVITE transaction")]);
        assert_eq!(table.get(&ack), Some(&"the INVITE transaction"));
    }

    #[test]
    fn cancel_has_its_own_key_and_points_at_the_invite() {
        let invite = TransactionKey::server(BRANCH, "host:5060", "INVITE");
        let cancel = TransactionKey::server(BRANCH, "host:5060", "CANCEL");
        assert_ne!(cancel, invite);
        assert_eq!(cancel.method, KeyMethod::Other("CANCEL".into()));
        assert_eq!(cancel.for_cancel_target(), invite);
        assert_eq!(invite.for_cancel_target(), invite);
    }

    #[test]
    fn server_key_equality_table() {
        let a = |branch, sent_by, method| TransactionKey::server(branch, sent_by, method);
        // (left, right, equal?)
        let cases = [
            (
                a(BRANCH, "Host.Example:5060", "INVITE"),
                a(BRANCH, "host.example:5060", "INVITE"),
                true,
            ),
            (
                a(BRANCH, " host:5060 ", "BYE"),
                a(BRANCH, "host:5060", "BYE"),
                true,
            ),
            (
                a(BRANCH, "[2001:DB8::1]:5060", "BYE"),
                a(BRANCH, "[2001:db8::1]:5060", "BYE"),
                true,
            ),
            (
                a(BRANCH, "host:5060", "INVITE"),
                a(BRANCH, "host:5061", "INVITE"),
                false,
            ),
            (
                a(BRANCH, "host:5060", "INVITE"),
                a(BRANCH, "host", "INVITE"),
                false,
            ),
            (
                a("z9hG4bKAbC", "host", "BYE"),
                a("z9hG4bKabc", "host", "BYE"),
                false,
            ),
            (a(BRANCH, "host", "BYE"), a(BRANCH, "host", "INFO"), false),
            (
                a(BRANCH, "host", "INVITE"),
                a(BRANCH, "host", "invite"),
                false,
            ),
            (a(BRANCH, "host", "ACK"), a(BRANCH, "host", "ack"), false),
        ];
        for (left, right, equal) in cases {
            assert_eq!(left == right, equal, "{left:?} vs {right:?}");
        }
    }

    #[test]
    fn client_key_is_branch_and_method() {
        let invite = TransactionKey::client(BRANCH, "INVITE");
        assert_eq!(invite.sent_by, "");
        assert_eq!(invite.method, KeyMethod::Invite);
        assert_ne!(
            TransactionKey::client(BRANCH, "CANCEL"),
            invite,
            "CANCEL reuses the branch"
        );
        assert_eq!(TransactionKey::client(BRANCH, "INVITE"), invite);
        assert_ne!(TransactionKey::client("z9hG4bK776ASDHDS", "INVITE"), invite);
    }

    #[test]
    fn rfc2543_fallback_matches_ack_and_cancel_to_the_invite() {
        let key = |cseq, via: &str, method| {
            TransactionKey::server_rfc2543(
                "sip:bob@biloxi.com",
                "a84b4c76e66710",
                "1928301774",
                cseq,
                via,
                method,
            )
        };
        let invite = key(314159, "SIP/2.0/UDP pc33.atlanta.com", "INVITE");
        assert_eq!(key(314159, "SIP/2.0/UDP PC33.atlanta.com ", "ACK"), invite);
        assert_eq!(
            key(314159, "SIP/2.0/UDP pc33.atlanta.com", "CANCEL").for_cancel_target(),
            invite
        );
        assert_ne!(
            key(314159, "SIP/2.0/UDP pc33.atlanta.com", "CANCEL"),
            invite
        );
        assert_ne!(
            key(314160, "SIP/2.0/UDP pc33.atlanta.com", "INVITE"),
            invite
        );
        assert_ne!(
            key(314159, "SIP/2.0/UDP pc34.atlanta.com", "INVITE"),
            invite
        );
        let other_call = TransactionKey::server_rfc2543(
            "sip:bob@biloxi.com",
            "other",
            "1928301774",
            314159,
            "v",
            "INVITE",
        );
        assert_ne!(other_call.branch, invite.branch);
        assert!(!TransactionKey::is_rfc3261_branch(&invite.branch));
    }

    #[test]
    fn magic_cookie_detection() {
        assert!(TransactionKey::is_rfc3261_branch(BRANCH));
        assert!(TransactionKey::is_rfc3261_branch("z9hG4bK"));
        assert!(
            !TransactionKey::is_rfc3261_branch("Z9HG4BK776"),
            "the cookie is case-sensitive"
        );
        assert!(!TransactionKey::is_rfc3261_branch("776asdhds"));
        assert!(!TransactionKey::is_rfc3261_branch(""));
    }
}

//! What one attempt to reach a recipient came to, how a SIP result maps onto it, and the retry
//! rules that decide whether and when the recipient is called again. Pure.

use std::time::Duration;

/// How an attempt ended. The codes (`as_str`) are stable: they are stored on attempts and
/// recipients and shown to managers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A person answered (or answering-machine detection was not sure, or off).
    Human,
    /// An answering machine answered.
    Machine,
    /// 486 / 600.
    Busy,
    /// Rang until the campaign's `max_ring` (we cancelled), or 408 / 480 from the far end.
    NoAnswer,
    /// Refused for good (403, 603, other 4xx/6xx): not called again.
    Rejected,
    /// The trunk or the network failed (5xx but 503, no response, no usable media): retried by
    /// the `failed` rule.
    Failed,
    /// The number does not exist (404, 484, 604) or could not be read: never dialled again.
    InvalidNumber,
    /// The recipient pressed the campaign's opt-out digit: on the do-not-call list now.
    OptedOut,
    /// Skipped without a call: the number is on the do-not-call list.
    DoNotCall,
    /// The campaign was cancelled before this recipient was done.
    Cancelled,
}

impl Outcome {
    pub const ALL: [Outcome; 10] = [
        Outcome::Human,
        Outcome::Machine,
        Outcome::Busy,
        Outcome::NoAnswer,
        Outcome::Rejected,
        Outcome::Failed,
        Outcome::InvalidNumber,
        Outcome::OptedOut,
        Outcome::DoNotCall,
        Outcome::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Human => "human",
            Outcome::Machine => "machine",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no_answer",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
            Outcome::InvalidNumber => "invalid_number",
            Outcome::OptedOut => "opted_out",
            Outcome::DoNotCall => "do_not_call",
            Outcome::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == text)
    }

    /// A person or machine took the call.
    pub fn answered(self) -> bool {
        matches!(self, Outcome::Human | Outcome::Machine | Outcome::OptedOut)
    }
}

/// How a call we placed ended before anyone answered, as the SIP layer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// A final response with this status.
    Status(u16),
    /// We cancelled it at the campaign's maximum ring time.
    RingTimeout,
    /// No response at all (Timer B).
    NoResponse,
    /// Answered without media we can use, or our side could not set it up.
    NoMedia,
}

/// What an unanswered attempt means for the campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classified {
    Outcome(Outcome),
    /// The trunk is overloaded (503): the attempt does not count against the recipient, who is
    /// called again once the trunk recovers, and the trunk's pace slows down.
    TrunkCongested,
}

/// Maps an unanswered call to its outcome.
pub fn classify(result: Unanswered) -> Classified {
    let outcome = match result {
        Unanswered::Status(503) => return Classified::TrunkCongested,
        Unanswered::Status(486 | 600) => Outcome::Busy,
        Unanswered::Status(408 | 480 | 487) | Unanswered::RingTimeout => Outcome::NoAnswer,
        Unanswered::Status(404 | 410 | 484 | 485 | 604) => Outcome::InvalidNumber,
        Unanswered::Status(500..=599) | Unanswered::NoResponse | Unanswered::NoMedia => {
            Outcome::Failed
        }
        Unanswered::Status(_) => Outcome::Rejected,
    };
    Classified::Outcome(outcome)
}

/// When a recipient is called again, per outcome, and how many calls they get at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryRules {
    /// Calls per recipient, the first included (1 = no retries).
    pub max_attempts: u32,
    pub busy: Option<Duration>,
    pub no_answer: Option<Duration>,
    pub failed: Option<Duration>,
    /// For answering machines the campaign hung up on (AMD `hangup`).
    pub machine: Option<Duration>,
}

impl Default for RetryRules {
    /// Up to three calls: busy again after 10 minutes, no answer after 30, failures after 5;
    /// machines are not called again unless the campaign says so.
    fn default() -> Self {
        RetryRules {
            max_attempts: 3,
            busy: Some(Duration::from_secs(600)),
            no_answer: Some(Duration::from_secs(1800)),
            failed: Some(Duration::from_secs(300)),
            machine: None,
        }
    }
}

impl RetryRules {
    /// The delay before the next call after an attempt with `outcome`, when `attempts` calls
    /// were made so far; `None`: the recipient is done.
    pub fn retry_after(&self, outcome: Outcome, attempts: u32) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        match outcome {
            Outcome::Busy => self.busy,
            Outcome::NoAnswer => self.no_answer,
            Outcome::Failed => self.failed,
            Outcome::Machine => self.machine,
            _ => None,
        }
    }
}

/// How far a broadcast's message got on an answered call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    Started,
    Complete,
    /// Stopped early: a key, a hang-up.
    Partial,
    /// It could not be played on this node (the file is missing, text-to-speech failed): the
    /// person heard nothing, so the attempt is a failure and the `failed` rule retries it.
    Failed,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Started | MessageState::Partial => "partial",
            MessageState::Complete => "complete",
            MessageState::Failed => "failed",
        }
    }
}

/// What the call layer saw of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// No INVITE left (no RTP port, no such trunk): the reason.
    NotSent(&'static str),
    Unanswered(Unanswered),
    Answered {
        amd: Option<(super::amd::Verdict, &'static str)>,
        message: Option<MessageState>,
        opted_out: bool,
    },
}

impl AttemptResult {
    /// The result as the call record keeps it (`calls.broadcast_result`) and the timeline
    /// shows it: `{"attempt", "answered", "amd", "amd_reason", "message", "digit", "opted_out",
    /// "sip"}`.
    pub fn summary(&self, attempt: i64, digit: Option<char>) -> serde_json::Value {
        let (answered, amd, amd_reason, message, opted_out, sip) = match self {
            AttemptResult::Answered {
                amd,
                message,
                opted_out,
            } => (
                true,
                amd.map(|(v, _)| v.as_str()),
                amd.map(|(_, r)| r),
                Some(message.map_or("none", MessageState::as_str)),
                *opted_out,
                None,
            ),
            AttemptResult::Unanswered(Unanswered::Status(s)) => {
                (false, None, None, None, false, Some(*s))
            }
            _ => (false, None, None, None, false, None),
        };
        serde_json::json!({
            "attempt": attempt,
            "answered": answered,
            "amd": amd,
            "amd_reason": amd_reason,
            "message": message,
            "digit": digit.map(|d| d.to_string()),
            "opted_out": opted_out,
            "sip": sip,
        })
    }
}

/// What the dispatcher does with an attempt's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The attempt's outcome code (an [`Outcome`], or `trunk_congested`, `not_sent`).
    pub code: &'static str,
    pub next: Next,
    /// The trunk took the INVITE (for its pace), refused it with 503, or never saw it.
    pub trunk: super::planner::TrunkResponse,
    pub opted_out: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Called again after this delay; the attempt counted.
    Retry(Duration),
    /// Called again after this delay as if the attempt never happened.
    Requeue(Duration),
    Done(Outcome),
}

/// How long a recipient waits when no RTP port was free for their call.
pub const NO_PORT_DELAY: Duration = Duration::from_secs(10);

/// The outcome of an attempt and what follows, by the campaign's rules. `attempts` counts the
/// calls made to the recipient so far, this one included.
pub fn judge(
    result: &AttemptResult,
    amd: super::spec::AmdMode,
    rules: &RetryRules,
    attempts: u32,
) -> Verdict {
    use super::planner::TrunkResponse;
    let after = |outcome: Outcome| match rules.retry_after(outcome, attempts) {
        Some(delay) => Next::Retry(delay),
        None => Next::Done(outcome),
    };
    match result {
        AttemptResult::NotSent("broadcast.no_port") => Verdict {
            code: "not_sent",
            next: Next::Requeue(NO_PORT_DELAY),
            trunk: TrunkResponse::NotSent,
            opted_out: false,
        },
        AttemptResult::NotSent(_) => Verdict {
            code: Outcome::Failed.as_str(),
            next: after(Outcome::Failed),
            trunk: TrunkResponse::NotSent,
            opted_out: false,
        },
        AttemptResult::Unanswered(u) => match classify(*u) {
            Classified::TrunkCongested => Verdict {
                code: "trunk_congested",
                next: Next::Requeue(super::pacing::DEFAULT_HOLD),
                trunk: TrunkResponse::Congested(None),
                opted_out: false,
            },
            Classified::Outcome(o) => Verdict {
                code: o.as_str(),
                next: after(o),
                trunk: TrunkResponse::Took,
                opted_out: false,
            },
        },
        AttemptResult::Answered {
            amd: verdict,
            opted_out,
            message,
        } => {
            let machine = matches!(verdict, Some((super::amd::Verdict::Machine, _)));
            let (outcome, next) = if *opted_out {
                (Outcome::OptedOut, Next::Done(Outcome::OptedOut))
            } else if *message == Some(MessageState::Failed) {
                (Outcome::Failed, after(Outcome::Failed))
            } else if machine && amd == super::spec::AmdMode::Hangup {
                (Outcome::Machine, after(Outcome::Machine))
            } else if machine {
                (Outcome::Machine, Next::Done(Outcome::Machine))
            } else {
                (Outcome::Human, Next::Done(Outcome::Human))
            };
            Verdict {
                code: outcome.as_str(),
                next,
                trunk: TrunkResponse::Took,
                opted_out: *opted_out,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_results_map_to_outcomes() {
        use Classified::{Outcome as O, TrunkCongested};
        let table = [
            (Unanswered::Status(486), O(Outcome::Busy)),
            (Unanswered::Status(600), O(Outcome::Busy)),
            (Unanswered::Status(480), O(Outcome::NoAnswer)),
            (Unanswered::Status(408), O(Outcome::NoAnswer)),
            (Unanswered::RingTimeout, O(Outcome::NoAnswer)),
            (Unanswered::Status(404), O(Outcome::InvalidNumber)),
            (Unanswered::Status(484), O(Outcome::InvalidNumber)),
            (Unanswered::Status(604), O(Outcome::InvalidNumber)),
            (Unanswered::Status(603), O(Outcome::Rejected)),
            (Unanswered::Status(403), O(Outcome::Rejected)),
            (Unanswered::Status(488), O(Outcome::Rejected)),
            (Unanswered::Status(500), O(Outcome::Failed)),
            (Unanswered::Status(502), O(Outcome::Failed)),
            (Unanswered::NoResponse, O(Outcome::Failed)),
            (Unanswered::NoMedia, O(Outcome::Failed)),
            (Unanswered::Status(503), TrunkCongested),
        ];
        for (result, expected) in table {
            assert_eq!(classify(result), expected, "{result:?}");
        }
    }

    #[test]
    fn retries_follow_the_rule_of_the_outcome_up_to_the_maximum() {
        let rules = RetryRules {
            max_attempts: 3,
            busy: Some(Duration::from_secs(60)),
            no_answer: Some(Duration::from_secs(120)),
            failed: None,
            machine: Some(Duration::from_secs(3600)),
        };
        assert_eq!(
            rules.retry_after(Outcome::Busy, 1),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            rules.retry_after(Outcome::NoAnswer, 2),
            Some(Duration::from_secs(120))
        );
        assert_eq!(rules.retry_after(Outcome::Busy, 3), None, "max reached");
        assert_eq!(rules.retry_after(Outcome::Failed, 1), None, "no rule");
        assert_eq!(
            rules.retry_after(Outcome::Machine, 1),
            Some(Duration::from_secs(3600))
        );
        for final_outcome in [
            Outcome::Human,
            Outcome::Rejected,
            Outcome::InvalidNumber,
            Outcome::OptedOut,
            Outcome::DoNotCall,
            Outcome::Cancelled,
        ] {
            assert_eq!(
                rules.retry_after(final_outcome, 1),
                None,
                "{final_outcome:?}"
            );
        }
    }

    #[test]
    fn answered_calls_are_judged_by_detection_and_keys() {
        use super::super::amd::Verdict as Amd;
        use super::super::spec::AmdMode;
        let rules = RetryRules {
            machine: Some(Duration::from_secs(3600)),
            ..RetryRules::default()
        };
        let answered = |amd: Option<Amd>, opted_out| AttemptResult::Answered {
            amd: amd.map(|v| (v, "test")),
            message: Some(MessageState::Complete),
            opted_out,
        };
        let v = judge(&answered(None, false), AmdMode::Off, &rules, 1);
        assert_eq!((v.code, v.next), ("human", Next::Done(Outcome::Human)));
        let v = judge(
            &answered(Some(Amd::Unsure), false),
            AmdMode::Hangup,
            &rules,
            1,
        );
        assert_eq!(v.code, "human", "unsure counts as a person");
        let v = judge(
            &answered(Some(Amd::Machine), false),
            AmdMode::Hangup,
            &rules,
            1,
        );
        assert_eq!(
            (v.code, v.next),
            ("machine", Next::Retry(Duration::from_secs(3600)))
        );
        let v = judge(
            &answered(Some(Amd::Machine), false),
            AmdMode::LeaveMessage,
            &rules,
            1,
        );
        assert_eq!(v.next, Next::Done(Outcome::Machine), "the message was left");
        // Regression (review): a message that could not be played counted as delivered.
        let unplayable = AttemptResult::Answered {
            amd: None,
            message: Some(MessageState::Failed),
            opted_out: false,
        };
        let failed_rules = RetryRules {
            failed: Some(Duration::from_secs(300)),
            ..rules.clone()
        };
        let v = judge(&unplayable, AmdMode::Off, &failed_rules, 1);
        assert_eq!(
            (v.code, v.next),
            ("failed", Next::Retry(Duration::from_secs(300)))
        );
        let v = judge(
            &answered(Some(Amd::Human), true),
            AmdMode::Hangup,
            &rules,
            1,
        );
        assert_eq!((v.code, v.opted_out), ("opted_out", true));
    }

    #[test]
    fn a_503_requeues_without_counting_and_slows_the_trunk() {
        use super::super::planner::TrunkResponse;
        let v = judge(
            &AttemptResult::Unanswered(Unanswered::Status(503)),
            super::super::spec::AmdMode::Off,
            &RetryRules::default(),
            3,
        );
        assert_eq!(v.code, "trunk_congested");
        assert!(matches!(v.next, Next::Requeue(_)));
        assert!(matches!(v.trunk, TrunkResponse::Congested(_)));
        let busy = judge(
            &AttemptResult::Unanswered(Unanswered::Status(486)),
            super::super::spec::AmdMode::Off,
            &RetryRules::default(),
            3,
        );
        assert_eq!(
            busy.next,
            Next::Done(Outcome::Busy),
            "the third call was the last"
        );
        let no_port = judge(
            &AttemptResult::NotSent("broadcast.no_port"),
            super::super::spec::AmdMode::Off,
            &RetryRules::default(),
            1,
        );
        assert_eq!(no_port.next, Next::Requeue(NO_PORT_DELAY));
    }

    #[test]
    fn outcome_codes_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::parse("nope"), None);
    }
}

//! Voice broadcasts: outbound campaigns that call a list of recipients through a trunk, play
//! them a message, take their answer and put every result on their CRM timeline.
//!
//! This module is the pure core; it opens no socket, reads no clock and touches no database:
//! - [`spec`]: a campaign's settings as stored, checked into what runs;
//! - [`window`]: the calling window, judged in each recipient's own time zones;
//! - [`outcome`]: what an attempt came to (from SIP results) and the retry rules;
//! - [`pacing`]: the pace of INVITEs towards a trunk (calls per second, 503 back-off);
//! - [`planner`]: which campaign claims and dials next, within concurrency and trunk limits;
//! - [`amd`]: answering-machine detection over the answered party's audio.
//!
//! The shell is `runtime::broadcasts` (the dispatcher task: claims with leases in the database,
//! asks the SIP task to place calls, records outcomes), `runtime::calls::originate` (the call
//! itself) and `store::broadcasts`.
//!
//! ```text
//!  API ──► runtime::broadcasts ──claim (lease)──► store ──► broadcast_recipients / _attempts
//!               │  planner (pace, limits)
//!               ▼ SipCommand::Originate
//!          SIP task ── calls::originate ──► trunk ──► call task: AMD → message → answer flow
//!               │  outcome
//!               └─────────► runtime::broadcasts ──► store (attempt, retry, do-not-call) ──► events
//! ```

pub mod amd;
pub mod outcome;
pub mod pacing;
pub mod planner;
pub mod recipients;
pub mod spec;
pub mod window;

pub use outcome::{
    AttemptResult, Classified, MessageState, Next, Outcome, RetryRules, Unanswered, classify, judge,
};
pub use spec::{AmdMode, Message, Settings, SpecError, StoredSettings};
pub use window::CallingWindow;

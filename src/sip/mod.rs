//! The SIP stack, layered as RFC 3261 describes it: message (syntax) → transaction (§17) →
//! dialog (§12) → the UAS core (registrar, calls). Everything here is sans-IO: it takes input with the
//! time it happened and is drained for what to send, what happened, and when to wake it next.

pub mod auth;
pub mod dialog;
pub mod endpoint;
pub mod info_dtmf;
pub mod message;
pub mod refer;
pub mod registrar;
pub mod sdp;
pub mod transaction;
pub mod transport;

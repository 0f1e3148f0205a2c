//! The API's way into the SIP task, which owns live SIP state (queues, operators, brute-force
//! blocks): a command with a reply channel; `None` when the task is gone.

use tokio::sync::{mpsc, oneshot};

use crate::runtime::sip_task::SipCommand;

#[derive(Clone)]
pub struct SipAccess {
    sip: mpsc::Sender<SipCommand>,
}

impl std::fmt::Debug for SipAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SipAccess")
    }
}

impl SipAccess {
    pub fn new(sip: mpsc::Sender<SipCommand>) -> Self {
        SipAccess { sip }
    }

    /// Sends the command `make` builds around a reply channel and waits for the reply.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> SipCommand) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.sip.send(make(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// The answer when the SIP task is gone (shutting down).
pub(super) fn unavailable() -> super::ApiError {
    super::ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "sip.unavailable",
        "the SIP task is not running",
    )
}

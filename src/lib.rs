//! Openline: a voice contact-center server.
//!
//! Architecture: pure protocol and business cores inside a thin IO shell (the team style guide, STYLE.md).
//!
//! ```text
//!   UDP/TCP sockets ──► runtime::transport ──► runtime::sip_task ──► sip::endpoint (sans-IO)
//!                                                   │                    ├─ sip::transaction (§17 machines)
//!                                                   │                    ├─ sip::dialog (§12)
//!                                                   │                    ├─ sip::registrar + sip::auth
//!                                                   │                    └─ sip::message (parse/build)
//!                                                   └──► runtime::records ──► store (sqlx: SQLite | PostgreSQL)
//!                                                             │ publish
//!                                                             ▼
//!                                        runtime::events (bus) ──► crm::worker ──► store (leads, timelines)
//!                                                             │          └──► outbox ──► crm::sync ──► CRM webhook
//!   HTTP ──► api (axum, web page, events WebSocket) ◄─────────┘ ─────────────────────► store
//! ```
//!
//! The cores (`sip`) open no socket, spawn no task and read no clock: they take `handle(now, input)`
//! and are drained for output and their next wake-up. `runtime` owns every socket, timer and task
//! and the shutdown tree; `store` owns SQL; `api` owns HTTP.

// No unsafe code but one audited call: `runtime::memory` asks glibc to return freed pages
// (`malloc_trim`), which no safe wrapper offers.
#![deny(unsafe_code)]

pub mod api;
pub mod broadcast;
pub mod cli;
pub mod config;
pub mod crm;
pub mod dialplan;
pub mod fuzzing;
pub mod ivr;
pub mod media;
pub mod queue;
pub mod runtime;
pub mod sip;
pub mod store;
#[cfg(test)]
pub mod testing;

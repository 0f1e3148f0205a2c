//! CRM: leads and contacts with E.164 numbers, matching a call's number to one of them, and the
//! timeline entries calls leave; plus the optional outbound sync to an external CRM.
//!
//! ```text
//!   runtime::records ──publish──► EventBus ──► crm::worker ──► store (match-or-create, timeline)
//!                                                    └──────► store outbox ──► crm::sync ──► webhook
//! ```
//! `phone`, `entry` and `bitrix` are pure (no IO, no clock); `worker` and `sync` are the shell.

pub mod bitrix;
pub mod entry;
pub mod phone;
pub mod sync;
pub mod worker;

pub use phone::{DefaultCountry, PhoneError, normalize};

//! IVR: YAML flow files checked into a flow graph ([`load`], [`schema`]) and the pure engine that
//! walks a caller through one ([`engine`]): `step(now, utc, event) -> Vec<Command>`, no IO, no
//! clock, no threads. The call task carries the commands out with the media session.
//!
//! ```text
//!   ivr-flows/*.yaml ──► load (read files) ──► yaml (spanned tree) ──► schema + fields (checks)
//!                                                                        │
//!                                                         Flow / FlowSet ◄┘ (flow, hours, template)
//!   call task ── Event ──► engine::Call ── Command ──► media session, queue, webhook client
//! ```

pub mod engine;
mod fields;
pub mod flow;
pub mod hours;
pub mod load;
pub mod schema;
pub mod template;
pub mod yaml;

pub use engine::{Call, CallError, Command, DialResult, Event, PathStep, Prompt, QueueResult};
pub use flow::{Dtmf, Flow, FlowId, FlowSet, NodeId, NodeKind};
pub use load::{Diagnostic, LoadReport, load_dir, load_paths, load_set};

//! The media engine, sans IO: RTP streams (RFC 3550), G.711, DTMF both ways (RFC 4733 and
//! in-band), paced playback of prompts, the per-leg session that ties them together, and the
//! decoders and recorder the call tasks use.
//!
//! Everything runs on the call clock: 8 kHz samples since the call's media started. A prompt's
//! frame, a relayed packet and a recorded sample are placed by that clock, so they line up.

pub mod cache;
pub mod dtmf;
pub mod g711;
pub mod mixer;
pub mod pacing;
pub mod prompt;
pub mod recorder;
pub mod rtcp;
pub mod rtp;
pub mod session;
pub mod tts;

#![forbid(unsafe_code)]
pub mod sip;

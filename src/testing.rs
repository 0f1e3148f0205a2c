//! Test support shared by the pure cores' unit tests: one base instant for virtual time (the cores
//! never read the clock; tests only need *an* `Instant` to add durations to).

use std::sync::OnceLock;
use std::time::Instant;

/// The base of virtual time in unit tests.
pub fn t0() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

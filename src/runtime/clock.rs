//! The wall clock the server judges local times by (calling windows, business hours). The
//! monotonic clock is always the real one; the wall clock may be set to start at another
//! instant (`serve --clock-start`), so tests and demos can be "at 08:59 in Kyiv" without
//! touching the machine's clock. It then runs at real speed from there.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Clock {
    /// Added to the system's wall clock.
    offset: chrono::Duration,
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that reads `start` now and runs on from there.
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        Clock {
            offset: start - Utc::now(),
        }
    }

    pub fn utc(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }

    pub fn timestamp(&self) -> jiff::Timestamp {
        to_timestamp(self.utc())
    }

    /// What this clock reads at the real instant `real`.
    pub fn at(&self, real: DateTime<Utc>) -> DateTime<Utc> {
        real + self.offset
    }

    /// The real instant at which this clock reads `shown`.
    pub fn real(&self, shown: DateTime<Utc>) -> DateTime<Utc> {
        shown - self.offset
    }
}

pub fn to_timestamp(utc: DateTime<Utc>) -> jiff::Timestamp {
    jiff::Timestamp::new(
        utc.timestamp(),
        i32::try_from(utc.timestamp_subsec_nanos()).unwrap_or(0),
    )
    .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

pub fn from_timestamp(ts: jiff::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(
        ts.as_second(),
        u32::try_from(ts.subsec_nanosecond()).unwrap_or(0),
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_started_elsewhere_runs_from_there() {
        let start: DateTime<Utc> = "2026-12-03T06:59:55Z".parse().expect("time");
        let clock = Clock::starting_at(start);
        let shown = clock.utc();
        assert!((shown - start).num_seconds().abs() <= 1);
        let real = Utc::now();
        assert_eq!(clock.real(clock.at(real)), real);
        let ts = to_timestamp(start);
        assert_eq!(from_timestamp(ts), start);
    }
}

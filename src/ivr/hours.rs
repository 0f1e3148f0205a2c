//! Business hours: a weekly schedule of local opening times in an IANA time zone, with holiday
//! dates. Pure: the instant to judge comes in as a `jiff::Timestamp`, and the local wall time is
//! what counts, so a 09:00–18:00 schedule follows the clock across DST changes.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    #[error(
        "`{0}` is not a day: use mon, tue, wed, thu, fri, sat, sun, ranges like mon-fri, lists like \"mon,wed\", or daily"
    )]
    BadDay(String),
    #[error(
        "`{0}` is not a time range: write \"09:00-18:00\" (24-hour clock, end after start, up to 24:00)"
    )]
    BadRange(String),
    #[error("`{0}` ends before it starts: split hours past midnight over two days")]
    Backwards(String),
    #[error("`{0}` is not a date: write \"2026-12-25\" for one day or \"12-25\" for every year")]
    BadDate(String),
}

/// Minutes since local midnight, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u16,
    pub end: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holiday {
    /// One date.
    Date(Date),
    /// The same month and day every year.
    Yearly { month: i8, day: i8 },
}

impl Holiday {
    fn matches(self, date: Date) -> bool {
        match self {
            Holiday::Date(d) => d == date,
            Holiday::Yearly { month, day } => date.month() == month && date.day() == day,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub tz: TimeZone,
    /// Monday first.
    pub week: [Vec<Range>; 7],
    pub holidays: Vec<Holiday>,
}

impl Schedule {
    pub fn new(tz: TimeZone) -> Schedule {
        Schedule {
            tz,
            week: Default::default(),
            holidays: Vec::new(),
        }
    }

    /// Open at `utc`: not a holiday (local date) and inside one of the day's ranges (local time).
    pub fn is_open(&self, utc: Timestamp) -> bool {
        let local = self.tz.to_datetime(utc);
        let date = local.date();
        if self.holidays.iter().any(|h| h.matches(date)) {
            return false;
        }
        let minute =
            u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute())).unwrap_or(0);
        let day = usize::try_from(date.weekday().to_monday_zero_offset()).unwrap_or(0);
        self.week
            .get(day)
            .is_some_and(|ranges| ranges.iter().any(|r| r.start <= minute && minute < r.end))
    }
}

/// Day indexes (Monday 0) named by a key of `open`: `mon`, `mon-fri`, `fri-mon` (wraps),
/// `"mon,wed,fri"`, `daily`.
pub fn parse_days(spec: &str) -> Result<Vec<usize>, HoursError> {
    let bad = || HoursError::BadDay(spec.to_owned());
    let day = |s: &str| {
        DAYS.iter()
            .position(|d| d.eq_ignore_ascii_case(s.trim()))
            .ok_or_else(bad)
    };
    let mut out: Vec<usize> = Vec::new();
    for item in spec.split(',') {
        let item = item.trim();
        if item.eq_ignore_ascii_case("daily") {
            out.extend(0..7);
        } else if let Some((from, to)) = item.split_once('-') {
            let (from, to) = (day(from)?, day(to)?);
            let mut d = from;
            loop {
                out.push(d);
                if d == to {
                    break;
                }
                d = (d + 1) % 7;
            }
        } else {
            out.push(day(item)?);
        }
    }
    Ok(out)
}

pub fn day_name(index: usize) -> &'static str {
    DAYS.get(index).copied().unwrap_or("?")
}

fn parse_clock(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    if !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

/// `"09:00-18:00"`; several as `"09:00-13:00, 14:00-18:00"`.
pub fn parse_ranges(text: &str) -> Result<Vec<Range>, HoursError> {
    let mut out = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        let (a, b) = item
            .split_once('-')
            .ok_or_else(|| HoursError::BadRange(item.to_owned()))?;
        let (start, end) = match (parse_clock(a), parse_clock(b)) {
            (Some(s), Some(e)) => (s, e),
            _ => return Err(HoursError::BadRange(item.to_owned())),
        };
        if end <= start {
            return Err(HoursError::Backwards(item.to_owned()));
        }
        out.push(Range { start, end });
    }
    Ok(out)
}

/// `2026-12-25` (that day) or `12-25` (every year).
pub fn parse_holiday(text: &str) -> Result<Holiday, HoursError> {
    let bad = || HoursError::BadDate(text.to_owned());
    let parts: Vec<&str> = text.trim().split('-').collect();
    let num = |s: &str, len: usize| -> Result<i16, HoursError> {
        if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    match parts.as_slice() {
        [y, m, d] => {
            let (y, m, d) = (num(y, 4)?, num(m, 2)?, num(d, 2)?);
            let (m, d) = (
                i8::try_from(m).map_err(|_| bad())?,
                i8::try_from(d).map_err(|_| bad())?,
            );
            Date::new(y, m, d).map(Holiday::Date).map_err(|_| bad())
        }
        [m, d] => {
            let (m, d) = (num(m, 2)?, num(d, 2)?);
            let (month, day) = (
                i8::try_from(m).map_err(|_| bad())?,
                i8::try_from(d).map_err(|_| bad())?,
            );
            // 2024 is a leap year, so 02-29 is a valid yearly holiday.
            Date::new(2024, month, day).map_err(|_| bad())?;
            Ok(Holiday::Yearly { month, day })
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn nine_to_six(tz: &str) -> Schedule {
        let mut s = Schedule::new(TimeZone::get(tz).unwrap());
        for day in parse_days("daily").unwrap() {
            s.week[day] = parse_ranges("09:00-18:00").unwrap();
        }
        s
    }

    #[test]
    fn days_ranges_and_dates_parse() {
        assert_eq!(parse_days("mon-fri").unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(parse_days("Fri-Mon").unwrap(), vec![4, 5, 6, 0]);
        assert_eq!(parse_days("mon, wed").unwrap(), vec![0, 2]);
        assert!(parse_days("monday").is_err());
        assert_eq!(
            parse_ranges("9:00-13:00, 14:00-24:00").unwrap(),
            vec![
                Range {
                    start: 540,
                    end: 780
                },
                Range {
                    start: 840,
                    end: 1440
                }
            ]
        );
        for bad in [
            "9-18",
            "09:00",
            "25:00-26:00",
            "09:60-10:00",
            "24:30-24:45",
            "x",
        ] {
            assert!(
                matches!(parse_ranges(bad), Err(HoursError::BadRange(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_ranges("22:00-02:00"),
            Err(HoursError::Backwards(_))
        ));
        assert_eq!(
            parse_holiday("12-25").unwrap(),
            Holiday::Yearly { month: 12, day: 25 }
        );
        assert!(parse_holiday("2026-02-29").is_err());
        assert!(parse_holiday("02-29").is_ok());
        assert!(parse_holiday("2026-13-01").is_err());
        assert!(parse_holiday("26-12-25").is_err());
    }

    /// New York is UTC-5 in winter and UTC-4 in summer; in 2026 the clocks go forward on
    /// March 8 at 02:00 (07:00 UTC) and back on November 1 at 02:00 (06:00 UTC).
    #[test]
    fn new_york_nine_to_six_follows_the_local_clock_across_dst() {
        let s = nine_to_six("America/New_York");
        let cases = [
            // Saturday before spring-forward: 08:30 EST closed, 13:30 UTC is 08:30.
            ("2026-03-07T13:30:00Z", false),
            ("2026-03-07T14:00:00Z", true),  // 09:00 EST
            ("2026-03-07T22:30:00Z", true),  // 17:30 EST
            ("2026-03-07T23:00:00Z", false), // 18:00 EST
            // Monday after: the same UTC times are an hour later locally.
            ("2026-03-09T13:30:00Z", true),  // 09:30 EDT
            ("2026-03-09T12:59:59Z", false), // 08:59:59 EDT
            ("2026-03-09T13:00:00Z", true),  // 09:00 EDT
            ("2026-03-09T22:30:00Z", false), // 18:30 EDT
            // Fall back: Saturday October 31 is EDT, Monday November 2 is EST.
            ("2026-10-31T13:30:00Z", true),  // 09:30 EDT
            ("2026-11-02T13:30:00Z", false), // 08:30 EST
            ("2026-11-02T22:30:00Z", true),  // 17:30 EST
            ("2026-10-31T22:30:00Z", false), // 18:30 EDT
        ];
        for (at, open) in cases {
            assert_eq!(s.is_open(ts(at)), open, "{at}");
        }
    }

    /// The night of the change: 02:00–03:00 does not exist in spring, 01:00–02:00 happens twice
    /// in autumn; a range is judged by the wall clock each time.
    #[test]
    fn the_transition_night_itself() {
        let mut s = Schedule::new(TimeZone::get("America/New_York").unwrap());
        s.week[6] = parse_ranges("01:00-02:00, 03:00-03:30").unwrap(); // Sunday
        let cases = [
            ("2026-03-08T06:59:59Z", true),  // 01:59:59 EST
            ("2026-03-08T07:00:00Z", true),  // 03:00 EDT (02:xx skipped)
            ("2026-03-08T07:30:00Z", false), // 03:30 EDT
            ("2026-11-01T05:30:00Z", true),  // 01:30 EDT
            ("2026-11-01T06:30:00Z", true),  // 01:30 EST, the second time
            ("2026-11-01T07:00:00Z", false), // 02:00 EST
            ("2026-11-01T08:00:00Z", true),  // 03:00 EST
        ];
        for (at, open) in cases {
            assert_eq!(s.is_open(ts(at)), open, "{at}");
        }
    }

    /// Kyiv: UTC+2 in winter, UTC+3 in summer; 2026 changes on March 29 and October 25 at 01:00 UTC.
    #[test]
    fn kyiv_across_dst_and_holidays() {
        let mut s = nine_to_six("Europe/Kyiv");
        s.holidays.push(parse_holiday("2026-03-30").unwrap());
        s.holidays.push(parse_holiday("12-25").unwrap());
        let cases = [
            ("2026-03-27T06:30:00Z", false), // Fri 08:30 EET
            ("2026-03-27T07:00:00Z", true),  // Fri 09:00 EET
            ("2026-03-31T06:30:00Z", true),  // Tue 09:30 EEST
            ("2026-03-31T15:30:00Z", false), // Tue 18:30 EEST
            ("2026-03-30T08:00:00Z", false), // Mon 11:00, a holiday
            ("2026-10-23T15:30:00Z", false), // Fri 18:30 EEST
            ("2026-10-26T15:30:00Z", true),  // Mon 17:30 EET
            ("2026-12-25T10:00:00Z", false), // yearly holiday
            ("2027-12-25T10:00:00Z", false),
            ("2027-12-24T10:00:00Z", true),
        ];
        for (at, open) in cases {
            assert_eq!(s.is_open(ts(at)), open, "{at}");
        }
    }

    #[test]
    fn holidays_are_local_dates() {
        let mut s = Schedule::new(TimeZone::get("Europe/Kyiv").unwrap());
        for day in 0..7 {
            s.week[day] = parse_ranges("00:00-24:00").unwrap();
        }
        s.holidays.push(parse_holiday("12-25").unwrap());
        assert!(s.is_open(ts("2026-12-24T21:30:00Z"))); // 23:30 on the 24th
        assert!(!s.is_open(ts("2026-12-24T22:30:00Z"))); // 00:30 on the 25th in Kyiv
        assert!(s.is_open(ts("2026-12-25T22:00:00Z"))); // 00:00 on the 26th
    }
}

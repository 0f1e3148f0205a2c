//! The calling window of a campaign: the local days and hours in which a recipient may be called,
//! judged in the recipient's own time zones. Pure: instants come in as `jiff::Timestamp`.
//!
//! A number's zones come from libphonenumber's prefix → time zone map (`timezones.txt`, the
//! longest matching prefix wins). Some prefixes span several zones (`+1` without a known area
//! code, parts of Idaho); then the window is open only while it is open in *every* one of them,
//! so nobody is ever called outside it, at the price of a shorter window for such numbers. A
//! campaign's `timezone`, or a recipient's own (a CSV column), replaces the map.

use crate::ivr::hours::{HoursError, Range, parse_days, parse_ranges};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

/// libphonenumber's `resources/timezones/map_data.txt` (Apache-2.0, header kept in the file).
const PREFIX_ZONES: &str = include_str!("timezones.txt");

/// When calls are allowed, in local time, Monday first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallingWindow {
    week: [Vec<Range>; 7],
}

impl Default for CallingWindow {
    /// Every day 09:00–20:00 local time: what most consumer-protection rules allow.
    fn default() -> Self {
        let day = vec![Range {
            start: 9 * 60,
            end: 20 * 60,
        }];
        CallingWindow {
            week: std::array::from_fn(|_| day.clone()),
        }
    }
}

impl CallingWindow {
    /// From the same shape as a flow's business hours: `{"mon-fri": "09:00-20:00",
    /// "sat": "10:00-14:00"}`. Days not named are closed.
    pub fn parse(map: &BTreeMap<String, String>) -> Result<CallingWindow, HoursError> {
        let mut week: [Vec<Range>; 7] = Default::default();
        for (days, hours) in map {
            let ranges = parse_ranges(hours)?;
            for day in parse_days(days)? {
                week[day].extend(ranges.iter().copied());
            }
        }
        Ok(CallingWindow { week })
    }

    /// No day has any hours: nobody could ever be called.
    pub fn is_never_open(&self) -> bool {
        self.week.iter().all(Vec::is_empty)
    }

    fn open_in(&self, tz: &TimeZone, at: Timestamp) -> bool {
        let local = tz.to_datetime(at);
        let minute =
            u16::try_from(i32::from(local.hour()) * 60 + i32::from(local.minute())).unwrap_or(0);
        let day = usize::try_from(local.date().weekday().to_monday_zero_offset()).unwrap_or(0);
        self.week[day]
            .iter()
            .any(|r| r.start <= minute && minute < r.end)
    }

    /// Open at `at` in every one of `zones` (UTC when the list is empty).
    pub fn is_open(&self, zones: &[TimeZone], at: Timestamp) -> bool {
        if zones.is_empty() {
            return self.open_in(&TimeZone::UTC, at);
        }
        zones.iter().all(|tz| self.open_in(tz, at))
    }

    /// The first instant at or after `from` when the window is open in every zone; `None` if
    /// that does not happen within two weeks (a window that never opens, or zones whose
    /// windows never overlap).
    pub fn next_open(&self, zones: &[TimeZone], from: Timestamp) -> Option<Timestamp> {
        if self.is_open(zones, from) {
            return Some(from);
        }
        let utc = [TimeZone::UTC];
        let zones = if zones.is_empty() { &utc[..] } else { zones };
        // The intersection opens when the last of the zones opens: at one of their range starts.
        let mut candidates: Vec<Timestamp> = Vec::new();
        for tz in zones {
            let first = tz.to_datetime(from).date();
            for offset in -1..15i64 {
                let Ok(date) = first.checked_add(jiff::Span::new().days(offset)) else {
                    continue;
                };
                let day = usize::try_from(date.weekday().to_monday_zero_offset()).unwrap_or(0);
                for range in &self.week[day] {
                    let (h, m) = (range.start / 60, range.start % 60);
                    let Ok(h) = i8::try_from(h) else { continue };
                    let Ok(m) = i8::try_from(m) else { continue };
                    let local = date.at(h, m, 0, 0);
                    // A start inside a DST gap moves to the first valid instant after it.
                    if let Ok(zoned) = tz.to_ambiguous_zoned(local).later() {
                        let ts = zoned.timestamp();
                        if ts > from {
                            candidates.push(ts);
                        }
                    }
                }
            }
        }
        candidates.sort();
        candidates.into_iter().find(|&ts| self.is_open(zones, ts))
    }
}

/// The zones a number in E.164 is in, by the longest known prefix; empty when no prefix is
/// known. Zone names this build's time-zone database does not know are left out.
pub fn zones_of_number(e164: &str) -> Vec<TimeZone> {
    zone_names_of_number(e164)
        .iter()
        .filter_map(|name| TimeZone::get(name).ok())
        .collect()
}

/// The zone names of [`zones_of_number`], as the map gives them.
pub fn zone_names_of_number(e164: &str) -> Vec<&'static str> {
    let digits: String = e164.chars().filter(char::is_ascii_digit).collect();
    let map = prefix_map();
    (1..=digits.len().min(12))
        .rev()
        .find_map(|len| map.get(&digits[..len]))
        .cloned()
        .unwrap_or_default()
}

fn prefix_map() -> &'static HashMap<&'static str, Vec<&'static str>> {
    static MAP: OnceLock<HashMap<&'static str, Vec<&'static str>>> = OnceLock::new();
    MAP.get_or_init(|| {
        PREFIX_ZONES
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_once('|'))
            .map(|(prefix, zones)| (prefix.trim(), zones.trim().split('&').collect()))
            .collect()
    })
}

/// Zones written by a person: one IANA name (`Europe/Kyiv`), or several joined by `&` as the
/// map writes them. Errors name the first unknown zone.
pub fn parse_zones(text: &str) -> Result<Vec<TimeZone>, String> {
    text.split('&')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| TimeZone::get(name).map_err(|_| format!("{name:?} is not a time zone")))
        .collect::<Result<Vec<_>, _>>()
        .and_then(|zones| {
            if zones.is_empty() {
                Err("no time zone given".into())
            } else {
                Ok(zones)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn window(days: &str, hours: &str) -> CallingWindow {
        let mut map = BTreeMap::new();
        map.insert(days.to_string(), hours.to_string());
        CallingWindow::parse(&map).expect("window")
    }

    #[test]
    fn every_zone_in_the_prefix_map_is_known_to_the_time_zone_database() {
        let mut unknown: Vec<&str> = prefix_map()
            .values()
            .flatten()
            .copied()
            .filter(|name| TimeZone::get(name).is_err())
            .collect();
        unknown.sort();
        unknown.dedup();
        assert!(unknown.is_empty(), "unknown zones: {unknown:?}");
        assert!(prefix_map().len() > 1000);
    }

    #[test]
    fn numbers_get_the_zones_of_their_longest_prefix() {
        assert_eq!(zone_names_of_number("+380441234567"), vec!["Europe/Kyiv"]);
        assert_eq!(zone_names_of_number("+442071234567"), vec!["Europe/London"]);
        assert_eq!(
            zone_names_of_number("+12125551234"),
            vec!["America/New_York"]
        );
        assert_eq!(
            zone_names_of_number("+12135551234"),
            vec!["America/Los_Angeles"]
        );
        assert!(zone_names_of_number("+1").len() > 10, "all of NANP");
        assert!(zone_names_of_number("+999").is_empty());
    }

    #[test]
    fn the_window_is_judged_in_local_time() {
        let w = CallingWindow::default();
        let kyiv = zones_of_number("+380441234567");
        // 06:59 UTC in winter is 08:59 in Kyiv: closed; 07:00 UTC is 09:00: open.
        assert!(!w.is_open(&kyiv, ts("2026-12-03T06:59:00Z")));
        assert!(w.is_open(&kyiv, ts("2026-12-03T07:00:00Z")));
        assert!(w.is_open(&kyiv, ts("2026-12-03T17:59:59Z")));
        assert!(!w.is_open(&kyiv, ts("2026-12-03T18:00:00Z")));
        // Summer time moves it by an hour.
        assert!(w.is_open(&kyiv, ts("2026-07-01T06:00:00Z")));
        assert!(!w.is_open(&kyiv, ts("2026-07-01T05:59:00Z")));
    }

    #[test]
    fn next_open_finds_the_local_morning_of_each_recipient() {
        let w = CallingWindow::default();
        let from = ts("2026-12-03T06:59:50Z");
        let kyiv = zones_of_number("+380441234567");
        let london = zones_of_number("+442071234567");
        assert_eq!(w.next_open(&kyiv, from), Some(ts("2026-12-03T07:00:00Z")));
        assert_eq!(w.next_open(&london, from), Some(ts("2026-12-03T09:00:00Z")));
        // Already open: now.
        let noon = ts("2026-12-03T12:00:00Z");
        assert_eq!(w.next_open(&london, noon), Some(noon));
        // After hours: tomorrow morning.
        assert_eq!(
            w.next_open(&london, ts("2026-12-03T20:00:00Z")),
            Some(ts("2026-12-04T09:00:00Z"))
        );
    }

    #[test]
    fn weekends_and_closed_days_are_skipped() {
        let w = window("mon-fri", "09:00-18:00");
        // Friday 2026-12-04 18:00 in London → Monday 09:00.
        let london = zones_of_number("+442071234567");
        assert_eq!(
            w.next_open(&london, ts("2026-12-04T18:00:00Z")),
            Some(ts("2026-12-07T09:00:00Z"))
        );
    }

    #[test]
    fn a_number_spanning_zones_is_called_only_when_every_zone_is_open() {
        let w = CallingWindow::default();
        let zones = parse_zones("America/New_York&America/Los_Angeles").expect("zones");
        // 09:00 New York is 06:00 Los Angeles: closed until 09:00 LA (12:00 NY).
        let from = ts("2026-12-03T14:00:00Z");
        assert!(!w.is_open(&zones, from));
        assert_eq!(w.next_open(&zones, from), Some(ts("2026-12-03T17:00:00Z")));
        // ...and it closes at 20:00 New York.
        assert!(!w.is_open(&zones, ts("2026-12-04T01:00:00Z")));
    }

    #[test]
    fn windows_that_never_overlap_have_no_next_open() {
        let w = window("daily", "09:00-10:00");
        let zones = parse_zones("Europe/London&Asia/Tokyo").expect("zones");
        assert_eq!(w.next_open(&zones, ts("2026-12-03T00:00:00Z")), None);
        assert!(
            window("mon", "09:00-10:00")
                .next_open(&[], ts("2026-12-03T00:00:00Z"))
                .is_some()
        );
    }

    #[test]
    fn dst_transitions_keep_the_local_hours() {
        // Europe/Kyiv springs forward on 2026-03-29 at 03:00 local (01:00 UTC): 03:30 does not
        // exist that day, so the window opens the gap's length later, at 04:30 EEST — late,
        // never early.
        let w = window("daily", "03:30-20:00");
        let kyiv = parse_zones("Europe/Kyiv").expect("zone");
        let next = w
            .next_open(&kyiv, ts("2026-03-28T23:00:00Z"))
            .expect("opens");
        assert_eq!(next, ts("2026-03-29T01:30:00Z"));
        // The next day 03:30 is EEST: 00:30 UTC.
        let next = w
            .next_open(&kyiv, ts("2026-03-29T20:00:00Z"))
            .expect("opens");
        assert_eq!(next, ts("2026-03-30T00:30:00Z"));
    }

    #[test]
    fn bad_zones_are_named() {
        assert!(
            parse_zones("Mars/Olympus")
                .unwrap_err()
                .contains("Mars/Olympus")
        );
        assert!(parse_zones("").is_err());
    }
}

//! A campaign's recipient list as a manager gives it (a CSV file, a list of numbers, CRM people)
//! checked row by row: numbers normalised to E.164, time zones from the number's country or the
//! row's own column, and every row that cannot be called reported with its row number and why,
//! never silently dropped. Pure.

use super::window::{parse_zones, zone_names_of_number};
use crate::crm::{DefaultCountry, normalize};
use serde::Serialize;
use std::collections::HashMap;

/// The most recipients one campaign takes.
pub const MAX_RECIPIENTS: usize = 100_000;

/// One row of the list as given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listed {
    /// 1-based: the CSV line, or the position in a JSON list.
    pub row: usize,
    pub number: String,
    pub name: Option<String>,
    /// IANA zone names (`&`-joined for several) that override the number's own.
    pub timezone: Option<String>,
    /// The CRM person the row came from (people recipients).
    pub person_id: Option<String>,
}

/// A row that can be called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub listed: Listed,
    pub e164: String,
    /// `&`-joined zone names; empty when the number's country is not known (judged in UTC,
    /// or in the campaign's zone when it names one).
    pub zones: String,
}

/// A row that cannot be called, as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub row: usize,
    pub number: String,
    pub error: String,
}

/// A row whose number an earlier row has already (it is called once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Duplicate {
    pub row: usize,
    pub number: String,
    pub first_row: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    pub accepted: Vec<Accepted>,
    pub rejected: Vec<(Listed, Rejected)>,
    pub duplicates: Vec<Duplicate>,
}

/// Why a list cannot be read at all (as opposed to rows that are rejected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("the CSV cannot be read at line {line}: {reason}")]
    Csv { line: u64, reason: String },
    #[error("the list has no recipients")]
    Empty,
    #[error("the list has more than {MAX_RECIPIENTS} recipients")]
    TooLong,
}

/// Reads a CSV of recipients. A first row naming columns (`number`/`phone`, `name`,
/// `timezone`) is a header; without one the columns are number, name, time zone. Commas or
/// semicolons (as spreadsheets in much of Europe write them); blank lines are skipped.
pub fn read_csv(data: &[u8]) -> Result<Vec<Listed>, ListError> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let first_line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let delimiter = if first_line.contains(&b';') && !first_line.contains(&b',') {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .delimiter(delimiter)
        .from_reader(data);
    let mut columns = Columns::default();
    let mut rows = Vec::new();
    // Line numbers from byte offsets, counted once as the reader moves on (not from the start
    // for every record: a long file would take quadratic time).
    let (mut counted_to, mut lines_before) = (0usize, 0usize);
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|e| ListError::Csv {
            line: e.position().map(|p| p.line()).unwrap_or(0),
            reason: e.to_string(),
        })?;
        // From the byte offset: the reader's own line count skips blank lines.
        let line = record.position().map_or(index + 1, |p| {
            let mut start = usize::try_from(p.byte()).unwrap_or(0).min(data.len());
            while start < data.len() && matches!(data[start], b'\r' | b'\n') {
                start += 1; // a record's position is where the blank lines before it begin
            }
            lines_before += data[counted_to..start.max(counted_to)]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            counted_to = counted_to.max(start);
            lines_before + 1
        });
        if index == 0
            && let Some(header) = Columns::from_header(&record)
        {
            columns = header;
            continue;
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        if rows.len() == MAX_RECIPIENTS {
            return Err(ListError::TooLong);
        }
        let field = |i: Option<usize>| {
            i.and_then(|i| record.get(i))
                .map(str::to_owned)
                .filter(|s| !s.is_empty())
        };
        rows.push(Listed {
            row: line,
            number: field(Some(columns.number)).unwrap_or_default(),
            name: field(columns.name),
            timezone: field(columns.timezone),
            person_id: None,
        });
    }
    if rows.is_empty() {
        return Err(ListError::Empty);
    }
    Ok(rows)
}

#[derive(Debug, Clone, Copy)]
struct Columns {
    number: usize,
    name: Option<usize>,
    timezone: Option<usize>,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            number: 0,
            name: Some(1),
            timezone: Some(2),
        }
    }
}

impl Columns {
    fn from_header(record: &csv::StringRecord) -> Option<Columns> {
        let find = |names: &[&str]| {
            record.iter().position(|field| {
                let field = field.to_ascii_lowercase().replace([' ', '-'], "_");
                names.contains(&field.as_str())
            })
        };
        let number = find(&[
            "number",
            "phone",
            "phone_number",
            "tel",
            "telephone",
            "mobile",
        ]);
        let name = find(&["name", "full_name", "contact"]);
        let timezone = find(&["timezone", "time_zone", "tz", "zone"]);
        if number.is_none() && name.is_none() && timezone.is_none() {
            return None;
        }
        Some(Columns {
            number: number.unwrap_or(0),
            name,
            timezone,
        })
    }
}

/// Checks every row: its number (read in `country` when it has no `+`), its time zone, and
/// whether an earlier row has the same number.
pub fn check(rows: Vec<Listed>, country: DefaultCountry) -> Checked {
    let mut out = Checked::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for listed in rows {
        let reject = |listed: Listed, error: String| {
            let rejected = Rejected {
                row: listed.row,
                number: listed.number.clone(),
                error,
            };
            (listed, rejected)
        };
        if listed.number.trim().is_empty() {
            out.rejected.push(reject(listed, "no number".into()));
            continue;
        }
        let e164 = match normalize(&listed.number, country) {
            Ok(e164) => e164,
            Err(e) => {
                out.rejected.push(reject(listed, e.to_string()));
                continue;
            }
        };
        let zones = match &listed.timezone {
            Some(tz) => match parse_zones(tz) {
                Ok(_) => tz.split('&').map(str::trim).collect::<Vec<_>>().join("&"),
                Err(e) => {
                    out.rejected.push(reject(listed, format!("timezone: {e}")));
                    continue;
                }
            },
            None => zone_names_of_number(&e164).join("&"),
        };
        if let Some(&first_row) = seen.get(&e164) {
            out.duplicates.push(Duplicate {
                row: listed.row,
                number: listed.number,
                first_row,
            });
            continue;
        }
        seen.insert(e164.clone(), listed.row);
        out.accepted.push(Accepted {
            listed,
            e164,
            zones,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ua() -> DefaultCountry {
        DefaultCountry::parse("UA").expect("UA")
    }

    #[test]
    fn a_header_names_the_columns_in_any_order() {
        let rows = read_csv(b"Name;Phone\nOlena;+380441234567\n\n;0442223344\n").expect("csv");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].number, "+380441234567");
        assert_eq!(rows[0].name.as_deref(), Some("Olena"));
        assert_eq!(rows[0].row, 2);
        assert_eq!(rows[1].number, "0442223344");
        assert_eq!(rows[1].name, None);
        assert_eq!(rows[1].row, 4, "row numbers are the file's lines");
    }

    #[test]
    fn without_a_header_the_columns_are_number_name_zone() {
        let rows = read_csv(b"+442079460000,Sam,Europe/London\n+380441234567\n").expect("csv");
        assert_eq!(rows[0].row, 1);
        assert_eq!(rows[0].timezone.as_deref(), Some("Europe/London"));
        assert_eq!(rows[1].name, None);
    }

    #[test]
    fn empty_and_unreadable_lists_are_errors() {
        assert_eq!(read_csv(b"number,name\n"), Err(ListError::Empty));
        assert!(matches!(
            read_csv(&[0xff, 0xfe, b'\n', 0x80]),
            Err(ListError::Csv { .. })
        ));
    }

    #[test]
    fn every_row_that_cannot_be_called_is_reported_with_its_row_and_reason() {
        let rows = read_csv(
            b"number,name,timezone\n\
              +380441234567,A,\n\
              hello,B,\n\
              ,C,\n\
              044 123 45 67,D,\n\
              +442079460000,E,Mars/Olympus\n\
              +442079460000,F,Europe/London\n",
        )
        .expect("csv");
        let checked = check(rows, ua());
        let accepted: Vec<_> = checked.accepted.iter().map(|a| a.e164.as_str()).collect();
        assert_eq!(accepted, ["+380441234567", "+442079460000"]);
        assert_eq!(checked.accepted[0].zones, "Europe/Kyiv");
        assert_eq!(checked.accepted[1].zones, "Europe/London");
        let rejected: Vec<_> = checked
            .rejected
            .iter()
            .map(|(_, r)| (r.row, r.number.as_str()))
            .collect();
        assert_eq!(rejected, [(3, "hello"), (4, ""), (6, "+442079460000")]);
        assert!(checked.rejected[2].1.error.contains("Mars/Olympus"));
        assert_eq!(
            checked.duplicates,
            [Duplicate {
                row: 5,
                number: "044 123 45 67".into(),
                first_row: 2
            }],
            "the national form of a number already listed is a duplicate"
        );
    }
}

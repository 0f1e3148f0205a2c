//! What an authenticated operator may dial out through the trunk (toll fraud: a stolen softphone
//! password must not buy premium-rate or international minutes). Pure: numbers and rules in, a
//! verdict out.
//!
//! Numbers are matched after the dialplan's prefix is taken off, with Asterisk-style patterns,
//! which telephony admins already know: a pattern starts with `_`, then `X` is any digit, `Z`
//! 1–9, `N` 2–9, `[1-5]` or `[137]` a set, `.` one or more of anything and `!` zero or more;
//! other characters match themselves. Without `_` the text is one exact number. A leading `+`
//! is part of the number: `_+.` matches every number dialled in international form, which
//! `_00.` does not.
//!
//! The decision, in order: an operator with `dial_external = false` dials out nowhere; a match
//! in the operator's own `dial_allow` is allowed; a match in `deny` is refused; with a non-empty
//! `allow` only its matches pass; otherwise the number passes.

use std::collections::HashMap;

/// One dial pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// One character that must be this one.
    Exact(char),
    /// One digit in the set.
    Digits([bool; 10]),
    /// One or more characters (`.`).
    OneOrMore,
    /// Zero or more characters (`!`).
    ZeroOrMore,
}

impl Pattern {
    /// Reads a pattern; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let Some(body) = text.strip_prefix('_') else {
            if text.is_empty() {
                return Err("an empty number".into());
            }
            return Ok(Pattern {
                text: text.to_owned(),
                parts: text.chars().map(Part::Exact).collect(),
            });
        };
        let mut parts = Vec::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            let part = match c.to_ascii_uppercase() {
                'X' => Part::Digits([true; 10]),
                'Z' => Part::Digits(digit_range(1, 9)),
                'N' => Part::Digits(digit_range(2, 9)),
                '.' => Part::OneOrMore,
                '!' => Part::ZeroOrMore,
                '[' => {
                    let mut set = [false; 10];
                    let mut previous: Option<u32> = None;
                    let mut range = false;
                    loop {
                        match chars.next() {
                            None => return Err(format!("{text:?}: a '[' without its ']'")),
                            Some(']') => break,
                            Some('-') if previous.is_some() => range = true,
                            Some(d) if d.is_ascii_digit() => {
                                let d = d.to_digit(10).unwrap_or(0);
                                match (range, previous) {
                                    (true, Some(from)) if from <= d => {
                                        (from..=d).for_each(|i| set[i as usize] = true);
                                        range = false;
                                    }
                                    (true, _) => {
                                        return Err(format!("{text:?}: a range that runs down"));
                                    }
                                    _ => set[d as usize] = true,
                                }
                                previous = Some(d);
                            }
                            Some(other) => {
                                return Err(format!("{text:?}: {other:?} inside [ ]"));
                            }
                        }
                    }
                    if !set.contains(&true) {
                        return Err(format!("{text:?}: an empty [ ]"));
                    }
                    Part::Digits(set)
                }
                _ => Part::Exact(c),
            };
            parts.push(part);
        }
        if parts.is_empty() {
            return Err(format!("{text:?}: nothing after '_'"));
        }
        // `.` and `!` take the rest of the number: anything after them would be ignored.
        if let Some(at) = parts
            .iter()
            .position(|p| matches!(p, Part::OneOrMore | Part::ZeroOrMore))
            && at + 1 < parts.len()
        {
            return Err(format!("{text:?}: '.' and '!' must come last"));
        }
        Ok(Pattern {
            text: text.to_owned(),
            parts,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the whole of `number` matches.
    pub fn matches(&self, number: &str) -> bool {
        let chars: Vec<char> = number.chars().collect();
        matches_from(&self.parts, &chars)
    }
}

fn digit_range(from: usize, to: usize) -> [bool; 10] {
    let mut set = [false; 10];
    set[from..=to].iter_mut().for_each(|d| *d = true);
    set
}

fn matches_from(parts: &[Part], chars: &[char]) -> bool {
    match parts.split_first() {
        None => chars.is_empty(),
        Some((Part::OneOrMore, _)) if chars.is_empty() => false,
        Some((Part::OneOrMore | Part::ZeroOrMore, _)) => true,
        Some((part, rest)) => {
            let Some((c, tail)) = chars.split_first() else {
                return false;
            };
            let one = match part {
                Part::Exact(e) => e.eq_ignore_ascii_case(c),
                Part::Digits(set) => c.to_digit(10).is_some_and(|d| set[d as usize]),
                Part::OneOrMore | Part::ZeroOrMore => unreachable!("handled above"),
            };
            one && matches_from(rest, tail)
        }
    }
}

/// Patterns from config text; the first bad one's error.
pub fn patterns(texts: &[String]) -> Result<Vec<Pattern>, String> {
    texts.iter().map(|t| Pattern::parse(t)).collect()
}

/// One operator's rights beyond the dialplan's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRights {
    /// May dial out through the trunk at all.
    pub external: bool,
    /// Numbers this operator may dial even if `deny` (or a narrower `allow`) says no.
    pub allow: Vec<Pattern>,
}

/// The dialplan's rules for operators' external calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub allow: Vec<Pattern>,
    pub deny: Vec<Pattern>,
    /// Operators not listed have full rights (`external`, no extra patterns).
    pub operators: HashMap<String, OperatorRights>,
}

/// What the policy says about one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// The operator may not dial out at all.
    OperatorBarred,
    /// A `deny` pattern matched (its text).
    Denied(String),
    /// `allow` is set and nothing in it matched.
    NotAllowed,
}

impl Policy {
    pub fn judge(&self, operator: &str, number: &str) -> Verdict {
        if let Some(rights) = self.operators.get(operator) {
            if !rights.external {
                return Verdict::OperatorBarred;
            }
            if rights.allow.iter().any(|p| p.matches(number)) {
                return Verdict::Allowed;
            }
        }
        if let Some(p) = self.deny.iter().find(|p| p.matches(number)) {
            return Verdict::Denied(p.as_str().to_owned());
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| p.matches(number)) {
            return Verdict::NotAllowed;
        }
        Verdict::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Pattern {
        Pattern::parse(text).unwrap()
    }

    #[test]
    fn patterns_match_like_asterisk() {
        let cases: &[(&str, &str, bool)] = &[
            ("_0XXXXXXXXX", "0441234567", true),
            ("_0XXXXXXXXX", "044123456", false),
            ("_0XXXXXXXXX", "04412345678", false),
            ("_380XXXXXXXXX", "380441234567", true),
            ("_00.", "00441234", true),
            ("_00.", "00", false),
            ("_00!", "00", true),
            ("_NXX", "211", true),
            ("_NXX", "111", false),
            ("_Z", "0", false),
            ("_[1-35]X", "45", false),
            ("_[1-35]X", "55", true),
            ("_[1-35]X", "29", true),
            ("_x", "7", true),
            ("112", "112", true),
            ("112", "1123", false),
            ("_0900.", "09001234", true),
            ("_0900.", "0800123", false),
            ("_+.", "+442071234567", true),
            ("_00.", "+442071234567", false),
        ];
        for (pattern, number, expected) in cases {
            assert_eq!(
                p(pattern).matches(number),
                *expected,
                "{pattern} vs {number}"
            );
        }
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        for (text, says) in [
            ("_[12", "without its ']'"),
            ("_[5-1]", "runs down"),
            ("_[a]", "inside [ ]"),
            ("_[]", "empty [ ]"),
            ("_", "nothing after"),
            ("", "empty number"),
            ("_.123", "must come last"),
        ] {
            let err = Pattern::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn the_operators_rights_then_deny_then_allow_decide() {
        let mut policy = Policy {
            allow: vec![p("_0XXXXXXXXX"), p("_00.")],
            deny: vec![p("_0900."), p("_00.")],
            operators: HashMap::new(),
        };
        policy.operators.insert(
            "101".into(),
            OperatorRights {
                external: true,
                allow: vec![p("_0048.")],
            },
        );
        policy.operators.insert(
            "102".into(),
            OperatorRights {
                external: false,
                allow: vec![],
            },
        );
        let table = [
            ("103", "0441234567", Verdict::Allowed),
            ("103", "0900123456", Verdict::Denied("_0900.".into())),
            ("103", "0048221234567", Verdict::Denied("_00.".into())),
            ("101", "0048221234567", Verdict::Allowed),
            ("101", "0044201234567", Verdict::Denied("_00.".into())),
            ("103", "12345", Verdict::NotAllowed),
            ("102", "0441234567", Verdict::OperatorBarred),
        ];
        for (operator, number, expected) in table {
            assert_eq!(
                policy.judge(operator, number),
                expected,
                "{operator} → {number}"
            );
        }
        assert_eq!(
            Policy::default().judge("103", "12345"),
            Verdict::Allowed,
            "no rules: as before"
        );
    }
}

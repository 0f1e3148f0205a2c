//! Phone numbers to E.164 with libphonenumber's metadata (the `phonenumber` crate), so that
//! "+380 44 123-45-67", "044 123 4567" and "380441234567" are one number. Pure: no IO.

use phonenumber::Mode;
use phonenumber::country::Id as CountryId;
use std::str::FromStr;

/// Why a text is not a phone number we can store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("{text:?} is not a phone number")]
    Unparsable { text: String },
    #[error("{text:?} is not a valid number for its country")]
    Invalid { text: String },
}

/// An ISO 3166 country whose national notation numbers without `+` are read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultCountry(CountryId);

impl Default for DefaultCountry {
    /// Ukraine, the default of `[crm] default_country`.
    fn default() -> Self {
        DefaultCountry(CountryId::UA)
    }
}

impl DefaultCountry {
    /// `"UA"`, `"de"`, …; `None` for an unknown code.
    pub fn parse(code: &str) -> Option<DefaultCountry> {
        CountryId::from_str(&code.trim().to_ascii_uppercase())
            .ok()
            .map(DefaultCountry)
    }
}

/// A number as written by a person or a SIP header, normalised to E.164 (`+380441234567`).
///
/// A SIP user part may carry visual separators and a `tel:`/`sip:` leftover; digits after a `;`
/// (URI parameters) are ignored. Numbers that libphonenumber does not consider valid are refused,
/// so extensions ("101") and names never become CRM numbers.
pub fn normalize(text: &str, country: DefaultCountry) -> Result<String, PhoneError> {
    let trimmed = text.trim();
    let trimmed = trimmed.split(';').next().unwrap_or("");
    let trimmed = trimmed
        .strip_prefix("tel:")
        .or_else(|| trimmed.strip_prefix("sip:"))
        .unwrap_or(trimmed);
    let unparsable = || PhoneError::Unparsable {
        text: text.to_owned(),
    };
    if trimmed.is_empty()
        || trimmed.len() > 40
        || !trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    {
        return Err(unparsable());
    }
    let digits = trimmed.chars().filter(char::is_ascii_digit).count();
    if !(5..=17).contains(&digits) {
        return Err(unparsable());
    }
    let number = phonenumber::parse(Some(country.0), trimmed).map_err(|_| unparsable())?;
    let number = if phonenumber::is_valid(&number) {
        number
    } else if !trimmed.starts_with('+') {
        // "380441234567": international digits without the plus.
        phonenumber::parse(None, format!("+{trimmed}"))
            .ok()
            .filter(phonenumber::is_valid)
            .ok_or_else(|| PhoneError::Invalid {
                text: text.to_owned(),
            })?
    } else {
        return Err(PhoneError::Invalid {
            text: text.to_owned(),
        });
    };
    Ok(number.format().mode(Mode::E164).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ua() -> DefaultCountry {
        DefaultCountry::parse("UA").expect("UA")
    }

    #[test]
    fn notations_of_one_number_agree() {
        for text in [
            "+380 44 123-45-67",
            "044 123 4567",
            "380441234567",
            "+380441234567",
            "(044) 123-45-67",
            "tel:+380441234567",
            "+380441234567;user=phone",
        ] {
            assert_eq!(
                normalize(text, ua()).as_deref(),
                Ok("+380441234567"),
                "{text}"
            );
        }
    }

    #[test]
    fn default_country_decides_national_numbers() {
        let de = DefaultCountry::parse("de").expect("DE");
        assert_eq!(normalize("030 1234567", de).as_deref(), Ok("+49301234567"));
        assert_eq!(
            normalize("+1 650 253 0000", ua()).as_deref(),
            Ok("+16502530000")
        );
    }

    #[test]
    fn extensions_names_and_junk_are_refused() {
        for text in [
            "101",
            "",
            "caller",
            "<script>",
            "+",
            "12",
            "0441234567890123456789",
        ] {
            assert!(normalize(text, ua()).is_err(), "{text}");
        }
        assert!(DefaultCountry::parse("XX").is_none());
    }
}

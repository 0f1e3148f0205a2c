//! The config file's parsing and checks.

use super::*;

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("250us"), Some(Duration::from_micros(250)));
    assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
    assert_eq!(parse_duration("5"), None);
    assert_eq!(parse_duration("x5s"), None);
}

#[test]
fn a_parse_error_reads_file_line_column() {
    let path = PathBuf::from("/etc/openline.toml");
    let message = FileConfig::parse("[sip]\nrealm = \n").unwrap_err();
    let shown = ConfigError::Parse {
        path: path.clone(),
        message,
    }
    .to_string();
    assert!(shown.starts_with("/etc/openline.toml:2:"), "{shown}");
    let unplaced = ConfigError::Parse {
        path,
        message: "10 things".into(),
    };
    assert_eq!(unplaced.to_string(), "/etc/openline.toml: 10 things");
}

#[test]
fn example_config_parses_and_validates() {
    let text = include_str!("../../openline.example.toml");
    let config = FileConfig::parse(text).expect("example parses");
    config.validate().expect("example validates");
    assert!(!config.operators.is_empty());
}

/// Regression (review): a cool-down of years overflowed the block's end and would panic
/// the SIP task when the blocks were listed; beyond a day it is refused at start.
#[test]
fn brute_force_windows_are_at_most_a_day() {
    let config = FileConfig::parse("[sip]\nauth_cooldown = \"36500d\"\n").unwrap();
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("sip.auth_cooldown"), "{err}");
    let config = FileConfig::parse("[sip]\nauth_cooldown = \"1d\"\n").unwrap();
    config.validate().unwrap();
}

#[test]
fn errors_name_line_and_column() {
    let err = FileConfig::parse("[sip]\nt1 = \"fast\"\n").unwrap_err();
    assert!(err.starts_with("2:"), "{err}");
    let err = FileConfig::parse("bogus = 1\n").unwrap_err();
    assert!(err.starts_with("1:1:"), "{err}");
}

#[test]
fn port_ranges() {
    assert_eq!(
        PortRange::parse("20000-30000").unwrap(),
        PortRange {
            low: 20000,
            high: 30000
        }
    );
    assert!(PortRange::parse("30000-20000").is_err());
    assert!(PortRange::parse("abc").is_err());
}

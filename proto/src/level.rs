//! Levels: `debug < info < good < warn < error < critical` (docs/api.md).

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    /// The original's "success".
    Good,
    Warn,
    Error,
    Critical,
}

/// What a caller is told when a level cannot be read.
pub const ACCEPTED_LEVELS: &str = "debug, info, good, warn, error, critical (also trace, \
information, notice, success, ok, warning, err, crit, fatal, emerg, alert, or a Python \
logging number such as 30)";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown level {given:?}: use one of {ACCEPTED_LEVELS}")]
pub struct LevelError {
    pub given: String,
}

impl Level {
    pub const ALL: [Level; 6] = [
        Level::Debug,
        Level::Info,
        Level::Good,
        Level::Warn,
        Level::Error,
        Level::Critical,
    ];

    /// Reads any accepted spelling, case-insensitive, surrounding blanks ignored.
    pub fn parse(given: &str) -> Result<Level, LevelError> {
        let word = given.trim().to_ascii_lowercase();
        let level = match word.as_str() {
            "debug" | "trace" => Level::Debug,
            "info" | "information" | "notice" => Level::Info,
            "good" | "success" | "ok" => Level::Good,
            "warn" | "warning" => Level::Warn,
            "error" | "err" => Level::Error,
            "critical" | "crit" | "fatal" | "emerg" | "alert" => Level::Critical,
            _ => match word.parse::<i64>() {
                Ok(n) => Level::from_python(n),
                Err(_) => {
                    return Err(LevelError {
                        given: given.chars().take(64).collect(),
                    });
                }
            },
        };
        Ok(level)
    }

    /// Python logging numbers, rounded down to the nearest of 10–50.
    pub fn from_python(n: i64) -> Level {
        match n {
            i64::MIN..20 => Level::Debug,
            20..30 => Level::Info,
            30..40 => Level::Warn,
            40..50 => Level::Error,
            _ => Level::Critical,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Good => "good",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Critical => "critical",
        }
    }

    /// A small number for index keys; order follows severity.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Level> {
        Level::ALL.get(usize::from(code)).copied()
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_spelling_is_accepted() {
        let cases = [
            ("debug", Level::Debug),
            ("TRACE", Level::Debug),
            ("info", Level::Info),
            ("Information", Level::Info),
            ("notice", Level::Info),
            ("good", Level::Good),
            ("success", Level::Good),
            ("ok", Level::Good),
            ("warn", Level::Warn),
            ("WARNING", Level::Warn),
            ("error", Level::Error),
            ("err", Level::Error),
            ("critical", Level::Critical),
            ("crit", Level::Critical),
            ("fatal", Level::Critical),
            ("emerg", Level::Critical),
            ("alert", Level::Critical),
            (" warn ", Level::Warn),
        ];
        for (word, level) in cases {
            assert_eq!(Level::parse(word), Ok(level), "{word}");
        }
    }

    #[test]
    fn python_numbers_round_down() {
        assert_eq!(Level::parse("0"), Ok(Level::Debug));
        assert_eq!(Level::parse("10"), Ok(Level::Debug));
        assert_eq!(Level::parse("20"), Ok(Level::Info));
        assert_eq!(Level::parse("35"), Ok(Level::Warn));
        assert_eq!(Level::parse("40"), Ok(Level::Error));
        assert_eq!(Level::parse("50"), Ok(Level::Critical));
        assert_eq!(Level::parse("99"), Ok(Level::Critical));
        assert_eq!(Level::parse("-5"), Ok(Level::Debug));
    }

    #[test]
    fn unknown_level_names_the_accepted_values() {
        let err = Level::parse("loud").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("loud") && text.contains("warn") && text.contains("critical"));
    }

    #[test]
    fn codes_round_trip_and_order_by_severity() {
        for level in Level::ALL {
            assert_eq!(Level::from_code(level.code()), Some(level));
        }
        assert!(Level::Good < Level::Warn && Level::Error < Level::Critical);
    }
}

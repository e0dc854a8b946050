//! Key ids and user ids: short tokens safe in a NATS subject and a URL
//! (no `.`, `*`, `>`, spaces).

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("a key id is 2 to 40 characters of a-z, 0-9, '-' and '_'")]
    BadKeyId,
    #[error(
        "a user name is 1 to 64 characters without spaces, control characters or invisible ones (zero-width, bidirectional controls)"
    )]
    BadUserName,
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
}

impl KeyId {
    /// `k` and six random hex digits, like `k7f3a9`. Creation is guarded by
    /// the stream (expected subject sequence 0), so a clash is refused, not
    /// merged.
    pub fn generate() -> KeyId {
        let n: u32 = rand::rng().random_range(0..0x100_0000);
        KeyId(format!("k{n:06x}"))
    }

    pub fn parse(text: &str) -> Result<KeyId, IdError> {
        let ok = (2..=40).contains(&text.len()) && text.chars().all(is_token_char);
        // "hand" is the subject token of hand-added entries.
        if ok && text != "hand" {
            Ok(KeyId(text.to_owned()))
        } else {
            Err(IdError::BadKeyId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters that show as nothing or reorder what follows: zero-width
/// spaces and joiners, bidirectional controls, the BOM, soft hyphens, the
/// invisible operators. In a name they would let `admin\u{200b}` look like
/// `admin`, or `\u{202e}nimda` read as someone else.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{034f}'
            | '\u{061c}'
            | '\u{115f}'
            | '\u{1160}'
            | '\u{17b4}'
            | '\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fffb}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e0fff}'
    )
}

/// A user's id, derived from the name: lower-case letters, digits and `_`
/// stay; every other byte becomes `-` and two hex digits. Names compare
/// case-insensitively, so `Alice` and `alice` are the same user.
pub fn user_id(name: &str) -> Result<String, IdError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > 64
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || is_invisible(c))
    {
        return Err(IdError::BadUserName);
    }
    let mut id = String::new();
    for b in name.to_lowercase().bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' {
            id.push(char::from(b));
        } else {
            id.push_str(&format!("-{b:02x}"));
        }
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_ids_parse() {
        for _ in 0..100 {
            let id = KeyId::generate();
            assert_eq!(KeyId::parse(id.as_str()), Ok(id));
        }
    }

    #[test]
    fn key_ids_refuse_subject_syntax() {
        for bad in ["k.1", "k*", "a>b", "k 1", "", "hand", "K7F3A9"] {
            assert!(KeyId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_that_would_display_as_someone_else_are_refused() {
        for bad in [
            "admin\u{200b}",
            "ad\u{200d}min",
            "\u{202e}nimda",
            "admin\u{2066}",
            "\u{feff}admin",
            "ad\u{00ad}min",
            "admin\u{061c}",
        ] {
            assert_eq!(user_id(bad), Err(IdError::BadUserName), "{bad:?}");
        }
        assert!(user_id("zoë").is_ok());
        assert!(user_id("山田").is_ok());
    }

    #[test]
    fn user_ids_are_subject_safe_and_case_insensitive() {
        assert_eq!(user_id("alice").unwrap(), "alice");
        assert_eq!(user_id("Alice").unwrap(), "alice");
        let id = user_id("a.b*c>d").unwrap();
        assert!(!id.contains(['.', '*', '>', ' ']), "{id}");
        assert_ne!(user_id("a.b").unwrap(), user_id("a-b").unwrap());
        assert!(user_id("two words").is_err());
        assert!(user_id("").is_err());
    }
}

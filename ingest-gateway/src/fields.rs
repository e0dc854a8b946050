//! An entry's fields from other protocols' shapes (Sentry events and logs,
//! OTLP records, CSP reports): text cut to a limit, meta filled within its
//! limits with what does not fit counted, and a message kept where
//! minilog's own rule would refuse it (an SDK drops a `400`, and the error
//! would be lost).

use proto::input::{Limits, MAX_META_KEY_CHARS, MAX_META_PAIRS, MAX_META_VALUE_CHARS};
use serde_json::Value;
use std::collections::BTreeMap;

/// Cuts text to `max` characters.
pub(crate) fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

/// A JSON value as text: strings as they are, anything else as JSON.
pub(crate) fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The message within the limits; one too short for minilog's rule (3
/// characters) is quoted rather than refused, an empty one is
/// `<unlabeled event>`.
pub(crate) fn kept_message(text: &str, limits: &Limits) -> (String, bool) {
    let text = text.trim();
    match proto::input::message(text, limits) {
        Ok(ok) => ok,
        Err(_) if text.is_empty() => ("<unlabeled event>".to_owned(), false),
        Err(_) => (format!("\"{text}\""), false),
    }
}

/// An entry's meta, filled within its limits; what does not fit is counted.
#[derive(Default)]
pub(crate) struct Meta {
    pub pairs: BTreeMap<String, String>,
    pub dropped: u64,
}

impl Meta {
    /// A JSON value by name; nothing for null or empty text.
    pub(crate) fn put(&mut self, name: &str, value: Option<&Value>) {
        match value.map(scalar_text) {
            Some(text) if !text.is_empty() && value != Some(&Value::Null) => {
                self.put_text(name, text)
            }
            _ => {}
        }
    }

    /// A text by name, cut to the value limit; past the pair limit, or
    /// with a name longer than the key limit, it is counted as dropped.
    pub(crate) fn put_text(&mut self, name: &str, value: String) {
        let fits = !name.is_empty()
            && name.chars().count() <= MAX_META_KEY_CHARS
            && (self.pairs.len() < MAX_META_PAIRS || self.pairs.contains_key(name));
        if !fits {
            self.dropped += 1;
            return;
        }
        self.pairs
            .insert(name.to_owned(), cut(&value, MAX_META_VALUE_CHARS));
    }
}

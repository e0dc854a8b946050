//! The entry filter: what the list page, the read API and bulk triage
//! rules select. A rule stores the filter with [`MATCHER_VERSION`], so a
//! later change to these semantics cannot change what an old event meant.

use crate::Level;
use serde::{Deserialize, Serialize};

/// Version 1: level in `levels` (empty = all), key in `keys` (empty = all;
/// `"hand"` selects hand-added entries), `q` a case-insensitive substring
/// of the message or source (empty = all), and, added later without
/// changing what an old rule meant, `group` the entry's group id (none =
/// all).
pub const MATCHER_VERSION: u16 = 1;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub levels: Vec<Level>,
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub q: Option<String>,
    /// Only entries of this group ([`crate::grouping`]). Not written when
    /// absent, so a filter without one encodes as it did before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Filter {
    /// The filter in words, for people (the confirm page, the audit log):
    /// `level error or warn, key k1, the text “disk”`, or `anything`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.levels.is_empty() {
            let l: Vec<&str> = self.levels.iter().map(|l| l.as_str()).collect();
            parts.push(format!("level {}", l.join(" or ")));
        }
        if !self.keys.is_empty() {
            parts.push(format!("key {}", self.keys.join(" or ")));
        }
        if let Some(q) = self.q.as_deref().filter(|q| !q.is_empty()) {
            parts.push(format!("the text “{q}”"));
        }
        if let Some(g) = &self.group {
            parts.push(format!("group {g}"));
        }
        if parts.is_empty() {
            "anything".into()
        } else {
            parts.join(", ")
        }
    }

    /// Whether an entry with these fields matches (matcher version 1).
    pub fn matches(
        &self,
        level: Level,
        key_id: Option<&str>,
        message: &str,
        source: Option<&str>,
        group: &str,
    ) -> bool {
        if !self.levels.is_empty() && !self.levels.contains(&level) {
            return false;
        }
        if self.group.as_deref().is_some_and(|g| g != group) {
            return false;
        }
        if !self.keys.is_empty() {
            let key = key_id.unwrap_or(crate::subjects::HAND);
            if !self.keys.iter().any(|k| k == key) {
                return false;
            }
        }
        match self.q.as_deref().map(str::trim) {
            None | Some("") => true,
            Some(q) => {
                let q = q.to_lowercase();
                message.to_lowercase().contains(&q)
                    || source.is_some_and(|s| s.to_lowercase().contains(&q))
            }
        }
    }
}

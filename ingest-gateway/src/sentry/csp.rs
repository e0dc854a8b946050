//! Content-Security-Policy violation reports, as browsers send them to a
//! `report-uri` (or a `report-to` endpoint) built from a DSN:
//! `POST /api/<n>/security/?sentry_key=<k>`. Each violation is one `warn`
//! entry, its directive, blocked URI and document URI in meta.
//!
//! Two shapes arrive: `application/csp-report`, one
//! `{"csp-report": {"document-uri", "violated-directive", …}}`, and the
//! Reporting API's `application/reports+json`, a list of
//! `{"type": "csp-violation", "body": {"documentURL", …}}`.
//!
//! With a public DSN (the key id) the public-DSN rules hold: the report's
//! origin (its `Origin` header, else its document's) must be one of the
//! key's, the per-address limit applies, and the entry is untrusted.

use serde_json::{Map, Value};

/// Most violations one request may carry.
const MAX_REPORTS: usize = 100;

/// One violation, in the names of `application/csp-report`.
#[derive(Debug, PartialEq)]
pub(crate) struct Violation {
    pub document_uri: String,
    pub directive: String,
    pub blocked_uri: String,
    pub source_file: Option<String>,
    pub line: Option<String>,
    pub disposition: Option<String>,
}

/// The violations of a report body, or what is wrong with it.
pub(crate) fn violations(body: &Value) -> Result<Vec<Violation>, String> {
    let reports: Vec<&Map<String, Value>> = match body {
        Value::Object(o) => match o.get("csp-report") {
            Some(Value::Object(r)) => vec![r],
            _ => return Err("a CSP report is {\"csp-report\": {...}}".into()),
        },
        Value::Array(list) => list
            .iter()
            .filter_map(Value::as_object)
            .filter(|r| r.get("type").and_then(Value::as_str) == Some("csp-violation"))
            .filter_map(|r| r.get("body").and_then(Value::as_object))
            .collect(),
        _ => return Err("a CSP report is a JSON object or a list of reports".into()),
    };
    if reports.is_empty() {
        return Err("the body holds no CSP violation".into());
    }
    if reports.len() > MAX_REPORTS {
        return Err(format!("send at most {MAX_REPORTS} violations per request"));
    }
    Ok(reports.into_iter().map(violation).collect())
}

fn violation(r: &Map<String, Value>) -> Violation {
    // Either spelling: `document-uri` (report-uri) or `documentURL`
    // (the Reporting API).
    let text = |names: &[&str]| -> Option<String> {
        names.iter().find_map(|n| match r.get(*n)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    Violation {
        document_uri: text(&["document-uri", "documentURL"]).unwrap_or_default(),
        directive: text(&[
            "effective-directive",
            "effectiveDirective",
            "violated-directive",
        ])
        .unwrap_or_else(|| "unknown directive".into()),
        blocked_uri: text(&["blocked-uri", "blockedURL"]).unwrap_or_else(|| "inline".into()),
        source_file: text(&["source-file", "sourceFile"]),
        line: text(&["line-number", "lineNumber"]),
        disposition: text(&["disposition"]),
    }
}

impl Violation {
    /// The entry's message.
    pub fn message(&self) -> String {
        format!(
            "CSP: {} blocked {} on {}",
            self.directive,
            self.blocked_uri,
            if self.document_uri.is_empty() {
                "an unknown page"
            } else {
                &self.document_uri
            }
        )
    }

    /// The origin of the page that reported it, normalized.
    pub fn document_origin(&self) -> Option<String> {
        let (scheme, rest) = self.document_uri.split_once("://")?;
        let host = rest.split(['/', '?', '#']).next()?;
        proto::commands::normalize_origin(&format!("{scheme}://{host}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_report_shapes_are_read() {
        let old = json!({"csp-report": {
            "document-uri": "https://shop.example/cart?x=1", "violated-directive": "script-src-elem",
            "effective-directive": "script-src-elem", "blocked-uri": "https://evil.example/x.js",
            "line-number": 12, "source-file": "https://shop.example/cart"}});
        let v = violations(&old).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].message(),
            "CSP: script-src-elem blocked https://evil.example/x.js on https://shop.example/cart?x=1"
        );
        assert_eq!(v[0].line.as_deref(), Some("12"));
        assert_eq!(
            v[0].document_origin().as_deref(),
            Some("https://shop.example")
        );
        let new = json!([
            {"type": "csp-violation", "url": "https://shop.example/", "body": {
                "documentURL": "https://shop.example/", "blockedURL": "inline",
                "effectiveDirective": "style-src-attr", "disposition": "enforce"}},
            {"type": "deprecation", "body": {}}
        ]);
        let v = violations(&new).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].directive, "style-src-attr");
        assert!(violations(&json!({"x": 1})).is_err());
        assert!(violations(&json!([])).is_err());
        assert!(violations(&json!("x")).is_err());
    }
}

//! Server time. Publishers stamp events with it; applying an event never
//! reads the clock (docs/architecture.md §2), so only publishers call [`now_ms`].

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let now = OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// RFC 3339 in UTC, with milliseconds only when they are not zero:
/// `2026-11-24T10:00:00Z`, `2026-11-24T10:00:00.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let Ok(t) = OffsetDateTime::from_unix_timestamp(secs) else {
        return ms.to_string();
    };
    let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
    let (h, mi, s) = (t.hour(), t.minute(), t.second());
    if millis == 0 {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{millis:03}Z")
    }
}

/// Parses RFC 3339 into Unix milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_rfc3339() {
        let ms = parse_rfc3339("2026-11-24T10:00:00Z").unwrap();
        assert_eq!(rfc3339(ms), "2026-11-24T10:00:00Z");
        assert_eq!(rfc3339(ms + 123), "2026-11-24T10:00:00.123Z");
        assert_eq!(parse_rfc3339("2026-11-24T11:00:00+01:00"), Some(ms));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}

//! How a django-minimal-log row's values become minilog's: pure functions,
//! each decision written down in docs/import.md.

use proto::Level;
use std::net::IpAddr;

/// An entry's `status` as a level: the original's four (`good` is its
/// "success"), and the empty string its add view stored when a client
/// sent `status=` (it said "used status info"). The flag is false for a
/// value the original never writes itself (edited in its admin or the
/// database): that one is read with minilog's own spellings, else `info`,
/// and the importer keeps the raw value in meta.
pub fn level_of(status: &str) -> (Level, bool) {
    match status {
        "good" => (Level::Good, true),
        "info" | "" => (Level::Info, true),
        "warn" => (Level::Warn, true),
        "error" => (Level::Error, true),
        other => (Level::parse(other).unwrap_or(Level::Info), false),
    }
}

/// What an entry's `from_ip` column says about the sender's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Known(IpAddr),
    /// NULL, empty, or the view's `(None, False)`: no address was known.
    Absent,
    /// Something else: kept aside as text, never guessed at.
    Unreadable,
}

/// Reads `from_ip`. The original's add view saved `str()` of ipware's
/// `get_client_ip` answer, a tuple: `('1.2.3.4', False)` (SQLite keeps it
/// whole, varchar(16) or not); its admin saves a bare address. A tuple
/// whose quote is not closed (cut short) is unreadable, not a shorter
/// address.
pub fn address_of(from_ip: Option<&str>) -> Address {
    let Some(text) = from_ip.map(str::trim) else {
        return Address::Absent;
    };
    let first = match text.strip_prefix('(') {
        Some(inner) => inner.split(',').next().unwrap_or("").trim(),
        None => text,
    };
    if first.is_empty() || first == "None" {
        return Address::Absent;
    }
    let unquoted = ['\'', '"']
        .iter()
        .find_map(|q| first.strip_prefix(*q)?.strip_suffix(*q))
        .unwrap_or(first);
    let quoted = unquoted.len() != first.len();
    if text.starts_with('(') && !quoted {
        return Address::Unreadable;
    }
    match unquoted.parse::<IpAddr>() {
        Ok(ip) => Address::Known(ip),
        Err(_) => Address::Unreadable,
    }
}

/// A Django datetime as SQLite holds it, `2024-05-01 10:00:00.123456`
/// (UTC, without an offset, when `USE_TZ = True`), or with an offset, as
/// Unix milliseconds (truncated, like the microseconds).
pub fn sqlite_time_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.len() < 19 {
        return None;
    }
    let mut iso = text.replacen(' ', "T", 1);
    let clock = iso.get(11..)?;
    if !(clock.ends_with('Z') || clock.contains('+') || clock.contains('-')) {
        iso.push('Z');
    }
    proto::clock::parse_rfc3339(&iso)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_originals_four_statuses_and_its_empty_one_map_to_levels() {
        assert_eq!(level_of("good"), (Level::Good, true));
        assert_eq!(level_of("info"), (Level::Info, true));
        assert_eq!(level_of("warn"), (Level::Warn, true));
        assert_eq!(level_of("error"), (Level::Error, true));
        assert_eq!(level_of(""), (Level::Info, true));
        assert_eq!(level_of("critical"), (Level::Critical, false));
        assert_eq!(level_of("ERROR"), (Level::Error, false));
        assert_eq!(level_of("bogus"), (Level::Info, false));
    }

    fn known(ip: &str) -> Address {
        Address::Known(ip.parse().unwrap())
    }

    #[test]
    fn addresses_are_read_from_the_views_tuple_string() {
        assert_eq!(address_of(Some("('1.2.3.4', False)")), known("1.2.3.4"));
        assert_eq!(
            address_of(Some("('203.0.113.7', True)")),
            known("203.0.113.7")
        );
        assert_eq!(
            address_of(Some("('2001:db8::1', False)")),
            known("2001:db8::1")
        );
        assert_eq!(address_of(Some("(\"10.0.0.1\", False)")), known("10.0.0.1"));
        assert_eq!(address_of(Some("(None, False)")), Address::Absent);
    }

    #[test]
    fn bare_addresses_null_and_garbage_never_panic() {
        assert_eq!(address_of(Some("10.1.2.3")), known("10.1.2.3"));
        assert_eq!(address_of(Some(" ::1 ")), known("::1"));
        assert_eq!(address_of(None), Address::Absent);
        assert_eq!(address_of(Some("")), Address::Absent);
        assert_eq!(address_of(Some("None")), Address::Absent);
        for bad in [
            "not-an-ip",
            "('192.168.100.1",
            "(192.168.1.1, False)",
            "('', False)",
            "(",
            "()",
            "'",
            "('999.1.1.1', False)",
            "fe80::1%eth0",
            "ü(',",
        ] {
            let got = address_of(Some(bad));
            assert!(
                got == Address::Unreadable || got == Address::Absent,
                "{bad:?} gave {got:?}"
            );
        }
        assert_eq!(address_of(Some("('', False)")), Address::Unreadable);
        // Cut short after the closing quote: the address is whole.
        assert_eq!(address_of(Some("('1.2.3.4'")), known("1.2.3.4"));
    }

    #[test]
    fn sqlite_times_are_utc_with_or_without_microseconds_or_offset() {
        let at = proto::clock::parse_rfc3339("2026-12-01T21:05:42Z").unwrap();
        assert_eq!(sqlite_time_ms("2026-12-01 21:05:42"), Some(at));
        assert_eq!(sqlite_time_ms("2026-12-01 21:05:42.451971"), Some(at + 451));
        assert_eq!(sqlite_time_ms("2026-12-01T21:05:42.999999"), Some(at + 999));
        assert_eq!(sqlite_time_ms("2026-12-01 22:05:42+01:00"), Some(at));
        assert_eq!(
            sqlite_time_ms("2026-12-01 21:05:42.5-00:30"),
            Some(at + 1_800_500)
        );
        assert_eq!(sqlite_time_ms("yesterday"), None);
        assert_eq!(sqlite_time_ms("2026-12-01"), None);
        assert_eq!(sqlite_time_ms("2026-12-01 25:00:00.000000"), None);
        assert_eq!(sqlite_time_ms("ééééééééééééé"), None);
    }
}

//! The client's address: the peer, or what a trusted proxy says. One rule
//! for every HTTP edge (ingestion's recorded address, the dashboard's
//! login limits); the caller hands in the raw `X-Forwarded-For` header
//! values in order. Bytes that are not text in a client's part of the
//! header cannot hide the address a trusted proxy appended after them:
//! the header is split on `,` as bytes, and only the entries walked
//! (from the right) must parse.

use std::net::{IpAddr, SocketAddr};

/// The peer's address; when the peer is a trusted proxy, the right-most
/// address of `X-Forwarded-For` that is not itself a trusted proxy (each
/// proxy appends the address it saw, so only entries added by trusted
/// proxies can be believed; anything to their left is the client's say).
/// An entry that is not an address ends the walk at the last good one.
pub fn client_ip<'a>(
    peer: Option<IpAddr>,
    forwarded_for: impl IntoIterator<Item = &'a [u8]>,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let mut addr = peer?.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|t| t.to_canonical() == ip);
    if !is_trusted(addr) {
        return Some(addr);
    }
    let forwarded: Vec<&[u8]> = forwarded_for
        .into_iter()
        .flat_map(|v| v.split(|b| *b == b','))
        .collect();
    for entry in forwarded.into_iter().rev() {
        if !is_trusted(addr) {
            break;
        }
        let Some(ip) = std::str::from_utf8(entry).ok().and_then(parse_entry) else {
            break;
        };
        addr = ip.to_canonical();
    }
    Some(addr)
}

/// `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]`, with or without a port.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<IpAddr>()
                .ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn with_xff<'a>(values: &[&'a str]) -> Vec<&'a [u8]> {
        values.iter().map(|v| v.as_bytes()).collect()
    }

    #[test]
    fn forwarded_for_is_ignored_from_an_untrusted_peer() {
        let h = with_xff(&["203.0.113.7"]);
        assert_eq!(
            client_ip(Some(ip("198.51.100.2")), h, &[]),
            Some(ip("198.51.100.2"))
        );
    }

    #[test]
    fn the_rightmost_untrusted_forwarded_address_is_taken() {
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        let h = with_xff(&["1.1.1.1, 203.0.113.7", "10.0.0.2"]);
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), h.clone(), &trusted),
            Some(ip("203.0.113.7"))
        );
        let h = with_xff(&["[2001:db8::1]:443"]);
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), h.clone(), &trusted),
            Some(ip("2001:db8::1"))
        );
    }

    #[test]
    fn garbage_or_a_missing_header_ends_at_the_last_good_address() {
        let trusted = [ip("10.0.0.1")];
        let h = with_xff(&["203.0.113.7, unknown"]);
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), h.clone(), &trusted),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), Vec::<&[u8]>::new(), &trusted),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(client_ip(None, Vec::<&[u8]>::new(), &trusted), None);
    }

    #[test]
    fn bytes_that_are_not_text_on_the_left_do_not_hide_the_proxys_entry() {
        let trusted = [ip("127.0.0.1")];
        let header: &[u8] = b"\xff\xfe, 203.0.113.9";
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), [header], &trusted),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn ipv4_mapped_peers_count_as_their_ipv4_address() {
        let trusted = [ip("127.0.0.1")];
        let h = with_xff(&["203.0.113.7"]);
        assert_eq!(
            client_ip(Some(ip("::ffff:127.0.0.1")), h.clone(), &trusted),
            Some(ip("203.0.113.7"))
        );
    }
}

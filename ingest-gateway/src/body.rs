//! Reading request bodies within the limit, and the form encoding.
//!
//! Bodies are read by hand rather than through axum's `Bytes` extractor so
//! that an over-long body is answered in the endpoint's own format, and so
//! that its rest can be drained first: a server that answers and closes
//! while the client is still sending makes the client's kernel see a reset,
//! and the client never reads the `413`.

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use std::time::Duration;

/// How long an over-long body is drained before answering anyway.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Reads the whole body, or refuses it past `limit` bytes.
pub(crate) async fn read(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut stream = body.into_data_stream();
    // At most twice the limit is ever read; a body announced as bigger
    // than that is refused without reading it.
    let drain_budget = limit as u64;
    if declared.is_some_and(|n| n > limit as u64 + drain_budget) {
        return Err(ApiError::TooLarge { limit });
    }
    let mut buf = BytesMut::with_capacity(declared.map_or(0, |n| n as usize).min(limit));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::IncompleteBody)?;
        if buf.len() + chunk.len() > limit {
            let mut left = drain_budget;
            let drain = async {
                while let Some(Ok(chunk)) = stream.next().await {
                    left = left.saturating_sub(chunk.len() as u64);
                    if left == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
            return Err(ApiError::TooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Splits an `application/x-www-form-urlencoded` body into raw name and
/// value bytes. Decoding to text is left to the caller, so that invalid
/// UTF-8 becomes a `400` instead of being replaced silently (as
/// `form_urlencoded::parse` would).
pub(crate) fn form_pairs(body: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    body.split(|b| *b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| match part.iter().position(|b| *b == b'=') {
            Some(eq) => (percent_decode(&part[..eq]), percent_decode(&part[eq + 1..])),
            None => (percent_decode(part), Vec::new()),
        })
        .collect()
}

/// `+` is a space, `%XY` a byte; a `%` not followed by two hex digits
/// stays as it is (what browsers and Django do).
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = input
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
                if let Some(byte) = hex {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_pairs_decode_plus_and_percent_and_keep_stray_percents() {
        let pairs = form_pairs(b"key=a%2Bb&message=hello+world%21&flag&&x=100%&y=%zz%+1%4");
        let text: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(
            text,
            [
                ("key", "a+b"),
                ("message", "hello world!"),
                ("flag", ""),
                ("x", "100%"),
                ("y", "%zz% 1%4"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn invalid_utf8_survives_decoding_as_bytes() {
        let pairs = form_pairs(b"message=%FF%FEabc");
        assert_eq!(pairs[0].1, b"\xff\xfeabc");
        assert!(String::from_utf8(pairs[0].1.clone()).is_err());
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let headers = HeaderMap::new();
        let ok = read(Body::from("x".repeat(10)), &headers, 10).await;
        assert_eq!(ok.unwrap().len(), 10);
        let over = read(Body::from("x".repeat(11)), &headers, 10).await;
        assert!(matches!(over, Err(ApiError::TooLarge { limit: 10 })));
    }
}

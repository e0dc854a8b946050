//! The Sentry envelope format: a JSON header line, then items, each a JSON
//! header line and a payload. With `length` in its header a payload is
//! that many bytes (followed by an optional newline); without, it runs to
//! the next newline or the end (the JavaScript SDKs send no `length`).

use serde_json::{Map, Value};

/// Most items one envelope may hold (the SDKs send one to a few).
pub(crate) const MAX_ITEMS: usize = 1000;

#[derive(Debug)]
pub(crate) struct Envelope<'a> {
    pub header: Map<String, Value>,
    pub items: Vec<Item<'a>>,
}

#[derive(Debug)]
pub(crate) struct Item<'a> {
    /// The item's `type` (`event`, `log`, `session`, …).
    pub ty: String,
    pub payload: &'a [u8],
}

/// What is wrong with an envelope, in words for the client.
pub(crate) type Malformed = String;

pub(crate) fn parse(body: &[u8]) -> Result<Envelope<'_>, Malformed> {
    let (line, mut rest) = next_line(body);
    let header = object(line).map_err(|e| format!("its header line {e}"))?;
    let mut items = Vec::new();
    while !rest.is_empty() {
        let (line, after) = next_line(rest);
        rest = after;
        // Blank lines between items (a trailing newline, `\r\n`) are not items.
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let n = items.len() + 1;
        if n > MAX_ITEMS {
            return Err(format!("it has more than {MAX_ITEMS} items"));
        }
        let item_header = object(line).map_err(|e| format!("item {n}'s header {e}"))?;
        let ty = match item_header.get("type") {
            Some(Value::String(t)) if !t.is_empty() => t.clone(),
            _ => return Err(format!("item {n}'s header has no \"type\"")),
        };
        let payload = match item_header.get("length") {
            None | Some(Value::Null) => {
                let (payload, after) = next_line(rest);
                rest = after;
                payload
            }
            Some(length) => {
                let length = length
                    .as_u64()
                    .and_then(|l| usize::try_from(l).ok())
                    .ok_or_else(|| {
                        format!("item {n}'s \"length\" must be a whole number of bytes")
                    })?;
                if length > rest.len() {
                    return Err(format!(
                        "item {n} ({ty}) says it is {length} bytes, but only {} follow",
                        rest.len()
                    ));
                }
                let (payload, after) = rest.split_at(length);
                rest = after.strip_prefix(b"\n").unwrap_or(after);
                payload
            }
        };
        items.push(Item { ty, payload });
    }
    Ok(Envelope { header, items })
}

/// The bytes up to the next `\n` (without it, and without a `\r` before
/// it), and the rest after it.
fn next_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    let (line, rest) = match memchr::memchr(b'\n', bytes) {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &bytes[bytes.len()..]),
    };
    (line.strip_suffix(b"\r").unwrap_or(line), rest)
}

fn object(line: &[u8]) -> Result<Map<String, Value>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err("is empty".into());
    }
    match serde_json::from_slice(line) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("must be a JSON object".into()),
        Err(e) => Err(format!("is not valid JSON ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_with_and_without_length_are_read() {
        let body = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n\
            {\"type\":\"attachment\",\"length\":10}\n\
            a\nb\nc\nd\ne\n\
            {\"type\":\"event\"}\n\
            {\"message\":\"hello\"}\n\
            {\"type\":\"session\"}\n\
            {\"sid\":\"x\"}";
        let env = parse(body).unwrap();
        assert_eq!(env.header["event_id"], "9ec79c33ec9942ab8353589fcb2e04dc");
        let types: Vec<_> = env.items.iter().map(|i| i.ty.as_str()).collect();
        assert_eq!(types, ["attachment", "event", "session"]);
        assert_eq!(env.items[0].payload, b"a\nb\nc\nd\ne\n");
        assert_eq!(env.items[1].payload, b"{\"message\":\"hello\"}");
        assert_eq!(env.items[2].payload, b"{\"sid\":\"x\"}");
    }

    #[test]
    fn an_empty_payload_at_the_end_is_an_item() {
        let env = parse(b"{}\n{\"type\":\"event\",\"length\":0}").unwrap();
        assert_eq!(env.items.len(), 1);
        assert!(env.items[0].payload.is_empty());
        assert!(parse(b"{}\n").unwrap().items.is_empty());
        assert!(parse(b"{}").unwrap().items.is_empty());
    }

    #[test]
    fn broken_envelopes_say_what_is_wrong() {
        let cases: [(&[u8], &str); 7] = [
            (b"", "header line is empty"),
            (b"[1]\n", "must be a JSON object"),
            (b"{\"a\":\n", "not valid JSON"),
            (b"{}\n{\"length\":2}\nab", "no \"type\""),
            (
                b"{}\n{\"type\":\"event\",\"length\":99}\n{}",
                "only 2 follow",
            ),
            (
                b"{}\n{\"type\":\"event\",\"length\":-1}\n{}",
                "whole number",
            ),
            (b"{}\n\xff\xfe\n", "not valid JSON"),
        ];
        for (body, want) in cases {
            let e = parse(body).unwrap_err();
            assert!(e.contains(want), "{:?}: {e}", String::from_utf8_lossy(body));
        }
        let many = format!("{{}}\n{}", "{\"type\":\"x\"}\n{}\n".repeat(MAX_ITEMS + 1));
        assert!(parse(many.as_bytes()).unwrap_err().contains("more than"));
    }

    /// Random bytes built from envelope pieces: parsing never panics.
    #[test]
    fn random_envelopes_never_panic() {
        use rand::Rng;
        let pieces: [&[u8]; 12] = [
            b"{}",
            b"\n",
            b"\r\n",
            b"{\"type\":\"event\"",
            b",\"length\":",
            b"5",
            b"-1",
            b"99999999999999999999",
            b"}",
            b"\xff\xfe",
            b"{\"message\":\"x\"}",
            b"[",
        ];
        let mut rng = rand::rng();
        for _ in 0..20_000 {
            let mut body = Vec::new();
            for _ in 0..rng.random_range(0..12) {
                body.extend_from_slice(pieces[rng.random_range(0..pieces.len())]);
            }
            let _ = parse(&body);
        }
    }
}

//! Which group an entry belongs to (docs/api.md, "Groups"): repeats of one
//! problem fold into one group, whatever number, id or address each
//! repeat carries.
//!
//! The grouping key, scoped to the entry's key (or `hand`): the entry's
//! fingerprint when it has one (`{{ default }}` in it stands for the
//! default key); else, with an exception, the chain's types and the
//! (module or file, function) of its in-app frames (every frame when none
//! is in-app), never line numbers; else the first two lines of the message,
//! normalised ([`normalize`]). The level is not part of it. The group id is
//! 16 hex digits of SHA-256 over the algorithm's version, the key's token
//! and the grouping key: the same on every replay. A change to any of this
//! is a new [`GROUPING_VERSION`], and a new projection schema.

use crate::event::{Exception, Logged};
use sha2::{Digest, Sha256};

/// The version of the grouping algorithm (part of every group id).
pub const GROUPING_VERSION: u16 = 1;

/// An entry's group: its id and the normalised text shown for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grouping {
    pub id: String,
    /// The message's first two lines, normalised.
    pub template: String,
}

/// The group of `entry`, whose key's index token is `key_token` (its key
/// id, or `hand`).
pub fn group_of(entry: &Logged, key_token: &str) -> Grouping {
    let template = normalize(&entry.message);
    let default = match entry.exception.as_deref() {
        Some(chain) if !chain.is_empty() => format!("exception\n{}", exception_key(chain)),
        _ => format!("message\n{template}"),
    };
    let key = match entry.fingerprint.as_deref().map(str::trim) {
        Some(fp) if !fp.is_empty() => {
            format!("fingerprint\n{}", fp.replace("{{ default }}", &default))
        }
        _ => default,
    };
    let mut h = Sha256::new();
    h.update(GROUPING_VERSION.to_le_bytes());
    h.update((key_token.len() as u64).to_le_bytes());
    h.update(key_token.as_bytes());
    h.update(key.as_bytes());
    Grouping {
        id: hex::encode(&h.finalize()[..8]),
        template,
    }
}

/// The chain's types, and per exception the (module or file, function)
/// of its in-app frames, or of all frames when none is in-app.
fn exception_key(chain: &[Exception]) -> String {
    let mut out = String::new();
    for e in chain {
        out.push_str(&e.ty);
        out.push('\n');
        let in_app = e.frames.iter().any(|f| f.in_app == Some(true));
        for f in e
            .frames
            .iter()
            .filter(|f| !in_app || f.in_app == Some(true))
        {
            let place = f.module.as_deref().or(f.filename.as_deref()).unwrap_or("?");
            let function = f.function.as_deref().unwrap_or("?");
            out.push_str(place);
            out.push(':');
            out.push_str(function);
            out.push('\n');
        }
    }
    out
}

/// The first two lines of `message` with what varies between repeats
/// replaced, in this order: quoted strings → `<str>`, emails → `<email>`,
/// URLs → `<url>`, IPv4/IPv6 addresses → `<ip>`, UUIDs → `<uuid>`, ISO
/// dates and times → `<date>`, runs of 8 or more hex digits (all-digit
/// runs too) → `<hex>`, numbers (with sign and decimals; a unit after them
/// is kept) → `<n>`; whitespace collapsed. At each place the first of
/// these that matches wins, so an address inside a URL is the URL's, and a
/// number inside quotes the string's.
pub fn normalize(message: &str) -> String {
    let two_lines: Vec<&str> = message
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(2)
        .collect();
    let text: Vec<char> = two_lines.join("\n").chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if c.is_whitespace() {
            while i < text.len() && text[i].is_whitespace() {
                i += 1;
            }
            if !out.is_empty() && i < text.len() {
                out.push(' ');
            }
            continue;
        }
        let boundary = i == 0 || !is_word(text[i - 1]);
        let matched = if boundary {
            quoted(&text, i)
                .map(|end| (end, "<str>"))
                .or_else(|| email(&text, i).map(|end| (end, "<email>")))
                .or_else(|| url(&text, i).map(|end| (end, "<url>")))
                .or_else(|| ip(&text, i).map(|end| (end, "<ip>")))
                .or_else(|| uuid(&text, i).map(|end| (end, "<uuid>")))
                .or_else(|| date(&text, i).map(|end| (end, "<date>")))
                .or_else(|| hex_run(&text, i).map(|end| (end, "<hex>")))
                .or_else(|| number(&text, i).map(|end| (end, "<n>")))
        } else {
            None
        };
        match matched {
            Some((end, placeholder)) => {
                out.push_str(placeholder);
                i = end;
            }
            None => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// How many of `text[i..]` satisfy `f`.
fn run(text: &[char], i: usize, f: impl Fn(char) -> bool) -> usize {
    text[i..].iter().take_while(|c| f(**c)).count()
}

/// `'…'` or `"…"` on one line, the closing quote not inside a word
/// (`don't` opens nothing).
fn quoted(text: &[char], i: usize) -> Option<usize> {
    let q = text[i];
    if q != '\'' && q != '"' {
        return None;
    }
    let mut j = i + 1;
    while j < text.len() && text[j] != '\n' {
        if text[j] == q && text.get(j + 1).is_none_or(|c| !is_word(*c)) {
            return Some(j + 1);
        }
        j += 1;
    }
    None
}

fn email(text: &[char], i: usize) -> Option<usize> {
    let local = run(text, i, |c| {
        c.is_ascii_alphanumeric() || "._%+-".contains(c)
    });
    if local == 0 || text.get(i + local) != Some(&'@') {
        return None;
    }
    let start = i + local + 1;
    let domain = run(text, start, |c| {
        c.is_ascii_alphanumeric() || c == '-' || c == '.'
    });
    let d: String = text[start..start + domain].iter().collect();
    let d = d.trim_end_matches('.');
    (d.contains('.') && !d.starts_with('.')).then_some(start + d.chars().count())
}

fn url(text: &[char], i: usize) -> Option<usize> {
    let scheme = run(text, i, |c| c.is_ascii_alphanumeric() || "+.-".contains(c));
    if scheme == 0 || !text[i].is_ascii_alphabetic() {
        return None;
    }
    let after: String = text[i + scheme..].iter().take(3).collect();
    if after != "://" {
        return None;
    }
    let start = i + scheme + 3;
    let mut end = start + run(text, start, |c| !c.is_whitespace() && !"<>\"'".contains(c));
    // Trailing punctuation belongs to the sentence.
    while end > start && ".,;:!?)]}".contains(text[end - 1]) {
        end -= 1;
    }
    (end > start).then_some(end)
}

fn ip(text: &[char], i: usize) -> Option<usize> {
    ipv4(text, i).or_else(|| ipv6(text, i))
}

fn ipv4(text: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    for part in 0..4 {
        let digits = run(text, j, |c| c.is_ascii_digit());
        if digits == 0 || digits > 3 {
            return None;
        }
        let value: u32 = text[j..j + digits]
            .iter()
            .collect::<String>()
            .parse()
            .ok()?;
        if value > 255 {
            return None;
        }
        j += digits;
        if part < 3 {
            if text.get(j) != Some(&'.') {
                return None;
            }
            j += 1;
        }
    }
    // Not followed by more of a dotted number (`1.2.3.4.5`) or a word.
    let ends = match text.get(j) {
        None => true,
        Some('.') => !next_is_digit(text, j),
        Some(c) => !is_word(*c),
    };
    ends.then_some(j)
}

fn next_is_digit(text: &[char], j: usize) -> bool {
    text.get(j + 1).is_some_and(char::is_ascii_digit)
}

/// Groups of 1–4 hex digits joined by `:`, with `::` or at least five
/// groups (so a time like `10:00:00` is not one).
fn ipv6(text: &[char], i: usize) -> Option<usize> {
    let len = run(text, i, |c| c.is_ascii_hexdigit() || c == ':');
    let token: String = text[i..i + len].iter().collect();
    let token = token.trim_end_matches(':');
    if token.is_empty() || (token.len() < 2) {
        return None;
    }
    let groups: Vec<&str> = token.split(':').collect();
    let compressed = token.contains("::");
    let ok = (compressed || groups.len() >= 5)
        && groups.len() <= 8
        && groups.iter().all(|g| g.len() <= 4)
        && groups.iter().any(|g| !g.is_empty())
        && !token.contains(":::");
    let end = i + token.chars().count();
    (ok && text.get(end).is_none_or(|c| !is_word(*c))).then_some(end)
}

fn hex_digits(text: &[char], i: usize, n: usize) -> bool {
    i + n <= text.len() && text[i..i + n].iter().all(char::is_ascii_hexdigit)
}

fn uuid(text: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    for (k, n) in [8, 4, 4, 4, 12].into_iter().enumerate() {
        if !hex_digits(text, j, n) {
            return None;
        }
        j += n;
        if k < 4 {
            if text.get(j) != Some(&'-') {
                return None;
            }
            j += 1;
        }
    }
    text.get(j)
        .is_none_or(|c| !c.is_ascii_hexdigit())
        .then_some(j)
}

fn digits(text: &[char], i: usize, n: usize) -> bool {
    i + n <= text.len() && text[i..i + n].iter().all(char::is_ascii_digit)
}

/// `YYYY-MM-DD`, optionally with `T`/space and a time; or a time alone
/// (`HH:MM:SS`, fractions and a zone allowed).
fn date(text: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    let has_date = digits(text, j, 4)
        && text.get(j + 4) == Some(&'-')
        && digits(text, j + 5, 2)
        && text.get(j + 7) == Some(&'-')
        && digits(text, j + 8, 2);
    if has_date {
        j += 10;
        if matches!(text.get(j), Some('T' | ' '))
            && digits(text, j + 1, 2)
            && text.get(j + 3) == Some(&':')
            && let Some(end) = time(text, j + 1)
        {
            j = end;
        }
        return Some(zone(text, j));
    }
    time(text, j)
        .filter(|end| end - i >= 8)
        .map(|end| zone(text, end))
}

/// `HH:MM[:SS[.fraction]]`.
fn time(text: &[char], i: usize) -> Option<usize> {
    if !(digits(text, i, 2) && text.get(i + 2) == Some(&':') && digits(text, i + 3, 2)) {
        return None;
    }
    let mut j = i + 5;
    if text.get(j) == Some(&':') && digits(text, j + 1, 2) {
        j += 3;
        if matches!(text.get(j), Some('.' | ',')) && next_is_digit(text, j) {
            j += 1 + run(text, j + 1, |c| c.is_ascii_digit());
        }
    }
    Some(j)
}

/// A time zone after a time: `Z`, `+HH:MM`, `-HHMM`.
fn zone(text: &[char], j: usize) -> usize {
    match text.get(j) {
        Some('Z') => j + 1,
        Some('+' | '-') if digits(text, j + 1, 2) => {
            if text.get(j + 3) == Some(&':') && digits(text, j + 4, 2) {
                j + 6
            } else if digits(text, j + 3, 2) {
                j + 5
            } else {
                j
            }
        }
        _ => j,
    }
}

/// A run of 8 or more hex digits (a `0x` before it included), not part of
/// a longer word.
fn hex_run(text: &[char], i: usize) -> Option<usize> {
    let start = if text[i] == '0' && matches!(text.get(i + 1), Some('x' | 'X')) {
        i + 2
    } else {
        i
    };
    let n = run(text, start, |c| c.is_ascii_hexdigit());
    let end = start + n;
    (n >= 8 && text.get(end).is_none_or(|c| !is_word(*c))).then_some(end)
}

/// A number: optional sign, digits, optional decimals; a unit after it
/// (`ms`, `%`, `MB`) is left in the text.
fn number(text: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if matches!(text[j], '-' | '+') && text.get(j + 1).is_some_and(char::is_ascii_digit) {
        j += 1;
    }
    let n = run(text, j, |c| c.is_ascii_digit());
    if n == 0 {
        return None;
    }
    j += n;
    if matches!(text.get(j), Some('.' | ',')) && next_is_digit(text, j) {
        j += 1 + run(text, j + 1, |c| c.is_ascii_digit());
    }
    Some(j)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Level;
    use crate::event::Frame;

    #[test]
    fn each_placeholder_and_their_order() {
        let cases = [
            ("user 'alice' not found", "user <str> not found"),
            (r#"file "C:\tmp 42.txt" missing"#, "file <str> missing"),
            ("don't retry", "don't retry"),
            (
                "mail to bob.smith+x@example.co.uk bounced",
                "mail to <email> bounced",
            ),
            (
                "GET https://api.example.com/v1/users/42?page=3 failed.",
                "GET <url> failed.",
            ),
            ("peer 10.0.0.17:5432 refused", "peer <ip>:<n> refused"),
            ("from 2001:db8::8a2e:370:7334 and ::1", "from <ip> and <ip>"),
            (
                "order 3f2b8c1e-9a4d-4f6e-8b2a-1c3d5e7f9a0b lost",
                "order <uuid> lost",
            ),
            ("at 2026-11-24T10:00:00.123Z it broke", "at <date> it broke"),
            (
                "at 2026-11-24 10:00:00+01:00 it broke",
                "at <date> it broke",
            ),
            ("since 10:42:07 nothing", "since <date> nothing"),
            ("commit deadbeefcafe0123 is bad", "commit <hex> is bad"),
            ("id 00000042 missing", "id <hex> missing"),
            ("ptr 0x7ffd5e8c1a20", "ptr <hex>"),
            ("took 42 ms", "took <n> ms"),
            (
                "took 42ms, 3.5% cpu, -7 left",
                "took <n>ms, <n>% cpu, <n> left",
            ),
            ("worker-3 died", "worker-<n> died"),
            ("sha256 and utf8 stay", "sha256 and utf8 stay"),
            ("  lots   of\t\tspace  ", "lots of space"),
            // Order: the URL holds an address and numbers; quotes hold a number.
            ("see 'http://10.0.0.1/x'", "see <str>"),
            ("http://10.0.0.1:8080/health down", "<url> down"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input), want, "{input:?}");
        }
    }

    #[test]
    fn only_the_first_two_lines_count() {
        assert_eq!(
            normalize("first 1\n\nsecond 2\nthird 3 is ignored"),
            "first <n> second <n>"
        );
    }

    fn entry(message: &str) -> Logged {
        Logged::new(Level::Error, message)
    }

    #[test]
    fn repeats_fold_and_different_words_stay_apart() {
        let a = group_of(&entry("timeout after 30 s talking to 10.0.0.1"), "k1");
        let b = group_of(&entry("timeout after 31 s talking to 10.0.0.2"), "k1");
        assert_eq!(a, b);
        assert_eq!(a.template, "timeout after <n> s talking to <ip>");
        assert_eq!(a.id.len(), 16);
        for other in [
            "timeout after 30 s talking to db",
            "timeout before 30 s talking to 10.0.0.1",
        ] {
            assert_ne!(group_of(&entry(other), "k1").id, a.id, "{other}");
        }
        // Scoped to the key; the level does not matter.
        assert_ne!(
            group_of(&entry("timeout after 30 s talking to 10.0.0.1"), "k2").id,
            a.id
        );
        let warn = Logged::new(Level::Warn, "timeout after 30 s talking to 10.0.0.1");
        assert_eq!(group_of(&warn, "k1").id, a.id);
    }

    #[test]
    fn fingerprints_and_exceptions_decide_before_the_message() {
        let fp = |fp: &str, msg: &str| Logged {
            fingerprint: Some(fp.into()),
            ..entry(msg)
        };
        assert_eq!(
            group_of(&fp("cart", "one"), "k").id,
            group_of(&fp("cart", "two entirely different"), "k").id
        );
        assert_ne!(
            group_of(&fp("{{ default }}\ncart", "one"), "k").id,
            group_of(&fp("{{ default }}\ncart", "two entirely different"), "k").id
        );
        let frame = |function: &str, line: u32, in_app: bool| Frame {
            module: Some("shop.cart".into()),
            function: Some(function.into()),
            lineno: Some(line),
            in_app: Some(in_app),
            ..Frame::default()
        };
        let exc = |msg: &str, frames: Vec<Frame>| Logged {
            exception: Some(vec![Exception {
                ty: "KeyError".into(),
                value: msg.into(),
                module: None,
                frames,
            }]),
            ..entry(msg)
        };
        let a = group_of(
            &exc(
                "'sku-1'",
                vec![frame("lib", 1, false), frame("total", 42, true)],
            ),
            "k",
        );
        // Another value, another line, another library frame: the same group.
        let b = group_of(
            &exc(
                "'sku-2'",
                vec![frame("other_lib", 9, false), frame("total", 43, true)],
            ),
            "k",
        );
        assert_eq!(a.id, b.id);
        let c = group_of(&exc("'sku-1'", vec![frame("subtotal", 42, true)]), "k");
        assert_ne!(a.id, c.id);
    }
}

#[cfg(test)]
mod no_panic {
    use super::*;

    /// Messages made of the characters the matchers look at, in random
    /// order: normalising never panics (it runs in the projector on every
    /// entry, so a panic would stop it) and always gives text.
    #[test]
    fn random_messages_never_panic() {
        use rand::Rng;
        let alphabet: Vec<char> =
            "0123456789abcdefxyzXYZ:.-+_@/'\" \n\t%,Tz#()[]{}é日😀\u{0}\u{200b}"
                .chars()
                .collect();
        let mut rng = rand::rng();
        for _ in 0..20_000 {
            let len = rng.random_range(0..60);
            let text: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let out = normalize(&text);
            assert!(out.len() <= text.len() * 8 + 8, "{text:?} → {out:?}");
            let _ = crate::traceback::parse(&format!("Traceback (most recent call last):\n{text}"));
            let _ = crate::traceback::parse_stack(&text);
        }
    }
}

//! A Sentry event or structured log record as a minilog entry
//! (docs/api.md, "Sentry SDK protocol", "Event → entry").

use crate::fields::{Meta, cut, kept_message, scalar_text};
use proto::Level;
use proto::event::{Exception, Frame};
use proto::input::{
    Limits, MAX_FINGERPRINT_CHARS, MAX_META_VALUE_CHARS, MAX_SOURCE_CHARS, NewEntry,
};
use serde_json::{Map, Value};

/// Most exceptions kept of a chain, and frames of one exception (the ones
/// nearest the raise are kept).
const MAX_CHAIN: usize = 10;
const MAX_FRAMES: usize = 100;
/// Each text of a frame is cut to this many characters, and its context to
/// this many lines on each side.
const MAX_FRAME_TEXT: usize = 512;
const MAX_CONTEXT_LINES: usize = 5;
/// An exception chain larger than this (as JSON) loses context lines, then
/// frames, until it fits: an entry stays well inside a NATS message.
const MAX_EXCEPTION_BYTES: usize = 256 * 1024;

/// An entry and what the event said of itself.
pub(crate) struct Mapped {
    pub entry: NewEntry,
    /// The event's `event_id` (32 hex digits), when it has a valid one.
    pub event_id: Option<String>,
    /// Meta fields left out (over the limits).
    pub meta_dropped: u64,
}

/// A Sentry `event` item's JSON as an entry.
pub(crate) fn event(ev: &Map<String, Value>, limits: &Limits) -> Mapped {
    let chain = exception_chain(ev);
    let text = match chain.first() {
        Some(outer) if outer.value.is_empty() => outer.ty.clone(),
        Some(outer) => format!("{}: {}", outer.ty, outer.value),
        None => logentry(ev)
            .or_else(|| message_field(ev))
            .unwrap_or_else(|| "<unlabeled event>".to_owned()),
    };
    let level = match ev.get("level").and_then(Value::as_str) {
        Some(l) => sentry_level(l).unwrap_or(Level::Error),
        None => Level::Error,
    };
    let source = str_of(ev, "logger")
        .or_else(|| str_of(ev, "platform"))
        .map(|s| cut(s, MAX_SOURCE_CHARS));
    let fingerprint = match ev.get("fingerprint") {
        Some(Value::Array(parts)) if !parts.is_empty() => {
            let parts: Vec<String> = parts.iter().map(scalar_text).collect();
            Some(cut(&parts.join("\n"), MAX_FINGERPRINT_CHARS))
        }
        _ => None,
    };
    let mut meta = Meta::default();
    for name in [
        "release",
        "environment",
        "server_name",
        "platform",
        "transaction",
    ] {
        meta.put(name, ev.get(name));
    }
    if let Some(Value::Object(sdk)) = ev.get("sdk") {
        let name = sdk.get("name").map(scalar_text).unwrap_or_default();
        let version = sdk.get("version").map(scalar_text).unwrap_or_default();
        meta.put_text("sdk", format!("{name}/{version}"));
    }
    if let Some(Value::Object(request)) = ev.get("request") {
        meta.put("request.url", request.get("url"));
        meta.put("request.method", request.get("method"));
    }
    if let Some(Value::Object(user)) = ev.get("user") {
        meta.put("user.id", user.get("id"));
    }
    match ev.get("tags") {
        Some(Value::Object(tags)) => {
            for (k, v) in tags {
                meta.put(&format!("tag.{k}"), Some(v));
            }
        }
        // Some SDKs send tags as [name, value] pairs.
        Some(Value::Array(pairs)) => {
            for pair in pairs {
                if let Some([k, v]) = pair.as_array().map(Vec::as_slice) {
                    meta.put(&format!("tag.{}", scalar_text(k)), Some(v));
                }
            }
        }
        _ => {}
    }
    let (message, trimmed) = kept_message(&text, limits);
    Mapped {
        entry: NewEntry {
            level,
            message,
            source,
            time: ev.get("timestamp").and_then(timestamp_ms),
            meta: meta.pairs,
            fingerprint,
            exception: (!chain.is_empty()).then_some(chain),
            trimmed,
        },
        event_id: ev.get("event_id").and_then(event_id),
        meta_dropped: meta.dropped,
    }
}

/// One record of a `log` item (`{"items": [...]}`) as an entry.
pub(crate) fn log_record(rec: &Map<String, Value>, limits: &Limits) -> Mapped {
    let body = match rec.get("body") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let body = if body.trim().is_empty() {
        "<empty log>".to_owned()
    } else {
        body
    };
    let level = rec
        .get("level")
        .and_then(Value::as_str)
        .and_then(sentry_level)
        .unwrap_or(Level::Info);
    let attrs = match rec.get("attributes") {
        Some(Value::Object(a)) => a.clone(),
        _ => Map::new(),
    };
    // Attributes are {"value": V, "type": T}; older SDKs sent bare values.
    let attr = |name: &str| -> Option<&Value> {
        let v = attrs.get(name)?;
        Some(v.get("value").unwrap_or(v))
    };
    let source = attr("logger.name")
        .or_else(|| attr("sentry.sdk.name"))
        .map(|v| cut(&scalar_text(v), MAX_SOURCE_CHARS));
    let mut meta = Meta::default();
    meta.put("release", attr("sentry.release"));
    meta.put("environment", attr("sentry.environment"));
    meta.put("server_name", attr("server.address"));
    if let Some(trace) = rec.get("trace_id") {
        meta.put("trace_id", Some(trace));
    }
    for (name, _) in attrs.iter() {
        let mapped = matches!(
            name.as_str(),
            "sentry.release" | "sentry.environment" | "server.address"
        );
        if !mapped {
            meta.put(name, attr(name));
        }
    }
    let (message, trimmed) = kept_message(&body, limits);
    Mapped {
        entry: NewEntry {
            level,
            message,
            source,
            time: rec.get("timestamp").and_then(timestamp_ms),
            meta: meta.pairs,
            fingerprint: None,
            exception: None,
            trimmed,
        },
        event_id: None,
        meta_dropped: meta.dropped,
    }
}

/// Sentry's level words (`warning`, `fatal`, `log`) and minilog's own.
fn sentry_level(word: &str) -> Option<Level> {
    match word.to_ascii_lowercase().as_str() {
        "fatal" | "critical" => Some(Level::Critical),
        "error" => Some(Level::Error),
        "warning" | "warn" => Some(Level::Warn),
        "info" | "log" => Some(Level::Info),
        "debug" | "trace" => Some(Level::Debug),
        _ => None,
    }
}

/// `logentry.formatted`, else `logentry.message` with its `params`.
fn logentry(ev: &Map<String, Value>) -> Option<String> {
    let Some(Value::Object(entry)) = ev
        .get("logentry")
        .or_else(|| ev.get("sentry.interfaces.Message"))
    else {
        return None;
    };
    if let Some(f) = str_of(entry, "formatted").filter(|f| !f.trim().is_empty()) {
        return Some(f.to_owned());
    }
    let template = str_of(entry, "message")?;
    let params: Vec<String> = match entry.get("params") {
        Some(Value::Array(p)) => p.iter().map(scalar_text).collect(),
        _ => Vec::new(),
    };
    Some(format_params(template, &params))
}

/// `%s`-style placeholders filled in order (`%%` is a `%`); a template
/// with more placeholders than params keeps the rest as they are.
fn format_params(template: &str, params: &[String]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut params = params.iter();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('%') => {
                chars.next();
                out.push('%');
            }
            Some('s' | 'd' | 'i' | 'r' | 'f') => match params.next() {
                Some(p) => {
                    chars.next();
                    out.push_str(p);
                }
                None => out.push('%'),
            },
            _ => out.push('%'),
        }
    }
    out
}

/// `message` as a string, or the older `{"formatted"|"message": …}` object.
fn message_field(ev: &Map<String, Value>) -> Option<String> {
    match ev.get("message")? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Object(m) => str_of(m, "formatted")
            .or_else(|| str_of(m, "message"))
            .map(str::to_owned),
        _ => None,
    }
}

/// The exception chain, outermost first. Sentry lists it innermost first;
/// a synthetic exception (a JavaScript SDK's stack for a plain message)
/// is not an exception.
fn exception_chain(ev: &Map<String, Value>) -> Vec<Exception> {
    let values = match ev.get("exception") {
        Some(Value::Object(e)) => e.get("values"),
        // An older shape: the list itself.
        Some(list @ Value::Array(_)) => Some(list),
        _ => None,
    };
    let Some(Value::Array(values)) = values else {
        return Vec::new();
    };
    let mut chain: Vec<Exception> = values
        .iter()
        .rev()
        .filter_map(Value::as_object)
        .filter(|v| {
            let synthetic = v
                .get("mechanism")
                .and_then(|m| m.get("synthetic"))
                .and_then(Value::as_bool);
            synthetic != Some(true)
        })
        .take(MAX_CHAIN)
        .map(exception)
        .collect();
    fit(&mut chain);
    chain
}

fn exception(v: &Map<String, Value>) -> Exception {
    let frames = match v.get("stacktrace").and_then(|s| s.get("frames")) {
        Some(Value::Array(frames)) => {
            let skip = frames.len().saturating_sub(MAX_FRAMES);
            frames
                .iter()
                .skip(skip)
                .filter_map(Value::as_object)
                .map(frame)
                .collect()
        }
        _ => Vec::new(),
    };
    Exception {
        ty: str_of(v, "type")
            .map(|t| cut(t, MAX_FRAME_TEXT))
            .unwrap_or_else(|| "Error".to_owned()),
        value: v
            .get("value")
            .map(scalar_text)
            .map(|t| cut(&t, MAX_META_VALUE_CHARS))
            .unwrap_or_default(),
        module: text_field(v, "module"),
        frames,
    }
}

fn frame(f: &Map<String, Value>) -> Frame {
    let lines = |name: &str, keep_last: bool| -> Vec<String> {
        let Some(Value::Array(lines)) = f.get(name) else {
            return Vec::new();
        };
        let skip = if keep_last {
            lines.len().saturating_sub(MAX_CONTEXT_LINES)
        } else {
            0
        };
        lines
            .iter()
            .skip(skip)
            .take(MAX_CONTEXT_LINES)
            .map(|l| cut(&scalar_text(l), MAX_FRAME_TEXT))
            .collect()
    };
    let number = |name: &str| {
        f.get(name)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    Frame {
        filename: text_field(f, "filename").or_else(|| text_field(f, "abs_path")),
        function: text_field(f, "function"),
        module: text_field(f, "module"),
        lineno: number("lineno"),
        colno: number("colno"),
        in_app: f.get("in_app").and_then(Value::as_bool),
        context_line: text_field(f, "context_line"),
        // The lines nearest the frame's line are kept.
        pre_context: lines("pre_context", true),
        post_context: lines("post_context", false),
    }
}

/// Shrinks a chain past [`MAX_EXCEPTION_BYTES`]: first library frames'
/// context, then all context, then all but the 10 frames nearest each raise.
fn fit(chain: &mut [Exception]) {
    // An upper bound of the JSON size, without writing it: every text with
    // room for its quoting and name.
    let size = |chain: &[Exception]| -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, |s| 2 * s.len() + 24);
        chain
            .iter()
            .map(|e| {
                2 * (e.ty.len() + e.value.len())
                    + 64
                    + e.frames
                        .iter()
                        .map(|f| {
                            text(&f.filename)
                                + text(&f.function)
                                + text(&f.module)
                                + text(&f.context_line)
                                + f.pre_context
                                    .iter()
                                    .chain(&f.post_context)
                                    .map(|l| 2 * l.len() + 3)
                                    .sum::<usize>()
                                + 160
                        })
                        .sum::<usize>()
            })
            .sum()
    };
    let steps: [fn(&mut Frame) -> bool; 2] = [|f| f.in_app != Some(true), |_| true];
    for strip in steps {
        if size(chain) <= MAX_EXCEPTION_BYTES {
            return;
        }
        for frame in chain.iter_mut().flat_map(|e| e.frames.iter_mut()) {
            if strip(frame) {
                frame.pre_context.clear();
                frame.post_context.clear();
                frame.context_line = None;
            }
        }
    }
    if size(chain) > MAX_EXCEPTION_BYTES {
        for e in chain.iter_mut() {
            let skip = e.frames.len().saturating_sub(10);
            e.frames.drain(..skip);
        }
    }
}

/// The event's id as 32 lowercase hex digits (a UUID's dashes dropped).
pub(crate) fn event_id(v: &Value) -> Option<String> {
    let id: String = v.as_str()?.chars().filter(|c| *c != '-').collect();
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

/// Unix ms from RFC 3339 text or (float) seconds.
fn timestamp_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => {
            let secs = n.as_f64()?;
            (secs.is_finite() && secs > 0.0 && secs < 1e11).then_some((secs * 1000.0) as i64)
        }
        Value::String(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .ok()?;
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
        }
        _ => None,
    }
}

fn str_of<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    m.get(name).and_then(Value::as_str)
}

/// A frame's or exception's text field, cut to size.
fn text_field(m: &Map<String, Value>, name: &str) -> Option<String> {
    str_of(m, name)
        .filter(|s| !s.is_empty())
        .map(|s| cut(s, MAX_FRAME_TEXT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_outermost_exception_names_the_entry_and_the_chain_is_outermost_first() {
        let ev = map(json!({
            "event_id": "9EC79C33-EC99-42AB-8353-589FCB2E04DC",
            "level": "fatal", "logger": "shop", "timestamp": 1_800_000_000.5,
            "exception": {"values": [
                {"type": "ZeroDivisionError", "value": "division by zero"},
                {"type": "KeyError", "value": "'sku'", "stacktrace": {"frames": [
                    {"filename": "a.py", "function": "outer", "lineno": 1, "in_app": false},
                    {"filename": "b.py", "function": "inner", "lineno": 2, "in_app": true,
                     "context_line": "x = d[k]", "pre_context": ["1","2","3","4","5","6","7"]}
                ]}}
            ]}
        }));
        let m = event(&ev, &Limits::default());
        assert_eq!(m.entry.message, "KeyError: 'sku'");
        assert_eq!(m.entry.level, Level::Critical);
        assert_eq!(m.entry.source.as_deref(), Some("shop"));
        assert_eq!(m.entry.time, Some(1_800_000_000_500));
        assert_eq!(
            m.event_id.as_deref(),
            Some("9ec79c33ec9942ab8353589fcb2e04dc")
        );
        let chain = m.entry.exception.unwrap();
        assert_eq!(chain[0].ty, "KeyError");
        assert_eq!(chain[1].ty, "ZeroDivisionError");
        let raised = chain[0].frames.last().unwrap();
        assert_eq!(raised.function.as_deref(), Some("inner"));
        assert_eq!(raised.in_app, Some(true));
        assert_eq!(raised.pre_context, ["3", "4", "5", "6", "7"]);
    }

    #[test]
    fn messages_come_from_logentry_then_message_and_short_ones_are_kept() {
        let limits = Limits::default();
        let ev =
            map(json!({"logentry": {"message": "order %s failed 100%% (%d)", "params": [42]}}));
        assert_eq!(
            event(&ev, &limits).entry.message,
            "order 42 failed 100% (%d)"
        );
        let ev =
            map(json!({"logentry": {"formatted": "done", "message": "x %s"}, "message": "no"}));
        assert_eq!(event(&ev, &limits).entry.message, "done");
        let ev = map(json!({"message": "ok", "level": "warning"}));
        let m = event(&ev, &limits);
        assert_eq!(m.entry.message, "\"ok\"");
        assert_eq!(m.entry.level, Level::Warn);
        assert_eq!(
            event(&map(json!({})), &limits).entry.message,
            "<unlabeled event>"
        );
        assert_eq!(
            event(&map(json!({"level": "nonsense"})), &limits)
                .entry
                .level,
            Level::Error
        );
        // A synthetic exception (a JavaScript captureMessage) is not one.
        let ev = map(json!({"message": "node hello", "exception": {"values": [
            {"value": "node hello", "mechanism": {"type": "generic", "synthetic": true}}]}}));
        let m = event(&ev, &limits);
        assert_eq!(m.entry.message, "node hello");
        assert_eq!(m.entry.exception, None);
    }

    #[test]
    fn meta_takes_the_named_fields_and_tags_within_its_limits() {
        let mut tags = Map::new();
        for i in 0..40 {
            tags.insert(format!("t{i:02}"), json!(i));
        }
        tags.insert("x".repeat(80), json!("long name"));
        let ev = map(json!({
            "message": "hello there", "release": "shop@1.2.3", "environment": "production",
            "server_name": "web-1", "platform": "python",
            "sdk": {"name": "sentry.python", "version": "2.75.0"},
            "request": {"url": "https://shop.example/cart", "method": "POST"},
            "user": {"id": 7}, "tags": tags, "fingerprint": ["{{ default }}", "cart"]
        }));
        let m = event(&ev, &Limits::default());
        let meta = &m.entry.meta;
        assert_eq!(meta["release"], "shop@1.2.3");
        assert_eq!(meta["sdk"], "sentry.python/2.75.0");
        assert_eq!(meta["request.method"], "POST");
        assert_eq!(meta["user.id"], "7");
        assert_eq!(meta["tag.t00"], "0");
        assert_eq!(meta.len(), proto::input::MAX_META_PAIRS);
        // 8 named fields and 24 tags fit; 16 tags and the long name do not.
        assert_eq!(m.meta_dropped, 17);
        assert_eq!(m.entry.fingerprint.as_deref(), Some("{{ default }}\ncart"));
        assert_eq!(m.entry.source.as_deref(), Some("python"));
        proto::input::meta(Some(&json!(meta))).expect("the meta passes minilog's own validation");
    }

    #[test]
    fn a_huge_chain_is_cut_to_fit() {
        let frames: Vec<Value> = (0..100)
            .map(|i| {
                json!({"filename": "f.py", "lineno": i, "in_app": i % 2 == 0,
                "context_line": "y".repeat(600), "pre_context": vec!["z".repeat(600); 9],
                "post_context": vec!["w".repeat(600); 9]})
            })
            .collect();
        let values: Vec<Value> = (0..20)
            .map(|i| json!({"type": format!("E{i}"), "value": "v", "stacktrace": {"frames": frames}}))
            .collect();
        let ev = map(json!({"exception": {"values": values}}));
        let chain = event(&ev, &Limits::default()).entry.exception.unwrap();
        assert_eq!(chain.len(), MAX_CHAIN);
        assert_eq!(chain[0].ty, "E19");
        assert!(serde_json::to_vec(&chain).unwrap().len() <= MAX_EXCEPTION_BYTES);
    }

    #[test]
    fn log_records_take_their_level_body_and_attributes() {
        let rec = map(json!({
            "timestamp": 1_796_139_226.879_942, "level": "warn", "body": "cache miss for user:7",
            "trace_id": "5b8efff798038103d269b633813fc60c",
            "attributes": {
                "sentry.message.template": {"value": "cache miss for {key}", "type": "string"},
                "sentry.message.parameter.key": {"value": "user:7", "type": "string"},
                "sentry.release": {"value": "shop@1.2.3", "type": "string"},
                "logger.name": {"value": "billing", "type": "string"},
                "count": {"value": 3, "type": "integer"},
                "items": {"value": ["a", "b"], "type": "array"}
            }
        }));
        let m = log_record(&rec, &Limits::default());
        assert_eq!(m.entry.level, Level::Warn);
        assert_eq!(m.entry.message, "cache miss for user:7");
        assert_eq!(m.entry.source.as_deref(), Some("billing"));
        assert_eq!(m.entry.time, Some(1_796_139_226_879));
        let meta = &m.entry.meta;
        assert_eq!(meta["release"], "shop@1.2.3");
        assert_eq!(meta["count"], "3");
        assert_eq!(meta["items"], "[\"a\",\"b\"]");
        assert_eq!(meta["sentry.message.template"], "cache miss for {key}");
        assert_eq!(meta["trace_id"], "5b8efff798038103d269b633813fc60c");
    }
}

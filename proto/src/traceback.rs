//! Python tracebacks that arrive as plain text in a message (the seed's
//! clients and minilog's own Python client send them so), read into the
//! same exception chain a Sentry SDK reports. The message itself is kept
//! as it was sent; this only adds the structure.
//!
//! ```text
//! Traceback (most recent call last):
//!   File "/app/shop/cart.py", line 42, in total
//!     return prices[item.sku]
//! KeyError: 'sku'
//! ```
//!
//! Chained exceptions are several such blocks, the first raised first,
//! joined by "During handling of the above exception, another exception
//! occurred:" or "The above exception was the direct cause of the
//! following exception:".

use crate::event::{Exception, Frame};

const HEADER: &str = "Traceback (most recent call last):";

/// The chain in `message`, outermost (last raised) first; `None` if the
/// message holds no traceback.
pub fn parse(message: &str) -> Option<Vec<Exception>> {
    if !message.contains(HEADER) {
        return None;
    }
    let mut chain = Vec::new();
    let mut lines = message.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() != HEADER {
            continue;
        }
        let mut frames: Vec<Frame> = Vec::new();
        let mut exception = None;
        while let Some(line) = lines.peek().copied() {
            if let Some(frame) = frame_line(line) {
                lines.next();
                frames.push(frame);
                continue;
            }
            if line.starts_with(' ') || line.starts_with('\t') || line.is_empty() {
                lines.next();
                let code = line.trim();
                let marker = code.chars().all(|c| matches!(c, '~' | '^' | ' '));
                if let Some(last) = frames.last_mut()
                    && last.context_line.is_none()
                    && !code.is_empty()
                    && !marker
                    && !code.starts_with("[Previous line repeated")
                {
                    last.context_line = Some(code.to_owned());
                }
                continue;
            }
            // The first line at the margin ends the frames: the exception.
            lines.next();
            exception = Some(exception_line(line));
            break;
        }
        if let Some((ty, value)) = exception {
            chain.push(Exception {
                ty,
                value,
                module: None,
                frames,
            });
        }
    }
    chain.reverse();
    (!chain.is_empty()).then_some(chain)
}

/// A stack trace as an exception's `stacktrace` text carries it: a Python
/// traceback ([`parse`]), else the `at …` lines of a Java, .NET or
/// JavaScript stack (newest call first there; oldest first here), as one
/// exception whose type and value the caller sets.
pub fn parse_stack(text: &str) -> Option<Vec<Exception>> {
    if let Some(chain) = parse(text) {
        return Some(chain);
    }
    let mut frames: Vec<Frame> = text.lines().filter_map(at_line).collect();
    if frames.is_empty() {
        return None;
    }
    frames.reverse();
    Some(vec![Exception {
        frames,
        ..Exception::default()
    }])
}

/// `at pkg.Class.method(File.java:12)` or `at fn (file.js:3:14)`.
fn at_line(line: &str) -> Option<Frame> {
    let rest = line.trim_start().strip_prefix("at ")?;
    let (function, place) = match rest.rfind('(') {
        Some(open) => (
            Some(rest[..open].trim().to_owned()).filter(|f| !f.is_empty()),
            rest[open + 1..].trim_end().trim_end_matches(')'),
        ),
        None => (None, rest.trim()),
    };
    // `file:line[:column]`, the numbers at the end.
    let mut parts = place.rsplitn(3, ':');
    let last = parts.next()?;
    let (file, lineno, colno) = match (parts.next(), parts.next()) {
        (Some(l), Some(f)) if l.parse::<u32>().is_ok() => (f, l.parse().ok(), last.parse().ok()),
        (Some(f), _) => (f, last.parse().ok(), None),
        _ => (place, None, None),
    };
    Some(Frame {
        in_app: Some(!is_library(file) && !file.starts_with("node:")),
        filename: Some(file.to_owned()),
        function,
        lineno,
        colno,
        ..Frame::default()
    })
}

/// `  File "<path>", line <n>, in <function>`.
fn frame_line(line: &str) -> Option<Frame> {
    let rest = line.trim_start().strip_prefix("File \"")?;
    let (file, rest) = rest.split_once("\", line ")?;
    let (number, function) = match rest.split_once(", in ") {
        Some((n, f)) => (n, Some(f.trim().to_owned())),
        None => (rest, None),
    };
    Some(Frame {
        in_app: Some(!is_library(file)),
        filename: Some(file.to_owned()),
        function,
        lineno: number.trim().parse().ok(),
        ..Frame::default()
    })
}

/// Installed packages and the standard library are not the sender's code.
fn is_library(file: &str) -> bool {
    file.contains("site-packages")
        || file.contains("dist-packages")
        || file.contains("/lib/python")
        || file.starts_with('<')
}

/// `Type: value`, or a bare `Type`.
fn exception_line(line: &str) -> (String, String) {
    match line.split_once(": ") {
        Some((ty, value)) if !ty.contains(' ') => (ty.to_owned(), value.to_owned()),
        _ => match line.strip_suffix(':') {
            Some(ty) if !ty.contains(' ') => (ty.to_owned(), String::new()),
            _ => (line.trim().to_owned(), String::new()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chained_traceback_is_read_outermost_first() {
        let text = "payment failed for order 42\n\
Traceback (most recent call last):\n  \
File \"/app/shop/price.py\", line 3, in ratio\n    \
return a / b\n           \
~~^~~\n\
ZeroDivisionError: division by zero\n\
\n\
During handling of the above exception, another exception occurred:\n\
\n\
Traceback (most recent call last):\n  \
File \"/usr/lib/python3.11/runpy.py\", line 88, in _run_code\n    \
exec(code, run_globals)\n  \
File \"/app/shop/cart.py\", line 42, in total\n    \
return prices[item.sku]\n\
KeyError: 'sku'\n";
        let chain = parse(text).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].ty, "KeyError");
        assert_eq!(chain[0].value, "'sku'");
        assert_eq!(chain[0].frames.len(), 2);
        let raised = &chain[0].frames[1];
        assert_eq!(raised.filename.as_deref(), Some("/app/shop/cart.py"));
        assert_eq!(raised.lineno, Some(42));
        assert_eq!(raised.function.as_deref(), Some("total"));
        assert_eq!(
            raised.context_line.as_deref(),
            Some("return prices[item.sku]")
        );
        assert_eq!(raised.in_app, Some(true));
        assert_eq!(chain[0].frames[0].in_app, Some(false));
        assert_eq!(chain[1].ty, "ZeroDivisionError");
        // The caret line is not the context.
        assert_eq!(
            chain[1].frames[0].context_line.as_deref(),
            Some("return a / b")
        );
    }

    #[test]
    fn java_and_javascript_stacks_are_read_oldest_call_first() {
        let java = "java.lang.IllegalStateException: closed\n\tat com.shop.Cart.total(Cart.java:42)\n\tat com.shop.Main.main(Main.java:7)";
        let chain = parse_stack(java).unwrap();
        let frames = &chain[0].frames;
        assert_eq!(frames[0].function.as_deref(), Some("com.shop.Main.main"));
        assert_eq!(frames[1].filename.as_deref(), Some("Cart.java"));
        assert_eq!(frames[1].lineno, Some(42));
        let js = "Error: boom\n    at total (/app/cart.js:3:14)\n    at node:internal/main:1:1";
        let frames = &parse_stack(js).unwrap()[0].frames;
        assert_eq!(frames[1].filename.as_deref(), Some("/app/cart.js"));
        assert_eq!((frames[1].lineno, frames[1].colno), (Some(3), Some(14)));
        assert_eq!(frames[0].in_app, Some(false));
        assert_eq!(parse_stack("no stack here"), None);
    }

    #[test]
    fn dotted_and_bare_exception_types_and_no_traceback() {
        let text = "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n\
requests.exceptions.ConnectionError: Max retries exceeded: refused";
        let chain = parse(text).unwrap();
        assert_eq!(chain[0].ty, "requests.exceptions.ConnectionError");
        assert_eq!(chain[0].value, "Max retries exceeded: refused");
        let bare =
            parse("Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyboardInterrupt")
                .unwrap();
        assert_eq!(bare[0].ty, "KeyboardInterrupt");
        assert_eq!(bare[0].value, "");
        assert_eq!(parse("disk almost full"), None);
        // A header with nothing after it is no exception.
        assert_eq!(parse("Traceback (most recent call last):\n"), None);
    }
}

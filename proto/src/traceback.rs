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

//! An entry's exception chain as the entry page shows it: each exception
//! of the chain (outermost first), its frames newest call first, the
//! sender's own frames (in-app) marked, with their context lines.

use proto::event::{Exception, Frame};

pub struct ExceptionView {
    /// `Type: value`.
    pub title: String,
    /// Where the exception came from, for every one but the first.
    pub cause: bool,
    /// Newest call first.
    pub frames: Vec<FrameView>,
}

pub struct FrameView {
    /// `file:line:column`, or the module when no file is known.
    pub place: String,
    pub function: String,
    pub in_app: bool,
    pub lines: Vec<ContextLine>,
}

pub struct ContextLine {
    /// The line's number, when the frame says its own.
    pub number: String,
    pub text: String,
    /// The frame's own line.
    pub current: bool,
}

pub fn views(chain: &[Exception]) -> Vec<ExceptionView> {
    chain
        .iter()
        .enumerate()
        .map(|(i, e)| ExceptionView {
            title: if e.value.is_empty() {
                e.ty.clone()
            } else {
                format!("{}: {}", e.ty, e.value)
            },
            cause: i > 0,
            frames: e.frames.iter().rev().map(frame).collect(),
        })
        .collect()
}

fn frame(f: &Frame) -> FrameView {
    let file = f
        .filename
        .clone()
        .or_else(|| f.module.clone())
        .unwrap_or_else(|| "?".to_owned());
    let place = match (f.lineno, f.colno) {
        (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
        (Some(l), None) => format!("{file}:{l}"),
        _ => file,
    };
    let number = |offset: i64| {
        f.lineno
            .map(|l| i64::from(l) + offset)
            .filter(|n| *n > 0)
            .map_or_else(String::new, |n| n.to_string())
    };
    let mut lines = Vec::new();
    if let Some(current) = &f.context_line {
        let before = f.pre_context.len() as i64;
        for (i, text) in f.pre_context.iter().enumerate() {
            lines.push(ContextLine {
                number: number(i as i64 - before),
                text: text.clone(),
                current: false,
            });
        }
        lines.push(ContextLine {
            number: number(0),
            text: current.clone(),
            current: true,
        });
        for (i, text) in f.post_context.iter().enumerate() {
            lines.push(ContextLine {
                number: number(i as i64 + 1),
                text: text.clone(),
                current: false,
            });
        }
    }
    FrameView {
        place,
        function: f.function.clone().unwrap_or_else(|| "?".to_owned()),
        in_app: f.in_app == Some(true),
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_show_newest_first_with_numbered_context() {
        let chain = vec![Exception {
            ty: "KeyError".into(),
            value: "'sku'".into(),
            module: None,
            frames: vec![
                Frame {
                    filename: Some("app.py".into()),
                    function: Some("main".into()),
                    lineno: Some(3),
                    ..Frame::default()
                },
                Frame {
                    filename: Some("cart.py".into()),
                    function: Some("total".into()),
                    lineno: Some(10),
                    in_app: Some(true),
                    context_line: Some("return d[k]".into()),
                    pre_context: vec!["def total():".into()],
                    post_context: vec!["".into()],
                    ..Frame::default()
                },
            ],
        }];
        let v = views(&chain);
        assert_eq!(v[0].title, "KeyError: 'sku'");
        assert_eq!(v[0].frames[0].place, "cart.py:10");
        assert!(v[0].frames[0].in_app);
        let numbers: Vec<_> = v[0].frames[0]
            .lines
            .iter()
            .map(|l| l.number.as_str())
            .collect();
        assert_eq!(numbers, ["9", "10", "11"]);
        assert!(v[0].frames[0].lines[1].current);
        assert_eq!(v[0].frames[1].function, "main");
        assert!(v[0].frames[1].lines.is_empty());
    }
}

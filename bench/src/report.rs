//! The markdown table: each figure beside its same-run ceiling.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Row {
    pub figure: String,
    pub value: String,
    pub ceiling: String,
    pub ratio: String,
    /// The target, with ✓ or ✗ where it applies.
    pub target: String,
}

impl Row {
    pub fn new(figure: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            figure: figure.into(),
            value: value.into(),
            ceiling: "—".into(),
            ratio: "—".into(),
            target: String::new(),
        }
    }

    pub fn ceiling(mut self, ceiling: impl Into<String>, ratio: impl Into<String>) -> Row {
        self.ceiling = ceiling.into();
        self.ratio = ratio.into();
        self
    }

    pub fn target(mut self, text: &str, met: Option<bool>) -> Row {
        self.target = match met {
            Some(true) => format!("{text} ✓"),
            Some(false) => format!("{text} ✗ missed"),
            None => text.to_owned(),
        };
        self
    }
}

pub fn table(rows: &[Row]) -> String {
    let mut out = String::from("| figure | value | ceiling (same run) | ratio | target |\n");
    out.push_str("|---|---|---|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.figure, r.value, r.ceiling, r.ratio, r.target
        ));
    }
    out
}

/// `12,345`
pub fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `0.213 ms`, `4.52 ms`, `312 ms`
pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1e3;
    if v < 1.0 {
        format!("{v:.3} ms")
    } else if v < 100.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}

pub fn pct(ratio: f64) -> String {
    format!("{:.0}%", ratio * 100.0)
}

pub fn times(ratio: f64) -> String {
    if ratio < 10.0 {
        format!("{ratio:.1}×")
    } else {
        format!("{ratio:.0}×")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(ms(Duration::from_micros(213)), "0.213 ms");
        assert_eq!(ms(Duration::from_micros(4520)), "4.52 ms");
        assert_eq!(pct(0.456), "46%");
        assert!(table(&[Row::new("a", "b").target("≥ 1", Some(false))]).contains("✗"));
    }
}

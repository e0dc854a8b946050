//! Charts the server draws as inline SVG: readable without JavaScript and
//! on a phone. Only numbers and fixed words go into the markup, so it is
//! safe to embed.

use proto::Level;

/// 24 bars, 2 units wide, scaled to the busiest hour; a label for screen
/// readers. Numbers only go in, so the markup is safe to embed.
pub fn sparkline(hourly: &[u64; 24]) -> String {
    let max = hourly.iter().copied().max().unwrap_or(0).max(1);
    let total: u64 = hourly.iter().sum();
    let mut bars = String::new();
    for (i, n) in hourly.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        let h = (*n as f64 / max as f64 * 14.0).max(1.0);
        bars.push_str(&format!(
            r#"<rect x="{}" y="{:.1}" width="1.6" height="{h:.1}"/>"#,
            i * 2,
            16.0 - h
        ));
    }
    format!(
        r#"<svg class="spark" viewBox="0 0 48 16" width="96" height="32" role="img" aria-label="{total} in the last 24 hours"><title>{total} in the last 24 hours</title>{bars}</svg>"#
    )
}

/// The group page's chart: 24 labelled bars with the hour's count.
pub fn hourly_chart(hourly: &[u64; 24], now_ms: i64) -> String {
    let max = hourly.iter().copied().max().unwrap_or(0).max(1);
    let now_hour = now_ms / 3_600_000;
    let mut out = String::from(
        r#"<svg class="chart" viewBox="0 0 492 150" role="img" aria-label="entries per hour, the last 24 hours">"#,
    );
    for (i, n) in hourly.iter().enumerate() {
        let h = *n as f64 / max as f64 * 104.0;
        let x = 10 + i * 20;
        out.push_str(&format!(
            r#"<rect x="{x}" y="{:.1}" width="16" height="{h:.1}"><title>{n}</title></rect>"#,
            120.0 - h
        ));
        if *n > 0 {
            out.push_str(&format!(
                r#"<text x="{}" y="{:.1}" text-anchor="middle">{n}</text>"#,
                x + 8,
                116.0 - h
            ));
        }
        if i % 6 == 5 || i == 23 {
            let hour = (now_hour - 23 + i as i64).rem_euclid(24);
            out.push_str(&format!(
                r#"<text x="{}" y="140" text-anchor="middle" class="axis">{hour:02}:00</text>"#,
                x + 8
            ));
        }
    }
    out.push_str("</svg>");
    out
}

/// The entries list's chart: entries per hour over the last 24 hours,
/// stacked by level (`volume[hour][level code]`, oldest hour first), for
/// the levels shown; each bar says its counts when hovered.
pub fn volume_chart(volume: &[[u64; 6]; 24], levels: &[Level], now_ms: i64) -> String {
    let shown = |l: &Level| levels.is_empty() || levels.contains(l);
    let total = |hour: &[u64; 6]| -> u64 {
        Level::ALL
            .iter()
            .filter(|l| shown(l))
            .map(|l| hour[usize::from(l.code())])
            .sum()
    };
    let max = volume.iter().map(total).max().unwrap_or(0).max(1);
    let sum: u64 = volume.iter().map(total).sum();
    let now_hour = now_ms / 3_600_000;
    let mut out = format!(
        r#"<svg class="chart volume" viewBox="0 0 492 110" role="img" aria-label="{sum} entries in the last 24 hours, per hour by level">"#
    );
    for (i, hour) in volume.iter().enumerate() {
        let x = 10 + i * 20;
        let mut y = 90.0;
        let mut parts = Vec::new();
        for l in Level::ALL.iter().filter(|l| shown(l)) {
            let n = hour[usize::from(l.code())];
            if n == 0 {
                continue;
            }
            let h = n as f64 / max as f64 * 80.0;
            y -= h;
            out.push_str(&format!(
                r#"<rect class="lv-{}" x="{x}" y="{y:.1}" width="16" height="{h:.1}"/>"#,
                l.as_str()
            ));
            parts.push(format!("{n} {}", l.as_str()));
        }
        if !parts.is_empty() {
            // A transparent bar over the stack carries its hover text.
            out.push_str(&format!(
                r#"<rect class="hit" x="{x}" y="10" width="16" height="80"><title>{}</title></rect>"#,
                parts.join(", ")
            ));
        }
        if i % 6 == 5 || i == 23 {
            let hour = (now_hour - 23 + i as i64).rem_euclid(24);
            out.push_str(&format!(
                r#"<text x="{}" y="104" text-anchor="middle" class="axis">{hour:02}:00</text>"#,
                x + 8
            ));
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_volume_chart_stacks_the_levels_shown() {
        let mut v = [[0u64; 6]; 24];
        v[23][usize::from(Level::Error.code())] = 3;
        v[23][usize::from(Level::Info.code())] = 1;
        v[0][usize::from(Level::Warn.code())] = 2;
        let all = volume_chart(&v, &[], 0);
        assert_eq!(all.matches("class=\"lv-").count(), 3);
        assert!(all.contains("<title>1 info, 3 error</title>"), "{all}");
        assert!(all.contains("aria-label=\"6 entries"));
        let errors = volume_chart(&v, &[Level::Error], 0);
        assert_eq!(errors.matches("class=\"lv-").count(), 1);
        assert!(errors.contains("aria-label=\"3 entries"));
        // The busiest hour fills the height.
        assert!(errors.contains(r#"y="10.0" width="16" height="80.0""#));
    }
}

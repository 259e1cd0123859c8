//! Inline SVG charts for the HTML report: a time-series chart with anomaly markers, and a
//! horizontal bar chart.
//!
//! Why hand-written SVG instead of a plotting crate: the report needs two chart shapes, and
//! SVG text is the output either way. Writing it directly keeps the page self-contained (no
//! fonts, scripts or images fetched), adds nothing to the build, and lets every mark carry a
//! `<title>` tooltip and a class that the browser test can count.

use std::fmt::Write as _;

use chrono::{TimeZone, Utc};

/// One line of a time-series chart: (epoch ms, value) points, ascending in time.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(i64, f64)>,
}

/// A marked moment on a time-series chart (an anomaly bucket): time, count, tooltip.
#[derive(Debug, Clone)]
pub struct Marker {
    pub at_ms: i64,
    pub count: usize,
    pub label: String,
}

pub const BLUE: &str = "#2563eb";
pub const ORANGE: &str = "#ea580c";
pub const RED: &str = "#dc2626";
pub const GREY: &str = "#6b7280";

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 34.0;

/// Escape text for HTML/SVG content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A round step for about `target` ticks over `span`: 1, 2 or 5 × 10ⁿ.
fn nice_step(span: f64, target: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / target;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn fmt_time(ms: i64, with_date: bool) -> String {
    let t = Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
    if with_date {
        t.format("%m-%d %H:%M").to_string()
    } else {
        t.format("%H:%M").to_string()
    }
}

fn fmt_value(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A time-series chart: lines for `series`, red circles for `markers` (sized by count) on the
/// chart's top band, axes with round ticks, and a legend. `class` names the chart for styling
/// and tests.
pub fn time_series(class: &str, title: &str, series: &[Series], markers: &[Marker]) -> String {
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut t0, mut t1, mut ymax) = (i64::MAX, i64::MIN, 0f64);
    for &(t, v) in all {
        t0 = t0.min(t);
        t1 = t1.max(t);
        ymax = ymax.max(v);
    }
    for m in markers {
        t0 = t0.min(m.at_ms);
        t1 = t1.max(m.at_ms);
    }
    if t0 > t1 {
        (t0, t1) = (0, 1);
    }
    if t1 == t0 {
        t1 = t0 + 60_000;
    }
    let ystep = nice_step(ymax.max(1.0), 4.0);
    let ytop = (ymax / ystep).ceil().max(1.0) * ystep;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |t: i64| LEFT + (t - t0) as f64 / (t1 - t0) as f64 * plot_w;
    let y = |v: f64| TOP + plot_h - v / ytop * plot_h;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart {class}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = escape(title)
    );
    let _ = write!(
        svg,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/><text x="{LEFT}" y="18" font-size="13" font-weight="600" fill="#111827">{}</text>"##,
        escape(title)
    );
    // Horizontal grid and y labels.
    let mut v = 0.0;
    while v <= ytop + ystep * 0.01 {
        let yy = y(v);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e5e7eb"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end" fill="{GREY}">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            yy + 3.0,
            fmt_value(v)
        );
        v += ystep;
    }
    time_axis(&mut svg, (t0, t1), &x, plot_h);
    for s in series {
        if s.points.is_empty() {
            continue;
        }
        let mut d = String::new();
        for (i, &(t, v)) in s.points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                x(t),
                y(v)
            );
        }
        let _ = write!(
            svg,
            r#"<path class="series" d="{d}" fill="none" stroke="{}" stroke-width="1.5"><title>{}</title></path>"#,
            s.color,
            escape(&s.name)
        );
    }
    let biggest = markers.iter().map(|m| m.count).max().unwrap_or(1).max(1) as f64;
    for m in markers {
        let r = 3.0 + 4.0 * (m.count as f64 / biggest).sqrt();
        let _ = write!(
            svg,
            r#"<circle class="anomaly" cx="{:.1}" cy="{:.1}" r="{r:.1}" fill="{RED}" fill-opacity="0.8"><title>{}</title></circle>"#,
            x(m.at_ms),
            TOP + 6.0,
            escape(&m.label)
        );
    }
    legend(&mut svg, series, !markers.is_empty());
    svg.push_str("</svg>");
    svg
}

/// The time axis under the plot: about eight ticks, on round minutes, and the axis line.
fn time_axis(svg: &mut String, (t0, t1): (i64, i64), x: &dyn Fn(i64) -> f64, plot_h: f64) {
    let span_min = (t1 - t0) as f64 / 60_000.0;
    let steps = [
        5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 180.0, 360.0, 720.0, 1440.0,
    ];
    let step_min = steps
        .iter()
        .copied()
        .find(|s| span_min / s <= 8.0)
        .unwrap_or(1440.0 * (span_min / 1440.0 / 8.0).ceil());
    let step_ms = (step_min * 60_000.0) as i64;
    let with_date = t1 - t0 > 86_400_000;
    let mut t = (t0 + step_ms - 1).div_euclid(step_ms) * step_ms;
    while t <= t1 {
        let xx = x(t);
        let _ = write!(
            svg,
            r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#9ca3af"/><text x="{xx:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="{GREY}">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 4.0,
            TOP + plot_h + 16.0,
            fmt_time(t, with_date)
        );
        t += step_ms;
    }
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#6b7280"/>"##,
        TOP + plot_h,
        WIDTH - RIGHT,
        TOP + plot_h
    );
}

/// The legend, top right: each series' colour, and the anomaly markers' when there are any.
fn legend(svg: &mut String, series: &[Series], with_anomalies: bool) {
    let mut lx = WIDTH - RIGHT;
    let mut entries: Vec<(&str, &str)> =
        series.iter().map(|s| (s.name.as_str(), s.color)).collect();
    if with_anomalies {
        entries.push(("anomalies", RED));
    }
    for (name, color) in entries.iter().rev() {
        let w = 14.0 + 6.5 * name.chars().count() as f64;
        lx -= w + 10.0;
        let _ = write!(
            svg,
            r#"<rect x="{lx:.1}" y="9" width="10" height="10" fill="{color}"/><text x="{:.1}" y="18" font-size="11" fill="{GREY}">{}</text>"#,
            lx + 14.0,
            escape(name)
        );
    }
}

/// A horizontal bar chart of labelled values, largest first as given.
pub fn bars(class: &str, title: &str, items: &[(String, f64)], color: &str) -> String {
    let row = 22.0;
    let label_w = 400.0;
    let height = TOP + row * items.len().max(1) as f64 + 12.0;
    let max = items.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1.0);
    let bar_w = WIDTH - label_w - 80.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg class="chart {class}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{t}"><title>{t}</title><rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/><text x="8" y="18" font-size="13" font-weight="600" fill="#111827">{t}</text>"##,
        t = escape(title)
    );
    for (i, (label, v)) in items.iter().enumerate() {
        let yy = TOP + i as f64 * row;
        let w = (v / max * bar_w).max(1.0);
        let shown: String = if label.chars().count() > 62 {
            label.chars().take(61).chain(['…']).collect()
        } else {
            label.clone()
        };
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="{GREY}">{}</text><rect class="bar" x="{label_w}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{color}"><title>{}: {}</title></rect><text x="{:.1}" y="{:.1}" font-size="11" fill="{GREY}">{}</text>"#,
            label_w - 8.0,
            yy + 14.0,
            escape(&shown),
            yy + 3.0,
            row - 6.0,
            escape(label),
            fmt_value(*v),
            label_w + w + 6.0,
            yy + 14.0,
            fmt_value(*v)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_step(100.0, 4.0), 50.0);
        assert_eq!(nice_step(7.0, 4.0), 2.0);
        assert_eq!(nice_step(1200.0, 4.0), 500.0);
    }

    #[test]
    fn a_chart_draws_every_series_and_marker_and_escapes_text() {
        let s = Series {
            name: "events <all>".into(),
            color: BLUE,
            points: vec![(0, 1.0), (300_000, 5.0), (600_000, 2.0)],
        };
        let m = Marker {
            at_ms: 300_000,
            count: 2,
            label: "2 anomalies & more".into(),
        };
        let svg = time_series("chart-volume", "api", &[s], &[m]);
        assert_eq!(svg.matches("<path class=\"series\"").count(), 1);
        assert_eq!(svg.matches("<circle class=\"anomaly\"").count(), 1);
        assert!(svg.contains("events &lt;all&gt;") && svg.contains("&amp; more"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // The y axis ends on the first round tick above the peak: 5 → 6, in steps of 2.
        assert!(svg.contains(">6</text>") && !svg.contains(">8</text>"));
    }

    #[test]
    fn bars_scale_to_the_largest_value() {
        let svg = bars(
            "chart-detectors",
            "per detector",
            &[("a".into(), 10.0), ("b".into(), 5.0)],
            BLUE,
        );
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 2);
        let widths: Vec<f64> = svg
            .split("<rect class=\"bar\"")
            .skip(1)
            .map(|s| {
                let w = s.split("width=\"").nth(1).unwrap();
                w[..w.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        assert!((widths[0] / widths[1] - 2.0).abs() < 0.01, "{widths:?}");
    }
}

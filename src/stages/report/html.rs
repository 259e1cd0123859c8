//! `06-report --html`: one self-contained page per source and batch under
//! `<lake>/reports/<date>/`: event volume and anomalies over time per service, per-detector
//! counts, top and new templates, and the incidents table.
//!
//! Self-contained means one file with inline CSS and inline SVG: it opens from a mail
//! attachment, an artifact store or a file share with no network and nothing else beside it,
//! and it looks the same in a year. No scripts: tooltips are SVG `<title>`s.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use polars::prelude::*;

use super::svg::{self, Marker, Series, escape};
use crate::detectors::ensemble::NAME as ENSEMBLE;
use crate::features;
use crate::lake::{Layer, tables};
use crate::stages::Context;

/// At most this many points per line: longer ranges are summed into wider buckets, so a
/// month-long backfill report stays a few hundred kilobytes.
const MAX_POINTS: i64 = 400;
const TOP_TEMPLATES: usize = 15;
const MAX_NEW_TEMPLATES: usize = 40;
const MAX_INCIDENTS: usize = 100;

/// Per service: bucket start (ms) → (events, errors).
type Volumes = BTreeMap<String, BTreeMap<i64, (f64, f64)>>;

/// One anomaly row, as much as the page needs.
struct AnomalyMark {
    service: String,
    start_ms: i64,
    label: String,
}

/// The batch's anomalies as the page shows them.
struct BatchAnomalies {
    /// What to draw: the ensemble's verdicts when it ran, else every detector's rows.
    marks: Vec<AnomalyMark>,
    /// Rows per `granularity/detector`, most first.
    per_detector: Vec<(String, f64)>,
    /// What the marks show, for the page's caption.
    headline: &'static str,
}

/// A template no earlier batch of the source had.
struct NewTemplate {
    template: String,
    events: u64,
    first_seen: String,
}

struct BatchTemplates {
    /// The most frequent templates and their event counts.
    top: Vec<(String, f64)>,
    /// Templates first seen in this batch, in order of appearance.
    new: Vec<NewTemplate>,
    /// No earlier batch exists: every template is new, and none is listed.
    first_batch: bool,
}

/// What the text report has already read, so the page does not read it again.
pub struct BatchRead<'a> {
    pub lines: u64,
    pub events: u64,
    pub quarantined: u64,
    /// The batch's detections/anomalies, if any.
    pub anomalies: Option<&'a DataFrame>,
}

/// Write the page; returns its path.
pub fn write(ctx: &Context, read: &BatchRead) -> Result<PathBuf> {
    let src = &ctx.source;
    let dates = &ctx.dates;
    let (first, last) = (dates[0], dates[dates.len() - 1]);
    let batch = ctx.dates_label();
    let window_ms = i64::from(ctx.resolved.gold.window_minutes.max(1)) * 60_000;

    let (volumes, bucket_ms) = volumes(ctx, window_ms)?;
    let BatchAnomalies {
        marks,
        per_detector,
        headline,
    } = anomalies(read.anomalies)?;
    let BatchTemplates {
        top,
        new,
        first_batch,
    } = templates(ctx)?;
    let incidents = ctx.db.incidents_between(src, first, last)?;
    let (lines, events, quarantined) = (read.lines, read.events, read.quarantined);
    // One per verdict (the marks): the detectors' rows behind a verdict are its votes.
    let n_anomalies = marks.len();

    let mut page = String::new();
    let title = format!("loglake report — {src}, {batch}");
    write!(
        page,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{t}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #111827; background: #f9fafb; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }} h2 {{ font-size: 17px; margin: 28px 0 8px; }}
.muted {{ color: #6b7280; font-size: 13px; }}
.cards {{ display: flex; gap: 12px; flex-wrap: wrap; margin: 16px 0; }}
.card {{ background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; padding: 10px 14px; min-width: 120px; }}
.card b {{ display: block; font-size: 20px; }}
svg.chart {{ display: block; max-width: 100%; height: auto; background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; margin: 8px 0; }}
table {{ border-collapse: collapse; background: #fff; font-size: 13px; width: 100%; }}
th, td {{ border: 1px solid #e5e7eb; padding: 4px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f3f4f6; }} td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
td code {{ font-size: 12px; word-break: break-all; }}
.sev-critical {{ color: #b91c1c; font-weight: 600; }} .sev-high {{ color: #c2410c; font-weight: 600; }}
</style></head><body>
<h1>{t}</h1>
<p class="muted">Generated {now} by loglake {version}. Anomaly markers show {headline}.</p>
<div class="cards">
<div class="card"><b>{lines}</b>raw lines</div>
<div class="card"><b>{events}</b>events</div>
<div class="card"><b>{quarantined}</b>quarantined</div>
<div class="card"><b>{n_anomalies}</b>anomalies</div>
<div class="card"><b>{n_incidents}</b>incidents</div>
</div>
"#,
        t = escape(&title),
        now = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        version = env!("CARGO_PKG_VERSION"),
        headline = escape(headline),
        n_incidents = incidents.len(),
    )?;

    timelines(&mut page, &volumes, bucket_ms, &marks)?;

    bar_section(
        &mut page,
        ("detectors", "Anomalies per detector"),
        "No anomalies in this batch.",
        (
            "chart-detectors",
            "findings per granularity/detector: the ensemble's verdicts and the detectors' votes",
        ),
        &per_detector,
        svg::RED,
    );
    bar_section(
        &mut page,
        ("templates", "Top templates"),
        "No silver templates for this batch.",
        ("chart-templates", "events per template (top 15)"),
        &top,
        svg::BLUE,
    );
    new_templates(&mut page, &new, first_batch)?;

    incidents_table(&mut page, &incidents)?;
    writeln!(page, "</body></html>")?;

    let label = if first == last {
        first.to_string()
    } else {
        format!("{first}_to_{last}")
    };
    let dir = ctx.lake.reports_dir().join(label);
    // Other sources' pages of the date, for the index (a no-op for a local lake).
    ctx.lake.fetch_tree(&dir)?;
    ctx.lake
        .commit_file(&dir, &format!("{src}.html"), page.as_bytes())?;
    write_index(&ctx.lake, &dir)?;
    Ok(dir.join("index.html"))
}

/// Each service's events and errors over time, with its anomalies marked.
fn timelines(
    page: &mut String,
    volumes: &Volumes,
    bucket_ms: i64,
    marks: &[AnomalyMark],
) -> std::fmt::Result {
    writeln!(
        page,
        "<h2 id=\"timelines\">Volume and anomalies per service</h2>\n<p class=\"muted\">Events and errors per {} min; red circles mark anomalies (size: how many; hover for details).</p>",
        bucket_ms / 60_000
    )?;
    if volumes.is_empty() {
        writeln!(page, "<p>No gold window features for this batch.</p>")?;
    }
    let mut marks_by_service: BTreeMap<&str, BTreeMap<i64, Vec<&str>>> = BTreeMap::new();
    for m in marks {
        marks_by_service
            .entry(&m.service)
            .or_default()
            .entry(m.start_ms.div_euclid(bucket_ms) * bucket_ms)
            .or_default()
            .push(&m.label);
    }
    for (service, points) in volumes {
        let events = Series {
            name: "events".into(),
            color: svg::BLUE,
            points: points.iter().map(|(t, (e, _))| (*t, *e)).collect(),
        };
        let errors = Series {
            name: "errors".into(),
            color: svg::ORANGE,
            points: points.iter().map(|(t, (_, e))| (*t, *e)).collect(),
        };
        let markers: Vec<Marker> = marks_by_service
            .get(service.as_str())
            .map(|buckets| {
                buckets
                    .iter()
                    .map(|(t, labels)| Marker {
                        at_ms: *t,
                        count: labels.len(),
                        label: format!(
                            "{} anomal{}: {}",
                            labels.len(),
                            if labels.len() == 1 { "y" } else { "ies" },
                            labels
                                .iter()
                                .take(3)
                                .copied()
                                .collect::<Vec<_>>()
                                .join(" | ")
                        ),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let name = if service.is_empty() {
            "(no service)"
        } else {
            service
        };
        page.push_str(&svg::time_series(
            "chart-volume",
            name,
            &[events, errors],
            &markers,
        ));
        page.push('\n');
    }
    Ok(())
}

/// The templates first seen in this batch.
fn new_templates(page: &mut String, new: &[NewTemplate], first_batch: bool) -> std::fmt::Result {
    writeln!(page, "<h2 id=\"new-templates\">New templates</h2>")?;
    if first_batch {
        writeln!(
            page,
            "<p>This is the source's first batch: every template is new, so none is listed.</p>"
        )?;
    } else if new.is_empty() {
        writeln!(
            page,
            "<p>No template appeared for the first time in this batch.</p>"
        )?;
    } else {
        writeln!(
            page,
            "<table class=\"new-templates\"><tr><th>template</th><th>events</th><th>first seen</th></tr>"
        )?;
        for t in new.iter().take(MAX_NEW_TEMPLATES) {
            writeln!(
                page,
                "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td>{}</td></tr>",
                escape(&t.template),
                t.events,
                escape(&t.first_seen)
            )?;
        }
        writeln!(page, "</table>")?;
        if new.len() > MAX_NEW_TEMPLATES {
            writeln!(
                page,
                "<p class=\"muted\">… and {} more (silver/templates).</p>",
                new.len() - MAX_NEW_TEMPLATES
            )?;
        }
    }
    Ok(())
}

/// The batch's incidents, most severe first as the database lists them.
fn incidents_table(page: &mut String, incidents: &[[String; 10]]) -> std::fmt::Result {
    writeln!(page, "<h2 id=\"incidents\">Incidents</h2>")?;
    if incidents.is_empty() {
        writeln!(page, "<p>No incidents in this batch.</p>")?;
    } else {
        writeln!(
            page,
            "<table class=\"incidents\"><tr><th>severity</th><th>service</th><th>from</th><th>to</th><th>anomalies</th><th>repeats</th><th>detectors</th><th>status</th><th>what</th></tr>"
        )?;
        for [
            id,
            service,
            start,
            end,
            severity,
            n,
            repeats,
            detectors,
            status,
            what,
        ] in incidents.iter().take(MAX_INCIDENTS)
        {
            writeln!(
                page,
                "<tr id=\"{}\"><td class=\"sev-{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{n}</td><td class=\"num\">{repeats}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(id),
                escape(severity),
                escape(severity),
                escape(service),
                escape(start),
                escape(end),
                escape(detectors),
                escape(status),
                escape(what)
            )?;
        }
        writeln!(page, "</table>")?;
        if incidents.len() > MAX_INCIDENTS {
            writeln!(
                page,
                "<p class=\"muted\">… and {} more: <code>SELECT * FROM open_incidents</code>.</p>",
                incidents.len() - MAX_INCIDENTS
            )?;
        }
    }
    Ok(())
}

/// A section of the page: its heading, then a bar chart of `items`, or `empty` when none.
fn bar_section(
    page: &mut String,
    (id, heading): (&str, &str),
    empty: &str,
    (class, title): (&str, &str),
    items: &[(String, f64)],
    color: &str,
) {
    let _ = writeln!(page, "<h2 id=\"{id}\">{heading}</h2>");
    if items.is_empty() {
        let _ = writeln!(page, "<p>{empty}</p>");
    } else {
        page.push_str(&svg::bars(class, title, items, color));
    }
}

/// Events and errors per service and time bucket, from gold window features; the bucket is
/// the window, widened so no line has more than [`MAX_POINTS`] points.
fn volumes(ctx: &Context, window_ms: i64) -> Result<(Volumes, i64)> {
    let mut out = Volumes::new();
    let Some(w) = ctx.lake.scan(
        Layer::Gold,
        tables::WINDOW_FEATURES,
        &ctx.source,
        &ctx.dates,
    )?
    else {
        return Ok((out, window_ms));
    };
    let w = w
        .select([
            col("service"),
            col("window_start"),
            col("n_events"),
            col("n_error"),
        ])
        .collect()
        .map_err(anyhow::Error::from)
        .context("reading gold/window_features")?;
    let services = features::strings(&w, "service")?;
    let starts = features::millis(&w, "window_start")?;
    let count = |name: &str| -> Result<Vec<f64>> {
        let c = w.column(name)?.cast(&DataType::Float64)?;
        Ok(c.f64()?.iter().map(|v| v.unwrap_or(0.0)).collect())
    };
    let (events, errors) = (count("n_events")?, count("n_error")?);
    let (lo, hi) = (
        starts.iter().copied().min().unwrap_or(0),
        starts.iter().copied().max().unwrap_or(0),
    );
    let windows = (hi - lo) / window_ms + 1;
    let bucket_ms = window_ms * ((windows + MAX_POINTS - 1) / MAX_POINTS).max(1);
    for i in 0..services.len() {
        let b = starts[i].div_euclid(bucket_ms) * bucket_ms;
        let slot = out
            .entry(services[i].clone())
            .or_default()
            .entry(b)
            .or_default();
        slot.0 += events[i];
        slot.1 += errors[i];
    }
    // Windows with no events have no row: put zeros there so a silent stretch shows as a dip
    // to zero, not as a straight line across the gap.
    for points in out.values_mut() {
        let mut t = lo.div_euclid(bucket_ms) * bucket_ms;
        while t <= hi {
            points.entry(t).or_default();
            t += bucket_ms;
        }
    }
    Ok((out, bucket_ms))
}

/// The batch's anomalies: the marks to draw (ensemble verdicts when the ensemble ran, else
/// every detector's rows), rows per granularity/detector, and what the marks show.
fn anomalies(a: Option<&DataFrame>) -> Result<BatchAnomalies> {
    let Some(a) = a else {
        return Ok(BatchAnomalies {
            marks: Vec::new(),
            per_detector: Vec::new(),
            headline: "no anomalies",
        });
    };
    let granularity = features::strings(a, "granularity")?;
    let detector = features::strings(a, "detector")?;
    let starts = features::millis(a, "window_start")?;
    let reasons = features::strings(a, "reason")?;
    let details = features::strings(a, "details")?;
    let mut per_detector: BTreeMap<String, usize> = BTreeMap::new();
    for (g, d) in granularity.iter().zip(&detector) {
        *per_detector.entry(format!("{g}/{d}")).or_default() += 1;
    }
    let ensemble_ran = detector.iter().any(|d| d == ENSEMBLE);
    let mut marks = Vec::new();
    for i in 0..a.height() {
        if ensemble_ran && detector[i] != ENSEMBLE {
            continue;
        }
        let service = serde_json::from_str::<serde_json::Value>(&details[i])
            .ok()
            .and_then(|d| d["service"].as_str().map(str::to_string))
            .unwrap_or_default();
        marks.push(AnomalyMark {
            service,
            start_ms: starts[i],
            label: format!("{}: {}", granularity[i], reasons[i]),
        });
    }
    let mut bars: Vec<(String, f64)> = per_detector
        .into_iter()
        .map(|(k, v)| (k, v as f64))
        .collect();
    bars.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let headline = if ensemble_ran {
        "the ensemble's verdicts (one per entity)"
    } else {
        "every detector's anomalies"
    };
    Ok(BatchAnomalies {
        marks,
        per_detector: bars,
        headline,
    })
}

/// The batch's most frequent templates, the templates no earlier batch of the source had
/// (template, events, first seen), and whether this is the source's first batch.
fn templates(ctx: &Context) -> Result<BatchTemplates> {
    let src = &ctx.source;
    let Some(t) = ctx
        .lake
        .scan(Layer::Silver, tables::TEMPLATES, src, &ctx.dates)?
    else {
        return Ok(BatchTemplates {
            top: Vec::new(),
            new: Vec::new(),
            first_batch: false,
        });
    };
    let t = t
        .group_by([col("template_id")])
        .agg([
            col("template").first(),
            col("count").sum().cast(DataType::UInt64),
            col("first_seen").min().cast(DataType::String),
        ])
        .sort_by_exprs(
            [col("count"), col("template_id")],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .collect()
        .map_err(anyhow::Error::from)
        .context("reading silver/templates")?;
    let ids = features::strings(&t, "template_id")?;
    let texts = features::strings(&t, "template")?;
    let first_seen = features::strings(&t, "first_seen")?;
    let counts: Vec<u64> = t
        .column("count")?
        .u64()?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect();
    let top = texts
        .iter()
        .zip(&counts)
        .take(TOP_TEMPLATES)
        .map(|(t, c)| (t.clone(), *c as f64))
        .collect();
    let earlier: Vec<_> = ctx
        .lake
        .partition_dates(Layer::Silver, tables::TEMPLATES, src)?
        .into_iter()
        .filter(|d| *d < ctx.dates[0])
        .collect();
    if earlier.is_empty() {
        return Ok(BatchTemplates {
            top,
            new: Vec::new(),
            first_batch: true,
        });
    }
    let mut known = HashSet::new();
    if let Some(e) = ctx
        .lake
        .scan(Layer::Silver, tables::TEMPLATES, src, &earlier)?
    {
        let e = e
            .select([col("template_id")])
            .unique(None, UniqueKeepStrategy::Any)
            .collect()
            .map_err(anyhow::Error::from)?;
        known.extend(features::strings(&e, "template_id")?);
    }
    let mut new: Vec<NewTemplate> = (0..ids.len())
        .filter(|&i| !known.contains(&ids[i]))
        .map(|i| NewTemplate {
            template: texts[i].clone(),
            events: counts[i],
            first_seen: first_seen[i].clone(),
        })
        .collect();
    new.sort_by(|a, b| {
        a.first_seen
            .cmp(&b.first_seen)
            .then_with(|| b.events.cmp(&a.events))
    });
    Ok(BatchTemplates {
        top,
        new,
        first_batch: false,
    })
}

/// `index.html` of a report folder: the page itself when one source reported for the date,
/// otherwise a list of the sources' pages.
fn write_index(lake: &crate::lake::Lake, dir: &std::path::Path) -> Result<()> {
    let mut pages: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".html") && n != "index.html")
        .collect();
    pages.sort();
    let index = if let [only] = &pages[..] {
        std::fs::read_to_string(dir.join(only))?
    } else {
        let mut s = String::from(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>loglake reports</title></head><body><h1>loglake reports</h1><ul>",
        );
        for p in &pages {
            let name = p.trim_end_matches(".html");
            let _ = write!(s, "<li><a href=\"{}\">{}</a></li>", escape(p), escape(name));
        }
        s.push_str("</ul></body></html>\n");
        s
    };
    lake.commit_file(dir, "index.html", index.as_bytes())
        .map(|_| ())
}

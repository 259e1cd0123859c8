//! `06-report`: a summary on stdout — rows per layer (from Parquet footers), why lines were
//! quarantined, anomalies per detector, service and day, the top anomalies — and, when labels
//! are given (`--labels labels.jsonl`), precision, recall and F1 against them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use polars::prelude::*;

use super::Context;
use crate::db::RunOutcome;
use crate::evaluate::{detections_from, evaluate};
use crate::features;
use crate::generate::read_labels;
use crate::lake::{Layer, tables};

pub fn run(ctx: &Context) -> Result<RunOutcome> {
    let mut out = String::new();
    let src = &ctx.source;
    let dates = &ctx.dates;
    let range = if dates.len() == 1 {
        dates[0].to_string()
    } else {
        format!("{}..{}", dates[0], dates[dates.len() - 1])
    };
    writeln!(out, "loglake report — source {src}, batch {range}")?;
    writeln!(out, "\nrows per layer")?;
    let layers = [
        (Layer::Bronze, tables::LINES),
        (Layer::Silver, tables::EVENTS),
        (Layer::Quarantine, tables::UNPARSED),
        (Layer::Silver, tables::TEMPLATES),
        (Layer::Gold, tables::WINDOW_FEATURES),
        (Layer::Gold, tables::SESSION_FEATURES),
        (Layer::Gold, tables::EVENT_FEATURES),
        (Layer::Gold, tables::ANOMALIES),
    ];
    let mut bronze_rows = 0;
    for (layer, table) in layers {
        let n = ctx.lake.table_rows(layer, table, src, dates)?;
        if table == tables::LINES {
            bronze_rows = n;
        }
        writeln!(
            out,
            "  {:<32} {n:>12}",
            format!("{}/{table}", layer.dir_name())
        )?;
    }

    if let Some(q) = ctx
        .lake
        .scan(Layer::Quarantine, tables::UNPARSED, src, dates)?
    {
        let reasons = q
            .group_by([col("reason")])
            .agg([len().alias("n")])
            .sort_by_exprs(
                [col("n")],
                SortMultipleOptions::default().with_order_descending(true),
            )
            .limit(5)
            .collect()?;
        if reasons.height() > 0 {
            writeln!(out, "\nquarantine reasons (top 5)")?;
            let r = features::strings(&reasons, "reason")?;
            let n = features::strings(&reasons, "n")?;
            for (r, n) in r.iter().zip(n) {
                writeln!(out, "  {n:>8}  {r}")?;
            }
        }
    }

    let mut detections = Vec::new();
    if let Some(a) = ctx.lake.scan(Layer::Gold, tables::ANOMALIES, src, dates)? {
        let a = a
            .collect()
            .map_err(anyhow::Error::from)
            .context("reading gold/anomalies")?;
        detections = detections_from(&a)?;
        let details = features::strings(&a, "details")?;
        let mut by_detector: BTreeMap<String, usize> = BTreeMap::new();
        let mut by_service_day: BTreeMap<(String, String), usize> = BTreeMap::new();
        for (d, details) in detections.iter().zip(&details) {
            *by_detector
                .entry(format!("{}/{}", d.granularity, d.detector))
                .or_default() += 1;
            let service = serde_json::from_str::<serde_json::Value>(details)
                .ok()
                .and_then(|d| d["service"].as_str().map(|s| s.to_string()))
                .unwrap_or_default();
            let day = d.window_start.date_naive().to_string();
            *by_service_day.entry((day, service)).or_default() += 1;
        }
        writeln!(out, "\nanomalies per detector")?;
        for (k, v) in &by_detector {
            writeln!(out, "  {k:<32} {v:>8}")?;
        }
        writeln!(out, "\nanomalies per day and service")?;
        for ((day, service), v) in &by_service_day {
            writeln!(out, "  {day}  {service:<22} {v:>8}")?;
        }
    }

    let top = ctx.db.top_anomalies(src, 10)?;
    if !top.is_empty() {
        writeln!(out, "\ntop anomalies (database: {})", ctx.db.display_url())?;
        for [when, gran, det, sev, reason] in &top {
            writeln!(out, "  {when:<24} {gran:<8} {det:<17} {sev:<9} {reason}")?;
        }
    }

    let mut message = format!("{bronze_rows} bronze rows, {} anomalies", detections.len());
    if let Some(path) = &ctx.options.labels {
        let labels = read_labels(path)?;
        let e = evaluate(&detections, &labels);
        writeln!(out, "\nevaluation against {}", path.display())?;
        writeln!(
            out,
            "  overall   precision {:.3}  recall {:.3}  F1 {:.3}  ({} of {} detected entities match a label; {} of {} labels found)",
            e.overall.precision(),
            e.overall.recall(),
            e.overall.f1(),
            e.overall.true_positives,
            e.overall.detections,
            e.overall.labels_found,
            e.overall.labels
        )?;
        for (kind, (found, total)) in &e.per_kind {
            writeln!(out, "  recall    {kind:<18} {found}/{total}")?;
        }
        for (det, (hit, total)) in &e.per_detector {
            writeln!(out, "  precision {det:<28} {hit}/{total}")?;
        }
        message = format!(
            "{message}; precision {:.3} recall {:.3} F1 {:.3}",
            e.overall.precision(),
            e.overall.recall(),
            e.overall.f1()
        );
    }
    print!("{out}");
    Ok(RunOutcome {
        rows_in: bronze_rows,
        rows_out: detections.len() as u64,
        rows_quarantined: 0,
        message,
    })
}

//! `06-report`: a summary on stdout — rows per layer (from Parquet footers), why lines were
//! quarantined, anomalies per detector, service and day, the top anomalies — and, when labels
//! are given (`--labels labels.jsonl`), precision, recall and F1 against them.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use polars::prelude::*;
use serde_json::json;

mod html;
mod svg;

use super::Context;
use super::RunOutcome;
use crate::detectors::ensemble::NAME as ENSEMBLE;
use crate::evaluate::{
    Judged, LabelSet, Metrics, Truth, detections_from, evaluate, labels_within, metrics,
};
use crate::features;
use crate::lake::{Layer, tables};
use crate::records::EvaluationRow;

/// Anomalies per detector, and anomalies per (day, service).
type AnomalyCounts = (BTreeMap<String, usize>, BTreeMap<(String, String), usize>);

/// [`AnomalyCounts`] of an anomalies table's `detections` (its rows that no verdict
/// suppressed, in order; [`detections_from`]).
fn anomaly_counts(
    anomalies: &DataFrame,
    detections: &[crate::evaluate::Detection],
) -> Result<AnomalyCounts> {
    // Each detection's row: the details of suppressed rows are not theirs.
    let kept = anomalies
        .column("details")?
        .str()?
        .iter()
        .map(Option::unwrap_or_default)
        .filter(|d| !crate::evaluate::is_suppressed(d));
    let mut by_detector: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_service_day: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (d, details) in detections.iter().zip(kept) {
        *by_detector
            .entry(format!("{}/{}", d.granularity, d.detector))
            .or_default() += 1;
        let day = d.window_start.date_naive().to_string();
        *by_service_day
            .entry((day, crate::records::service_of(details)))
            .or_default() += 1;
    }
    Ok((by_detector, by_service_day))
}

pub fn run(ctx: &Context) -> Result<RunOutcome> {
    let mut out = String::new();
    // The same report as one JSON document (`--output json`), built alongside the text.
    let mut doc = serde_json::Map::new();
    let src = &ctx.source;
    let dates = &ctx.dates;
    let range = if dates.len() == 1 {
        dates[0].to_string()
    } else {
        format!("{}..{}", dates[0], dates[dates.len() - 1])
    };
    writeln!(out, "loglake report — source {src}, batch {range}")?;
    doc.insert("source".into(), json!(src));
    doc.insert("batch".into(), json!(range));
    writeln!(out, "\nrows per layer")?;
    let layers = [
        (Layer::Bronze, tables::LINES),
        (Layer::Silver, tables::EVENTS),
        (Layer::Quarantine, tables::UNPARSED),
        (Layer::Silver, tables::TEMPLATES),
        (Layer::Gold, tables::WINDOW_FEATURES),
        (Layer::Gold, tables::SESSION_FEATURES),
        (Layer::Gold, tables::EVENT_FEATURES),
        (Layer::Detections, tables::ANOMALIES),
    ];
    let mut rows = BTreeMap::new();
    let mut rows_json = serde_json::Map::new();
    for (layer, table) in layers {
        let n = ctx.lake.table_rows(layer, table, src, dates)?;
        rows.insert(table, n);
        rows_json.insert(format!("{}/{table}", layer.dir_name()), json!(n));
        writeln!(
            out,
            "  {:<32} {n:>12}",
            format!("{}/{table}", layer.dir_name())
        )?;
    }

    doc.insert("rows".into(), rows_json.into());
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
            for (r, n) in r.iter().zip(&n) {
                writeln!(out, "  {n:>8}  {r}")?;
            }
            let reasons: Vec<_> = r
                .iter()
                .zip(&n)
                .map(|(r, n)| json!({"reason": r, "lines": n.parse::<u64>().unwrap_or(0)}))
                .collect();
            doc.insert("quarantine_reasons".into(), reasons.into());
        }
    }

    let bronze_rows = rows[tables::LINES];
    let mut detections = Vec::new();
    let anomalies = match ctx
        .lake
        .scan(Layer::Detections, tables::ANOMALIES, src, dates)?
    {
        Some(a) => Some(
            a.collect()
                .map_err(anyhow::Error::from)
                .context("reading detections/anomalies")?,
        ),
        None => None,
    };
    if let Some(a) = &anomalies {
        detections = detections_from(a)?;
        let (by_detector, by_service_day) = anomaly_counts(a, &detections)?;
        writeln!(out, "\nanomalies per detector")?;
        for (k, v) in &by_detector {
            writeln!(out, "  {k:<32} {v:>8}")?;
        }
        writeln!(out, "\nanomalies per day and service")?;
        for ((day, service), v) in &by_service_day {
            writeln!(out, "  {day}  {service:<22} {v:>8}")?;
        }
        doc.insert("anomalies_per_detector".into(), json!(by_detector));
        let per_day: Vec<_> = by_service_day
            .iter()
            .map(|((day, service), n)| json!({"day": day, "service": service, "anomalies": n}))
            .collect();
        doc.insert("anomalies_per_day_and_service".into(), per_day.into());
    }

    let top = ctx.db.top_anomalies(src, 10)?;
    if !top.is_empty() {
        writeln!(out, "\ntop anomalies (database: {})", ctx.db.display_url())?;
        for [when, gran, det, sev, reason] in &top {
            writeln!(out, "  {when:<24} {gran:<8} {det:<17} {sev:<9} {reason}")?;
        }
    }
    let top: Vec<_> = top
        .iter()
        .map(|[when, gran, det, sev, reason]| {
            json!({"window_start": when, "granularity": gran, "detector": det, "severity": sev, "reason": reason})
        })
        .collect();
    doc.insert("top_anomalies".into(), top.into());

    // Operators' verdicts (`loglake anomalies mark`): ground truth for the anomalies judged.
    if let (Some(&first), Some(&last)) = (dates.first(), dates.last()) {
        let (confirmed, normal) = ctx.db.verdict_counts(src, first, last)?;
        if confirmed + normal > 0 {
            let precision = confirmed as f64 / (confirmed + normal) as f64;
            writeln!(
                out,
                "\noperator verdicts: {confirmed} confirmed, {normal} normal (precision on the judged anomalies {precision:.4})"
            )?;
            doc.insert(
                "operator_verdicts".into(),
                json!({"confirmed": confirmed, "normal": normal, "precision_on_judged": precision}),
            );
        }
    }

    let mut message = format!("{bronze_rows} bronze rows, {} anomalies", detections.len());
    if let Some(path) = &ctx.options.labels {
        let labels = LabelSet::read(path)?;
        writeln!(out, "\nevaluation against {}", path.display())?;
        let (per_detector, span) = score_against(ctx, &labels, path)?;
        writeln!(
            out,
            "  {:<30} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9} {:>8} {:>8}",
            "detector/granularity",
            "entities",
            "positive",
            "flagged",
            "precision",
            "recall",
            "F1",
            "ROC-AUC",
            "PR-AUC"
        )?;
        let auc = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
        let mut evaluation = serde_json::Map::new();
        evaluation.insert("labels".into(), json!(path.display().to_string()));
        let per: Vec<_> = per_detector
            .iter()
            .map(|((detector, granularity), m)| {
                json!({
                    "detector": detector, "granularity": granularity, "entities": m.entities,
                    "positive": m.positives, "flagged": m.flagged, "precision": m.precision,
                    "recall": m.recall, "f1": m.f1, "roc_auc": m.roc_auc, "pr_auc": m.pr_auc,
                })
            })
            .collect();
        evaluation.insert("per_detector".into(), per.into());
        for ((detector, granularity), m) in &per_detector {
            writeln!(
                out,
                "  {:<30} {:>9} {:>9} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>8} {:>8}",
                format!("{detector}/{granularity}"),
                m.entities,
                m.positives,
                m.flagged,
                m.precision,
                m.recall,
                m.f1,
                auc(m.roc_auc),
                auc(m.pr_auc)
            )?;
        }
        if let Some(all_labels) = labels.generator() {
            // A labels file may cover more days than this batch (one file for a generated
            // month, reported day by day): only labels in the time the batch scored count, or
            // every other day's labels would read as misses.
            let generated = span
                .map(|s| labels_within(all_labels, s.start, s.end))
                .unwrap_or_default();
            let generated = &generated[..];
            if generated.len() < all_labels.len() {
                writeln!(
                    out,
                    "  ({} of the file's {} labels fall in the time this batch scored)",
                    generated.len(),
                    all_labels.len()
                )?;
            }
            let e = evaluate(&detections, generated);
            evaluation.insert(
                "any_detector".into(),
                json!({
                    "precision": e.overall.precision(), "recall": e.overall.recall(),
                    "f1": e.overall.f1(), "labels": e.overall.labels,
                    "labels_found": e.overall.labels_found,
                }),
            );
            let mut per_type = Vec::new();
            writeln!(
                out,
                "  any detector: precision {:.3}  recall {:.3}  F1 {:.3}  ({} of {} detected entities match a label; {} of {} labels found)",
                e.overall.precision(),
                e.overall.recall(),
                e.overall.f1(),
                e.overall.true_positives,
                e.overall.detections,
                e.overall.labels_found,
                e.overall.labels
            )?;
            // Per injected type, at its own granularity: the ensemble's precision there and
            // the share of that type's labels the ensemble found.
            let ensemble: Vec<_> = detections
                .iter()
                .filter(|d| d.detector == ENSEMBLE)
                .cloned()
                .collect();
            let found = evaluate(&ensemble, generated);
            let mut granularity_of: BTreeMap<&str, &str> = BTreeMap::new();
            for l in generated {
                granularity_of.insert(&l.kind, &l.granularity);
            }
            for (kind, (hit, total)) in &found.per_kind {
                let g = granularity_of
                    .get(kind.as_str())
                    .copied()
                    .unwrap_or_default();
                let precision = per_detector
                    .get(&(ENSEMBLE.to_string(), g.to_string()))
                    .map(|m| m.precision)
                    .unwrap_or(0.0);
                let recall = *hit as f64 / (*total).max(1) as f64;
                let f1 = if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
                writeln!(
                    out,
                    "  type {kind:<18} ({g}) ensemble found {hit}/{total}, precision at {g} {precision:.3}, F1 {f1:.3}"
                )?;
                per_type.push(json!({
                    "type": kind, "granularity": g, "found": hit, "labels": total,
                    "precision": precision, "f1": f1,
                }));
            }
            evaluation.insert("ensemble_per_type".into(), per_type.into());
            message = format!(
                "{message}; precision {:.3} recall {:.3} F1 {:.3}",
                e.overall.precision(),
                e.overall.recall(),
                e.overall.f1()
            );
        }
        if let Some(m) = per_detector.get(&(ENSEMBLE.to_string(), "session".to_string())) {
            message = format!("{message}; ensemble/session F1 {:.3}", m.f1);
        }
        doc.insert("evaluation".into(), evaluation.into());
    }
    if ctx.options.html {
        let path = html::write(
            ctx,
            &html::BatchRead {
                lines: rows[tables::LINES],
                events: rows[tables::EVENTS],
                quarantined: rows[tables::UNPARSED],
                anomalies: anomalies.as_ref(),
            },
        )?;
        writeln!(out, "\nhtml report: {}", path.display())?;
        doc.insert("html".into(), json!(path.display().to_string()));
    }
    doc.insert("summary".into(), json!(message));
    if ctx.options.report_json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{out}");
    }
    Ok(RunOutcome {
        rows_in: bronze_rows,
        rows_out: detections.len() as u64,
        rows_quarantined: 0,
        message,
        ..Default::default()
    })
}

/// (detector, granularity) → how it did against the labels.
type MetricsByDetector = BTreeMap<(String, String), Metrics>;

/// The time a batch's scored entities cover (end exclusive).
#[derive(Debug, Clone, Copy)]
struct ScoredSpan {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// Every scored entity of the batch against the labels, per detector and granularity (the
/// results go to the `evaluations` table too), and the time the scored entities cover.
fn score_against(
    ctx: &Context,
    labels: &LabelSet,
    path: &std::path::Path,
) -> Result<(MetricsByDetector, Option<ScoredSpan>)> {
    let window_ms = i64::from(ctx.resolved.gold.window_minutes) * 60_000;
    let mut anomalous_windows = std::collections::HashSet::new();
    let mut anomalous_sessions = std::collections::HashSet::new();
    if let LabelSet::Lines(_) = labels {
        // Windows and sessions holding an anomalous line, as 03-gold placed each event.
        if let Some(events) =
            ctx.lake
                .scan(Layer::Gold, tables::EVENT_FEATURES, &ctx.source, &ctx.dates)?
        {
            let ev = events
                .select([
                    col("file"),
                    col("line_no"),
                    col("service"),
                    col("window_start"),
                    col("session_key"),
                ])
                .collect()
                .map_err(anyhow::Error::from)
                .context(
                    "reading gold/event_features (written by an older loglake? re-run 03-gold)",
                )?;
            let files = features::strings(&ev, "file")?;
            let services = features::strings(&ev, "service")?;
            let sessions = features::strings(&ev, "session_key")?;
            let windows = features::millis(&ev, "window_start")?;
            let line_no = ev.column("line_no")?.u64()?;
            for i in 0..ev.height() {
                if labels.line_is_anomalous(&files[i], line_no.get(i).unwrap_or_default()) {
                    anomalous_windows.insert((services[i].clone(), windows[i]));
                    if !sessions[i].is_empty() {
                        anomalous_sessions.insert(sessions[i].clone());
                    }
                }
            }
        }
    }
    let truth = Truth {
        labels,
        window_ms,
        anomalous_windows,
        anomalous_sessions,
    };
    let Some(scores) = ctx
        .lake
        .scan(Layer::Detections, tables::SCORES, &ctx.source, &ctx.dates)?
    else {
        anyhow::bail!(
            "no detections/scores for {}: run 05-detect first",
            ctx.source
        );
    };
    let scores = scores
        .collect()
        .map_err(anyhow::Error::from)
        .context("reading detections/scores")?;
    let granularity = features::strings(&scores, "granularity")?;
    let entity = features::strings(&scores, "entity_key")?;
    let detector = features::strings(&scores, "detector")?;
    let start = features::millis(&scores, "window_start")?;
    let score = scores.column("score")?.f64()?;
    let threshold = scores.column("threshold")?.f64()?;
    let span = start
        .iter()
        .copied()
        .min()
        .zip(start.iter().copied().max())
        .map(|(first, last)| ScoredSpan {
            start: DateTime::from_timestamp_millis(first).unwrap_or_default(),
            end: DateTime::from_timestamp_millis(last + window_ms.max(1)).unwrap_or_default(),
        });
    // Detectors score the entities they judge: most score every entity of their granularity,
    // the ensemble only those some detector flagged, the severity rule only lines at its
    // level. An entity a detector did not score has score 0 from it; a granularity's entities
    // are those of the detector that scored the most of them.
    // (detector, granularity) → the score rows it wrote that the labels judge, as (row, truth).
    let mut rows_of: BTreeMap<(&str, &str), Vec<(usize, bool)>> = BTreeMap::new();
    for i in 0..scores.height() {
        if let Some(y) = truth.of(&granularity[i], &entity[i], start[i]) {
            rows_of
                .entry((&detector[i], &granularity[i]))
                .or_default()
                .push((i, y));
        }
    }
    if ctx.settings.detectors.ensemble()?.0 {
        let granularities: BTreeSet<&str> = rows_of.keys().map(|&(_, g)| g).collect();
        for g in granularities {
            rows_of.entry((ENSEMBLE, g)).or_default();
        }
    }
    let mut universe: BTreeMap<&str, &[(usize, bool)]> = BTreeMap::new();
    for ((_, g), rows) in &rows_of {
        let u = universe.entry(g).or_default();
        if rows.len() > u.len() {
            *u = rows;
        }
    }
    let judge = |i: usize, y: bool| -> Judged {
        let s = score.get(i).unwrap_or(0.0);
        (s, s >= threshold.get(i).unwrap_or(f64::INFINITY), y)
    };
    let mut by: BTreeMap<(String, String), Vec<Judged>> = BTreeMap::new();
    for (&(d, g), own) in &rows_of {
        let mut judged: Vec<Judged> = own.iter().map(|&(i, y)| judge(i, y)).collect();
        let all = universe.get(g).copied().unwrap_or_default();
        if own.len() < all.len() {
            let scored: HashSet<(&str, i64)> =
                own.iter().map(|&(i, _)| (&*entity[i], start[i])).collect();
            judged.extend(
                all.iter()
                    .filter(|&&(i, _)| !scored.contains(&(&*entity[i], start[i])))
                    .map(|&(_, y)| (0.0, false, y)),
            );
        }
        by.insert((d.to_string(), g.to_string()), judged);
    }
    let per: BTreeMap<(String, String), Metrics> =
        by.into_iter().map(|(k, v)| (k, metrics(&v))).collect();
    let now = chrono::Utc::now();
    let rows: Vec<EvaluationRow> = per
        .iter()
        .map(|((detector, granularity), m)| EvaluationRow {
            source: ctx.source.clone(),
            date_from: ctx.dates[0],
            date_to: ctx.dates[ctx.dates.len() - 1],
            labels: path.display().to_string(),
            detector: detector.clone(),
            granularity: granularity.clone(),
            run_id: ctx.run_id.clone(),
            evaluated_at: now,
            metrics: m.clone(),
        })
        .collect();
    ctx.db.upsert_evaluations(&rows)?;
    Ok((per, span))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A suppressed anomaly is not counted, and the rows after it keep their own services
    /// (the counts once took each detection's service from the row at its index, which after
    /// a suppressed row was the row before).
    #[test]
    fn anomaly_counts_skip_suppressed_rows_and_keep_each_rows_service() {
        let day = 1_763_683_200_000i64; // 2025-11-21
        let anomalies = df!(
            "granularity" => ["session", "session", "event"],
            "entity_key" => ["s1", "s2", "e3"],
            "detector" => ["zscore", "zscore", "severity"],
            "window_start" => [day, day, day + 86_400_000],
            "window_end" => [day, day, day + 86_400_000],
            "details" => [
                r#"{"service":"a","suppressed_by":"f1"}"#,
                r#"{"samples":[{"message":"service b"}],"service":"b"}"#,
                r#"{"service":"c"}"#,
            ],
        )
        .unwrap();
        let detections = detections_from(&anomalies).unwrap();
        let (by_detector, by_service_day) = anomaly_counts(&anomalies, &detections).unwrap();
        assert_eq!(
            by_detector.into_iter().collect::<Vec<_>>(),
            [
                ("event/severity".to_string(), 1),
                ("session/zscore".to_string(), 1)
            ]
        );
        assert_eq!(
            by_service_day.into_iter().collect::<Vec<_>>(),
            [
                (("2025-11-21".to_string(), "b".to_string()), 1),
                (("2025-11-22".to_string(), "c".to_string()), 1)
            ]
        );
    }
}

//! The report as one value: [`Report::collect`] reads every fact once, and the value is
//! rendered as text for people ([`Report::text`]) or as one JSON document for scripts
//! ([`Report::json`]). Nothing is written twice, so the two cannot disagree.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use polars::prelude::*;
use serde::Serialize;

use super::{AnomalyCounts, anomaly_counts, score_against};
use crate::detectors::ensemble::NAME as ENSEMBLE;
use crate::evaluate::{Detection, LabelSet, Scores, detections_from, evaluate, labels_within};
use crate::features;
use crate::lake::{Layer, tables};
use crate::stages::Context;

/// What `06-report` says about a batch. Serialises as the `--output json` document.
#[derive(Debug, Serialize)]
pub struct Report {
    pub source: String,
    pub batch: String,
    /// Rows per `layer/table`, in pipeline order.
    #[serde(serialize_with = "as_map")]
    pub rows: Vec<(String, u64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine_reasons: Option<Vec<QuarantineReason>>,
    /// Anomalies per `granularity/detector`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomalies_per_detector: Option<BTreeMap<String, usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomalies_per_day_and_service: Option<Vec<DayService>>,
    /// Where the top anomalies were read (the text says so; the JSON's reader knows).
    #[serde(skip)]
    pub database: String,
    pub top_anomalies: Vec<TopAnomaly>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_verdicts: Option<OperatorVerdicts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Evaluation>,
    /// The HTML page written, with `--html`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// The stage's one-line summary.
    pub summary: String,
}

#[derive(Debug, Serialize)]
pub struct QuarantineReason {
    pub reason: String,
    pub lines: u64,
}

#[derive(Debug, Serialize)]
pub struct DayService {
    pub day: String,
    pub service: String,
    pub anomalies: usize,
}

#[derive(Debug, Serialize)]
pub struct TopAnomaly {
    pub window_start: String,
    pub granularity: String,
    pub detector: String,
    pub severity: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct OperatorVerdicts {
    pub confirmed: i64,
    pub normal: i64,
    pub precision_on_judged: f64,
}

/// The batch against ground-truth labels (`--labels`).
#[derive(Debug, Serialize)]
pub struct Evaluation {
    pub labels: String,
    pub per_detector: Vec<DetectorMetrics>,
    /// Generated labels only: any detector's findings against them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub any_detector: Option<AnyDetector>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ensemble_per_type: Option<Vec<TypeFound>>,
}

#[derive(Debug, Serialize)]
pub struct DetectorMetrics {
    pub detector: String,
    pub granularity: String,
    pub entities: u64,
    pub positive: u64,
    pub flagged: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct AnyDetector {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub labels: usize,
    pub labels_found: usize,
    /// The counts behind precision, for the text.
    #[serde(skip)]
    pub scores: Scores,
    /// (labels in the time the batch scored, labels in the file), when the file covers more.
    #[serde(skip)]
    pub within: Option<(usize, usize)>,
}

#[derive(Debug, Serialize)]
pub struct TypeFound {
    #[serde(rename = "type")]
    pub kind: String,
    pub granularity: String,
    pub found: usize,
    pub labels: usize,
    pub precision: f64,
    pub f1: f64,
}

fn as_map<S: serde::Serializer>(rows: &[(String, u64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(rows.iter().map(|(k, v)| (k, v)))
}

/// The tables the report counts, in pipeline order.
const LAYERS: [(Layer, &str); 8] = [
    (Layer::Bronze, tables::LINES),
    (Layer::Silver, tables::EVENTS),
    (Layer::Quarantine, tables::UNPARSED),
    (Layer::Silver, tables::TEMPLATES),
    (Layer::Gold, tables::WINDOW_FEATURES),
    (Layer::Gold, tables::SESSION_FEATURES),
    (Layer::Gold, tables::EVENT_FEATURES),
    (Layer::Detections, tables::ANOMALIES),
];

/// What the page reuses of what the report read.
pub struct Read {
    pub anomalies: Option<DataFrame>,
    pub detections: Vec<Detection>,
}

impl Report {
    /// Read every fact of the batch (the HTML page is written by the caller, after).
    pub fn collect(ctx: &Context) -> Result<(Report, Read)> {
        let (src, dates) = (&ctx.source, &ctx.dates);
        let mut rows = Vec::new();
        for (layer, table) in LAYERS {
            let n = ctx.lake.table_rows(layer, table, src, dates)?;
            rows.push((format!("{}/{table}", layer.dir_name()), n));
        }
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
        let (mut detections, mut counts) = (Vec::new(), None);
        if let Some(a) = &anomalies {
            detections = detections_from(a)?;
            counts = Some(anomaly_counts(a, &detections)?);
        }
        let (per_detector, per_day) = split_counts(counts);
        let top_anomalies = ctx
            .db
            .top_anomalies(src, 10)?
            .into_iter()
            .map(
                |[window_start, granularity, detector, severity, reason]| TopAnomaly {
                    window_start,
                    granularity,
                    detector,
                    severity,
                    reason,
                },
            )
            .collect();
        let mut report = Report {
            source: src.clone(),
            batch: ctx.dates_label(),
            summary: format!(
                "{} bronze rows, {} anomalies",
                rows[0].1,
                per_detector
                    .as_ref()
                    .map_or(0, |d| d.values().sum::<usize>())
            ),
            rows,
            quarantine_reasons: quarantine_reasons(ctx)?,
            anomalies_per_detector: per_detector,
            anomalies_per_day_and_service: per_day,
            database: ctx.db.display_url().to_string(),
            top_anomalies,
            operator_verdicts: operator_verdicts(ctx)?,
            evaluation: None,
            html: None,
        };
        if let Some(path) = &ctx.options.labels {
            let suppressed = super::suppressed_findings(anomalies.as_ref())?;
            report.evaluate(ctx, path, &detections, &suppressed)?;
        }
        Ok((
            report,
            Read {
                anomalies,
                detections,
            },
        ))
    }

    /// Rows of `layer/table`, as counted.
    pub fn rows_of(&self, layer: Layer, table: &str) -> u64 {
        let key = format!("{}/{table}", layer.dir_name());
        self.rows
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, n)| *n)
    }

    /// The evaluation against `path`'s labels, and its figures added to the summary.
    fn evaluate(
        &mut self,
        ctx: &Context,
        path: &std::path::Path,
        detections: &[Detection],
        suppressed: &super::Suppressed,
    ) -> Result<()> {
        let labels = LabelSet::read(path)?;
        let (by_detector, span) = score_against(ctx, &labels, path, suppressed)?;
        let per_detector = by_detector
            .iter()
            .map(|((detector, granularity), m)| DetectorMetrics {
                detector: detector.clone(),
                granularity: granularity.clone(),
                entities: m.entities,
                positive: m.positives,
                flagged: m.flagged,
                precision: m.precision,
                recall: m.recall,
                f1: m.f1,
                roc_auc: m.roc_auc,
                pr_auc: m.pr_auc,
            })
            .collect();
        let mut evaluation = Evaluation {
            labels: path.display().to_string(),
            per_detector,
            any_detector: None,
            ensemble_per_type: None,
        };
        if let Some(all_labels) = labels.generator() {
            // A labels file may cover more days than this batch (one file for a generated
            // month, reported day by day): only labels in the time the batch scored count, or
            // every other day's labels would read as misses.
            let generated = span
                .map(|s| labels_within(all_labels, s.start, s.end))
                .unwrap_or_default();
            let e = evaluate(detections, &generated);
            let o = &e.overall;
            self.summary = format!(
                "{}; precision {:.3} recall {:.3} F1 {:.3}",
                self.summary,
                o.precision(),
                o.recall(),
                o.f1()
            );
            evaluation.any_detector = Some(AnyDetector {
                precision: o.precision(),
                recall: o.recall(),
                f1: o.f1(),
                labels: o.labels,
                labels_found: o.labels_found,
                scores: o.clone(),
                within: (generated.len() < all_labels.len())
                    .then_some((generated.len(), all_labels.len())),
            });
            evaluation.ensemble_per_type =
                Some(ensemble_per_type(detections, &generated, &evaluation));
        }
        if let Some(m) = by_detector.get(&(ENSEMBLE.to_string(), "session".to_string())) {
            self.summary = format!("{}; ensemble/session F1 {:.3}", self.summary, m.f1);
        }
        self.evaluation = Some(evaluation);
        Ok(())
    }

    /// The `--output json` document (keys in name order).
    pub fn json(&self) -> Result<String> {
        // Through a `Value`, whose objects keep their keys sorted: the document's order.
        Ok(serde_json::to_string_pretty(&serde_json::to_value(self)?)?)
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        writeln!(
            out,
            "loglake report — source {}, batch {}",
            self.source, self.batch
        )?;
        writeln!(out, "\nrows per layer")?;
        for (table, n) in &self.rows {
            writeln!(out, "  {table:<32} {n:>12}")?;
        }
        if let Some(reasons) = &self.quarantine_reasons {
            writeln!(out, "\nquarantine reasons (top 5)")?;
            for r in reasons {
                writeln!(out, "  {:>8}  {}", r.lines, r.reason)?;
            }
        }
        if let Some(per_detector) = &self.anomalies_per_detector {
            writeln!(out, "\nanomalies per detector")?;
            for (k, v) in per_detector {
                writeln!(out, "  {k:<32} {v:>8}")?;
            }
        }
        if let Some(per_day) = &self.anomalies_per_day_and_service {
            writeln!(out, "\nanomalies per day and service")?;
            for d in per_day {
                writeln!(out, "  {}  {:<22} {:>8}", d.day, d.service, d.anomalies)?;
            }
        }
        if !self.top_anomalies.is_empty() {
            writeln!(out, "\ntop anomalies (database: {})", self.database)?;
            for t in &self.top_anomalies {
                writeln!(
                    out,
                    "  {:<24} {:<8} {:<17} {:<9} {}",
                    t.window_start, t.granularity, t.detector, t.severity, t.reason
                )?;
            }
        }
        if let Some(v) = &self.operator_verdicts {
            writeln!(
                out,
                "\noperator verdicts: {} confirmed, {} normal (precision on the judged anomalies {:.4})",
                v.confirmed, v.normal, v.precision_on_judged
            )?;
        }
        if let Some(e) = &self.evaluation {
            e.write_text(out)?;
        }
        if let Some(path) = &self.html {
            writeln!(out, "\nhtml report: {path}")?;
        }
        Ok(())
    }
}

impl Evaluation {
    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "\nevaluation against {}", self.labels)?;
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
        for m in &self.per_detector {
            writeln!(
                out,
                "  {:<30} {:>9} {:>9} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>8} {:>8}",
                format!("{}/{}", m.detector, m.granularity),
                m.entities,
                m.positive,
                m.flagged,
                m.precision,
                m.recall,
                m.f1,
                auc(m.roc_auc),
                auc(m.pr_auc)
            )?;
        }
        if let Some(a) = &self.any_detector {
            if let Some((within, all)) = a.within {
                writeln!(
                    out,
                    "  ({within} of the file's {all} labels fall in the time this batch scored)"
                )?;
            }
            writeln!(
                out,
                "  any detector: precision {:.3}  recall {:.3}  F1 {:.3}  ({} of {} detected entities match a label; {} of {} labels found)",
                a.precision,
                a.recall,
                a.f1,
                a.scores.true_positives,
                a.scores.detections,
                a.labels_found,
                a.labels
            )?;
        }
        for t in self.ensemble_per_type.iter().flatten() {
            let g = &t.granularity;
            writeln!(
                out,
                "  type {:<18} ({g}) ensemble found {}/{}, precision at {g} {:.3}, F1 {:.3}",
                t.kind, t.found, t.labels, t.precision, t.f1
            )?;
        }
        Ok(())
    }
}

/// Per injected type, at its own granularity: the ensemble's precision there and the share of
/// that type's labels the ensemble found.
fn ensemble_per_type(
    detections: &[Detection],
    generated: &[crate::generate::Label],
    evaluation: &Evaluation,
) -> Vec<TypeFound> {
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
    let mut per_type = Vec::new();
    for (kind, (hit, total)) in &found.per_kind {
        let g = granularity_of
            .get(kind.as_str())
            .copied()
            .unwrap_or_default();
        let precision = evaluation
            .per_detector
            .iter()
            .find(|m| m.detector == ENSEMBLE && m.granularity == g)
            .map_or(0.0, |m| m.precision);
        let recall = *hit as f64 / (*total).max(1) as f64;
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        per_type.push(TypeFound {
            kind: kind.clone(),
            granularity: g.to_string(),
            found: *hit,
            labels: *total,
            precision,
            f1,
        });
    }
    per_type
}

type PerDetector = Option<BTreeMap<String, usize>>;

fn split_counts(counts: Option<AnomalyCounts>) -> (PerDetector, Option<Vec<DayService>>) {
    let Some((by_detector, by_service_day)) = counts else {
        return (None, None);
    };
    let per_day = by_service_day
        .into_iter()
        .map(|((day, service), anomalies)| DayService {
            day,
            service,
            anomalies,
        })
        .collect();
    (Some(by_detector), Some(per_day))
}

/// The five commonest reasons lines were quarantined; `None` when none were.
fn quarantine_reasons(ctx: &Context) -> Result<Option<Vec<QuarantineReason>>> {
    let Some(q) = ctx
        .lake
        .scan(Layer::Quarantine, tables::UNPARSED, &ctx.source, &ctx.dates)?
    else {
        return Ok(None);
    };
    let reasons = q
        .group_by([col("reason")])
        .agg([len().alias("n")])
        .sort_by_exprs(
            [col("n")],
            SortMultipleOptions::default().with_order_descending(true),
        )
        .limit(5)
        .collect()?;
    if reasons.height() == 0 {
        return Ok(None);
    }
    let r = features::strings(&reasons, "reason")?;
    let n = features::strings(&reasons, "n")?;
    Ok(Some(
        r.into_iter()
            .zip(&n)
            .map(|(reason, n)| QuarantineReason {
                reason,
                lines: n.parse::<u64>().unwrap_or(0),
            })
            .collect(),
    ))
}

/// Operators' verdicts (`loglake anomalies mark`): ground truth for the anomalies judged.
fn operator_verdicts(ctx: &Context) -> Result<Option<OperatorVerdicts>> {
    let (Some(&first), Some(&last)) = (ctx.dates.first(), ctx.dates.last()) else {
        return Ok(None);
    };
    let (confirmed, normal) = ctx.db.verdict_counts(&ctx.source, first, last)?;
    Ok((confirmed + normal > 0).then(|| OperatorVerdicts {
        confirmed,
        normal,
        precision_on_judged: confirmed as f64 / (confirmed + normal) as f64,
    }))
}

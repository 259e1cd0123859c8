//! `06-report`: a summary on stdout — rows per layer (from Parquet footers), why lines were
//! quarantined, anomalies per detector, service and day, the top anomalies — and, when labels
//! are given (`--labels labels.jsonl`), precision, recall and F1 against them.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use polars::prelude::*;

mod html;
mod summary;
mod svg;

use summary::Report;

use super::Context;
use super::RunOutcome;
use crate::detectors::Crossing;
use crate::detectors::ensemble::NAME as ENSEMBLE;
use crate::evaluate::{Judged, LabelSet, Metrics, Truth, metrics};
use crate::features;
use crate::lake::{Layer, tables};
use crate::records::EvaluationRow;

/// Anomalies per detector, and anomalies per (day, service): the verdicts, not the votes
/// behind them (see `AnomalyRow::vote`).
type AnomalyCounts = (BTreeMap<String, usize>, BTreeMap<(String, String), usize>);

/// [`AnomalyCounts`] of an anomalies table's `detections` (its rows that no verdict
/// suppressed, in order; [`crate::evaluate::detections_from`]).
fn anomaly_counts(
    anomalies: &DataFrame,
    detections: &[crate::evaluate::Detection],
) -> Result<AnomalyCounts> {
    // Each detection's row: the details of suppressed rows are not theirs. Tables written
    // before findings were votes have no `vote` column: every row a verdict.
    let votes: Vec<bool> = match anomalies.column("vote") {
        Ok(v) => v.bool()?.iter().map(|v| v.unwrap_or(false)).collect(),
        Err(_) => vec![false; anomalies.height()],
    };
    let kept = anomalies
        .column("details")?
        .str()?
        .iter()
        .map(Option::unwrap_or_default)
        .zip(votes)
        .filter(|(d, _)| !crate::evaluate::is_suppressed(d));
    let mut by_detector: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_service_day: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (d, (details, vote)) in detections.iter().zip(kept) {
        if vote {
            continue;
        }
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
    let (mut report, read) = Report::collect(ctx)?;
    if ctx.options.html {
        let path = html::write(
            ctx,
            &html::BatchRead {
                lines: report.rows_of(Layer::Bronze, tables::LINES),
                events: report.rows_of(Layer::Silver, tables::EVENTS),
                quarantined: report.rows_of(Layer::Quarantine, tables::UNPARSED),
                anomalies: read.anomalies.as_ref(),
            },
        )?;
        report.html = Some(path.display().to_string());
    }
    if ctx.options.report_json {
        crate::cli::output::println(&report.json()?)?;
    } else {
        crate::cli::output::print(&report.text())?;
    }
    Ok(RunOutcome {
        rows_in: report.rows_of(Layer::Bronze, tables::LINES),
        rows_out: read.detections.len() as u64,
        rows_quarantined: 0,
        message: report.summary,
        ..Default::default()
    })
}

/// Findings operators' verdicts suppressed: (detector, granularity, entity, window start ms).
type Suppressed = HashSet<(String, String, String, i64)>;

/// The suppressed rows of an anomalies table (their details name the verdict).
fn suppressed_findings(anomalies: Option<&DataFrame>) -> Result<Suppressed> {
    let Some(a) = anomalies else {
        return Ok(Suppressed::new());
    };
    let details = features::strings(a, "details")?;
    let detector = features::strings(a, "detector")?;
    let granularity = features::strings(a, "granularity")?;
    let entity = features::strings(a, "entity_key")?;
    let start = features::millis(a, "window_start")?;
    Ok((0..a.height())
        .filter(|&i| crate::evaluate::is_suppressed(&details[i]))
        .map(|i| {
            (
                detector[i].clone(),
                granularity[i].clone(),
                entity[i].clone(),
                start[i],
            )
        })
        .collect())
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
    suppressed: &Suppressed,
) -> Result<(MetricsByDetector, Option<ScoredSpan>)> {
    let window_ms = i64::from(ctx.resolved.gold.window_minutes) * 60_000;
    let (anomalous_windows, anomalous_sessions) = match labels {
        LabelSet::Lines(_) => entities_with_labelled_lines(ctx, labels)?,
        _ => Default::default(),
    };
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
    let start = features::millis(&scores, "window_start")?;
    let span = start
        .iter()
        .copied()
        .min()
        .zip(start.iter().copied().max())
        .map(|(first, last)| ScoredSpan {
            start: DateTime::from_timestamp_millis(first).unwrap_or_default(),
            end: DateTime::from_timestamp_millis(last + window_ms.max(1)).unwrap_or_default(),
        });
    let per = judge_scores(ctx, &scores, &truth, suppressed)?;
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

/// Windows (service, start) and sessions.
type LabelledEntities = (HashSet<(String, i64)>, HashSet<String>);

/// The windows (service, start) and sessions holding a line `labels` mark anomalous, as
/// 03-gold placed each event.
fn entities_with_labelled_lines(ctx: &Context, labels: &LabelSet) -> Result<LabelledEntities> {
    let mut anomalous_windows = HashSet::new();
    let mut anomalous_sessions = HashSet::new();
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
            .context("reading gold/event_features (written by an older loglake? re-run 03-gold)")?;
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
    Ok((anomalous_windows, anomalous_sessions))
}

/// Every (detector, granularity)'s metrics over the score rows the labels judge.
///
/// Detectors score the entities they judge: most score every entity of their granularity,
/// the ensemble only those some detector flagged, the severity rule only lines at its level.
/// An entity a detector did not score has score 0 from it; a granularity's entities are those
/// of the detector that scored the most of them.
fn judge_scores(
    ctx: &Context,
    scores: &DataFrame,
    truth: &Truth,
    suppressed: &Suppressed,
) -> Result<MetricsByDetector> {
    let granularity = features::strings(scores, "granularity")?;
    let entity = features::strings(scores, "entity_key")?;
    let detector = features::strings(scores, "detector")?;
    let start = features::millis(scores, "window_start")?;
    let score = scores.column("score")?.f64()?;
    let threshold = scores.column("threshold")?.f64()?;
    let mut rows_of: BTreeMap<(&str, &str), Vec<(usize, bool)>> = BTreeMap::new();
    for i in 0..scores.height() {
        if let Some(y) = truth.of(&granularity[i], &entity[i], start[i]) {
            rows_of
                .entry((&detector[i], &granularity[i]))
                .or_default()
                .push((i, y));
        }
    }
    if ctx.settings.detectors.ensemble().0 {
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
    // Flagged as 05-detect flags: by the detector's own crossing rule (the ensemble's score is
    // calibrated, flagged at or above 1).
    let judge = |i: usize, y: bool| -> Judged {
        let s = score.get(i).unwrap_or(0.0);
        let crossing =
            crate::detectors::find(&detector[i]).map_or(Crossing::AtOrAbove, |d| d.crossing());
        // A finding an operator's verdict suppressed is no detection, as for "any detector".
        let kept = !suppressed.contains(&(
            detector[i].clone(),
            granularity[i].clone(),
            entity[i].clone(),
            start[i],
        ));
        (
            s,
            kept && crossing.crosses(s, threshold.get(i).unwrap_or(f64::INFINITY)),
            y,
        )
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
    Ok(by.into_iter().map(|(k, v)| (k, metrics(&v))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::detections_from;

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
        let suppressed = suppressed_findings(Some(&anomalies)).unwrap();
        // What 06-report's per-detector evaluation no longer counts as flagged.
        let s1 = (
            "zscore".to_string(),
            "session".to_string(),
            "s1".to_string(),
            day,
        );
        assert_eq!(suppressed, Suppressed::from([s1]));
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

//! `05-detect`: score the batch's gold rows with the latest models, and write every anomaly,
//! with its reason and evidence, to `gold/anomalies` and to the database's `anomalies` table.
//!
//! Each anomaly says in plain words what deviated and by how much (`reason`), and carries the
//! evidence in `details`: the most deviating features (observed vs. baseline), and a few sample
//! lines with where they are in the lake. Its id is a hash of (source, granularity, entity,
//! window start, detector), so a re-run updates the same rows instead of adding new ones.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use linfa::ParamGuard;
use linfa::traits::Predict;
use ndarray::Array2;
use polars::prelude::*;
use rustc_hash::FxHashMap;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Context;
use super::train::{
    CLUSTERING, ENSEMBLE, INVARIANTS, ISOLATION_FOREST, PARAM_RANGE, PERCENTILE, RARE_TEMPLATE,
    SEQUENCE, SEVERITY, ZSCORE,
};
use crate::db::{AnomalyRow, RunOutcome};
use crate::detectors::clustering::Placement;
use crate::detectors::ensemble::{EnsembleParams, Vote};
use crate::detectors::invariants::Violation;
use crate::detectors::param_range::{LineRanges, ValueRange, numeric_value, unit_of};
use crate::detectors::percentile::PercentileBaseline;
use crate::detectors::sequence::{END, START};
use crate::detectors::severity;
use crate::detectors::zscore::FeatureBaseline;
use crate::features::{self, EVENT, SESSION, WINDOW};
use crate::lake::{Layer, tables};
use crate::models::{Model, SavedModel};

/// How many deviating features an anomaly's details list.
const TOP_FEATURES: usize = 5;

pub fn run(ctx: &Context) -> Result<RunOutcome> {
    let mut outcome = RunOutcome::default();
    let mut per_detector: BTreeMap<String, usize> = BTreeMap::new();
    let mut outcome_incidents = 0;
    let mut dates_done = 0;
    for &date in &ctx.dates {
        if ctx
            .lake
            .part_files(Layer::Gold, tables::EVENT_FEATURES, &ctx.source, date)?
            .is_empty()
        {
            tracing::warn!(%date, "no gold partition for this date; nothing to score");
            continue;
        }
        dates_done += 1;
        ctx.progress.step(format!("scoring {date}"));
        let detector = Detector::new(ctx, date)?;
        if detector.models.is_empty() {
            anyhow::bail!(
                "no trained model for source {:?} on or before {date}: run 04-train first",
                ctx.source
            );
        }
        let (scored, mut anomalies, scores) = detector.detect_all()?;
        ctx.lake.commit_partition(
            Layer::Gold,
            tables::SCORES,
            &ctx.source,
            date,
            &scores_frame(&scores)?,
        )?;
        anomalies.sort_by(|a, b| a.anomaly_id.cmp(&b.anomaly_id));
        keep_first_detection(ctx, date, &mut anomalies)?;
        let gap = chrono::Duration::minutes(ctx.settings.detect.incident_gap_minutes.into());
        // Incidents reach across batches: this batch's first anomalies of a service may
        // continue an earlier batch's incident, and later batches may already continue ours.
        let others = other_batches_anomalies(ctx, date)?;
        let tails = crate::incidents::tails(others.iter().filter(|r| r.batch_date < date));
        crate::incidents::assign_ids(&mut anomalies, gap, &tails);
        let incidents = crate::incidents::summarize(&anomalies, &others);
        for a in &anomalies {
            *per_detector
                .entry(format!("{}/{}", a.granularity, a.detector))
                .or_default() += 1;
        }
        let frame = anomalies_frame(&anomalies)?;
        ctx.lake
            .commit_partition(Layer::Gold, tables::ANOMALIES, &ctx.source, date, &frame)?;
        ctx.db.replace_anomalies(&ctx.source, date, &anomalies)?;
        ctx.db.replace_incidents(&ctx.source, date, &incidents)?;
        outcome_incidents += incidents.len();
        outcome.rows_in += scored;
        outcome.rows_out += anomalies.len() as u64;
    }
    let breakdown: Vec<String> = per_detector
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    if dates_done == 0 {
        return Ok(RunOutcome::nothing_to_do(format!(
            "no gold data for source {:?} on {} (run 03-gold first, or no logs arrived)",
            ctx.source,
            ctx.dates_label()
        )));
    }
    outcome.message = format!(
        "{} rows scored, {} anomalies in {outcome_incidents} incidents ({})",
        outcome.rows_in,
        outcome.rows_out,
        if breakdown.is_empty() {
            "none".to_string()
        } else {
            breakdown.join(", ")
        }
    );
    Ok(outcome)
}

/// A candidate before it becomes a row: who, when, how anomalous, and why.
struct Finding {
    granularity: &'static str,
    entity_key: String,
    service: String,
    start_ms: i64,
    end_ms: i64,
    detector: String,
    score: f64,
    threshold: f64,
    reason: String,
    top: Vec<serde_json::Value>,
    /// Which sample lines to show.
    samples: SampleQuery,
    model_version: String,
    extra: serde_json::Value,
}

#[derive(Clone)]
enum SampleQuery {
    /// Lines of a service in a time range, preferring a template or a level.
    Window {
        template: Option<String>,
        level: Option<&'static str>,
    },
    /// Lines of a session.
    Session { key: String },
    /// One line.
    Line { file: String, line_no: u64 },
}

/// One detector's score for one entity, flagged or not. The detector name borrows from the
/// model: there is one of these per entity and detector, a million per million events.
struct EntityScore<'m> {
    granularity: &'static str,
    /// Shared: the event detectors score the same million keys.
    entity_key: Arc<str>,
    start_ms: i64,
    detector: &'m str,
    score: f64,
    threshold: f64,
}

impl<'m> EntityScore<'m> {
    fn new(
        model: &'m SavedModel,
        granularity: &'static str,
        entity_key: impl Into<Arc<str>>,
        start_ms: i64,
        score: f64,
    ) -> Self {
        Self {
            granularity,
            entity_key: entity_key.into(),
            start_ms,
            detector: &model.detector,
            score,
            threshold: model.threshold,
        }
    }
}

struct Detector<'a> {
    ctx: &'a Context,
    date: NaiveDate,
    models: Vec<SavedModel>,
}

fn fmt_hm(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_default()
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 && v.abs() < 1e15 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.2}")
    }
}

/// A template as a reason names it: its text in quotes, or `template <id>` if the model does
/// not know it.
fn template_name(templates: &BTreeMap<String, String>, id: &str) -> String {
    templates
        .get(id)
        .map(|t| format!("'{t}'"))
        .unwrap_or_else(|| format!("template {id}"))
}

/// A feature's name as a person would say it.
fn feature_label(feature: &str, templates: &BTreeMap<String, String>) -> String {
    let template = |id: &str| template_name(templates, id);
    match feature {
        "n_events" => "event volume".into(),
        "n_error" => "ERROR count".into(),
        "n_warn" => "WARN count".into(),
        "n_info" => "INFO count".into(),
        "n_debug" => "DEBUG count".into(),
        "distinct_templates" | "n_distinct_templates" => "distinct templates".into(),
        "duration_log" => "duration".into(),
        "warn_rate" => "WARN rate".into(),
        "error_rate" => "ERROR rate".into(),
        f => {
            if let Some(id) = f.strip_prefix("tpl_") {
                format!("count of {}", template(id))
            } else if let Some(id) = f.strip_prefix(features::TEMPLATE_COUNT_PREFIX) {
                format!("occurrences of {}", template(id))
            } else {
                f.to_string()
            }
        }
    }
}

/// Observed and baseline values in the feature's own unit (durations back from log scale).
fn display_value(feature: &str, v: f64) -> String {
    if feature == "duration_log" {
        let ms = v.exp_m1();
        if ms >= 1000.0 {
            format!("{:.1} s", ms / 1000.0)
        } else {
            format!("{ms:.0} ms")
        }
    } else {
        fmt_num(v)
    }
}

/// Features of one row ranked by |z| against `baselines`, as evidence objects.
fn top_features(
    row: &[f64],
    features: &[String],
    baselines: &[FeatureBaseline],
    templates: &BTreeMap<String, String>,
) -> Vec<(f64, serde_json::Value, String)> {
    let mut ranked: Vec<(usize, f64)> = row
        .iter()
        .zip(baselines)
        .enumerate()
        .map(|(j, (v, b))| (j, b.z(*v)))
        .filter(|(_, z)| z.is_finite() && *z != 0.0)
        .collect();
    ranked.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
    ranked
        .into_iter()
        .take(TOP_FEATURES)
        .map(|(j, z)| {
            let f = &features[j];
            let b = &baselines[j];
            let label = feature_label(f, templates);
            let spread = if f == "duration_log" {
                String::new()
            } else {
                format!("±{}", fmt_num(b.scale))
            };
            let text = format!(
                "{label} {} vs baseline {}{spread} (z={z:.1})",
                display_value(f, row[j]),
                display_value(f, b.center)
            );
            let evidence = json!({
                "feature": f, "label": label, "observed": row[j],
                "baseline": b.center, "spread": b.scale, "z": (z * 100.0).round() / 100.0,
            });
            (z, evidence, text)
        })
        .collect()
}

/// Features of one row outside their percentile range, furthest first, as evidence objects.
fn outside_range(
    row: &[f64],
    scores: &[f64],
    features: &[String],
    baseline: &PercentileBaseline,
    granularity: &str,
    templates: &BTreeMap<String, String>,
) -> Vec<(f64, serde_json::Value, String)> {
    let mut ranked: Vec<(usize, f64)> = scores
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, s)| s.is_finite() && *s > 0.0)
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let q = baseline.hyperparams().quantile();
    let unit = if granularity == WINDOW {
        "windows"
    } else {
        "sessions"
    };
    ranked
        .into_iter()
        .take(TOP_FEATURES)
        .map(|(j, score)| {
            let f = &features[j];
            let r = &baseline.ranges[j];
            let label = feature_label(f, templates);
            let (side, bound, pct) = if row[j] > r.high {
                ("above", r.high, q)
            } else {
                ("below", r.low, 1.0 - q)
            };
            let text = format!(
                "{label} {} {side} its {} percentile {} (median {}) of {} training {unit}",
                display_value(f, row[j]),
                ordinal(pct * 100.0),
                display_value(f, bound),
                display_value(f, r.median),
                baseline.rows
            );
            let evidence = json!({
                "feature": f, "label": label, "observed": row[j],
                "baseline": r.median, "low": r.low, "high": r.high, "quantile": q,
                "training_rows": baseline.rows,
                "tail_widths": (score * 100.0).round() / 100.0,
            });
            (score, evidence, text)
        })
        .collect()
}

/// What a reason calls value `position` of a template with `n_values` values: the key of a
/// `key=<NUM>` token, else the word before a lone placeholder (`pause <DURATION>`), else
/// "value N". Silver's values are the masked ones, so placeholders and values line up only
/// when the template has exactly `n_values` placeholders; otherwise the position is named.
fn value_name(template: &str, position: usize, n_values: usize) -> String {
    let is_placeholder = |t: &str| t.contains('<') && t.contains('>');
    let tokens: Vec<&str> = template.split_whitespace().collect();
    let holders: Vec<usize> = (0..tokens.len())
        .filter(|&k| is_placeholder(tokens[k]))
        .collect();
    let fallback = format!("value {}", position + 1);
    if holders.len() != n_values {
        return fallback;
    }
    let k = holders[position];
    let token = tokens[k];
    let before = &token[..token.find('<').unwrap_or(0)];
    if let Some(key) = before.strip_suffix(['=', ':'])
        && !key.is_empty()
    {
        return key.to_string();
    }
    if before.is_empty()
        && k > 0
        && !is_placeholder(tokens[k - 1])
        && tokens[k - 1].chars().any(char::is_alphabetic)
    {
        return tokens[k - 1].trim_end_matches([':', '=', ',']).to_string();
    }
    fallback
}

/// "99th", "1st", "99.5th": a percentile as people write it.
fn ordinal(p: f64) -> String {
    let n = format!("{}", (p * 10.0).round() / 10.0);
    let suffix = if n.contains('.') {
        "th"
    } else {
        match (p.round() as i64 % 100, p.round() as i64 % 10) {
            (11..=13, _) => "th",
            (_, 1) => "st",
            (_, 2) => "nd",
            (_, 3) => "rd",
            _ => "th",
        }
    };
    format!("{n}{suffix}")
}

impl<'a> Detector<'a> {
    fn new(ctx: &'a Context, date: NaiveDate) -> Result<Self> {
        let mut models = Vec::new();
        let granularities = ctx.settings.gold_for(&ctx.source).granularities;
        for (granularity, detector) in [
            (WINDOW, ZSCORE),
            (WINDOW, PERCENTILE),
            (WINDOW, ISOLATION_FOREST),
            (SESSION, ZSCORE),
            (SESSION, PERCENTILE),
            (SESSION, ISOLATION_FOREST),
            (SESSION, SEQUENCE),
            (SESSION, INVARIANTS),
            (SESSION, CLUSTERING),
            (EVENT, RARE_TEMPLATE),
            (EVENT, SEVERITY),
            (EVENT, PARAM_RANGE),
        ] {
            if !granularities.iter().any(|g| g == granularity) {
                continue;
            }
            if let Some(m) =
                SavedModel::latest(&ctx.lake, &ctx.source, granularity, detector, date)?
            {
                models.push(m);
            }
        }
        Ok(Self { ctx, date, models })
    }

    fn detect_all(&self) -> Result<(u64, Vec<AnomalyRow>, Vec<EntityScore<'_>>)> {
        let mut findings = Vec::new();
        let mut scores = Vec::new();
        let mut scored = 0u64;
        let windows = self.read(tables::WINDOW_FEATURES)?;
        let sessions = match (
            self.read(tables::SESSION_FEATURES)?,
            self.read(tables::SESSION_TEMPLATE_COUNTS)?,
        ) {
            (Some(s), Some(c)) => Some((s, c)),
            _ => None,
        };
        let events = self.read(tables::EVENT_FEATURES)?;
        let event_columns = events.as_ref().map(EventColumns::of).transpose()?;
        for model in &self.models {
            match (model.granularity.as_str(), &model.model) {
                (WINDOW, _) => {
                    let Some(df) = &windows else { continue };
                    scored += df.height() as u64;
                    findings.extend(self.score_rows(model, df, WINDOW, &mut scores)?);
                }
                (SESSION, Model::Sequence(_)) => {
                    let Some((s, _)) = &sessions else { continue };
                    scored += s.height() as u64;
                    findings.extend(self.rare_transitions(model, s, &mut scores)?);
                }
                (SESSION, Model::Invariants(_)) => {
                    let Some((s, _)) = &sessions else { continue };
                    scored += s.height() as u64;
                    findings.extend(self.broken_invariants(model, s, &mut scores)?);
                }
                (SESSION, _) => {
                    let Some((s, c)) = &sessions else { continue };
                    let frame = features::session_frame(s, c, &model.vocabulary)?;
                    scored += frame.height() as u64;
                    findings.extend(self.score_rows(model, &frame, SESSION, &mut scores)?);
                }
                (EVENT, Model::RareTemplate(_)) => {
                    let Some(ev) = &event_columns else { continue };
                    scored += ev.len() as u64;
                    findings.extend(self.rare_events(model, ev, &mut scores)?);
                }
                (EVENT, Model::Severity(_)) => {
                    let Some(ev) = &event_columns else { continue };
                    scored += ev.len() as u64;
                    findings.extend(self.severe_events(model, ev, &mut scores)?);
                }
                (EVENT, Model::ParamRange(_)) => {
                    let Some(ev) = &event_columns else { continue };
                    scored += ev.len() as u64;
                    findings.extend(self.out_of_range_values(model, ev, &mut scores)?);
                }
                _ => {}
            }
        }
        let ensemble = self.ensemble(&findings, &mut scores)?;
        findings.extend(ensemble);
        let samples = Samples::load(self.ctx, self.date, !findings.is_empty())?;
        let detected_at = Utc::now();
        let rows = findings
            .into_iter()
            .map(|f| self.to_row(f, &samples, detected_at))
            .collect::<Result<Vec<_>>>()?;
        Ok((scored, rows, scores))
    }

    /// One `ensemble` finding per entity whose weighted, calibrated evidence reaches 1, and
    /// the ensemble's score for every entity some detector flagged (appended to `scores`;
    /// every other entity's ensemble score is 0).
    fn ensemble<'m>(
        &self,
        findings: &[Finding],
        scores: &mut Vec<EntityScore<'m>>,
    ) -> Result<Vec<Finding>> {
        let cfg = &self.ctx.settings.detectors.ensemble;
        if !cfg.enabled {
            return Ok(Vec::new());
        }
        let params = EnsembleParams::default()
            .weights(&cfg.weights)
            .views(&cfg.views)
            .default_weight(cfg.default_weight)
            .check()
            .context("detectors.ensemble")?;
        // Only entities some detector flagged can have evidence: the ensemble judges those
        // and leaves the rest (nearly every entity) alone, scoring 0.
        let mut flagged: HashMap<(&'static str, &str, i64), Vec<&Finding>> = HashMap::new();
        for f in findings {
            flagged
                .entry((f.granularity, f.entity_key.as_str(), f.start_ms))
                .or_default()
                .push(f);
        }
        let mut scored_by: BTreeMap<&'static str, BTreeSet<&str>> = BTreeMap::new();
        let mut votes: HashMap<(&'static str, &str, i64), Vec<Vote>> = HashMap::new();
        for s in scores.iter() {
            scored_by
                .entry(s.granularity)
                .or_default()
                .insert(s.detector);
            let key = (s.granularity, &*s.entity_key, s.start_ms);
            if flagged.contains_key(&key) {
                votes.entry(key).or_default().push(Vote {
                    detector: s.detector,
                    score: s.score,
                    threshold: s.threshold,
                });
            }
        }
        let mut out = Vec::new();
        let mut ensemble_scores = Vec::new();
        // Sorted so the table's rows come out in the same order on every run.
        let mut keys: Vec<&(&'static str, &str, i64)> = flagged.keys().collect();
        keys.sort();
        for key in keys {
            let (granularity, entity_key, start_ms) = *key;
            let members = &flagged[key];
            let Some(entity_votes) = votes.get(key) else {
                continue;
            };
            let verdict = params.combine(entity_votes, scored_by[granularity].iter().copied());
            ensemble_scores.push(EntityScore {
                granularity,
                entity_key: entity_key.into(),
                start_ms,
                detector: ENSEMBLE,
                score: verdict.score,
                threshold: 1.0,
            });
            if !verdict.is_anomalous() {
                continue;
            }
            let lead = verdict.contributions[0].detector.as_str();
            let Some(strongest) = members.iter().find(|f| f.detector == lead) else {
                continue;
            };
            let by: Vec<String> = verdict
                .contributions
                .iter()
                .map(|c| {
                    if c.counted {
                        format!(
                            "{} ({:.2}× its threshold, weight {})",
                            c.detector, c.calibrated, c.weight
                        )
                    } else {
                        format!(
                            "{} ({:.2}×, not added: same {} evidence)",
                            c.detector, c.calibrated, c.view
                        )
                    }
                })
                .collect();
            out.push(Finding {
                granularity: strongest.granularity,
                entity_key: entity_key.to_string(),
                service: strongest.service.clone(),
                start_ms,
                end_ms: members.iter().map(|f| f.end_ms).max().unwrap_or(start_ms),
                detector: ENSEMBLE.to_string(),
                score: verdict.score,
                threshold: 1.0,
                reason: format!(
                    "evidence {:.2} from {}; {}",
                    verdict.score,
                    by.join(", "),
                    strongest.reason
                ),
                top: strongest.top.clone(),
                samples: strongest.samples.clone(),
                model_version: strongest.model_version.clone(),
                extra: json!({"contributions": verdict.contributions}),
            });
        }
        scores.extend(ensemble_scores);
        Ok(out)
    }

    fn read(&self, table: &str) -> Result<Option<DataFrame>> {
        match self
            .ctx
            .lake
            .scan(Layer::Gold, table, &self.ctx.source, &[self.date])?
        {
            Some(lf) => Ok(Some(
                lf.collect()
                    .map_err(anyhow::Error::from)
                    .with_context(|| format!("reading gold/{table}"))?,
            )),
            None => Ok(None),
        }
    }

    /// Score window or session rows with a z-score set or an isolation forest.
    fn score_rows<'m>(
        &self,
        model: &'m SavedModel,
        df: &DataFrame,
        granularity: &'static str,
        scores: &mut Vec<EntityScore<'m>>,
    ) -> Result<Vec<Finding>> {
        let x = features::matrix(df, &model.features)?;
        let (key_col, start_col, end_col) = if granularity == WINDOW {
            ("service", "window_start", "window_end")
        } else {
            ("session_key", "start", "end")
        };
        let keys = features::strings(df, key_col)?;
        let services = features::strings(df, "service")?;
        let starts = features::millis(df, start_col)?;
        let ends = features::millis(df, end_col)?;
        let mut group_values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let groupings = match &model.model {
            Model::ZScore(set) => set.groupings.as_slice(),
            Model::Percentile(set) => set.groupings.as_slice(),
            _ => &[],
        };
        for c in groupings.iter().flatten() {
            if !group_values.contains_key(c) {
                group_values.insert(c.clone(), features::strings(df, c)?);
            }
        }
        // Scored once for all rows; the match below only reads them.
        let forest_scores = match &model.model {
            Model::IsolationForest(f) => Some(f.predict(&x)),
            _ => None,
        };
        let placements: Option<Vec<Placement>> = match &model.model {
            Model::Clustering(c) => Some(x.rows().into_iter().map(|r| c.place(r)).collect()),
            _ => None,
        };
        let mut out = Vec::new();
        for i in 0..df.height() {
            let mut record = |score: f64| {
                scores.push(EntityScore::new(
                    model,
                    granularity,
                    keys[i].as_str(),
                    starts[i],
                    score,
                ))
            };
            let row: Vec<f64> = x.row(i).to_vec();
            let (score, top, group) = match &model.model {
                Model::ZScore(set) => {
                    let Some((group, zmodel)) =
                        set.lookup(|c| group_values.get(c).map(|v| v[i].as_str()).unwrap_or(""))
                    else {
                        continue;
                    };
                    let z: Array2<f64> =
                        zmodel.predict(&x.slice(ndarray::s![i..i + 1, ..]).to_owned());
                    let score = z.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    record(score);
                    if score < model.threshold {
                        continue;
                    }
                    (
                        score,
                        top_features(&row, &model.features, &zmodel.baselines, &model.templates),
                        group.to_string(),
                    )
                }
                Model::Percentile(set) => {
                    let Some((group, baseline)) =
                        set.lookup(|c| group_values.get(c).map(|v| v[i].as_str()).unwrap_or(""))
                    else {
                        continue;
                    };
                    let (score, each) = baseline.score_row(&row);
                    record(score);
                    if score < model.threshold {
                        continue;
                    }
                    (
                        score,
                        outside_range(
                            &row,
                            &each,
                            &model.features,
                            baseline,
                            granularity,
                            &model.templates,
                        ),
                        group.to_string(),
                    )
                }
                Model::IsolationForest(_) => {
                    let score = forest_scores.as_ref().map(|s| s[i]).unwrap_or(0.0);
                    record(score);
                    if score <= model.threshold {
                        continue;
                    }
                    (
                        score,
                        top_features(&row, &model.features, &model.explain, &model.templates),
                        String::new(),
                    )
                }
                Model::Clustering(_) => {
                    let score = placements.as_ref().map(|p| p[i].score).unwrap_or(0.0);
                    record(score);
                    if score < model.threshold {
                        continue;
                    }
                    (
                        score,
                        top_features(&row, &model.features, &model.explain, &model.templates),
                        String::new(),
                    )
                }
                Model::RareTemplate(_)
                | Model::Severity(_)
                | Model::ParamRange(_)
                | Model::Sequence(_)
                | Model::Invariants(_) => continue,
            };
            let what = if granularity == WINDOW {
                format!("in {} {}–{}", keys[i], fmt_hm(starts[i]), fmt_hm(ends[i]))
            } else {
                format!("in session {} ({})", keys[i], services[i])
            };
            let lead = top
                .first()
                .map(|t| t.2.clone())
                .unwrap_or_else(|| "unusual combination of features".into());
            let reason = match &model.model {
                Model::IsolationForest(_) => {
                    format!(
                        "isolation score {score:.2} > {:.2} {what}; most unusual: {lead}",
                        model.threshold
                    )
                }
                Model::Clustering(c) => {
                    let Some(p) = placements.as_ref().map(|p| &p[i]) else {
                        continue;
                    };
                    let why = if p.share < c.min_cluster_share() {
                        format!(
                            "its template counts fall in a rare cluster ({:.3} % of training sessions)",
                            p.share * 100.0
                        )
                    } else {
                        format!(
                            "its template counts lie {:.1} from their cluster's centre{} (usual {:.1}, z={:.1})",
                            p.distance,
                            if c.log_counts() {
                                " on the log scale"
                            } else {
                                ""
                            },
                            c.distance_center,
                            p.distance_z
                        )
                    };
                    format!("{why} {what}; most unusual: {lead}")
                }
                _ => format!("{lead} {what}"),
            };
            let top_feature = top
                .first()
                .and_then(|t| t.1["feature"].as_str().map(|s| s.to_string()));
            let samples = if granularity == WINDOW {
                let template = top_feature
                    .as_deref()
                    .and_then(|f| f.strip_prefix("tpl_"))
                    .map(|s| s.to_string());
                let level = match top_feature.as_deref() {
                    Some("n_error") | Some("error_rate") => Some("ERROR"),
                    Some("n_warn") | Some("warn_rate") => Some("WARN"),
                    _ => None,
                };
                SampleQuery::Window { template, level }
            } else {
                SampleQuery::Session {
                    key: keys[i].clone(),
                }
            };
            out.push(Finding {
                granularity,
                entity_key: keys[i].clone(),
                service: services[i].clone(),
                start_ms: starts[i],
                end_ms: ends[i].max(starts[i]),
                detector: model.detector.clone(),
                score,
                threshold: model.threshold,
                reason,
                top: top.into_iter().map(|t| t.1).collect(),
                samples,
                model_version: model.model_version.clone(),
                extra: if group.is_empty() {
                    json!({})
                } else {
                    json!({"baseline_group": group})
                },
            });
        }
        Ok(out)
    }

    fn rare_transitions<'m>(
        &self,
        model: &'m SavedModel,
        df: &DataFrame,
        scores: &mut Vec<EntityScore<'m>>,
    ) -> Result<Vec<Finding>> {
        let Model::Sequence(seq) = &model.model else {
            return Ok(Vec::new());
        };
        let cols = SessionColumns::of(df)?;
        let (keys, services) = (&cols.keys, &cols.services);
        let name = |id: &str| match id {
            START | END => id.to_string(),
            _ => template_name(&model.templates, id),
        };
        let mut out = Vec::new();
        for i in 0..df.height() {
            let sequence: Vec<&str> = cols.sequences[i]
                .split(' ')
                .filter(|t| !t.is_empty())
                .collect();
            let rarest = seq.rarest_transition(&sequence);
            let score = rarest.as_ref().map(|r| seq.score(r.2)).unwrap_or(0.0);
            scores.push(cols.score(i, model, score));
            let Some((from, to, seen)) = rarest.filter(|r| r.2 <= seq.limit()) else {
                continue;
            };
            let how = if seen == 0 {
                "never made by a training session".to_string()
            } else {
                format!("made by only {seen} of {} training sessions", seq.sessions)
            };
            let reason = format!(
                "transition {} → {} {how}, in session {} ({}, {} events)",
                name(&from),
                name(&to),
                keys[i],
                services[i],
                sequence.len()
            );
            let top = vec![
                json!({"feature": "transition", "from": from, "to": to, "training_sessions_with": seen, "training_sessions": seq.sessions}),
            ];
            out.push(cols.finding(i, model, score, reason, top));
        }
        Ok(out)
    }

    fn broken_invariants<'m>(
        &self,
        model: &'m SavedModel,
        df: &DataFrame,
        scores: &mut Vec<EntityScore<'m>>,
    ) -> Result<Vec<Finding>> {
        let Model::Invariants(by_service) = &model.model else {
            return Ok(Vec::new());
        };
        let cols = SessionColumns::of(df)?;
        let (keys, services) = (&cols.keys, &cols.services);
        let name = |id: &str| template_name(&model.templates, id);
        let pct = |share: f64| format!("{:.1}%", 100.0 * share);
        let mut out = Vec::new();
        for i in 0..df.height() {
            let inv = by_service.for_service(&services[i]);
            let violations = inv.check(&features::template_counts(&cols.sequences[i]));
            let score = violations.first().map(|v| inv.score_of(v)).unwrap_or(0.0);
            scores.push(cols.score(i, model, score));
            let Some(strongest) = violations.first() else {
                continue;
            };
            let what = match strongest {
                Violation::Broken {
                    invariant: v,
                    count_a,
                    count_b,
                } => format!(
                    "{} × count of {} = {} × count of {} holds in {} of training sessions, here {} vs {}",
                    v.p,
                    name(&v.a),
                    v.q,
                    name(&v.b),
                    pct(v.support),
                    count_a,
                    count_b
                ),
                Violation::Rare {
                    template,
                    sessions_with,
                } => format!(
                    "contains {}, present in {} of {} training sessions{} ({})",
                    name(template),
                    sessions_with,
                    inv.sessions,
                    if by_service.by_service.contains_key(&services[i]) {
                        format!(" of {}", services[i])
                    } else {
                        String::new()
                    },
                    pct(*sessions_with as f64 / inv.sessions.max(1) as f64)
                ),
            };
            let evidence: Vec<serde_json::Value> = violations
                .iter()
                .take(5)
                .map(|v| match v {
                    Violation::Broken {
                        invariant,
                        count_a,
                        count_b,
                    } => json!({"feature": "invariant", "a": invariant.a, "b": invariant.b, "p": invariant.p, "q": invariant.q, "support": invariant.support, "count_a": count_a, "count_b": count_b}),
                    Violation::Rare {
                        template,
                        sessions_with,
                    } => json!({"feature": "rare_template", "template_id": template, "template": model.templates.get(template), "training_sessions_with": sessions_with, "training_sessions": inv.sessions}),
                })
                .collect();
            let reason = format!(
                "{what}, in session {} ({}; {} violation(s))",
                keys[i],
                services[i],
                violations.len()
            );
            out.push(cols.finding(i, model, score, reason, evidence));
        }
        Ok(out)
    }

    fn rare_events<'m>(
        &self,
        model: &'m SavedModel,
        ev: &EventColumns,
        scores: &mut Vec<EntityScore<'m>>,
    ) -> Result<Vec<Finding>> {
        let Model::RareTemplate(rare) = &model.model else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for i in 0..ev.len() {
            let id = ev.ids[i];
            let score = rare.score(id);
            scores.push(ev.score(i, model, score));
            if !rare.is_rare(id) {
                continue;
            }
            let seen = rare.training_count(id);
            let how = if seen == 0 {
                "never seen in training".to_string()
            } else {
                format!(
                    "seen {seen} time(s) in {} training events",
                    rare.total_events
                )
            };
            out.push(ev.finding(
                i,
                model,
                score,
                format!("rare template '{}' {how}", ev.template(i)),
                json!({"feature": "template_id", "template_id": id, "template": ev.template(i), "training_count": seen, "training_events": rare.total_events}),
            ));
        }
        Ok(out)
    }

    fn severe_events<'m>(
        &self,
        model: &'m SavedModel,
        ev: &EventColumns,
        scores: &mut Vec<EntityScore<'m>>,
    ) -> Result<Vec<Finding>> {
        let Model::Severity(rule) = &model.model else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for i in 0..ev.len() {
            let (id, level) = (ev.ids[i], ev.levels[i]);
            // Lines below min_level are not judged and get no score row (06-report counts
            // them as 0): a million rows of zeros would cost more than the rule itself.
            if !rule.judges(level) {
                continue;
            }
            let score = rule.score(id, level);
            scores.push(ev.score(i, model, score));
            if score < rule.threshold() {
                continue;
            }
            let at_level = rule.at_or_above(id, level);
            let all = rule.occurrences(id);
            let or_above = if level == "FATAL" { "" } else { " or above" };
            let how = match rule.usual_level(id) {
                None => "a template never seen in training".to_string(),
                Some(usual) if usual != level => format!(
                    "a template logged at {level}{or_above} {at_level} time(s) in training, {all} time(s) in all (usually at {usual})"
                ),
                Some(_) => format!(
                    "a template logged {at_level} time(s) at {level}{or_above} in {} training events",
                    rule.total_events
                ),
            };
            out.push(ev.finding(
                i,
                model,
                score,
                format!("{level} line '{}': {how}", ev.template(i)),
                json!({"feature": "level", "level": level, "template_id": id, "template": ev.template(i), "training_at_level": at_level, "training_count": all, "usual_level": rule.usual_level(id), "routine_limit": rule.limit(id)}),
            ));
        }
        Ok(out)
    }

    fn out_of_range_values<'m>(
        &self,
        model: &'m SavedModel,
        ev: &EventColumns,
        scores: &mut Vec<EntityScore<'m>>,
    ) -> Result<Vec<Finding>> {
        let Model::ParamRange(ranges) = &model.model else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        // Lines of one service and template share their ranges: look them up once.
        let mut line_ranges: FxHashMap<(&str, &str), Option<LineRanges>> = FxHashMap::default();
        let mut values = Vec::new();
        for i in 0..ev.len() {
            let (service, id, json) = (ev.services[i], ev.ids[i], ev.params[i]);
            // Only lines with a judged value are read, and only values beyond their range get
            // a score row (06-report counts the rest as 0).
            if json.len() <= 2 {
                continue;
            }
            let Some(judged) = *line_ranges
                .entry((service, id))
                .or_insert_with(|| ranges.for_line(service, id))
            else {
                continue;
            };
            features::json_strings_into(json, &mut values)
                .with_context(|| format!("reading the values of event {}", ev.keys[i]))?;
            // The value furthest out speaks for the line.
            let mut worst: Option<(f64, usize, f64, &ValueRange, bool)> = None;
            for (position, raw) in values.iter().enumerate() {
                let Some((range, own)) = judged.at(position) else {
                    continue;
                };
                let Some(x) = numeric_value(raw) else {
                    continue;
                };
                let score = ranges.score(range, x);
                if worst.is_none_or(|w| score > w.0) {
                    worst = Some((score, position, x, range, own));
                }
            }
            let Some((score, position, x, range, own)) = worst else {
                continue;
            };
            if score <= 0.0 {
                continue;
            }
            scores.push(ev.score(i, model, score));
            if score < ranges.threshold() {
                continue;
            }
            let template = ev.template(i);
            let raw = values[position].as_ref();
            let unit = unit_of(raw);
            let (side, bound, pct) = if x > range.high {
                ("above", range.high, ranges.quantile())
            } else {
                ("below", range.low, 1.0 - ranges.quantile())
            };
            let of = if own {
                format!("{service}'s")
            } else {
                "all services'".to_string()
            };
            out.push(ev.finding(
                i,
                model,
                score,
                format!(
                    "{} {raw} in '{template}' {side} its {} percentile {}{unit} (median {}{unit}) of {of} {} training values",
                    value_name(template, position, values.len()),
                    ordinal(pct * 100.0),
                    fmt_num(bound),
                    fmt_num(range.median),
                    range.values
                ),
                json!({"feature": "value", "position": position, "value": raw, "observed": x, "unit": unit.trim(), "baseline": range.median, "low": range.low, "high": range.high, "quantile": ranges.quantile(), "training_values": range.values, "per_service": own, "template_id": id, "template": template, "tail_widths": (score * 100.0).round() / 100.0}),
            ));
        }
        Ok(out)
    }

    fn to_row(
        &self,
        f: Finding,
        samples: &Samples,
        detected_at: DateTime<Utc>,
    ) -> Result<AnomalyRow> {
        let source = &self.ctx.source;
        let id_input = format!(
            "{source}|{}|{}|{}|{}",
            f.granularity, f.entity_key, f.start_ms, f.detector
        );
        let anomaly_id: String = Sha256::digest(id_input.as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let sample_lines = samples.find(self.ctx, &f, self.ctx.settings.detect.sample_lines);
        let mut details = json!({
            "top_features": f.top,
            "samples": sample_lines,
            "service": f.service,
        });
        if let (Some(d), Some(extra)) = (details.as_object_mut(), f.extra.as_object()) {
            for (k, v) in extra {
                d.insert(k.clone(), v.clone());
            }
        }
        let ts = |ms: i64| Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
        Ok(AnomalyRow {
            anomaly_id,
            run_id: self.ctx.run_id.clone(),
            detected_at,
            source: source.clone(),
            batch_date: self.date,
            granularity: f.granularity.to_string(),
            entity_key: f.entity_key,
            window_start: ts(f.start_ms),
            window_end: ts(f.end_ms),
            detector: f.detector,
            score: (f.score * 1e6).round() / 1e6,
            threshold: (f.threshold * 1e6).round() / 1e6,
            severity: severity(f.score, f.threshold).to_string(),
            reason: f.reason,
            details: details.to_string(),
            model_version: f.model_version,
            incident_id: None,
        })
    }
}

/// The batch's silver events, held in memory to pick sample lines for anomalies. Text stays in
/// Polars' columns and is read only for the rows picked: turning a million rows into owned
/// strings would cost more than all the lookups together.
struct Samples {
    ts: Vec<i64>,
    line_no: Vec<u64>,
    service: StringChunked,
    file: StringChunked,
    level: StringChunked,
    template_id: StringChunked,
    message: StringChunked,
    /// With `session_key = "field:<name>"`: each line's value of that field.
    session_field: Option<StringChunked>,
    /// Row indices sorted by time.
    by_time: Vec<usize>,
    partition: String,
}

/// The columns of `gold/event_features` every event detector reads, read once for all of
/// them: strings borrow from the frame, and each event's key is built once and shared.
struct EventColumns<'a> {
    ids: Vec<&'a str>,
    /// Masked values (JSON array text; empty when gold predates the column).
    params: Vec<&'a str>,
    levels: Vec<&'a str>,
    services: Vec<&'a str>,
    keys: Vec<Arc<str>>,
    files: Vec<&'a str>,
    line_nos: Vec<u64>,
    ts: Vec<i64>,
    templates: &'a StringChunked,
}

impl<'a> EventColumns<'a> {
    fn of(df: &'a DataFrame) -> Result<Self> {
        let text = |name: &str| -> Result<Vec<&'a str>> {
            Ok(df
                .column(name)?
                .str()?
                .iter()
                .map(|v| v.unwrap_or_default())
                .collect())
        };
        let files = text("file")?;
        let line_nos: Vec<u64> = df
            .column("line_no")?
            .u64()?
            .iter()
            .map(|v| v.unwrap_or_default())
            .collect();
        let keys = files
            .iter()
            .zip(&line_nos)
            .map(|(f, n)| Arc::from(format!("{f}:{n}")))
            .collect();
        let params = match df.column("params") {
            Ok(c) => c.str()?.iter().map(|v| v.unwrap_or_default()).collect(),
            Err(_) => vec![""; df.height()],
        };
        Ok(Self {
            ids: text("template_id")?,
            params,
            levels: text("level")?,
            services: text("service")?,
            keys,
            files,
            line_nos,
            ts: features::millis(df, "ts")?,
            templates: df.column("template")?.str()?,
        })
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    /// Event `i`'s template text (read only for the few events a detector flags).
    fn template(&self, i: usize) -> &'a str {
        self.templates.get(i).unwrap_or_default()
    }

    fn score<'m>(&self, i: usize, model: &'m SavedModel, score: f64) -> EntityScore<'m> {
        EntityScore::new(model, EVENT, self.keys[i].clone(), self.ts[i], score)
    }

    /// A finding on event `i`; `what` is completed with the service and time.
    fn finding(
        &self,
        i: usize,
        model: &SavedModel,
        score: f64,
        what: String,
        evidence: serde_json::Value,
    ) -> Finding {
        Finding {
            granularity: EVENT,
            entity_key: self.keys[i].to_string(),
            service: self.services[i].to_string(),
            start_ms: self.ts[i],
            end_ms: self.ts[i],
            detector: model.detector.clone(),
            score,
            threshold: model.threshold,
            reason: format!("{what}, in {} at {}", self.services[i], fmt_hm(self.ts[i])),
            top: vec![evidence],
            samples: SampleQuery::Line {
                file: self.files[i].to_string(),
                line_no: self.line_nos[i],
            },
            model_version: model.model_version.clone(),
            extra: json!({}),
        }
    }
}

/// The session features the sequence-based detectors read.
struct SessionColumns {
    keys: Vec<String>,
    services: Vec<String>,
    sequences: Vec<String>,
    starts: Vec<i64>,
    ends: Vec<i64>,
}

impl SessionColumns {
    /// Session `i`'s score by a session model.
    fn score<'m>(&self, i: usize, model: &'m SavedModel, score: f64) -> EntityScore<'m> {
        EntityScore::new(model, SESSION, self.keys[i].as_str(), self.starts[i], score)
    }

    /// A finding on session `i` by a session model.
    fn finding(
        &self,
        i: usize,
        model: &SavedModel,
        score: f64,
        reason: String,
        top: Vec<serde_json::Value>,
    ) -> Finding {
        Finding {
            granularity: SESSION,
            entity_key: self.keys[i].clone(),
            service: self.services[i].clone(),
            start_ms: self.starts[i],
            end_ms: self.ends[i].max(self.starts[i]),
            detector: model.detector.clone(),
            score,
            threshold: model.threshold,
            reason,
            top,
            samples: SampleQuery::Session {
                key: self.keys[i].clone(),
            },
            model_version: model.model_version.clone(),
            extra: json!({}),
        }
    }

    fn of(df: &DataFrame) -> Result<Self> {
        Ok(Self {
            keys: features::strings(df, "session_key")?,
            services: features::strings(df, "service")?,
            sequences: features::strings(df, "template_sequence")?,
            starts: features::millis(df, "start")?,
            ends: features::millis(df, "end")?,
        })
    }
}

fn text(column: &StringChunked, i: usize) -> &str {
    column.get(i).unwrap_or_default()
}

impl Samples {
    fn load(ctx: &Context, date: NaiveDate, needed: bool) -> Result<Self> {
        let partition = format!(
            "silver/{}/source={}/date={date}",
            tables::EVENTS,
            ctx.source
        );
        let mut columns = vec![
            "ts",
            "line_no",
            "service",
            "file",
            "level",
            "template_id",
            "message",
        ];
        // Sessions keyed by a field are found by its value, not by a regex over the message.
        let by_field = crate::parse::session_field(&ctx.parse_settings().session_key).is_some();
        if by_field {
            columns.push("session_field");
        }
        let lf = if needed {
            ctx.lake
                .scan(Layer::Silver, tables::EVENTS, &ctx.source, &[date])?
        } else {
            None
        };
        let mut df = match lf {
            Some(lf) => super::gold::with_session_field(lf)?
                .select(columns.iter().map(|c| col(*c)).collect::<Vec<_>>())
                .collect()
                .map_err(anyhow::Error::from)
                .context("reading silver events for sample lines")?,
            // Nothing to explain: an empty frame with the same columns.
            None => DataFrame::new_infer_height(vec![
                Column::new("ts".into(), Vec::<i64>::new()),
                Column::new("line_no".into(), Vec::<u64>::new()),
                Column::new("service".into(), Vec::<&str>::new()),
                Column::new("file".into(), Vec::<&str>::new()),
                Column::new("level".into(), Vec::<&str>::new()),
                Column::new("template_id".into(), Vec::<&str>::new()),
                Column::new("message".into(), Vec::<&str>::new()),
            ])?,
        };
        // One chunk per column keeps `get(i)` a direct lookup.
        df.rechunk_mut_par();
        let ts = features::millis(&df, "ts")?;
        let mut by_time: Vec<usize> = (0..ts.len()).collect();
        by_time.sort_by_key(|&i| (ts[i], i));
        let strings = |name: &str| -> Result<StringChunked> { Ok(df.column(name)?.str()?.clone()) };
        Ok(Samples {
            line_no: df
                .column("line_no")?
                .u64()?
                .iter()
                .map(|v| v.unwrap_or_default())
                .collect(),
            service: strings("service")?,
            file: strings("file")?,
            level: strings("level")?,
            template_id: strings("template_id")?,
            message: strings("message")?,
            session_field: match df.column("session_field") {
                Ok(c) => Some(c.str()?.clone()),
                Err(_) => None,
            },
            ts,
            by_time,
            partition,
        })
    }

    /// Rows with start <= ts <= end, in time order.
    fn in_range(&self, start: i64, end: i64) -> impl Iterator<Item = usize> + '_ {
        let from = self.by_time.partition_point(|&i| self.ts[i] < start);
        self.by_time[from..]
            .iter()
            .copied()
            .take_while(move |&i| self.ts[i] <= end)
    }

    fn find(&self, ctx: &Context, f: &Finding, k: usize) -> Vec<serde_json::Value> {
        let mut picked: Vec<usize> = Vec::new();
        match &f.samples {
            SampleQuery::Line { file, line_no } => {
                picked.extend(
                    self.in_range(f.start_ms, f.end_ms)
                        .filter(|&i| text(&self.file, i) == file && self.line_no[i] == *line_no)
                        .take(1),
                );
            }
            SampleQuery::Window { template, level } => {
                // Window end is exclusive.
                let rows: Vec<usize> = self
                    .in_range(f.start_ms, f.end_ms - 1)
                    .filter(|&i| text(&self.service, i) == f.service)
                    .collect();
                let preferred = rows.iter().copied().filter(|&i| {
                    template
                        .as_ref()
                        .is_some_and(|t| text(&self.template_id, i) == t)
                        || level.is_some_and(|l| text(&self.level, i) == l)
                });
                picked.extend(preferred.take(k));
                if picked.is_empty() {
                    picked.extend(rows.into_iter().take(k));
                }
            }
            SampleQuery::Session { key } => {
                // Keyed by a field: its value; else the key regex over the message.
                let re = match &self.session_field {
                    Some(_) => None,
                    None => regex::Regex::new(&ctx.parse_settings().session_key).ok(),
                };
                let in_session = |i: usize| match (&self.session_field, &re) {
                    (Some(field), _) => text(field, i) == key,
                    (None, Some(re)) => re.captures(text(&self.message, i)).is_some_and(|c| {
                        c.get(1)
                            .or_else(|| c.get(0))
                            .is_some_and(|m| m.as_str() == key)
                    }),
                    (None, None) => false,
                };
                picked.extend(
                    self.in_range(f.start_ms, f.end_ms)
                        .filter(|&i| in_session(i))
                        .take(k),
                );
            }
        }
        picked
            .into_iter()
            .map(|i| {
                json!({
                    "ts": Utc.timestamp_millis_opt(self.ts[i]).single().map(|t| t.to_rfc3339()).unwrap_or_default(),
                    "level": text(&self.level, i),
                    "message": text(&self.message, i),
                    "file": text(&self.file, i),
                    "line_no": self.line_no[i],
                    "lake_partition": self.partition,
                })
            })
            .collect()
    }
}

/// An anomaly raised again by a re-run keeps when, and by which run, it was first detected:
/// re-running a batch leaves the lake and the table as they were.
fn keep_first_detection(ctx: &Context, date: NaiveDate, rows: &mut [AnomalyRow]) -> Result<()> {
    let Some(previous) = ctx
        .lake
        .scan(Layer::Gold, tables::ANOMALIES, &ctx.source, &[date])?
    else {
        return Ok(());
    };
    let previous = previous
        .select([col("anomaly_id"), col("run_id"), col("detected_at")])
        .collect()?;
    let ids = features::strings(&previous, "anomaly_id")?;
    let runs = features::strings(&previous, "run_id")?;
    let at = features::millis(&previous, "detected_at")?;
    let first: std::collections::HashMap<&str, (usize, i64)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), (i, at[i])))
        .collect();
    for r in rows.iter_mut() {
        if let Some(&(i, ms)) = first.get(r.anomaly_id.as_str()) {
            r.run_id = runs[i].clone();
            r.detected_at = Utc
                .timestamp_millis_opt(ms)
                .single()
                .unwrap_or(r.detected_at);
        }
    }
    Ok(())
}

/// The anomalies of every other batch of the source, from the lake: what incidents across
/// batch boundaries are assembled from. Small — anomalies are rare by construction — so read
/// whole rather than filtered.
fn other_batches_anomalies(ctx: &Context, date: NaiveDate) -> Result<Vec<AnomalyRow>> {
    let dates: Vec<NaiveDate> = ctx
        .lake
        .partition_dates(Layer::Gold, tables::ANOMALIES, &ctx.source)?
        .into_iter()
        .filter(|d| *d != date)
        .collect();
    if dates.is_empty() {
        return Ok(Vec::new());
    }
    let Some(frame) = ctx
        .lake
        .scan(Layer::Gold, tables::ANOMALIES, &ctx.source, &dates)?
    else {
        return Ok(Vec::new());
    };
    let df = frame
        .collect()
        .map_err(anyhow::Error::from)
        .context("reading other batches' gold/anomalies")?;
    anomaly_rows(&df)
}

/// Rows of a gold/anomalies frame (with the partition's `date` column) as [`AnomalyRow`]s.
fn anomaly_rows(df: &DataFrame) -> Result<Vec<AnomalyRow>> {
    let text = |name: &str| features::strings(df, name);
    let ms = |name: &str| features::millis(df, name);
    let at = |ms: i64| Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
    let (ids, runs, sources, grans, keys, dets) = (
        text("anomaly_id")?,
        text("run_id")?,
        text("source")?,
        text("granularity")?,
        text("entity_key")?,
        text("detector")?,
    );
    let (sev, reasons, details, versions, dates) = (
        text("severity")?,
        text("reason")?,
        text("details")?,
        text("model_version")?,
        text("date")?,
    );
    let (detected, starts, ends) = (ms("detected_at")?, ms("window_start")?, ms("window_end")?);
    let score = df.column("score")?.f64()?;
    let threshold = df.column("threshold")?.f64()?;
    let incident = df.column("incident_id")?.str()?;
    (0..df.height())
        .map(|i| {
            Ok(AnomalyRow {
                anomaly_id: ids[i].clone(),
                run_id: runs[i].clone(),
                detected_at: at(detected[i]),
                source: sources[i].clone(),
                batch_date: NaiveDate::parse_from_str(&dates[i], "%Y-%m-%d")
                    .with_context(|| format!("partition date {:?}", dates[i]))?,
                granularity: grans[i].clone(),
                entity_key: keys[i].clone(),
                window_start: at(starts[i]),
                window_end: at(ends[i]),
                detector: dets[i].clone(),
                score: score.get(i).unwrap_or(0.0),
                threshold: threshold.get(i).unwrap_or(0.0),
                severity: sev[i].clone(),
                reason: reasons[i].clone(),
                details: details[i].clone(),
                model_version: versions[i].clone(),
                incident_id: incident.get(i).map(str::to_string),
            })
        })
        .collect()
}

/// Every entity's score per detector, as a gold table.
fn scores_frame(scores: &[EntityScore<'_>]) -> Result<DataFrame> {
    let utc = DataType::Datetime(TimeUnit::Milliseconds, Some(polars::prelude::TimeZone::UTC));
    Ok(DataFrame::new_infer_height(vec![
        Column::new(
            "granularity".into(),
            scores.iter().map(|s| s.granularity).collect::<Vec<&str>>(),
        ),
        Column::new(
            "entity_key".into(),
            scores.iter().map(|s| &*s.entity_key).collect::<Vec<&str>>(),
        ),
        Column::new(
            "window_start".into(),
            scores.iter().map(|s| s.start_ms).collect::<Vec<i64>>(),
        )
        .cast(&utc)?,
        Column::new(
            "detector".into(),
            scores.iter().map(|s| s.detector).collect::<Vec<&str>>(),
        ),
        Column::new(
            "score".into(),
            scores.iter().map(|s| s.score).collect::<Vec<f64>>(),
        ),
        Column::new(
            "threshold".into(),
            scores.iter().map(|s| s.threshold).collect::<Vec<f64>>(),
        ),
    ])?)
}

/// The anomalies as a gold table (same columns as the database table).
fn anomalies_frame(rows: &[AnomalyRow]) -> Result<DataFrame> {
    let utc = DataType::Datetime(TimeUnit::Milliseconds, Some(polars::prelude::TimeZone::UTC));
    let ts = |f: fn(&AnomalyRow) -> DateTime<Utc>, name: &str| -> Result<Column> {
        Ok(Column::new(
            name.into(),
            rows.iter()
                .map(|r| f(r).timestamp_millis())
                .collect::<Vec<i64>>(),
        )
        .cast(&utc)?)
    };
    let text = |f: fn(&AnomalyRow) -> &str, name: &str| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<&str>>())
    };
    Ok(DataFrame::new_infer_height(vec![
        text(|r| &r.anomaly_id, "anomaly_id"),
        text(|r| &r.run_id, "run_id"),
        ts(|r| r.detected_at, "detected_at")?,
        text(|r| &r.source, "source"),
        text(|r| &r.granularity, "granularity"),
        text(|r| &r.entity_key, "entity_key"),
        ts(|r| r.window_start, "window_start")?,
        ts(|r| r.window_end, "window_end")?,
        text(|r| &r.detector, "detector"),
        Column::new(
            "score".into(),
            rows.iter().map(|r| r.score).collect::<Vec<f64>>(),
        ),
        Column::new(
            "threshold".into(),
            rows.iter().map(|r| r.threshold).collect::<Vec<f64>>(),
        ),
        text(|r| &r.severity, "severity"),
        text(|r| &r.reason, "reason"),
        text(|r| &r.details, "details"),
        text(|r| &r.model_version, "model_version"),
        Column::new(
            "incident_id".into(),
            rows.iter()
                .map(|r| r.incident_id.clone())
                .collect::<Vec<Option<String>>>(),
        ),
    ])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_named_by_their_key_or_the_word_before() {
        let completed = "request completed req=<*> status=<NUM> duration_ms=<NUM>";
        assert_eq!(value_name(completed, 2, 3), "duration_ms");
        assert_eq!(value_name(completed, 1, 3), "status");
        let gc = "gc pause <DURATION> heap_used=<NUM>";
        assert_eq!(value_name(gc, 0, 2), "pause");
        assert_eq!(value_name(gc, 1, 2), "heap_used");
        // Placeholders and values do not line up (Drain added a wildcard): named by position.
        assert_eq!(value_name("took <*> <NUM> ms", 0, 1), "value 1");
        assert_eq!(ordinal(99.9), "99.9th");
        assert_eq!(ordinal(99.0), "99th");
        assert_eq!(ordinal(0.1), "0.1th");
    }
}

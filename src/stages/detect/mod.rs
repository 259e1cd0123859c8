//! `05-detect`: score the batch's gold rows with the latest models, and write every anomaly,
//! with its reason and evidence, to `detect/anomalies` and to the database's `anomalies`
//! table, and every entity's score to `detect/scores`.
//!
//! The models are the latest of each detector in [`DETECTORS`] for each granularity the
//! source has; each detector scores the batch's gold views through the detector contract
//! (`detectors::contract`), and the ensemble combines their scores. What is left here is the
//! stage's own work: reading the batch, sample lines ([`samples`]), rows and incidents
//! ([`rows`]). Each anomaly says in plain words what deviated and by how much (`reason`),
//! and carries the evidence in `details`. Its id is a hash of (source, granularity, entity,
//! window start, detector), so a re-run updates the same rows instead of adding new ones.

mod rows;
mod samples;

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use chrono::{NaiveDate, Utc};
use polars::prelude::{DataFrame, col};

use super::{Context, RunOutcome};
use crate::detectors::scoring::{EventColumns, ScoringInput};
use crate::detectors::{DETECTORS, Finding, Granularity, SavedModel, Scored, ensemble};
use crate::lake::{Layer, tables};
use crate::records::AnomalyRow;
use samples::Samples;

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
        let models = latest_models(ctx, date)?;
        if models.is_empty() {
            bail!(
                "no trained model for source {:?} on or before {date}: run 04-train first",
                ctx.source
            );
        }
        let (scored, findings) = score_batch(ctx, date, &models)?;
        // The batch's views and scores are gone by now: sample lines are read into the memory
        // they held.
        let samples = timed("load sample lines", || Samples::load(ctx, date, &findings))?;
        let detected_at = Utc::now();
        let mut anomalies: Vec<AnomalyRow> = timed("anomaly rows", || {
            Ok(findings
                .into_iter()
                .map(|f| rows::anomaly_row(ctx, date, f, &samples, detected_at))
                .collect())
        })?;
        drop(samples);
        anomalies.sort_by(|a, b| a.anomaly_id.cmp(&b.anomaly_id));
        rows::keep_first_detection(ctx, date, &mut anomalies)?;
        let gap = chrono::Duration::minutes(ctx.settings.detect.incident_gap_minutes.into());
        // Incidents reach across batches: this batch's first anomalies of a service may
        // continue an earlier batch's incident, and later batches may already continue ours.
        let others = rows::other_batches_anomalies(ctx, date)?;
        let tails = crate::incidents::tails(others.iter().filter(|r| r.batch_date < date));
        crate::incidents::assign_ids(&mut anomalies, gap, &tails);
        let incidents = crate::incidents::summarize(&anomalies, &others);
        for a in &anomalies {
            *per_detector
                .entry(format!("{}/{}", a.granularity, a.detector))
                .or_default() += 1;
        }
        let frame = rows::anomalies_frame(&anomalies)?;
        ctx.lake.commit_partition(
            Layer::Detections,
            tables::ANOMALIES,
            &ctx.source,
            date,
            &frame,
        )?;
        timed("database", || {
            ctx.db.replace_anomalies(&ctx.source, date, &anomalies)?;
            ctx.db.replace_incidents(&ctx.source, date, &incidents)
        })?;
        outcome_incidents += incidents.len();
        outcome.rows_in += scored;
        outcome.rows_out += anomalies.len() as u64;
    }
    if dates_done == 0 {
        return Ok(RunOutcome::nothing_to_do(format!(
            "no gold data for source {:?} on {} (run 03-gold first, or no logs arrived)",
            ctx.source,
            ctx.dates_label()
        )));
    }
    let breakdown: Vec<String> = per_detector
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
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

/// The latest model of every detector at every granularity the source has, trained on data
/// up to `date`, in registry order.
fn latest_models(ctx: &Context, date: NaiveDate) -> Result<Vec<SavedModel>> {
    let mut models = Vec::new();
    for granularity in Granularity::ALL {
        if !ctx.resolved.has(granularity) {
            continue;
        }
        for d in DETECTORS {
            if !d.supports().contains(&granularity) {
                continue;
            }
            if let Some(m) =
                SavedModel::latest(&ctx.lake, &ctx.source, granularity, d.name(), date)?
            {
                models.push(m);
            }
        }
    }
    Ok(models)
}

/// The batch's gold views, read once for every model.
struct BatchViews {
    windows: Option<DataFrame>,
    sessions: Option<(DataFrame, DataFrame)>,
    events: Option<DataFrame>,
}

impl BatchViews {
    fn read(ctx: &Context, date: NaiveDate) -> Result<Self> {
        let read = |table: &str| -> Result<Option<DataFrame>> {
            match ctx.lake.scan(Layer::Gold, table, &ctx.source, &[date])? {
                Some(lf) => Ok(Some(
                    lf.collect()
                        .map_err(anyhow::Error::from)
                        .with_context(|| format!("reading gold/{table}"))?,
                )),
                None => Ok(None),
            }
        };
        let sessions = match (
            read(tables::SESSION_FEATURES)?,
            read(tables::SESSION_TEMPLATE_COUNTS)?,
        ) {
            (Some(s), Some(c)) => Some((s, c)),
            _ => None,
        };
        let events = match read(tables::EVENT_FEATURES)? {
            Some(events) => Some(with_silver(ctx, date, events)?),
            None => None,
        };
        Ok(Self {
            windows: read(tables::WINDOW_FEATURES)?,
            sessions,
            events,
        })
    }
}

/// Silver's events with what gold adds to each (window, session, template count). 03-gold
/// writes its events in silver's order, one row per silver event; the two are joined by
/// position, and a mismatch (silver rewritten since gold ran) is an error, not a silent
/// misalignment.
fn with_silver(ctx: &Context, date: NaiveDate, events: DataFrame) -> Result<DataFrame> {
    let Some(silver) = ctx
        .lake
        .scan(Layer::Silver, tables::EVENTS, &ctx.source, &[date])?
    else {
        bail!("no silver events for {date}, though gold has some: re-run 02-silver and 03-gold");
    };
    let silver = silver
        .select(
            [
                "file",
                "line_no",
                "ts",
                "level",
                "template_id",
                "template",
                "params",
            ]
            .map(col),
        )
        .collect()
        .map_err(anyhow::Error::from)
        .context("reading the batch's events from silver")?;
    let same = silver.height() == events.height()
        && silver.column("line_no")?.equals(events.column("line_no")?)
        && silver.column("file")?.equals(events.column("file")?);
    if !same {
        bail!(
            "gold/event_features of {date} no longer matches silver/events (was 02-silver re-run after 03-gold?): re-run 03-gold"
        );
    }
    let mut joined = silver;
    for c in events.columns() {
        if !joined.get_column_names().iter().any(|n| *n == c.name()) {
            joined.with_column(c.clone())?;
        }
    }
    Ok(joined)
}

/// Score the batch with every model and the ensemble, write `detections/scores`, and return
/// how many rows were scored and the findings. The batch's views and its million scores live
/// only inside this function.
fn score_batch(
    ctx: &Context,
    date: NaiveDate,
    models: &[SavedModel],
) -> Result<(u64, Vec<Finding>)> {
    let batch = timed("read gold views", || BatchViews::read(ctx, date))?;
    let events = timed("event columns", || {
        batch.events.as_ref().map(EventColumns::of).transpose()
    })?;
    let input = ScoringInput {
        windows: batch.windows.as_ref(),
        sessions: batch.sessions.as_ref().map(|(s, c)| (s, c)),
        events: events.as_ref(),
    };
    let mut scored = 0u64;
    let mut judged = Vec::new();
    for model in models {
        let Some(rows) = input.rows(model.granularity) else {
            continue;
        };
        let Some(detector) = crate::detectors::find(&model.detector) else {
            continue;
        };
        scored += rows;
        judged.push((model, detector));
    }
    // One score per judged entity and model at most (plus the ensemble's few): reserved up
    // front, so the vector is never copied while it grows.
    let mut out = Scored {
        scores: Vec::with_capacity(scored as usize + 1024),
        findings: Vec::new(),
    };
    for (model, detector) in judged {
        let what = format!("score {}/{}", model.granularity, model.detector);
        timed(&what, || detector.score(model, &input, &mut out))
            .with_context(|| format!("scoring with {}/{}", model.granularity, model.detector))?;
    }
    let (enabled, params) = ctx.settings.detectors.ensemble()?;
    if enabled {
        let verdicts = ensemble::combine(&params, &out.findings, &mut out.scores);
        out.findings.extend(verdicts);
    }
    timed("write scores", || {
        ctx.lake.commit_partition(
            Layer::Detections,
            tables::SCORES,
            &ctx.source,
            date,
            &rows::scores_frame(&out.scores)?,
        )
    })?;
    Ok((scored, out.findings))
}

/// Run `f`, logging how long it took at debug level (`RUST_LOG=loglake=debug`): where
/// detection spends its time, per model and per step.
fn timed<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let t0 = std::time::Instant::now();
    let out = f();
    tracing::debug!(ms = t0.elapsed().as_millis() as u64, "05-detect: {what}");
    out
}

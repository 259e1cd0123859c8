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

mod batch;
mod chunks;
mod open;
mod progress;
mod rows;
mod samples;
mod standing;

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{NaiveDate, Utc};
use rayon::prelude::*;

use super::{Context, RunOutcome, timed};
use crate::detectors::{Finding, Granularity, SavedModel};
use crate::lake::{Layer, tables};
use crate::records::{AnomalyRow, Incident};
use crate::stages::closing::Closing;
use samples::Samples;

pub fn run(ctx: &Context) -> Result<RunOutcome> {
    let mut outcome = RunOutcome::default();
    let mut per_detector: BTreeMap<String, usize> = BTreeMap::new();
    let mut votes_per_detector: BTreeMap<String, usize> = BTreeMap::new();
    let (mut incidents, mut suppressed, mut provisional) = (0, 0, 0);
    let (mut dates_done, mut up_to_date, mut no_model) = (0, 0, 0);
    // Operators' "normal" verdicts, applied to every date's findings.
    let verdicts = ctx.db.normal_verdicts(&ctx.source)?;
    for &date in &ctx.dates {
        let judged = match detect_date(ctx, date, &verdicts)? {
            DateOutcome::Skipped => continue,
            DateOutcome::NoModel => {
                no_model += 1;
                continue;
            }
            DateOutcome::UpToDate => {
                up_to_date += 1;
                continue;
            }
            DateOutcome::Judged(j) => j,
        };
        dates_done += 1;
        for a in &judged.anomalies {
            let counts = if a.vote {
                &mut votes_per_detector
            } else {
                &mut per_detector
            };
            *counts
                .entry(format!("{}/{}", a.granularity, a.detector))
                .or_default() += 1;
        }
        incidents += judged.incidents;
        suppressed += judged.suppressed;
        provisional += judged.provisional;
        outcome.rows_in += judged.scored;
        // One anomaly per verdict: the detectors' votes are its evidence.
        outcome.rows_out += judged.anomalies.iter().filter(|a| !a.vote).count() as u64;
    }
    if dates_done == 0 && up_to_date == 0 && no_model > 0 {
        return Ok(RunOutcome::nothing_to_do(format!(
            "no trained model for source {:?} yet: 04-train trains the first once there is enough history (run 04-train to see what it lacks)",
            ctx.source
        )));
    }
    if dates_done == 0 && up_to_date == 0 {
        return Ok(RunOutcome::nothing_to_do(format!(
            "no gold data for source {:?} on {} (run 03-gold first, or no logs arrived)",
            ctx.source,
            ctx.dates_label()
        )));
    }
    // Alerts are about the database's incidents, so they go after every date is written;
    // notices a receiver missed are tried again even when every date was up to date.
    let alerts = crate::alerts::deliver(
        &ctx.settings.alerts,
        &ctx.db,
        &ctx.lake.reports_location(),
        &ctx.source,
    )?;
    if dates_done == 0 {
        let mut outcome = RunOutcome::nothing_to_do(format!(
            "the detections of {} are up to date (gold, models and verdicts unchanged){}",
            ctx.dates_label(),
            alerts_part(ctx, &alerts)
        ));
        outcome.alerts_undelivered = alerts.failed as u64;
        return Ok(outcome);
    }
    outcome.alerts_undelivered = alerts.failed as u64;
    outcome.message = summary(
        &outcome,
        (&per_detector, &votes_per_detector),
        incidents,
        (suppressed, provisional),
        &alerts_part(ctx, &alerts),
    );
    Ok(outcome)
}

/// Where scoring `date`'s events starts: after the events earlier runs scored for good under
/// the same models, settings, verdicts and build of gold (see [`progress`]), or at the first.
/// Returns what this run's scoring is recorded under (`None`: gold built the day whole).
fn resume_of(
    ctx: &Context,
    date: NaiveDate,
    models: &str,
    verdicts: &[crate::records::NormalVerdict],
) -> Result<(Option<String>, batch::Resume)> {
    let verdicts: Vec<String> = verdicts.iter().map(|v| format!("{v:?}")).collect();
    let Some(key) = progress::key_of(ctx, date, models, &verdicts.join(","))? else {
        // Every event is scored, and none is kept for a later run.
        let all = batch::Resume {
            stable: u64::MAX,
            ..Default::default()
        };
        return Ok((None, all));
    };
    let stable = progress::stable_events(ctx, date)?;
    let resume = match progress::EventsScored::of(ctx, date, &key, stable)? {
        Some(scored) => batch::Resume {
            from: scored.events,
            stable,
            event_parts: scored.score_parts,
            sessions: scored.sessions,
        },
        None => batch::Resume {
            stable,
            ..Default::default()
        },
    };
    Ok((Some(key), resume))
}

/// What 05-detect did with one date.
enum DateOutcome {
    /// No gold, or no model yet on an open day.
    Skipped,
    /// No model yet: 04-train had too little history (a source's first models are trained
    /// on what it has, its open day included).
    NoModel,
    /// Gold, models and verdicts as they were when the date was last judged.
    UpToDate,
    Judged(Judged),
}

/// A date scored and written.
struct Judged {
    scored: u64,
    anomalies: Vec<AnomalyRow>,
    incidents: usize,
    suppressed: usize,
    provisional: usize,
}

/// Score `date` with the latest models and write its anomalies and incidents, unless its
/// inputs are unchanged since it was last judged.
fn detect_date(
    ctx: &Context,
    date: NaiveDate,
    verdicts: &[crate::records::NormalVerdict],
) -> Result<DateOutcome> {
    if ctx
        .lake
        .part_files(Layer::Gold, tables::EVENT_FEATURES, &ctx.source, date)?
        .is_empty()
    {
        tracing::warn!(%date, "no gold partition for this date; nothing to score");
        return Ok(DateOutcome::Skipped);
    }
    ctx.progress.step(format!("scoring {date}"));
    let models = latest_models(ctx, date)?;
    if models.is_empty() {
        // 04-train had too little history for any detector (a new source, a small log):
        // nothing to score with yet, which is no failure.
        tracing::warn!(%date, "no trained model yet: 04-train trains the first once there is enough history");
        return Ok(DateOutcome::NoModel);
    }
    let versions: Vec<&str> = models.iter().map(|m| m.model_version.as_str()).collect();
    let versions = versions.join(",");
    let inputs = inputs_of(ctx, date, &versions, verdicts)?;
    if inputs.is_some()
        && ctx.lake.built_from(Layer::Detections, &ctx.source, date)? == inputs
        && !ctx
            .lake
            .part_files(Layer::Detections, tables::ANOMALIES, &ctx.source, date)?
            .is_empty()
    {
        tracing::info!(%date, "detections are up to date: gold, models and verdicts unchanged since the last run");
        return Ok(DateOutcome::UpToDate);
    }
    let (key, resume) = resume_of(ctx, date, &versions, verdicts)?;
    let batch::Scoring {
        scored,
        findings,
        collected,
        event_keys,
        session_keys,
        sessions_carried,
        event_parts,
        sessions,
    } = batch::score_batch(ctx, date, &models, &resume)?;
    // The anomalies the last run left: the verdicts that stand, and those carried over.
    let last = rows::this_batch_anomalies(ctx, date)?;
    let previous = standing::Previous::of(ctx, date, &versions, &last)?;
    let mut anomalies = anomaly_rows(
        ctx,
        date,
        (findings, collected),
        &resume,
        (&last, previous.as_ref()),
    )?;
    if resume.from > 0 || sessions_carried {
        // Events and sessions scored for good by earlier runs keep their verdicts.
        let carried = |r: &&AnomalyRow| match r.granularity.as_str() {
            "event" => resume.from > 0 && !event_keys.contains(r.entity_key.as_str()),
            "session" => sessions_carried && !session_keys.contains(r.entity_key.as_str()),
            _ => false,
        };
        anomalies.extend(last.iter().filter(carried).cloned());
        anomalies.sort_by(|a, b| a.anomaly_id.cmp(&b.anomaly_id));
    }
    // Windows and sessions closed when the last run judged them keep its verdicts.
    let closing = Closing::of(&ctx.lake, &ctx.source, date, &ctx.resolved.gold)?;
    if let Some(previous) = previous {
        anomalies = previous.keep(anomalies);
    }
    let (anomalies, incidents, suppressed, provisional) =
        into_incidents(ctx, date, anomalies, verdicts)?;
    write_detections(ctx, date, &anomalies, &incidents)?;
    standing::record(ctx, date, &closing, &versions)?;
    if let Some(key) = key {
        progress::EventsScored {
            key,
            events: resume.stable,
            score_parts: event_parts,
            sessions,
        }
        .save(ctx, date)?;
    }
    if let Some(inputs) = &inputs {
        ctx.lake
            .record_built_from(Layer::Detections, &ctx.source, date, inputs)?;
    }
    Ok(DateOutcome::Judged(Judged {
        scored,
        anomalies,
        incidents: incidents.len(),
        suppressed,
        provisional,
    }))
}

/// This run's findings as anomaly rows, with their sample lines and first detections, sorted
/// by id. Sample lines kept while events were read (`collected`) serve when they cover every
/// finding; otherwise (no event models, a run that read only the new events, or a finding
/// wanting other lines) they are read now, into the memory the batch's views and scores held
/// — only for findings whose verdict does not stand: windows and sessions an earlier run
/// judged closed keep that run's rows (on a day run every few minutes, most of the day's).
fn anomaly_rows(
    ctx: &Context,
    date: NaiveDate,
    (findings, collected): (Vec<Finding>, Option<samples::Collector>),
    resume: &batch::Resume,
    (last, previous): (&[AnomalyRow], Option<&standing::Previous>),
) -> Result<Vec<AnomalyRow>> {
    let samples = timed("05-detect: load sample lines", || {
        match collected.filter(|_| resume.from == 0) {
            Some(c) => c.finish(&findings, samples::partition_of(ctx, date))?,
            None => None,
        }
        .map_or_else(
            || match previous {
                Some(p) => {
                    let wanted: Vec<Finding> =
                        findings.iter().filter(|f| !p.stands(f)).cloned().collect();
                    Samples::load(ctx, date, &wanted)
                }
                None => Samples::load(ctx, date, &findings),
            },
            Ok,
        )
    })?;
    let detected_at = Utc::now();
    let mut anomalies: Vec<AnomalyRow> = timed("05-detect: anomaly rows", || {
        // Each finding's row (reason, evidence, sample lines) is its own: built in
        // parallel, collected in findings' order.
        findings
            .into_par_iter()
            .map(|f| rows::anomaly_row(ctx, date, f, &samples, detected_at))
            .collect()
    });
    drop(samples);
    anomalies.sort_by(|a, b| a.anomaly_id.cmp(&b.anomaly_id));
    rows::keep_first_detection(last, &mut anomalies);
    Ok(anomalies)
}

/// The date's anomalies with their incidents: operators' verdicts suppress some, findings
/// about windows and sessions still open are provisional, and the rest form incidents, which
/// reach across batches (this batch's first anomalies of a service may continue an earlier
/// batch's incident, and later batches may already continue ours). Returns every anomaly, the
/// incidents, and how many were suppressed and provisional.
fn into_incidents(
    ctx: &Context,
    date: NaiveDate,
    mut anomalies: Vec<AnomalyRow>,
    verdicts: &[crate::records::NormalVerdict],
) -> Result<(Vec<AnomalyRow>, Vec<Incident>, usize, usize)> {
    let gap = chrono::Duration::minutes(ctx.settings.detect.incident_gap_minutes.into());
    let others = rows::other_batches_anomalies(ctx, date)?;
    let tails = crate::incidents::tails(others.iter().filter(|r| r.batch_date < date));
    let suppressed = rows::suppress(&mut anomalies, verdicts);
    let open = open::OpenEntities::of(ctx, date)?;
    let (provisional, rest): (Vec<_>, Vec<_>) = anomalies.into_iter().partition(|a| open.holds(a));
    // Votes are evidence of a verdict, which is what incidents are made of.
    let (votes, rest): (Vec<_>, Vec<_>) = rest.into_iter().partition(|a| a.vote);
    anomalies = rest;
    crate::incidents::assign_ids(&mut anomalies, gap, &tails);
    let incidents = crate::incidents::summarize(&anomalies, &others);
    let verdicts = |rows: &[AnomalyRow]| rows.iter().filter(|a| !a.vote).count();
    let counts = (verdicts(&suppressed), verdicts(&provisional));
    anomalies.extend(votes);
    anomalies.extend(suppressed);
    anomalies.extend(provisional.into_iter().map(|a| AnomalyRow {
        provisional: true,
        ..a
    }));
    anomalies.sort_by(|a, b| a.anomaly_id.cmp(&b.anomaly_id));
    Ok((anomalies, incidents, counts.0, counts.1))
}

/// How the alerts went, for the stage's message (nothing when no receiver is configured).
fn alerts_part(ctx: &Context, alerts: &crate::alerts::Delivery) -> String {
    if ctx.settings.alerts.receivers.is_empty() {
        String::new()
    } else {
        format!("; {}", alerts.summary())
    }
}

/// Commit `date`'s anomalies to the lake and replace them (and the incidents) in the
/// database, both at once: neither reads the other.
fn write_detections(
    ctx: &Context,
    date: NaiveDate,
    anomalies: &[AnomalyRow],
    incidents: &[Incident],
) -> Result<()> {
    std::thread::scope(|s| -> Result<()> {
        let lake = s.spawn(|| {
            timed("05-detect: lake anomalies", || {
                let frame = rows::anomalies_frame(anomalies)?;
                ctx.lake.commit_partition(
                    Layer::Detections,
                    tables::ANOMALIES,
                    &ctx.source,
                    date,
                    &frame,
                )
            })
        });
        let database = timed("05-detect: database", || {
            ctx.db
                .replace_detections(&ctx.source, date, anomalies, incidents)
        });
        lake.join()
            .map_err(|_| anyhow::anyhow!("the thread writing detections/anomalies panicked"))??;
        database
    })
}

/// What `date`'s detections come from: what gold built the day from (`None` when gold
/// recorded nothing, so the day is always scored), the models' versions, operators' verdicts and the
/// detection settings. Unchanged, the day's detections are too.
fn inputs_of(
    ctx: &Context,
    date: NaiveDate,
    models: &str,
    verdicts: &[crate::records::NormalVerdict],
) -> Result<Option<String>> {
    let Some(gold) = ctx.lake.built_from(Layer::Gold, &ctx.source, date)? else {
        return Ok(None);
    };
    let verdicts: Vec<String> = verdicts.iter().map(|v| format!("{v:?}")).collect();
    use sha2::Digest;
    let digest = sha2::Sha256::digest(
        format!(
            "{gold}|{}|{}|{:?}|{:?}|{:?}",
            models,
            verdicts.join(","),
            ctx.settings.detectors,
            ctx.settings.detect,
            ctx.resolved.granularities
        )
        .as_bytes(),
    );
    Ok(Some(digest.iter().map(|b| format!("{b:02x}")).collect()))
}

/// The stage's one-line message: rows scored, anomalies (the ensemble's verdicts) and
/// incidents, the detectors' votes behind them, what operators' verdicts suppressed, how the
/// alerts went.
fn summary(
    outcome: &RunOutcome,
    (per_detector, votes_per_detector): (&BTreeMap<String, usize>, &BTreeMap<String, usize>),
    incidents: usize,
    (suppressed_total, provisional_total): (usize, usize),
    alerts: &str,
) -> String {
    let breakdown = |counts: &BTreeMap<String, usize>| -> String {
        let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    };
    let votes: usize = votes_per_detector.values().sum();
    format!(
        "{} rows scored, {} anomalies in {incidents} incidents ({}){}{}{}{alerts}",
        outcome.rows_in,
        outcome.rows_out,
        breakdown(per_detector),
        if votes > 0 {
            format!(
                "; the detectors' {votes} findings are the ensemble's votes, its evidence ({})",
                breakdown(votes_per_detector)
            )
        } else {
            String::new()
        },
        if suppressed_total > 0 {
            format!("; {suppressed_total} suppressed by operators' normal verdicts")
        } else {
            String::new()
        },
        if provisional_total > 0 {
            format!(
                "; {provisional_total} provisional (windows or sessions still open: no incident, no alert yet)"
            )
        } else {
            String::new()
        },
    )
}

/// The latest model of every detector at every granularity the source has, trained on data
/// up to `date`, in registry order.
fn latest_models(ctx: &Context, date: NaiveDate) -> Result<Vec<SavedModel>> {
    let mut models = Vec::new();
    for granularity in Granularity::ALL {
        if ctx.resolved.has(granularity) {
            models.extend(SavedModel::latest_each(
                &ctx.lake,
                &ctx.source,
                granularity,
                date,
            )?);
        }
    }
    Ok(models)
}

//! `04-train`: fit every enabled detector on gold and save versioned models.
//!
//! Training data is every gold partition of the source from `train.lookback_days` before the
//! last batch date up to it — up to the day before while the batch date is still open (its
//! end plus `[gold] allowed_lateness_minutes` not yet past): models learn from closed days
//! only, never from the micro-batch they are about to judge, and a run on an open day whose
//! models already cover every closed day trains nothing. A source without any model trains
//! its first on whatever it has, open day included, so that a first run detects at once. The window and session views are read once here
//! ([`TrainingData`]) and each detector of [`DETECTORS`] that is enabled for a granularity the
//! source has trains on them; which detector runs where is its own `[detectors.<name>]`
//! section (`granularities`). Thresholds are unsupervised: a z limit, a distance past a
//! training quantile, the forest's contamination rule, a rarity count.

use anyhow::{Context as _, Result, bail};
use chrono::{Duration, NaiveDate};

use super::{Context, RunOutcome, timed};
use crate::detectors::session_sample::session_training;
use crate::detectors::training::{TrainingData, marked_sessions, template_stats};
use crate::detectors::{DETECTORS, Granularity, SavedModel, Trained};
use crate::lake::{Layer, tables};

pub fn run(ctx: &Context) -> Result<RunOutcome> {
    let dates = match training_dates(ctx)? {
        Ok(dates) => dates,
        Err(reason) => return Ok(RunOutcome::nothing_to_do(reason)),
    };
    let data = timed("04-train: training views read", || {
        training_data(ctx, &dates)
    })?;
    let (train_from, train_to) = (data.train_from, data.train_to);

    let mut jobs = Vec::new();
    let source_granularities = &ctx.resolved.granularities;
    for granularity in Granularity::ALL {
        if !source_granularities.contains(&granularity) || !has_view(&data, granularity) {
            continue;
        }
        for detector in DETECTORS {
            if ctx
                .settings
                .detectors
                .common(detector.name())
                .runs_on(granularity)
            {
                jobs.push((
                    granularity,
                    detector,
                    ctx.settings.detectors.section(detector.name()),
                ));
            }
        }
    }
    // Detectors learn from the same data independently: they train in parallel, and their
    // models are taken in registry order, as if they had trained one after another.
    let trained: Vec<Trained> = timed("04-train: detectors trained", || {
        in_parallel_largest_first(&jobs, |&(granularity, detector, section)| {
            timed(
                &format!("04-train: {granularity}/{}", detector.name()),
                || detector.train(section, granularity, &data),
            )
        })
    })?;
    let mut models = Vec::new();
    let mut skipped = Vec::new();
    for (&(_, _, section), outcome) in jobs.iter().zip(trained) {
        match outcome {
            Trained::Model(mut m) => {
                m.params = section.resolved().clone();
                models.push(*m);
            }
            // A detector short of data (a new source, a small log) is left out with a
            // warning and the others still train: one day of a quiet source is enough for
            // some detectors and not for others.
            Trained::TooLittleData(why) => {
                tracing::warn!("{why}; not trained");
                skipped.push(why);
            }
        }
    }

    if models.is_empty() {
        if skipped.is_empty() {
            bail!(
                "no detector could be trained: enable one in [detectors] (and a session key for session detectors)"
            );
        }
        // A new source, a small log: not a failure. Under cron a failure here would mail
        // every day until history builds up; the pipeline goes on ingesting, 05-detect
        // skips, and the first run with enough history trains.
        return Ok(RunOutcome::nothing_to_do(format!(
            "not enough history yet to train any detector ({}); the next runs keep ingesting and train once there is enough (or lower the minimums in [detectors.*])",
            skipped.join("; ")
        )));
    }
    let mut summary = Vec::new();
    let mut rows = 0u64;
    for mut m in models {
        m.seal()?;
        let path = m.save(&ctx.lake)?;
        ctx.db.register_model(&m, &path.to_string_lossy())?;
        rows += m.train_rows;
        summary.push(format!(
            "{}/{} {} ({} rows)",
            m.granularity, m.detector, m.model_version, m.train_rows
        ));
    }
    Ok(RunOutcome {
        rows_in: rows,
        rows_out: summary.len() as u64,
        rows_quarantined: 0,
        message: format!(
            "trained on {train_from}..{train_to}: {}",
            summary.join(", ")
        ),
        ..Default::default()
    })
}

/// The gold dates to train on, or why there is nothing to train.
///
/// Models learn from closed days only: a day still being written is what they are about to
/// judge, and a model refitted on every micro-batch would move its verdicts with it. A source
/// with no model yet is the exception: its first models come from what there is (a first
/// `run`, or a backfill into today's date, detects at once).
fn training_dates(ctx: &Context) -> Result<Result<Vec<NaiveDate>, String>> {
    let last = *ctx.dates.last().expect("at least one date");
    let trained_to = SavedModel::latest_train_to(&ctx.lake, &ctx.source, last)?;
    let open = trained_to.is_some() && !ctx.resolved.gold.day_closed(last, chrono::Utc::now());
    let to = if open { last - Duration::days(1) } else { last };
    let from = last - Duration::days(ctx.settings.train.lookback_days as i64);
    let dates: Vec<NaiveDate> = ctx
        .lake
        .partition_dates(Layer::Gold, tables::EVENT_FEATURES, &ctx.source)?
        .into_iter()
        .filter(|d| *d >= from && *d <= to)
        .collect();
    let Some(&newest) = dates.last() else {
        return Ok(Err(if open {
            format!(
                "{last} is still open and source {:?} has no closed day before it to train on (models are trained once a day closes: its end plus [gold] allowed_lateness_minutes)",
                ctx.source
            )
        } else {
            format!(
                "no gold data for source {:?} between {from} and {to} (run 03-gold first)",
                ctx.source
            )
        }));
    };
    if open && let Some(trained_to) = trained_to.filter(|t| *t >= newest) {
        return Ok(Err(format!(
            "the latest models were trained on data up to {trained_to}: no day closed since ({last} is still open)"
        )));
    }
    let every = ctx.settings.train.retrain_every_days;
    if every > 0
        && let Some(latest) = SavedModel::latest_train_to(&ctx.lake, &ctx.source, to)?
        && (to - latest).num_days() < i64::from(every)
    {
        return Ok(Err(format!(
            "the latest models were trained on data up to {latest}, less than [train] retrain_every_days = {every} days before {to}"
        )));
    }
    Ok(Ok(dates))
}

/// Whether the training range has rows of `granularity` to train on (events always: the
/// event detectors read them themselves and say so when there are too few).
fn has_view(data: &TrainingData<'_>, granularity: Granularity) -> bool {
    match granularity {
        Granularity::Window => data.windows.is_some(),
        Granularity::Session => data.sessions.is_some(),
        Granularity::Event => true,
    }
}

/// The training range's window and session views and template statistics, read once.
fn training_data<'a>(ctx: &'a Context, dates: &'a [NaiveDate]) -> Result<TrainingData<'a>> {
    let scan = |table: &str| ctx.lake.scan(Layer::Gold, table, &ctx.source, dates);
    let windows = match scan(tables::WINDOW_FEATURES)? {
        Some(lf) => Some(
            lf.collect()
                .map_err(anyhow::Error::from)
                .context("reading window features")?,
        ),
        None => None,
    };
    let normal_verdicts = ctx.db.normal_verdicts(&ctx.source)?;
    // Sessions operators marked normal are trained on even when the sample would leave them
    // out: the session detectors learn from them.
    let sessions = session_training(
        &ctx.lake,
        &ctx.source,
        dates,
        ctx.resolved.parse.settings.window_lines,
        ctx.settings.train.max_sessions,
        &marked_sessions(&normal_verdicts),
    )?;
    let window_lines = ctx.resolved.parse.settings.window_lines;
    let stats = template_stats(&ctx.lake, &ctx.source, dates)?;
    let templates = stats
        .iter()
        .map(|(id, (text, _))| (id.clone(), text.clone()))
        .collect();
    Ok(TrainingData {
        lake: &ctx.lake,
        source: &ctx.source,
        dates,
        train_from: dates[0],
        train_to: *dates.last().expect("at least one date"),
        windows,
        sessions,
        template_stats: stats,
        templates,
        window_lines,
        normal_verdicts,
        step: Box::new(|what: String| ctx.progress.step(what)),
    })
}

/// `train` over `jobs` on every core, results in `jobs`' order. Each worker takes the next job
/// when it is free, event detectors first, then session, then window ones: an event detector
/// learns from every line, a session one from a session's worth of lines, a window one from an
/// hour's, so starting the longest first keeps one from running alone at the end. (Rayon's
/// halving of the list left the event detectors for last on one core: on a million HDFS
/// lines 0.31 s for 0.48 s of training.)
fn in_parallel_largest_first<D: Sync, S: Sync>(
    jobs: &[(Granularity, D, S)],
    train: impl Fn(&(Granularity, D, S)) -> Result<Trained> + Sync,
) -> Result<Vec<Trained>> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    // Stable: detectors of one granularity start in registry order.
    order.sort_by_key(|&i| Granularity::ALL.iter().rev().position(|g| *g == jobs[i].0));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done: Vec<std::sync::Mutex<Option<Result<Trained>>>> =
        jobs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    rayon::scope(|s| {
        for _ in 0..rayon::current_num_threads().min(jobs.len()) {
            s.spawn(|_| {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&i) = order.get(k) else { break };
                    let outcome = train(&jobs[i]);
                    *done[i].lock().expect("no worker panicked holding it") = Some(outcome);
                }
            });
        }
    });
    done.into_iter()
        .map(|d| {
            d.into_inner()
                .expect("no worker panicked holding it")
                .expect("every job was taken")
        })
        .collect()
}

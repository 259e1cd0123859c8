//! What earlier days and the lake give a day's features: the top-template columns, which
//! templates are new, the same-hour baselines — all from days before the batch, so that a
//! window's features do not depend on what comes later in its own day — and the record of
//! what a day was built from, which lets a run with nothing new do nothing.

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use polars::prelude::*;
use rustc_hash::FxHashSet;

use crate::lake::{Layer, tables};
use crate::stages::Context;

/// What `date`'s features are built from: silver's events and template successors of the
/// day, the earlier days whose templates name the top-template columns, how far the day has
/// closed, and the settings that shape the features. The same inputs give the same tables,
/// so a run that finds them unchanged does nothing.
pub(super) fn inputs_of(
    ctx: &Context,
    date: NaiveDate,
    closing: &crate::stages::closing::Closing,
) -> Result<String> {
    let lake = &ctx.lake;
    let earlier: Vec<String> = earlier_days(ctx, date)?
        .iter()
        .map(NaiveDate::to_string)
        .collect();
    Ok(format!(
        "v1|{:?}|{:?}|{closing:?}|events={}|successors={}|earlier={}",
        ctx.resolved.gold,
        ctx.resolved.parse.session_key,
        lake.partition_fingerprint(Layer::Silver, tables::EVENTS, &ctx.source, date)?,
        lake.partition_fingerprint(
            Layer::Silver,
            crate::stages::template_store::SUCCESSORS,
            &ctx.source,
            date
        )?,
        earlier.join(",")
    ))
}

/// The source's days before `date` that have silver templates: what a day's top templates,
/// new templates and baselines come from.
pub(super) fn earlier_days(ctx: &Context, date: NaiveDate) -> Result<Vec<NaiveDate>> {
    Ok(ctx
        .lake
        .partition_dates(Layer::Silver, tables::TEMPLATES, &ctx.source)?
        .into_iter()
        .filter(|d| *d < date)
        .collect())
}

/// The `k` most frequent templates, which get their own window count column: those of the
/// [`TOP_TEMPLATE_DAYS`] days before `date` that have silver, so that a window's columns do
/// not depend on what comes later in its day (a window judged at noon has the columns it
/// has at midnight); on a source's first day, with nothing before it, the day's own.
pub(super) fn top_templates_for(ctx: &Context, date: NaiveDate, k: usize) -> Result<Vec<String>> {
    let from = date - chrono::Duration::days(TOP_TEMPLATE_DAYS);
    let earlier: Vec<NaiveDate> = earlier_days(ctx, date)?
        .into_iter()
        .filter(|d| *d >= from)
        .collect();
    let days = if earlier.is_empty() {
        vec![date]
    } else {
        earlier
    };
    let totals: Vec<(String, u64)> =
        crate::detectors::training::template_stats(&ctx.lake, &ctx.source, &days)?
            .into_iter()
            .map(|(id, (_, n))| (id, n))
            .collect();
    Ok(top_templates(&totals, k))
}

/// Days of silver templates behind the top-template columns.
const TOP_TEMPLATE_DAYS: i64 = 7;

/// The `k` most frequent templates (ties by id), which get their own window count column.
pub(super) fn top_templates(totals: &[(String, u64)], k: usize) -> Vec<String> {
    let mut ranked: Vec<&(String, u64)> = totals.iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.into_iter().take(k).map(|(t, _)| t.clone()).collect()
}

/// The templates an earlier batch had: a template of this batch that is not among them is
/// new.
pub(super) fn seen_before(ctx: &Context, date: NaiveDate) -> Result<FxHashSet<String>> {
    let Some(prior) = templates_before(ctx, date)? else {
        return Ok(FxHashSet::default());
    };
    let prior = prior
        .collect()
        .map_err(anyhow::Error::from)
        .context("reading earlier templates")?;
    Ok(prior
        .column("template_id")?
        .str()?
        .iter()
        .flatten()
        .map(str::to_string)
        .collect())
}

/// Template ids seen in this source's silver before `date`.
fn templates_before(ctx: &Context, date: NaiveDate) -> Result<Option<LazyFrame>> {
    let earlier = earlier_days(ctx, date)?;
    Ok(ctx
        .lake
        .scan(Layer::Silver, tables::TEMPLATES, &ctx.source, &earlier)?
        .map(|lf| {
            lf.select([col("template_id")])
                .unique(None, UniqueKeepStrategy::Any)
        }))
}

/// Per service and hour of day, the median volume and error count of a window over the
/// `days` days before `date` (the gold partitions present when this batch is built): what is
/// usual at this time of day, beside each window, for SQL and reports. `None` with no history
/// (or `days` = 0); the columns are then null.
pub(super) fn same_hour_baselines(
    ctx: &Context,
    date: NaiveDate,
    days: u32,
) -> Result<Option<LazyFrame>> {
    if days == 0 {
        return Ok(None);
    }
    let from = date - chrono::Duration::days(i64::from(days));
    let earlier: Vec<NaiveDate> = ctx
        .lake
        .partition_dates(Layer::Gold, tables::WINDOW_FEATURES, &ctx.source)?
        .into_iter()
        .filter(|d| *d >= from && *d < date)
        .collect();
    Ok(ctx
        .lake
        .scan(Layer::Gold, tables::WINDOW_FEATURES, &ctx.source, &earlier)?
        .map(|lf| {
            lf.group_by([col("service"), col("hour")]).agg([
                col("n_events")
                    .cast(DataType::Float64)
                    .median()
                    .alias("events_same_hour"),
                col("n_error")
                    .cast(DataType::Float64)
                    .median()
                    .alias("errors_same_hour"),
            ])
        }))
}

//! The template store: every template a source has produced, across all days and re-runs, in
//! `silver/template_store/source=<s>/store.parquet` — id, text, first seen, last seen, count,
//! and `replaced_by` for a template that a later, more general one now covers.
//!
//! Template ids are the hash of the template text, so the same text has the same id on every
//! run, day and machine. The store is rebuilt from the per-day `silver/templates` partitions
//! after each silver run rather than updated in place, so re-running a day never counts its
//! lines twice. When mining on a later day generalises a template (`user alice logged in` →
//! `user <*> logged in`), the old id is kept and `replaced_by` points at the general one, so
//! anomalies and features that name the old id still resolve.

use anyhow::{Context as _, Result};
use polars::prelude::*;

use rustc_hash::FxHashMap;

use crate::lake::{Lake, Layer, tables, write_parquet};
use crate::parse::drain::WILDCARD;

pub const STORE_TABLE: &str = "template_store";

/// `silver/template_successors`: per day, the template ids that day's events were written
/// with but its templates no longer have (a later run of the day refined them), each with
/// the template that holds its events now (`replaced_by`).
pub const SUCCESSORS: &str = "template_successors";
const STORE_FILE: &str = "store.parquet";

/// Where the store of `source` is (the file may not exist yet).
pub fn path(lake: &Lake, source: &str) -> std::path::PathBuf {
    lake.table_dir(Layer::Silver, STORE_TABLE)
        .join(format!("source={source}"))
        .join(STORE_FILE)
}

/// Rebuild the store of `source` from all its silver template partitions; returns its rows.
pub fn rebuild(lake: &Lake, source: &str) -> Result<usize> {
    let dates = lake.partition_dates(Layer::Silver, tables::TEMPLATES, source)?;
    let Some(all) = lake.scan(Layer::Silver, tables::TEMPLATES, source, &dates)? else {
        return Ok(0);
    };
    let store = all
        .group_by([col("template_id")])
        .agg([
            col("template").first().alias("template"),
            col("first_seen").min().alias("first_seen"),
            col("last_seen").max().alias("last_seen"),
            col("count").sum().alias("count"),
        ])
        .sort(["first_seen", "template_id"], Default::default())
        .collect()
        .map_err(anyhow::Error::from)
        .context("aggregating silver templates")?;
    let ids: Vec<&str> = store
        .column("template_id")?
        .str()?
        .iter()
        .flatten()
        .collect();
    let texts: Vec<&str> = store.column("template")?.str()?.iter().flatten().collect();
    let last_seen: Vec<i64> = store
        .column("last_seen")?
        .cast(&DataType::Int64)?
        .i64()?
        .iter()
        .map(|v| v.unwrap_or_default())
        .collect();
    let replaced_by = replacements(&ids, &texts, &last_seen);
    let mut store = store.hstack(&[Column::new("replaced_by".into(), replaced_by)])?;
    if let Some(retired) = retired(lake, source, &dates, &store)? {
        store = crate::lake::concat_rows(vec![store, retired])?;
    }
    let dir = lake
        .table_dir(Layer::Silver, STORE_TABLE)
        .join(format!("source={source}"));
    lake.commit_file_with(&dir, STORE_FILE, |path| write_parquet(&mut store, path))?;
    Ok(store.height())
}

/// Template ids that runs of a day wrote events with and later runs refined away, not among
/// the store's templates: each with its successor (`replaced_by`), so events and anomalies
/// that name it still resolve.
fn retired(
    lake: &Lake,
    source: &str,
    dates: &[chrono::NaiveDate],
    store: &DataFrame,
) -> Result<Option<DataFrame>> {
    let Some(all) = lake.scan(Layer::Silver, SUCCESSORS, source, dates)? else {
        return Ok(None);
    };
    let known = store
        .column("template_id")?
        .as_materialized_series()
        .clone();
    let retired = all
        .filter(
            col("template_id")
                .is_in(lit(known).implode(false), false)
                .not(),
        )
        .group_by([col("template_id")])
        .agg([
            col("template").first().alias("template"),
            col("replaced_by").last().alias("replaced_by"),
        ])
        .sort(["template_id"], Default::default())
        .collect()
        .map_err(anyhow::Error::from)
        .context("reading silver's template successors")?;
    if retired.height() == 0 {
        return Ok(None);
    }
    let n = retired.height();
    let none_ts = Column::full_null("first_seen".into(), n, store.column("first_seen")?.dtype());
    Ok(Some(DataFrame::new_infer_height(vec![
        retired.column("template_id")?.clone(),
        retired.column("template")?.clone(),
        none_ts.clone(),
        none_ts.with_name("last_seen".into()),
        Column::new("count".into(), vec![0u64; n]).cast(store.column("count")?.dtype())?,
        retired.column("replaced_by")?.clone(),
    ])?))
}

/// Retired template ids of `date` (see [`SUCCESSORS`]) and the id and text of the template
/// that holds their events now; empty when no run of the day refined a template away.
pub fn successors_of(
    lake: &Lake,
    source: &str,
    date: chrono::NaiveDate,
) -> Result<FxHashMap<String, (String, String)>> {
    let mut map = FxHashMap::default();
    let Some(retired) = lake.scan_partition(Layer::Silver, SUCCESSORS, source, date)? else {
        return Ok(map);
    };
    let retired = retired
        .collect()
        .map_err(anyhow::Error::from)
        .context("reading silver's template successors")?;
    let texts = lake
        .scan_partition(Layer::Silver, tables::TEMPLATES, source, date)?
        .map(|lf| lf.select([col("template_id"), col("template")]).collect())
        .transpose()?
        .unwrap_or_default();
    let text_of: FxHashMap<&str, &str> = match texts.height() {
        0 => FxHashMap::default(),
        _ => texts
            .column("template_id")?
            .str()?
            .iter()
            .zip(texts.column("template")?.str()?.iter())
            .filter_map(|(i, t)| Some((i?, t?)))
            .collect(),
    };
    let old = retired.column("template_id")?.str()?;
    let new = retired.column("replaced_by")?.str()?;
    for (o, n) in old.iter().zip(new.iter()) {
        if let (Some(o), Some(n)) = (o, n) {
            let text = text_of.get(n).copied().unwrap_or_default().to_string();
            map.insert(o.to_string(), (n.to_string(), text));
        }
    }
    Ok(map)
}

/// `events` (silver rows) with each retired template id replaced by its successor, in
/// `template_id` and, when the frame has it, `template`: what a single run over the whole
/// day would have written.
pub fn resolve(
    events: DataFrame,
    successors: &FxHashMap<String, (String, String)>,
) -> Result<DataFrame> {
    if successors.is_empty() {
        return Ok(events);
    }
    let ids = events.column("template_id")?.str()?.clone();
    if !ids.iter().flatten().any(|id| successors.contains_key(id)) {
        return Ok(events);
    }
    let resolved_ids: StringChunked = ids
        .iter()
        .map(|id| id.map(|id| successors.get(id).map_or(id, |s| s.0.as_str())))
        .collect();
    let mut events = events;
    if let Ok(texts) = events.column("template").and_then(|c| c.str().cloned()) {
        let resolved_texts: StringChunked = ids
            .iter()
            .zip(texts.iter())
            .map(|(id, t)| match id.and_then(|id| successors.get(id)) {
                Some(s) => Some(s.1.as_str()),
                None => t,
            })
            .collect();
        events.with_column(resolved_texts.with_name("template".into()).into_column())?;
    }
    events.with_column(resolved_ids.with_name("template_id".into()).into_column())?;
    Ok(events)
}

/// For each template, the id of a *different* template seen later that covers it (same
/// token count, equal wherever the covering one is not a wildcard, more wildcards); the most
/// recently seen such template wins. `None` when nothing covers it.
fn replacements(ids: &[&str], texts: &[&str], last_seen: &[i64]) -> Vec<Option<String>> {
    let tokens: Vec<Vec<&str>> = texts.iter().map(|t| t.split(' ').collect()).collect();
    (0..ids.len())
        .map(|i| {
            (0..ids.len())
                .filter(|&j| {
                    j != i && last_seen[j] >= last_seen[i] && covers(&tokens[j], &tokens[i])
                })
                .max_by_key(|&j| (last_seen[j], ids[j]))
                .map(|j| ids[j].to_string())
        })
        .collect()
}

fn covers(general: &[&str], specific: &[&str]) -> bool {
    fits(general, specific)
        && general.iter().filter(|t| **t == WILDCARD).count()
            > specific.iter().filter(|t| **t == WILDCARD).count()
}

/// Whether the template `general` reads the tokens `specific`: as many tokens, equal wherever
/// the template is not a wildcard.
pub fn fits<T: AsRef<str>>(general: &[T], specific: &[&str]) -> bool {
    general.len() == specific.len()
        && general
            .iter()
            .zip(specific)
            .all(|(g, s)| g.as_ref() == *s || g.as_ref() == WILDCARD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_general_template_replaces_the_specific_one() {
        let ids = ["a", "b", "c"];
        let texts = ["user alice logged in", "user <*> logged in", "disk full"];
        let r = replacements(&ids, &texts, &[1, 2, 3]);
        assert_eq!(r, vec![Some("b".to_string()), None, None]);
        // An older general template does not replace a newer specific one.
        let r = replacements(&ids, &texts, &[5, 2, 3]);
        assert_eq!(r[0], None);
    }
}

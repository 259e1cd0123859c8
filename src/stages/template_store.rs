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

use crate::lake::{Lake, Layer, tables, write_parquet};
use crate::parse::drain::WILDCARD;

pub const STORE_TABLE: &str = "template_store";
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
    let dir = lake
        .table_dir(Layer::Silver, STORE_TABLE)
        .join(format!("source={source}"));
    lake.commit_file_with(&dir, STORE_FILE, |path| write_parquet(&mut store, path))?;
    Ok(store.height())
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

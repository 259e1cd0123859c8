//! Gold tables → the numeric matrices detectors see. Training and detection both build their
//! matrices here, from the same feature names, so a model always sees columns in the order it
//! was fitted on (a feature missing from a later batch is 0: that template did not occur).

use std::collections::BTreeMap;

use anyhow::Result;
use ndarray::Array2;
use polars::prelude::*;
use rustc_hash::FxHashMap;

use crate::lake::schema::{WINDOW_CONTEXT, WINDOW_KEYS};

/// Session columns used as features besides the template counts.
pub const SESSION_NUMERIC: &[&str] = &[
    "duration_log",
    "n_events",
    "n_distinct_templates",
    "n_warn",
    "n_error",
];
/// Prefix of session template-count features.
pub const TEMPLATE_COUNT_PREFIX: &str = "tc_";
/// At most this many templates become session features (the most common in training).
pub const MAX_SESSION_TEMPLATES: usize = 200;

/// Whether a feature is a count (Poisson floor in z-scores).
pub fn is_count_feature(name: &str) -> bool {
    name.starts_with("n_")
        || name.starts_with("tpl_")
        || name.starts_with(TEMPLATE_COUNT_PREFIX)
        || name == "distinct_templates"
        || name == "new_templates"
}

/// Window features for z-scores and percentile baselines: counts only. Rates add nothing a count does not show, and
/// `new_templates` is left to the rare-template detector, because the first batch of a source
/// sees every template as new.
pub fn window_count_features(df: &DataFrame) -> Vec<String> {
    numeric_columns(df, |c| is_count_feature(c) && c != "new_templates")
}

/// Window features for the isolation forest: counts and rates.
pub fn window_forest_features(df: &DataFrame) -> Vec<String> {
    numeric_columns(df, |c| c != "new_templates")
}

fn numeric_columns(df: &DataFrame, keep: impl Fn(&str) -> bool) -> Vec<String> {
    df.columns()
        .iter()
        .filter(|c| c.dtype().is_primitive_numeric())
        .map(|c| c.name().to_string())
        .filter(|c| {
            !WINDOW_KEYS.contains(&c.as_str()) && !WINDOW_CONTEXT.contains(&c.as_str()) && keep(c)
        })
        .collect()
}

/// A matrix of the named columns (missing columns are 0, nulls are 0).
pub fn matrix(df: &DataFrame, features: &[String]) -> Result<Array2<f64>> {
    let mut x = Array2::<f64>::zeros((df.height(), features.len()));
    for (j, name) in features.iter().enumerate() {
        let Ok(column) = df.column(name) else {
            continue;
        };
        let values = column.cast(&DataType::Float64)?;
        for (i, v) in values.f64()?.iter().enumerate() {
            x[[i, j]] = v.unwrap_or(0.0);
        }
    }
    Ok(x)
}

/// Session frame with `duration_log` added and the template-count vectors joined in as
/// `tc_<template>` columns for `vocabulary`.
pub fn session_frame(
    sessions: &DataFrame,
    counts: &DataFrame,
    vocabulary: &[String],
) -> Result<DataFrame> {
    let mut df = sessions.clone();
    // Durations are heavy-tailed: on a log scale a 30 s request stands out from 200 ms ones
    // by a few spreads rather than by thousands.
    let duration_log: Vec<f64> = millis(&df, "duration_ms")?
        .iter()
        .map(|&d| (d.max(0) as f64).ln_1p())
        .collect();
    df.with_column(Column::new("duration_log".into(), duration_log))?;
    // Each detector that judges sessions by their features makes this frame for each chunk:
    // hashed with FxHash and read with iterators (SipHash and reading the counts row by row
    // by index were most of the session z-score's and clustering's scoring time).
    let keys = df.column("session_key")?.str()?;
    let row_of: FxHashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| k.map(|k| (k, i)))
        .collect();
    let vocab_index: FxHashMap<&str, usize> = vocabulary
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut cols = vec![vec![0i64; df.height()]; vocabulary.len()];
    let c_key = counts.column("session_key")?.str()?;
    let c_tpl = counts.column("template_id")?.str()?;
    let c_n = counts.column("count")?.i64()?;
    for ((k, t), n) in c_key.iter().zip(c_tpl.iter()).zip(c_n.iter()) {
        let (Some(k), Some(t), Some(n)) = (k, t, n) else {
            continue;
        };
        if let (Some(&r), Some(&j)) = (row_of.get(k), vocab_index.get(t)) {
            cols[j][r] = n;
        }
    }
    for (t, values) in vocabulary.iter().zip(cols) {
        df.with_column(Column::new(
            format!("{TEMPLATE_COUNT_PREFIX}{t}").into(),
            values,
        ))?;
    }
    Ok(df)
}

/// The session templates worth a feature: the most common in training, by number of sessions.
pub fn session_vocabulary(counts: &DataFrame) -> Result<Vec<String>> {
    let mut sessions_per_template: BTreeMap<String, u64> = BTreeMap::new();
    for t in counts.column("template_id")?.str()?.no_null_iter() {
        *sessions_per_template.entry(t.to_string()).or_default() += 1;
    }
    Ok(ranked_vocabulary(sessions_per_template))
}

/// The [`MAX_SESSION_TEMPLATES`] templates in the most sessions (ties by id).
pub fn ranked_vocabulary(sessions_per_template: BTreeMap<String, u64>) -> Vec<String> {
    let mut ranked: Vec<(String, u64)> = sessions_per_template.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked
        .into_iter()
        .take(MAX_SESSION_TEMPLATES)
        .map(|(t, _)| t)
        .collect()
}

/// The session features that are not template counts, as owned names.
pub fn session_numeric_features() -> Vec<String> {
    SESSION_NUMERIC.iter().map(|s| s.to_string()).collect()
}

pub fn session_feature_names(vocabulary: &[String]) -> Vec<String> {
    session_numeric_features()
        .into_iter()
        .chain(
            vocabulary
                .iter()
                .map(|t| format!("{TEMPLATE_COUNT_PREFIX}{t}")),
        )
        .collect()
}

/// String values of a column (nulls as empty), for grouping keys.
pub fn strings(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    let c = df.column(name)?.cast(&DataType::String)?;
    Ok(c.str()?
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect())
}

/// Epoch-millisecond values of a datetime column.
pub fn millis(df: &DataFrame, name: &str) -> Result<Vec<i64>> {
    let c = df.column(name)?.cast(&DataType::Int64)?;
    Ok(c.i64()?.iter().map(|v| v.unwrap_or_default()).collect())
}

/// A session's template counts from its `template_sequence` (space-separated template ids).
pub fn template_counts(sequence: &str) -> rustc_hash::FxHashMap<&str, u64> {
    let mut counts = rustc_hash::FxHashMap::default();
    for t in sequence.split(' ').filter(|t| !t.is_empty()) {
        *counts.entry(t).or_default() += 1;
    }
    counts
}

/// An event's masked values from silver's JSON array text, into `out` (cleared first).
/// Values borrow from `json`: silver writes plain `["a","b"]` arrays, which are split
/// directly; an array with an escaped character goes through a full JSON parser. Reading a
/// million events' values this way allocates nothing per event.
pub fn json_strings_into<'a>(
    json: &'a str,
    out: &mut Vec<std::borrow::Cow<'a, str>>,
) -> Result<()> {
    out.clear();
    let inner = json
        .trim()
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| anyhow::anyhow!("not a JSON array: {json:?}"))?;
    // Byte searches: `str::find(char)` confirms each hit with a call to memcmp, which was most
    // of this function's time in 04-train. Both characters are ASCII, so any hit is a boundary.
    if memchr::memchr(b'\\', inner.as_bytes()).is_some() {
        #[derive(serde::Deserialize)]
        struct Values<'a>(#[serde(borrow)] Vec<std::borrow::Cow<'a, str>>);
        out.extend(serde_json::from_str::<Values>(json)?.0);
        return Ok(());
    }
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let body = rest
            .strip_prefix('"')
            .ok_or_else(|| anyhow::anyhow!("not a JSON array of strings: {json:?}"))?;
        let end = memchr::memchr(b'"', body.as_bytes())
            .ok_or_else(|| anyhow::anyhow!("unterminated string in {json:?}"))?;
        out.push(std::borrow::Cow::Borrowed(&body[..end]));
        rest = body[end + 1..].trim_start();
        rest = match rest.strip_prefix(',') {
            Some(r) => r.trim_start(),
            None if rest.is_empty() => rest,
            None => anyhow::bail!("not a JSON array of strings: {json:?}"),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silver_values_read_like_json() {
        let mut out = Vec::new();
        for json in [
            r#"[]"#,
            r#"["pa1-000001","144.46"]"#,
            r#"[ "a" , "b c" ]"#,
            r#"["quote \" inside","tab\there","\u00e9"]"#,
        ] {
            json_strings_into(json, &mut out).unwrap();
            let expected: Vec<String> = serde_json::from_str(json).unwrap();
            assert_eq!(out, expected, "{json}");
        }
        for bad in [r#"["a""#, r#"["a" "b"]"#, r#"[1,2]"#, "nope"] {
            assert!(json_strings_into(bad, &mut out).is_err(), "{bad}");
        }
    }
}

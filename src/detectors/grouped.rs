//! Baselines per group (z-score, percentile): a row is judged against its own service's
//! rhythm — service × hour of day, else service, else everything — never against a fleet
//! average that no single service follows.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use linfa::DatasetBase;
use linfa::traits::Fit;
use ndarray::{Array2, Axis};
use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};

use super::baseline::FeatureBaseline;
use super::contract::Granularity;
use super::saved_model::SavedModel;
use super::training::TrainingData;
use super::zscore::ZScore;
use crate::features;

/// Baselines per group, most specific grouping first: a row uses the first grouping whose
/// group had enough training rows (e.g. service × hour of day, else service, else all).
/// Used by the z-score and percentile detectors, whose baselines only mean something within
/// one service's rhythm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grouped<M> {
    pub groupings: Vec<Vec<String>>,
    /// Key: grouping index and the group's values, as `"<i>|v1|v2"`.
    pub models: BTreeMap<String, M>,
}

impl<M> Grouped<M> {
    pub fn key(grouping: usize, values: &[&str]) -> String {
        let mut k = grouping.to_string();
        for v in values {
            k.push('|');
            k.push_str(v);
        }
        k
    }

    /// The baseline for a row whose grouping columns have `values(column)`; and its key.
    pub fn lookup<'a>(&'a self, values: impl Fn(&str) -> &'a str) -> Option<(&'a str, &'a M)> {
        for (i, grouping) in self.groupings.iter().enumerate() {
            let vals: Vec<&str> = grouping.iter().map(|c| values(c)).collect();
            if let Some((k, m)) = self.models.get_key_value(&Self::key(i, &vals)) {
                return Some((k.as_str(), m));
            }
        }
        None
    }
}

/// A fitted baseline that learns an operator's "normal" verdict on one of its training rows
/// (see [`TrainingData::normal_rows`]): it changes just enough that the row no longer scores
/// as anomalous, and says whether it changed.
pub trait AcceptsRow {
    fn accept_row(&mut self, row: &[f64]) -> bool;
}

/// A z-score group needs this many training rows, or rows fall back to a coarser grouping.
pub const MIN_GROUP_ROWS: usize = 8;

/// What a grouped-baseline detector is trained on and saved with.
pub struct BaselineSpec<'a> {
    pub granularity: Granularity,
    pub detector: &'static str,
    pub frame: &'a DataFrame,
    pub features: Vec<String>,
    pub groupings: Vec<Vec<String>>,
    pub min_rows: usize,
    pub threshold: f64,
}

impl<'a> BaselineSpec<'a> {
    /// The counts a grouped baseline judges at `granularity`, and how rows are grouped:
    /// windows per service × hour of day (the daily curve is in the baseline), else per
    /// service; sessions per service, else all. `None` when the source has no such rows.
    pub fn counts(
        data: &'a TrainingData<'_>,
        granularity: Granularity,
        detector: &'static str,
        min_rows: usize,
        threshold: f64,
    ) -> Option<Self> {
        let frame = data.frame(granularity)?;
        let (features, groupings) = match granularity {
            Granularity::Window => (features::window_count_features(frame), window_groupings()),
            Granularity::Session => (features::session_numeric_features(), session_groupings()),
            Granularity::Event => return None,
        };
        Some(Self {
            granularity,
            detector,
            frame,
            features,
            groupings,
            min_rows,
            threshold,
        })
    }

    /// One baseline per group with at least `min_rows` training rows (see [`fit_grouped`]);
    /// `finish` may adjust the set before it is saved. `None` when no group has enough rows.
    ///
    /// Training rows operators marked normal are then accepted by the baseline each row is
    /// judged against ([`AcceptsRow`]): a count an operator called normal becomes part of
    /// its group's usual range.
    pub fn train<M: Serialize + AcceptsRow>(
        self,
        data: &TrainingData<'_>,
        fit: impl Fn(Array2<f64>) -> Result<M>,
        finish: impl FnOnce(&mut Grouped<M>),
    ) -> Result<Option<SavedModel>> {
        let (granularity, detector) = (self.granularity, self.detector);
        (data.step)(format!("training {granularity}/{detector}"));
        let x = features::matrix(self.frame, &self.features)?;
        let models = fit_grouped(
            self.frame,
            &x,
            &self.groupings,
            self.min_rows,
            |sub, key| {
                fit(sub)
                    .with_context(|| format!("{granularity} {detector} baseline for group {key}"))
            },
        )?;
        if models.is_empty() {
            return Ok(None);
        }
        let mut set = Grouped {
            groupings: self.groupings,
            models,
        };
        finish(&mut set);
        let marked = data.normal_rows(granularity)?;
        if !marked.is_empty() {
            let mut columns: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for c in set.groupings.iter().flatten() {
                columns.insert(c, features::strings(self.frame, c)?);
            }
            for i in marked {
                let key = set
                    .lookup(|c| columns.get(c).map_or("", |v| v[i].as_str()))
                    .map(|(k, _)| k.to_string());
                if let Some(m) = key.and_then(|k| set.models.get_mut(&k)) {
                    m.accept_row(&x.row(i).to_vec());
                }
            }
        }
        data.matrix_model(
            granularity,
            detector,
            &x,
            self.features,
            self.threshold,
            set,
        )
        .map(Some)
    }
}

/// Window baselines per service × hour of day, else per service.
pub fn window_groupings() -> Vec<Vec<String>> {
    vec![
        vec!["service".into(), "hour".into()],
        vec!["service".into()],
    ]
}

/// Session baselines per service, else over all sessions.
pub fn session_groupings() -> Vec<Vec<String>> {
    vec![vec!["service".into()], vec![]]
}

/// Which features are counts, in matrix order.
pub fn count_flags(features: &[String]) -> Vec<bool> {
    features
        .iter()
        .map(|f| features::is_count_feature(f))
        .collect()
}

/// One model per group of each grouping, keyed by [`Grouped::key`]. Groups with fewer than
/// `min_rows` training rows get none: their rows fall back to the next, coarser grouping.
pub fn fit_grouped<M>(
    df: &DataFrame,
    x: &Array2<f64>,
    groupings: &[Vec<String>],
    min_rows: usize,
    mut fit: impl FnMut(Array2<f64>, &str) -> Result<M>,
) -> Result<BTreeMap<String, M>> {
    let mut models = BTreeMap::new();
    for (gi, grouping) in groupings.iter().enumerate() {
        let columns: Vec<Vec<String>> = grouping
            .iter()
            .map(|c| features::strings(df, c))
            .collect::<Result<_>>()?;
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for row in 0..df.height() {
            let vals: Vec<&str> = columns.iter().map(|c| c[row].as_str()).collect();
            groups
                .entry(Grouped::<M>::key(gi, &vals))
                .or_default()
                .push(row);
        }
        for (key, rows) in groups {
            if rows.len() < min_rows {
                continue;
            }
            let fitted = fit(x.select(Axis(0), &rows), &key)?;
            models.insert(key, fitted);
        }
    }
    Ok(models)
}

/// Median and 1.4826·MAD per column, for explanations (counts with a Poisson floor, so that
/// "0 instead of the usual 1" reads as the one-event change it is, not as z = −9000).
pub fn robust_baselines(x: &Array2<f64>, features: &[String]) -> Vec<FeatureBaseline> {
    let params = ZScore::params().count_features(count_flags(features));
    match params.fit(&DatasetBase::from(x.clone())) {
        Ok(z) => z.baselines,
        Err(_) => vec![
            FeatureBaseline {
                center: 0.0,
                scale: 1.0,
                stabilized: None,
            };
            x.ncols()
        ],
    }
}

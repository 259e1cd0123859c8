//! The percentile detector in the pipeline: counts per window (or session) outside the range
//! their group's training rows kept to.

use std::collections::BTreeMap;

use anyhow::Result;
use linfa::traits::Fit;
use linfa::{DatasetBase, ParamGuard};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{PercentileBaseline, PercentileError, PercentileParams, min_rows_for};
use crate::detectors::contract::{Detector, Granularity, Scored, Trained};
use crate::detectors::explain::{Ranked, TOP_FEATURES, display_value, feature_label, ordinal};
use crate::detectors::grouped::{BaselineSpec, Grouped, count_flags};
use crate::detectors::saved_model::SavedModel;
use crate::detectors::scoring::{MatrixRows, ScoringInput};
use crate::detectors::settings::{Common, Params, SettingError, guarded};
use crate::detectors::training::TrainingData;

pub struct PercentileDetector;

/// `[detectors.percentile]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PercentileSettings {
    /// Upper quantile of a count's usual range (the lower one is 1 − quantile).
    pub quantile: f64,
    /// How far past the range, in tail widths (median → quantile), raises an anomaly.
    pub threshold: f64,
}

impl Default for PercentileSettings {
    /// The algorithm's own defaults (`hyperparams.rs`), so the two cannot drift.
    fn default() -> Self {
        let algorithm = &PercentileParams::default().0;
        Self {
            quantile: algorithm.quantile,
            threshold: algorithm.threshold,
        }
    }
}

impl Params for PercentileSettings {
    fn default_common() -> Common {
        Common {
            enabled: true,
            granularities: vec![Granularity::Window],
            weight: 0.5,
            view: "counts".into(),
        }
    }

    fn check(&self) -> Result<(), SettingError> {
        let params = PercentileBaseline::params()
            .quantile(self.quantile)
            .threshold(self.threshold);
        guarded(params.check(), |e| match e {
            PercentileError::Quantile(_) => "quantile",
            _ => "threshold",
        })
    }
}

impl Detector for PercentileDetector {
    type Settings = PercentileSettings;
    const NAME: &'static str = "percentile";
    const SUPPORTS: &'static [Granularity] = &[Granularity::Window, Granularity::Session];

    fn train(
        &self,
        s: &PercentileSettings,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained> {
        let too_few = format!(
            "{granularity} percentile: no group has the {} training rows a {} quantile needs yet",
            min_rows_for(s.quantile),
            s.quantile
        );
        let params = PercentileBaseline::params()
            .quantile(s.quantile)
            .threshold(s.threshold);
        let Some(spec) = BaselineSpec::counts(
            data,
            granularity,
            Self::NAME,
            params.check_ref()?.min_rows(),
            s.threshold,
        ) else {
            return Ok(Trained::TooLittleData(too_few));
        };
        let params = params.count_features(count_flags(&spec.features)).check()?;
        let model = spec.train(
            data,
            |sub| params.fit(&DatasetBase::from(sub)).map_err(Into::into),
            |_| {},
        )?;
        Ok(Trained::from_option(model, too_few))
    }

    fn score<'m>(
        &self,
        model: &'m SavedModel,
        input: &ScoringInput<'_>,
        out: &mut Scored<'m>,
    ) -> Result<()> {
        let set: Grouped<PercentileBaseline> = model.fitted()?;
        let Some(rows) = MatrixRows::of(model, input, &set.groupings)? else {
            return Ok(());
        };
        for i in 0..rows.len() {
            let Some((group, baseline)) = set.lookup(|c| rows.group_value(i, c)) else {
                continue;
            };
            let row = rows.row(i);
            let (score, each) = baseline.score_row(&row);
            out.scores.push(rows.score(i, model, score));
            if !Self::CROSSING.crosses(score, model.threshold) {
                continue;
            }
            let top = outside_range(
                &row,
                &each,
                &model.features,
                baseline,
                model.granularity,
                &model.templates,
            );
            out.findings.push(rows.finding(
                i,
                model,
                score,
                top,
                Some(group.to_string()),
                |what, lead| format!("{lead} {what}"),
            ));
        }
        Ok(())
    }
}

/// Features of one row outside their percentile range, furthest first, as evidence objects.
fn outside_range(
    row: &[f64],
    scores: &[f64],
    features: &[String],
    baseline: &PercentileBaseline,
    granularity: Granularity,
    templates: &BTreeMap<String, String>,
) -> Vec<Ranked> {
    let mut ranked: Vec<(usize, f64)> = scores
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, s)| s.is_finite() && *s > 0.0)
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let q = baseline.hyperparams().quantile();
    let unit = if granularity == Granularity::Window {
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
            Ranked {
                deviation: score,
                evidence,
                text,
            }
        })
        .collect()
}

//! The z-score detector in the pipeline: counts per window or session against their group's
//! robust baseline (service × hour of day, else service).

use std::collections::BTreeMap;

use anyhow::Result;
use linfa::traits::Fit;
use linfa::{DatasetBase, ParamGuard};
use serde::{Deserialize, Serialize};

use super::{ZScore, ZScoreError};
use crate::detectors::contract::{Detector, Granularity, Scored, Trained};
use crate::detectors::explain::top_features;
use crate::detectors::grouped::{BaselineSpec, Grouped, MIN_GROUP_ROWS, count_flags};
use crate::detectors::saved_model::SavedModel;
use crate::detectors::scoring::{MatrixRows, ScoringInput};
use crate::detectors::settings::{Common, Params, SettingError, guarded};
use crate::detectors::training::TrainingData;

pub struct ZScoreDetector;

/// `[detectors.zscore]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZScoreSettings {
    /// Median/MAD instead of mean/std: one burst in the training data does not hide the next.
    pub robust: bool,
    /// |z| at or above this is anomalous.
    pub threshold: f64,
}

impl Default for ZScoreSettings {
    /// The algorithm's own defaults (`hyperparams.rs`), so the two cannot drift.
    fn default() -> Self {
        let algorithm = &ZScore::params().0;
        Self {
            robust: algorithm.robust,
            threshold: algorithm.threshold,
        }
    }
}

impl Params for ZScoreSettings {
    fn default_common() -> Common {
        Common {
            enabled: true,
            granularities: vec![Granularity::Window, Granularity::Session],
            weight: 0.5,
            view: "counts".into(),
        }
    }

    fn check(&self) -> Result<(), SettingError> {
        guarded(
            ZScore::params().threshold(self.threshold).check(),
            |e| match e {
                ZScoreError::Threshold(_) => "threshold",
                _ => "robust",
            },
        )
    }
}

impl Detector for ZScoreDetector {
    type Settings = ZScoreSettings;
    const NAME: &'static str = "zscore";
    const SUPPORTS: &'static [Granularity] = &[Granularity::Window, Granularity::Session];

    fn train(
        &self,
        s: &ZScoreSettings,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained> {
        let too_few = match granularity {
            Granularity::Window => {
                format!("window z-score: no service has {MIN_GROUP_ROWS} training windows yet")
            }
            _ => format!("session z-score: fewer than {MIN_GROUP_ROWS} training sessions yet"),
        };
        let Some(spec) =
            BaselineSpec::counts(data, granularity, Self::NAME, MIN_GROUP_ROWS, s.threshold)
        else {
            return Ok(Trained::TooLittleData(too_few));
        };
        let params = ZScore::params()
            .robust(s.robust)
            .threshold(s.threshold)
            .count_features(count_flags(&spec.features))
            .check()?;
        let model = spec.train(
            data,
            |sub| params.fit(&DatasetBase::from(sub)).map_err(Into::into),
            pool_hourly_spreads,
        )?;
        Ok(Trained::from_option(model, too_few))
    }

    fn score<'m>(
        &self,
        model: &'m SavedModel,
        input: &ScoringInput<'_>,
        out: &mut Scored<'m>,
    ) -> Result<()> {
        let set: Grouped<ZScore> = model.fitted()?;
        let Some(rows) = MatrixRows::of(model, input, &set.groupings)? else {
            return Ok(());
        };
        for i in 0..rows.len() {
            let Some((group, zmodel)) = set.lookup(|c| rows.group_value(i, c)) else {
                continue;
            };
            // The largest |z| of the row: what `predict` gives, without a matrix per row.
            let score = zmodel
                .baselines
                .iter()
                .zip(rows.x.row(i))
                .fold(0.0f64, |m, (b, v)| m.max(b.z(*v).abs()));
            out.scores.push(rows.score(i, model, score));
            if !Self::CROSSING.crosses(score, model.threshold) {
                continue;
            }
            let top = top_features(
                &rows.row(i),
                &model.features,
                &zmodel.baselines,
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

/// Raise each hour-of-day group's count spreads to the median over its service's hours.
///
/// Lines come in clumps — a request writes several INFO lines, so a service's INFO count per
/// window varies 3–5 times more than a Poisson count (variance/mean measured on generated
/// traffic) — and one hour of one day holds only 12 windows: a quiet hour can show a MAD
/// well below the service's usual spread by chance, and then a night-time window with no
/// request (0 INFO lines where 12 are typical) reads as z = −6. The median over the
/// service's 24 hours is a steadier estimate of that dispersion; counts that really are
/// Poisson (errors) keep a spread near 1, so bursts stay as visible as before.
pub fn pool_hourly_spreads(set: &mut Grouped<ZScore>) {
    let Some(hourly) = set
        .groupings
        .iter()
        .position(|g| g.last().is_some_and(|c| c == "hour"))
    else {
        return;
    };
    let prefix = format!("{hourly}|");
    // The group's key without its hour: "0|svc|14" → "0|svc".
    let parent = |key: &str| key.rsplit_once('|').map(|(p, _)| p.to_string());
    let mut spreads: BTreeMap<(String, usize), Vec<f64>> = BTreeMap::new();
    for (key, model) in &set.models {
        let Some(p) = parent(key).filter(|_| key.starts_with(&prefix)) else {
            continue;
        };
        for (j, b) in model.baselines.iter().enumerate() {
            if let Some((_, spread)) = b.stabilized {
                spreads.entry((p.clone(), j)).or_default().push(spread);
            }
        }
    }
    let pooled: BTreeMap<(String, usize), f64> = spreads
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_unstable_by(f64::total_cmp);
            (k, crate::detectors::robust::median(&v))
        })
        .collect();
    for (key, model) in set.models.iter_mut() {
        let Some(p) = parent(key).filter(|_| key.starts_with(&prefix)) else {
            continue;
        };
        for (j, b) in model.baselines.iter_mut().enumerate() {
            if let (Some((center, spread)), Some(floor)) =
                (b.stabilized, pooled.get(&(p.clone(), j)))
            {
                b.stabilized = Some((center, spread.max(*floor)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use linfa::traits::Predict;
    use ndarray::{Array2, array};

    use super::*;
    use crate::detectors::grouped::window_groupings;

    /// A count baseline fitted on one hour's windows.
    fn hour(values: &[f64]) -> ZScore {
        let x = Array2::from_shape_vec((values.len(), 1), values.to_vec()).unwrap();
        ZScore::params()
            .count_features(vec![true])
            .fit(&DatasetBase::from(x))
            .unwrap()
    }

    #[test]
    fn a_quiet_hour_borrows_its_services_usual_spread() {
        // Hour 1 happened to be steady (120 ± 10); the service's other hours swing the way
        // clumped request traffic does.
        let steady: Vec<f64> = (0..12).map(|i| [110.0, 120.0, 130.0][i % 3]).collect();
        let clumped: Vec<f64> = (0..12).map(|i| [40.0, 120.0, 220.0, 90.0][i % 4]).collect();
        let mut set = Grouped {
            groupings: window_groupings(),
            models: BTreeMap::from([
                ("0|auth|1".to_string(), hour(&steady)),
                ("0|auth|2".to_string(), hour(&clumped)),
                ("0|auth|3".to_string(), hour(&clumped)),
                ("0|search|1".to_string(), hour(&steady)),
                ("1|auth".to_string(), hour(&steady)),
            ]),
        };
        let zero_at_one =
            |set: &Grouped<ZScore>, key: &str| set.models[key].predict(&array![[0.0]])[[0, 0]];
        let before = zero_at_one(&set, "0|auth|1");
        assert!(
            before < -5.0,
            "a window with no request reads as z = {before}"
        );
        pool_hourly_spreads(&mut set);
        let spread = |key: &str| set.models[key].baselines[0].stabilized.unwrap().1;
        assert_eq!(spread("0|auth|1"), spread("0|auth|2"));
        let after = zero_at_one(&set, "0|auth|1");
        assert!(after > -5.0, "after pooling: z = {after}");
        // A spike still stands out; other services and the per-service fallback keep theirs.
        assert!(set.models["0|auth|1"].predict(&array![[1000.0]])[[0, 0]] > 5.0);
        assert!(zero_at_one(&set, "0|search|1") < -5.0);
        assert!(zero_at_one(&set, "1|auth") < -5.0);
    }
}

//! The isolation forest in the pipeline: window counts and rates, or session features and
//! template counts, isolated by random trees (off by default; see the README's HDFS table).

use anyhow::{Context as _, Result};
use linfa::traits::{Fit, Predict};
use linfa::{DatasetBase, ParamGuard};
use serde::{Deserialize, Serialize};

use super::{Contamination, IsolationForest, IsolationForestError};
use crate::detectors::contract::{Crossing, Detector, Granularity, Scored, Trained};
use crate::detectors::saved_model::SavedModel;
use crate::detectors::scoring::{MatrixRows, ScoringInput};
use crate::detectors::settings::{Common, Params, SettingError, guarded};
use crate::detectors::training::TrainingData;
use crate::features;

pub struct IsolationForestDetector;

/// `[detectors.isolation_forest]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IsolationForestSettings {
    pub n_trees: usize,
    pub max_samples: usize,
    /// `auto` (scikit-learn's: anomalous when the score exceeds 0.5) or a fraction in (0, 0.5].
    #[serde(deserialize_with = "crate::detectors::settings::text")]
    pub contamination: String,
    pub seed: u64,
}

impl Default for IsolationForestSettings {
    fn default() -> Self {
        let p = IsolationForest::params();
        let p = p.check_ref().expect("the defaults are valid");
        Self {
            n_trees: p.n_trees(),
            max_samples: p.max_samples(),
            contamination: "auto".into(),
            seed: p.seed(),
        }
    }
}

impl IsolationForestSettings {
    fn params(&self) -> Result<super::IsolationForestParams, SettingError> {
        let contamination: Contamination = self
            .contamination
            .parse()
            .map_err(|e: String| SettingError::new("contamination", e))?;
        Ok(IsolationForest::params()
            .n_trees(self.n_trees)
            .max_samples(self.max_samples)
            .contamination(contamination)
            .seed(self.seed))
    }
}

impl Params for IsolationForestSettings {
    fn default_common() -> Common {
        Common {
            enabled: false,
            granularities: vec![Granularity::Session],
            weight: 0.5,
            view: "counts".into(),
        }
    }

    fn check(&self) -> Result<(), SettingError> {
        guarded(self.params()?.check(), |e| match e {
            IsolationForestError::NoTrees(_) => "n_trees",
            IsolationForestError::TooFewSamples(_) => "max_samples",
            _ => "contamination",
        })
    }
}

impl Detector for IsolationForestDetector {
    type Settings = IsolationForestSettings;
    const NAME: &'static str = "isolation_forest";
    const SUPPORTS: &'static [Granularity] = &[Granularity::Window, Granularity::Session];
    /// scikit-learn's offset is the last normal score: only scores above it are anomalous.
    const CROSSING: Crossing = Crossing::Above;

    fn train(
        &self,
        s: &IsolationForestSettings,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained> {
        let (frame, features, vocabulary) = match (granularity, &data.windows, &data.sessions) {
            (Granularity::Window, Some(w), _) => (w, features::window_forest_features(w), vec![]),
            (Granularity::Session, _, Some(s)) => (
                &s.frame,
                features::session_feature_names(&s.vocabulary),
                s.vocabulary.clone(),
            ),
            _ => {
                return Ok(Trained::TooLittleData(format!(
                    "{granularity} isolation forest: no {granularity} rows"
                )));
            }
        };
        (data.step)(format!("training {granularity}/{}", Self::NAME));
        let x = features::matrix(frame, &features)?;
        let mut forest = s
            .params()
            .map_err(|e| anyhow::anyhow!("{} {}", e.key, e.message))?
            .fit(&DatasetBase::from(x.clone()))
            .with_context(|| format!("{granularity} isolation forest"))?;
        for i in data.normal_rows(granularity)? {
            forest.accept_row(x.row(i));
        }
        let threshold = forest.threshold();
        let mut model =
            data.matrix_model(granularity, Self::NAME, &x, features, threshold, forest)?;
        model.vocabulary = vocabulary;
        Ok(Trained::Model(Box::new(model)))
    }

    fn score<'m>(
        &self,
        model: &'m SavedModel,
        input: &ScoringInput<'_>,
        out: &mut Scored<'m>,
    ) -> Result<()> {
        let forest: IsolationForest = model.fitted()?;
        let Some(rows) = MatrixRows::of(model, input, &[])? else {
            return Ok(());
        };
        let scores = forest.predict(&rows.x).to_vec();
        rows.judge_all(model, &scores, Self::CROSSING, out, |i, what, lead| {
            format!(
                "isolation score {:.2} > {:.2} {what}; most unusual: {lead}",
                scores[i], model.threshold
            )
        });
        Ok(())
    }
}

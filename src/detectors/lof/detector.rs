//! The local outlier factor in the pipeline: sessions by their template counts, or windows by
//! their counts and rates, judged by how much sparser their neighbourhood is than their
//! neighbours' (off by default until it earns its place; see the README's HDFS table).

use anyhow::{Context as _, Result};
use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::{LocalOutlierFactor, LofError, LofParams, Neighbourhood};
use crate::detectors::contract::{Detector, Granularity, Scored, Trained};
use crate::detectors::distinct_rows::per_distinct_row;
use crate::detectors::saved_model::SavedModel;
use crate::detectors::scoring::{MatrixRows, ScoringInput};
use crate::detectors::settings::{Common, Params, SettingError, guarded};
use crate::detectors::training::{LearnsNormalRows, TrainingData};

pub struct LofDetector;

/// `[detectors.lof]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LofSettings {
    /// k: how many training rows (counting repeats) make a row's neighbourhood.
    pub n_neighbors: usize,
    /// At most this many distinct training vectors are kept (a seeded sample beyond it):
    /// scoring compares each distinct row with every one of them.
    pub max_points: usize,
    /// The threshold is at least this quantile of the training rows' own factors...
    pub quantile: f64,
    /// ...and at least this factor (1 is "as dense as its neighbours").
    pub min_score: f64,
    /// Reach distances are never below this (on the log scale, ln 2 is one event): rows
    /// closer than it are one behaviour, however often they repeat.
    pub resolution: f64,
    /// Compare ln(1 + value) rather than raw values.
    pub log_counts: bool,
    pub seed: u64,
}

impl Default for LofSettings {
    fn default() -> Self {
        let p = LofParams::default();
        let p = p.check_ref().expect("the defaults are valid");
        Self {
            n_neighbors: p.n_neighbors,
            max_points: p.max_points,
            quantile: p.quantile,
            min_score: p.min_score,
            resolution: p.resolution,
            log_counts: p.log_counts,
            seed: p.seed,
        }
    }
}

impl LofSettings {
    fn params(&self) -> LofParams {
        LocalOutlierFactor::params()
            .n_neighbors(self.n_neighbors)
            .max_points(self.max_points)
            .quantile(self.quantile)
            .min_score(self.min_score)
            .resolution(self.resolution)
            .log_counts(self.log_counts)
            .seed(self.seed)
    }
}

impl Params for LofSettings {
    fn default_common() -> Common {
        Common {
            enabled: false,
            granularities: vec![Granularity::Session],
            weight: 0.5,
            view: "counts".into(),
        }
    }

    fn check(&self) -> Result<(), SettingError> {
        guarded(self.params().check(), |e| match e {
            LofError::Neighbors(_) | LofError::NotEnoughRows(_) | LofError::Linfa(_) => {
                "n_neighbors"
            }
            LofError::MaxPoints(_) => "max_points",
            LofError::Quantile(_) => "quantile",
            LofError::MinScore(_) => "min_score",
            LofError::Resolution(_) => "resolution",
        })
    }
}

impl Detector for LofDetector {
    type Settings = LofSettings;
    const NAME: &'static str = "lof";
    const SUPPORTS: &'static [Granularity] = &[Granularity::Window, Granularity::Session];

    fn train(
        &self,
        s: &LofSettings,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained> {
        let vectors = match data.count_vectors(granularity, Self::NAME)? {
            Ok(v) => v,
            Err(why) => return Ok(Trained::TooLittleData(why)),
        };
        let x = &vectors.x;
        if x.nrows() <= s.n_neighbors {
            return Ok(Trained::TooLittleData(format!(
                "{granularity} lof: {} rows, need more than n_neighbors = {}",
                x.nrows(),
                s.n_neighbors
            )));
        }
        (data.step)(format!("training {granularity}/{}", Self::NAME));
        let model = s
            .params()
            .fit_matrix(x)
            .with_context(|| format!("{granularity} local outlier factor"))?;
        let saved = data.count_vector_model((granularity, Self::NAME), vectors, model)?;
        Ok(Trained::Model(Box::new(saved)))
    }

    fn score<'m>(
        &self,
        model: &'m SavedModel,
        input: &ScoringInput<'_>,
        out: &mut Scored<'m>,
    ) -> Result<()> {
        let lof: LocalOutlierFactor = model.fitted()?;
        let Some(rows) = MatrixRows::of(model, input, &[])? else {
            return Ok(());
        };
        let placed: Vec<Neighbourhood> = per_distinct_row(&rows.x, |r| lof.place(r));
        let scores: Vec<f64> = placed.iter().map(|p| p.score).collect();
        let k = lof.n_neighbors();
        let scale = if lof.log_counts() {
            " on the log scale"
        } else {
            ""
        };
        rows.judge_all(model, &scores, Self::CROSSING, out, |i, what, lead| {
            format!(
                "its neighbourhood is {:.1}× sparser than its {k} nearest training rows' \
                 (threshold {:.1}; nearest {:.2} away{scale}) {what}; most unusual: {lead}",
                placed[i].score, model.threshold, placed[i].nearest
            )
        });
        Ok(())
    }
}

impl LearnsNormalRows for LocalOutlierFactor {
    fn threshold(&self) -> f64 {
        LocalOutlierFactor::threshold(self)
    }

    fn accept_row(&mut self, row: ndarray::ArrayView1<f64>) -> bool {
        LocalOutlierFactor::accept_row(self, row)
    }
}

//! The autoencoder in the pipeline: sessions by their template counts, or windows by their
//! counts and rates, judged by how badly the network rebuilds them (off by default until it
//! earns its place; see the README's HDFS table).

use anyhow::{Context as _, Result};
use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::{Autoencoder, AutoencoderError, AutoencoderParams, Rebuilt};
use crate::detectors::contract::{Detector, Granularity, Scored, Trained};
use crate::detectors::distinct_rows::per_distinct_row;
use crate::detectors::saved_model::SavedModel;
use crate::detectors::scoring::{MatrixRows, ScoringInput};
use crate::detectors::settings::{Common, Params, SettingError, guarded};
use crate::detectors::training::{LearnsNormalRows, TrainingData};

pub struct AutoencoderDetector;

/// `[detectors.autoencoder]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoencoderSettings {
    /// Width of the layers around the middle one (0: none).
    pub hidden: usize,
    /// Width of the middle layer: how few numbers a row is squeezed through (at most half
    /// the features).
    pub bottleneck: usize,
    /// Full-batch training steps: training time grows with it and with the distinct rows.
    pub epochs: usize,
    pub learning_rate: f64,
    /// At most this many distinct training vectors (a seeded sample beyond it).
    pub max_points: usize,
    /// The threshold is at least this quantile of the training rows' own errors...
    pub quantile: f64,
    /// ...and at least this error (mean squared, on the standardised scale).
    pub min_error: f64,
    /// Each feature's spread is at least this (on the log scale ln 2 is one event), so that a
    /// feature constant in training does not turn a single event into a huge error.
    pub min_scale: f64,
    /// A distinct training row weighs its multiplicity to this power (1: every row counts,
    /// 0: every behaviour counts once).
    pub count_weight: f64,
    /// Compare ln(1 + value) rather than raw values.
    pub log_counts: bool,
    pub seed: u64,
}

impl Default for AutoencoderSettings {
    fn default() -> Self {
        let p = AutoencoderParams::default();
        let p = p.check_ref().expect("the defaults are valid");
        Self {
            hidden: p.hidden,
            bottleneck: p.bottleneck,
            epochs: p.epochs,
            learning_rate: p.learning_rate,
            max_points: p.max_points,
            quantile: p.quantile,
            min_error: p.min_error,
            min_scale: p.min_scale,
            count_weight: p.count_weight,
            log_counts: p.log_counts,
            seed: p.seed,
        }
    }
}

impl AutoencoderSettings {
    fn params(&self) -> AutoencoderParams {
        Autoencoder::params()
            .hidden(self.hidden)
            .bottleneck(self.bottleneck)
            .epochs(self.epochs)
            .learning_rate(self.learning_rate)
            .max_points(self.max_points)
            .quantile(self.quantile)
            .min_error(self.min_error)
            .min_scale(self.min_scale)
            .count_weight(self.count_weight)
            .log_counts(self.log_counts)
            .seed(self.seed)
    }
}

impl Params for AutoencoderSettings {
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
            AutoencoderError::Bottleneck(_) => "bottleneck",
            AutoencoderError::Epochs(_) => "epochs",
            AutoencoderError::LearningRate(_) => "learning_rate",
            AutoencoderError::MaxPoints(_)
            | AutoencoderError::NotEnoughRows(_)
            | AutoencoderError::Linfa(_) => "max_points",
            AutoencoderError::Quantile(_) => "quantile",
            AutoencoderError::MinError(_) => "min_error",
            AutoencoderError::MinScale(_) => "min_scale",
            AutoencoderError::CountWeight(_) => "count_weight",
        })
    }
}

impl Detector for AutoencoderDetector {
    type Settings = AutoencoderSettings;
    const NAME: &'static str = "autoencoder";
    const SUPPORTS: &'static [Granularity] = &[Granularity::Window, Granularity::Session];

    fn train(
        &self,
        s: &AutoencoderSettings,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained> {
        let vectors = match data.count_vectors(granularity, Self::NAME)? {
            Ok(v) => v,
            Err(why) => return Ok(Trained::TooLittleData(why)),
        };
        let x = &vectors.x;
        if x.nrows() < 2 || x.ncols() == 0 {
            return Ok(Trained::TooLittleData(format!(
                "{granularity} autoencoder: {} rows of {} features, need at least 2 rows",
                x.nrows(),
                x.ncols()
            )));
        }
        (data.step)(format!("training {granularity}/{}", Self::NAME));
        let started = std::time::Instant::now();
        let model = s
            .params()
            .fit_matrix(x)
            .with_context(|| format!("{granularity} autoencoder"))?;
        tracing::info!(
            %granularity,
            rows = x.nrows(),
            features = x.ncols(),
            seconds = started.elapsed().as_secs_f64(),
            training_error = model.training_error(),
            threshold = model.threshold(),
            "autoencoder trained"
        );
        let saved = data.count_vector_model((granularity, Self::NAME), vectors, model)?;
        Ok(Trained::Model(Box::new(saved)))
    }

    fn score<'m>(
        &self,
        model: &'m SavedModel,
        input: &ScoringInput<'_>,
        out: &mut Scored<'m>,
    ) -> Result<()> {
        let network: Autoencoder = model.fitted()?;
        let Some(rows) = MatrixRows::of(model, input, &[])? else {
            return Ok(());
        };
        let rebuilt: Vec<Rebuilt> = per_distinct_row(&rows.x, |r| network.rebuild(r));
        let scores: Vec<f64> = rebuilt.iter().map(|r| r.error).collect();
        rows.judge_all(model, &scores, Self::CROSSING, out, |i, what, lead| {
            format!(
                "rebuilt with error {:.2} (threshold {:.2}) {what}; most unusual: {lead}; {}",
                rebuilt[i].error,
                model.threshold,
                worst_feature(&rows.x.row(i), &rebuilt[i], model)
            )
        });
        Ok(())
    }
}

/// The feature the network rebuilt worst, as "X: 3 where the model expected about 1.0".
fn worst_feature(row: &ndarray::ArrayView1<f64>, rebuilt: &Rebuilt, model: &SavedModel) -> String {
    let worst = row
        .iter()
        .zip(&rebuilt.expected)
        .enumerate()
        .max_by(|a, b| {
            let gap = |(v, e): (&f64, &f64)| (v.max(0.0).ln_1p() - e.max(0.0).ln_1p()).abs();
            gap(a.1).total_cmp(&gap(b.1)).then(b.0.cmp(&a.0))
        });
    let Some((j, (seen, expected))) = worst else {
        return String::new();
    };
    let name = model.features.get(j).map(String::as_str).unwrap_or("?");
    let name = crate::detectors::explain::feature_label(name, &model.templates);
    format!(
        "{name}: {} where the network expected about {expected:.1}",
        crate::detectors::explain::fmt_num(*seen)
    )
}

impl LearnsNormalRows for Autoencoder {
    fn threshold(&self) -> f64 {
        Autoencoder::threshold(self)
    }

    fn accept_row(&mut self, row: ndarray::ArrayView1<f64>) -> bool {
        Autoencoder::accept_row(self, row)
    }
}

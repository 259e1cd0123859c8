//! The one-class SVM in the pipeline: sessions by their template counts, or windows by their
//! counts and rates, judged by whether they fall inside the region the SVM drew around the
//! training rows (off by default until it earns its place; see the README's HDFS table).

use anyhow::{Context as _, Result};
use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::{OneClassSvm, OneClassSvmError, OneClassSvmParams};
use crate::detectors::contract::{Detector, Granularity, Scored, Trained};
use crate::detectors::distinct_rows::per_distinct_row;
use crate::detectors::saved_model::SavedModel;
use crate::detectors::scoring::{MatrixRows, ScoringInput};
use crate::detectors::settings::{Common, Params, SettingError, guarded};
use crate::detectors::training::{LearnsNormalRows, TrainingData};

pub struct OneClassSvmDetector;

/// `[detectors.one_class_svm]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OneClassSvmSettings {
    /// About this share of the training rows is left outside the region.
    pub nu: f64,
    /// The Gaussian kernel's exp(−gamma·‖x − y‖²); 0: 1 / (features × the sample's variance).
    pub gamma: f64,
    /// The solver trains on at most this many rows (a seeded sample, repeats kept): its
    /// kernel matrix is this many squared.
    pub max_samples: usize,
    /// Compare ln(1 + value) rather than raw values.
    pub log_counts: bool,
    pub seed: u64,
}

impl Default for OneClassSvmSettings {
    fn default() -> Self {
        let p = OneClassSvmParams::default();
        let p = p.check_ref().expect("the defaults are valid");
        Self {
            nu: p.nu,
            gamma: p.gamma,
            max_samples: p.max_samples,
            log_counts: p.log_counts,
            seed: p.seed,
        }
    }
}

impl OneClassSvmSettings {
    fn params(&self) -> OneClassSvmParams {
        OneClassSvm::params()
            .nu(self.nu)
            .gamma(self.gamma)
            .max_samples(self.max_samples)
            .log_counts(self.log_counts)
            .seed(self.seed)
    }
}

impl Params for OneClassSvmSettings {
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
            OneClassSvmError::Nu(_) | OneClassSvmError::Svm(_) | OneClassSvmError::Linfa(_) => "nu",
            OneClassSvmError::Gamma(_) => "gamma",
            OneClassSvmError::MaxSamples(_) | OneClassSvmError::NotEnoughRows(_) => "max_samples",
        })
    }
}

impl Detector for OneClassSvmDetector {
    type Settings = OneClassSvmSettings;
    const NAME: &'static str = "one_class_svm";
    const SUPPORTS: &'static [Granularity] = &[Granularity::Window, Granularity::Session];

    fn train(
        &self,
        s: &OneClassSvmSettings,
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
                "{granularity} one_class_svm: {} rows of {} features, need at least 2 rows",
                x.nrows(),
                x.ncols()
            )));
        }
        (data.step)(format!("training {granularity}/{}", Self::NAME));
        let started = std::time::Instant::now();
        let model = s
            .params()
            .fit_matrix(x)
            .with_context(|| format!("{granularity} one-class SVM"))?;
        tracing::info!(
            %granularity,
            rows = model.trained_on(),
            features = x.ncols(),
            support_vectors = model.support_vectors(),
            seconds = started.elapsed().as_secs_f64(),
            "one-class SVM trained"
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
        let svm: OneClassSvm = model.fitted()?;
        let Some(rows) = MatrixRows::of(model, input, &[])? else {
            return Ok(());
        };
        let scores: Vec<f64> = per_distinct_row(&rows.x, |r| svm.score(r));
        let n = svm.support_vectors();
        rows.judge_all(model, &scores, Self::CROSSING, out, |i, what, lead| {
            format!(
                "outside the region the one-class SVM drew around the training rows \
                 (ρ / Σαk = {:.2}, the boundary is 1; {n} support vectors) {what}; \
                 most unusual: {lead}",
                scores[i]
            )
        });
        Ok(())
    }
}

impl LearnsNormalRows for OneClassSvm {
    fn threshold(&self) -> f64 {
        OneClassSvm::threshold(self)
    }

    fn accept_row(&mut self, row: ndarray::ArrayView1<f64>) -> bool {
        OneClassSvm::accept_row(self, row)
    }
}

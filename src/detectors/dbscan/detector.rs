//! DBSCAN in the pipeline: sessions by their template counts, flagged when they are noise or
//! fall in a rare dense cluster (off by default until it earns its place; see the README's
//! HDFS table).

use anyhow::{Context as _, Result};
use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::{DbscanError, DbscanParams, DensityClusters, Membership};
use crate::detectors::contract::{Detector, Granularity, Scored, Trained};
use crate::detectors::distinct_rows::per_distinct_row;
use crate::detectors::saved_model::SavedModel;
use crate::detectors::scoring::{MatrixRows, ScoringInput};
use crate::detectors::settings::{Common, Params, SettingError, guarded};
use crate::detectors::training::TrainingData;
use crate::features;

pub struct DbscanDetector;

/// `[detectors.dbscan]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbscanSettings {
    /// Training rows within `eps` a vector needs to be a core of a cluster (DBSCAN's
    /// minPts; a vector repeated this often is dense on its own).
    pub min_points: usize,
    /// Neighbourhood radius (DBSCAN's ε), on the scale rows are compared on: on the log
    /// scale ln 2 ≈ 0.69 is one event of a template that had none.
    pub eps: f64,
    /// A cluster holding less than this share of training sessions is rare.
    pub min_cluster_share: f64,
    /// At most this many distinct training vectors are clustered (a seeded sample beyond).
    pub max_points: usize,
    /// Compare ln(1 + count) rather than raw counts.
    pub log_counts: bool,
    pub seed: u64,
}

impl Default for DbscanSettings {
    fn default() -> Self {
        let p = DbscanParams::default();
        let p = p.check_ref().expect("the defaults are valid");
        Self {
            min_points: p.min_points,
            eps: p.eps,
            min_cluster_share: p.min_cluster_share,
            max_points: p.max_points,
            log_counts: p.log_counts,
            seed: p.seed,
        }
    }
}

impl DbscanSettings {
    fn params(&self) -> DbscanParams {
        DensityClusters::params()
            .min_points(self.min_points)
            .eps(self.eps)
            .min_cluster_share(self.min_cluster_share)
            .max_points(self.max_points)
            .log_counts(self.log_counts)
            .seed(self.seed)
    }
}

impl Params for DbscanSettings {
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
            DbscanError::MinPoints(_) | DbscanError::NotEnoughRows(_) => "min_points",
            DbscanError::Eps(_) | DbscanError::Linfa(_) => "eps",
            DbscanError::Share(_) => "min_cluster_share",
            DbscanError::MaxPoints(_) => "max_points",
        })
    }
}

impl Detector for DbscanDetector {
    type Settings = DbscanSettings;
    const NAME: &'static str = "dbscan";
    const SUPPORTS: &'static [Granularity] = &[Granularity::Session];

    fn train(
        &self,
        s: &DbscanSettings,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained> {
        let Some(sessions) = &data.sessions else {
            return Ok(Trained::TooLittleData("dbscan: no sessions".into()));
        };
        let features: Vec<String> = sessions
            .vocabulary
            .iter()
            .map(|t| format!("{}{t}", features::TEMPLATE_COUNT_PREFIX))
            .collect();
        let x = features::matrix(&sessions.frame, &features)?;
        if x.nrows() < s.min_points {
            return Ok(Trained::TooLittleData(format!(
                "dbscan: {} sessions, need min_points = {}",
                x.nrows(),
                s.min_points
            )));
        }
        (data.step)(format!("training {granularity}/{}", Self::NAME));
        let mut model = s.params().fit_matrix(&x).context("session DBSCAN")?;
        for i in data.normal_rows(granularity)? {
            model.accept_row(x.row(i));
        }
        let threshold = model.threshold();
        let mut saved =
            data.matrix_model(granularity, Self::NAME, &x, features, threshold, model)?;
        saved.vocabulary = sessions.vocabulary.clone();
        Ok(Trained::Model(Box::new(saved)))
    }

    fn score<'m>(
        &self,
        model: &'m SavedModel,
        input: &ScoringInput<'_>,
        out: &mut Scored<'m>,
    ) -> Result<()> {
        let clusters: DensityClusters = model.fitted()?;
        let Some(rows) = MatrixRows::of(model, input, &[])? else {
            return Ok(());
        };
        let placed: Vec<Membership> = per_distinct_row(&rows.x, |r| clusters.place(r));
        let scale = if clusters.log_counts() {
            " on the log scale"
        } else {
            ""
        };
        let scores: Vec<f64> = placed.iter().map(|p| p.score).collect();
        rows.judge_all(model, &scores, Self::CROSSING, out, |i, what, lead| {
            let p = &placed[i];
            let why = match p.cluster {
                None => format!(
                    "its template counts are in no dense cluster: the nearest clustered training \
                     session is {:.2} away{scale}, past eps {:.2}",
                    p.nearest,
                    clusters.eps()
                ),
                Some(_) => format!(
                    "its template counts fall in a rare dense cluster ({:.3} % of training sessions)",
                    p.share * 100.0
                ),
            };
            format!("{why} {what}; most unusual: {lead}")
        });
        Ok(())
    }
}

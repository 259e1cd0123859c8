//! The clustering detector in the pipeline: sessions by their template count vectors, flagged
//! when they fall in a rare cluster or far from their cluster's centre.

use anyhow::{Context as _, Result};
use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::{Clustering, ClusteringError, ClusteringParams, Placement};
use crate::detectors::contract::{Detector, Granularity, Scored, Trained};
use crate::detectors::saved_model::SavedModel;
use crate::detectors::scoring::{MatrixRows, ScoringInput};
use crate::detectors::settings::{Common, Params, SettingError, guarded};
use crate::detectors::training::TrainingData;
use crate::features;

pub struct ClusteringDetector;

/// `[detectors.clustering]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusteringSettings {
    /// k of k-means; at least the number of normal session behaviours.
    pub n_clusters: usize,
    /// A cluster holding less than this share of training sessions is rare.
    pub min_cluster_share: f64,
    /// Robust z of the distance to the cluster centre at which a session is far.
    pub distance_threshold: f64,
    /// Cluster counts on the log scale ln(1 + count), where distance measures how many times
    /// more or less often a template occurs rather than how many more events.
    pub log_counts: bool,
    pub seed: u64,
}

impl Default for ClusteringSettings {
    fn default() -> Self {
        let p = ClusteringParams::default();
        let p = p.check_ref().expect("the defaults are valid");
        Self {
            n_clusters: p.n_clusters,
            min_cluster_share: p.min_cluster_share,
            distance_threshold: p.distance_threshold,
            log_counts: p.log_counts,
            seed: p.seed,
        }
    }
}

impl ClusteringSettings {
    fn params(&self) -> ClusteringParams {
        Clustering::params()
            .n_clusters(self.n_clusters)
            .min_cluster_share(self.min_cluster_share)
            .distance_threshold(self.distance_threshold)
            .log_counts(self.log_counts)
            .seed(self.seed)
    }
}

impl Params for ClusteringSettings {
    fn default_common() -> Common {
        Common {
            enabled: true,
            granularities: vec![Granularity::Session],
            weight: 0.5,
            view: "counts".into(),
        }
    }

    fn check(&self) -> Result<(), SettingError> {
        guarded(self.params().check(), |e| match e {
            ClusteringError::NoClusters => "n_clusters",
            ClusteringError::Share(_) => "min_cluster_share",
            _ => "distance_threshold",
        })
    }
}

impl Detector for ClusteringDetector {
    type Settings = ClusteringSettings;
    const NAME: &'static str = "clustering";
    const SUPPORTS: &'static [Granularity] = &[Granularity::Session];

    fn train(
        &self,
        s: &ClusteringSettings,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained> {
        let Some(sessions) = &data.sessions else {
            return Ok(Trained::TooLittleData("clustering: no sessions".into()));
        };
        (data.step)(format!("training {granularity}/{}", Self::NAME));
        let features: Vec<String> = sessions
            .vocabulary
            .iter()
            .map(|t| format!("{}{t}", features::TEMPLATE_COUNT_PREFIX))
            .collect();
        let x = features::matrix(&sessions.frame, &features)?;
        let mut model = s.params().fit_matrix(&x).context("session clustering")?;
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
        let clustering: Clustering = model.fitted()?;
        let Some(rows) = MatrixRows::of(model, input, &[])? else {
            return Ok(());
        };
        let placements: Vec<Placement> = rows
            .x
            .rows()
            .into_iter()
            .map(|r| clustering.place(r))
            .collect();
        let scores: Vec<f64> = placements.iter().map(|p| p.score).collect();
        rows.judge_all(model, &scores, Self::CROSSING, out, |i, what, lead| {
            let p = &placements[i];
            let why = if p.share < clustering.min_cluster_share() {
                format!(
                    "its template counts fall in a rare cluster ({:.3} % of training sessions)",
                    p.share * 100.0
                )
            } else {
                format!(
                    "its template counts lie {:.1} from their cluster's centre{} (usual {:.1}, z={:.1})",
                    p.distance,
                    if clustering.log_counts() {
                        " on the log scale"
                    } else {
                        ""
                    },
                    clustering.distance_center,
                    p.distance_z
                )
            };
            format!("{why} {what}; most unusual: {lead}")
        });
        Ok(())
    }
}

//! The shape every detector has, so that `04-train` and `05-detect` are loops over
//! [`super::DETECTORS`] and adding a detector touches its own folder and one line of
//! the registry.
//!
//! A detector is a unit struct implementing [`Detector`]: its name, the granularities it can
//! judge, its settings section (`[detectors.<name>]`, whose serde struct *is* its parameters,
//! checked when settings load), training from the gold views of [`TrainingData`] into a
//! [`SavedModel`], and scoring a batch's gold views ([`ScoringInput`]) into one
//! [`EntityScore`] per judged entity and a [`Finding`] — score, threshold, reason, evidence —
//! per flagged one. The linfa traits (`ParamGuard`, `Fit`, `Predict`) stay underneath, in each
//! detector's `algorithm.rs`; this contract is the part the stages see.

use std::sync::Arc;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::saved_model::SavedModel;
use super::scoring::ScoringInput;
use super::settings::{self, Params, Section};
use super::training::TrainingData;

/// What an anomaly is about: a service's time window, a session, or one log line.
///
/// Declared in alphabetical order so that sorting by granularity sorts as its name does
/// (tables and ensemble output keep the order they had when this was a string).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Event,
    Session,
    #[default]
    Window,
}

impl Granularity {
    /// In pipeline order: the order models are trained and scored.
    pub const ALL: [Granularity; 3] = [
        Granularity::Window,
        Granularity::Session,
        Granularity::Event,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Window => "window",
            Granularity::Session => "session",
            Granularity::Event => "event",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| format!("unknown granularity {s:?}: use window, session or event"))
    }
}

impl std::fmt::Display for Granularity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a score is anomalous, decided here once for every detector.
///
/// A threshold names the least score that raises an alarm, so a score *at* it is anomalous:
/// z-score's "|z| at or above 5", rare_template's "seen at most N times", a percentile's
/// "one tail width past the range" all count their boundary in. The isolation forest is the
/// one exception, because its threshold is scikit-learn's `offset_`: the score of the training
/// row at the contamination quantile, itself normal by that definition, so only scores above
/// it are anomalous. 05-detect and 06-report's evaluation both ask this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossing {
    /// `score >= threshold` is anomalous.
    AtOrAbove,
    /// `score > threshold` is anomalous.
    Above,
}

impl Crossing {
    pub fn crosses(self, score: f64, threshold: f64) -> bool {
        match self {
            Crossing::AtOrAbove => score >= threshold,
            Crossing::Above => score > threshold,
        }
    }
}

/// Which lines of the batch illustrate a finding (picked by `05-detect` from silver).
#[derive(Debug, Clone, PartialEq)]
pub enum SampleQuery {
    /// Lines of a service in a time range, preferring a template or a level.
    Window {
        template: Option<String>,
        level: Option<&'static str>,
    },
    /// Lines of a session.
    Session { key: String },
    /// One line.
    Line { file: String, line_no: u64 },
}

/// A flagged entity before it becomes an anomaly row: who, when, how anomalous, and why.
#[derive(Debug, Clone)]
pub struct Finding {
    pub granularity: Granularity,
    pub entity_key: String,
    pub service: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub detector: String,
    pub score: f64,
    pub threshold: f64,
    /// The plain-language reason, complete.
    pub reason: String,
    /// Evidence objects, most telling first (`details.top_features`).
    pub top: Vec<serde_json::Value>,
    pub samples: SampleQuery,
    pub model_version: String,
    /// The baseline group a grouped detector judged the entity against, if any.
    pub baseline_group: Option<String>,
    /// The ensemble's contributions (ensemble findings only).
    pub contributions: Option<Vec<super::ensemble::Contribution>>,
}

/// One detector's score for one entity, flagged or not: what `detections/scores` holds and the
/// ensemble and 06-report's evaluation read. The detector name borrows from the model: there
/// is one of these per entity and detector, a million per million events.
#[derive(Debug, Clone)]
pub struct EntityScore<'m> {
    pub granularity: Granularity,
    /// Shared: the event detectors score the same million keys.
    pub entity_key: Arc<str>,
    pub start_ms: i64,
    pub detector: &'m str,
    pub score: f64,
    pub threshold: f64,
}

impl<'m> EntityScore<'m> {
    pub fn new(
        model: &'m SavedModel,
        entity_key: impl Into<Arc<str>>,
        start_ms: i64,
        score: f64,
    ) -> Self {
        Self {
            granularity: model.granularity,
            entity_key: entity_key.into(),
            start_ms,
            detector: &model.detector,
            score,
            threshold: model.threshold,
        }
    }
}

/// What a detector's scoring adds: every judged entity's score, and the findings.
pub struct Scored<'m> {
    pub scores: Vec<EntityScore<'m>>,
    pub findings: Vec<Finding>,
}

/// Why a detector produced no model: not an error, the others still train (a quiet source
/// has enough data for some detectors and not yet for others).
pub enum Trained {
    Model(Box<SavedModel>),
    TooLittleData(String),
}

impl Trained {
    /// A model, or why there is none yet.
    pub fn from_option(model: Option<SavedModel>, why_not: String) -> Self {
        match model {
            Some(m) => Trained::Model(Box::new(m)),
            None => Trained::TooLittleData(why_not),
        }
    }
}

/// A detector, as its folder implements it: a unit struct with a typed settings section.
///
/// [`AnyDetector`] (implemented for every `Detector`) is the same thing behind its settings
/// [`Section`], which is what the registry lists and the stages call.
pub trait Detector: Sync {
    /// Its `[detectors.<name>]` section: the serde struct is its parameters.
    type Settings: Params;

    /// Its name: the `[detectors.<name>]` section, the model folder, the `detector` column.
    const NAME: &'static str;

    /// The granularities it can judge at all; which of them it runs on is its settings'.
    const SUPPORTS: &'static [Granularity];

    /// Whether a score at its threshold is anomalous (see [`Crossing`]).
    const CROSSING: Crossing = Crossing::AtOrAbove;

    /// Fit a model at `granularity` on the training range.
    fn train(
        &self,
        settings: &Self::Settings,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained>;

    /// Score the batch with `model` (one of this detector's), appending to `out`.
    fn score<'m>(
        &self,
        model: &'m SavedModel,
        input: &ScoringInput<'_>,
        out: &mut Scored<'m>,
    ) -> Result<()>;
}

/// A [`Detector`] behind its settings [`Section`]: what the registry lists and the stages
/// call. The section is read once, by [`AnyDetector::read_section`] when settings load; the
/// other methods take it typed.
pub trait AnyDetector: Sync {
    fn name(&self) -> &'static str;
    fn supports(&self) -> &'static [Granularity];
    fn crossing(&self) -> Crossing;
    /// Read and check its `[detectors.<name>]` section (defaults for what is not written).
    fn read_section(&self, section: &serde_json::Value) -> Result<Section>;
    fn train(
        &self,
        section: &Section,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained>;
    fn score<'m>(
        &self,
        model: &'m SavedModel,
        input: &ScoringInput<'_>,
        out: &mut Scored<'m>,
    ) -> Result<()>;
}

impl<D: Detector> AnyDetector for D {
    fn name(&self) -> &'static str {
        D::NAME
    }
    fn supports(&self) -> &'static [Granularity] {
        D::SUPPORTS
    }
    fn crossing(&self) -> Crossing {
        D::CROSSING
    }
    fn read_section(&self, section: &serde_json::Value) -> Result<Section> {
        settings::read::<D::Settings>(D::NAME, D::SUPPORTS, section)
    }
    fn train(
        &self,
        section: &Section,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained> {
        Detector::train(self, section.params::<D::Settings>(), granularity, data)
    }
    fn score<'m>(
        &self,
        model: &'m SavedModel,
        input: &ScoringInput<'_>,
        out: &mut Scored<'m>,
    ) -> Result<()> {
        Detector::score(self, model, input, out)
    }
}

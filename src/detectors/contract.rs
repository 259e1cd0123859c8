//! The shape every detector has, so that `04-train` and `05-detect` are loops over
//! [`super::registry::DETECTORS`] and adding a detector touches its own folder and one line of
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
use super::settings::{self, Common, Params};
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
/// [`AnyDetector`] (implemented for every `Detector`) is the same thing with the settings
/// still a serde value, which is what the registry lists and the stages call.
pub trait Detector: Sync {
    /// Its `[detectors.<name>]` section: the serde struct is its parameters.
    type Settings: Params;

    /// Its name: the `[detectors.<name>]` section, the model folder, the `detector` column.
    const NAME: &'static str;

    /// The granularities it can judge at all; which of them it runs on is its settings'.
    const SUPPORTS: &'static [Granularity];

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

/// A [`Detector`] whose settings are still the raw `[detectors.<name>]` value: what the
/// registry lists. Every method reads the section through [`settings::read`], so a bad value
/// is refused with its key named wherever it is first met (settings load checks them all).
pub trait AnyDetector: Sync {
    fn name(&self) -> &'static str;
    fn supports(&self) -> &'static [Granularity];
    /// Its section with every default (`config/loglake.toml` documents the same values).
    fn default_settings(&self) -> serde_json::Value;
    /// Read and check its section; returns the part every detector has.
    fn check_settings(&self, section: &serde_json::Value) -> Result<Common>;
    /// The checked section with defaults filled in, as the saved model keeps it.
    fn resolved_settings(&self, section: &serde_json::Value) -> Result<serde_json::Value>;
    fn train(
        &self,
        section: &serde_json::Value,
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
    fn default_settings(&self) -> serde_json::Value {
        settings::resolved(&D::Settings::default_common(), &D::Settings::default())
            .expect("settings serialise")
    }
    fn check_settings(&self, section: &serde_json::Value) -> Result<Common> {
        let (common, _) = settings::read::<D::Settings>(D::NAME, D::SUPPORTS, section)?;
        Ok(common)
    }
    fn resolved_settings(&self, section: &serde_json::Value) -> Result<serde_json::Value> {
        let (common, params) = settings::read::<D::Settings>(D::NAME, D::SUPPORTS, section)?;
        settings::resolved(&common, &params)
    }
    fn train(
        &self,
        section: &serde_json::Value,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained> {
        let (_, params) = settings::read::<D::Settings>(D::NAME, D::SUPPORTS, section)?;
        Detector::train(self, &params, granularity, data)
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

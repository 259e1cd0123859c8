//! What a detector trains from: the gold views of the training range, read once by `04-train`
//! for every detector, and the helpers that turn a fitted model into a [`SavedModel`].

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use chrono::{NaiveDate, Utc};
use ndarray::Array2;
use polars::prelude::*;

use super::contract::Granularity;
use super::grouped::robust_baselines;
use super::saved_model::SavedModel;
use crate::features;
use crate::lake::{Lake, Layer, RowWindows, tables};
use crate::records::KindParts;

/// The session view: per-session features, and the same rows with `duration_log` and the
/// template count vector (`tc_<id>` over `vocabulary`) joined in.
pub struct SessionTraining {
    pub sessions: DataFrame,
    pub frame: DataFrame,
    pub vocabulary: Vec<String>,
}

/// The training range's gold views. Window and session frames are read once for all
/// detectors; event rows, which can be many, are read by each event detector in the shape it
/// needs ([`TrainingData::events`]: silver's events, which gold does not copy).
pub struct TrainingData<'a> {
    pub lake: &'a Lake,
    pub source: &'a str,
    pub dates: &'a [NaiveDate],
    pub train_from: NaiveDate,
    pub train_to: NaiveDate,
    pub windows: Option<DataFrame>,
    pub sessions: Option<SessionTraining>,
    /// Each template's text and count over the training range.
    pub template_stats: BTreeMap<String, (String, u64)>,
    /// Each template's text.
    pub templates: BTreeMap<String, String>,
    /// Rows of events read at once (`[parse] window_lines`).
    pub window_lines: usize,
    /// Operators' "normal" verdicts on the source's anomalies (`loglake anomalies mark …
    /// --normal`): each detector learns the ones about its own evidence.
    pub normal_verdicts: Vec<crate::records::NormalVerdict>,
    /// Reports what is being trained (the terminal's spinner).
    pub step: Box<dyn Fn(String) + Sync + 'a>,
}

/// A fitted count-vector model: its threshold, and how it learns an operator's "normal"
/// verdict on a row (whether anything changed).
pub trait LearnsNormalRows {
    fn threshold(&self) -> f64;
    fn accept_row(&mut self, row: ndarray::ArrayView1<f64>) -> bool;
}

/// What the count-vector detectors (`lof`, `autoencoder`, `one_class_svm`) learn from: sessions
/// by their template counts, windows by their counts and rates.
pub struct CountVectors {
    pub x: Array2<f64>,
    pub features: Vec<String>,
    /// The templates the session features count (none for windows).
    pub vocabulary: Vec<String>,
}

impl TrainingData<'_> {
    /// The count vectors of `granularity`, or why there are none: `detector` names the
    /// detector in that message.
    pub fn count_vectors(
        &self,
        granularity: Granularity,
        detector: &str,
    ) -> Result<std::result::Result<CountVectors, String>> {
        let (frame, features, vocabulary) = match (granularity, &self.windows, &self.sessions) {
            (Granularity::Window, Some(w), _) => (w, features::window_forest_features(w), vec![]),
            (Granularity::Session, _, Some(s)) => (
                &s.frame,
                s.vocabulary
                    .iter()
                    .map(|t| format!("{}{t}", features::TEMPLATE_COUNT_PREFIX))
                    .collect(),
                s.vocabulary.clone(),
            ),
            _ => {
                return Ok(Err(format!(
                    "{granularity} {detector}: no {granularity} rows"
                )));
            }
        };
        let x = features::matrix(frame, &features)?;
        Ok(Ok(CountVectors {
            x,
            features,
            vocabulary,
        }))
    }

    /// A count-vector detector's saved model (see [`TrainingData::matrix_model`]), with the
    /// vocabulary its features count, once it has learned the rows operators marked normal.
    pub fn count_vector_model(
        &self,
        (granularity, detector): (Granularity, &str),
        vectors: CountVectors,
        mut model: impl LearnsNormalRows + serde::Serialize,
    ) -> Result<SavedModel> {
        let CountVectors {
            x,
            features,
            vocabulary,
        } = vectors;
        for i in self.normal_rows(granularity)? {
            model.accept_row(x.row(i));
        }
        let threshold = model.threshold();
        let mut saved = self.matrix_model(granularity, detector, &x, features, threshold, model)?;
        saved.vocabulary = vocabulary;
        Ok(saved)
    }

    /// The value after feature `key` in the evidence of the findings operators marked normal whose
    /// kind is `granularity` led by `detector` (the detector's own, or an ensemble it led):
    /// rare_template's `template_id` gives the templates marked normal.
    pub fn marked_normal_values(
        &self,
        granularity: Granularity,
        detector: &str,
        key: &str,
    ) -> std::collections::BTreeSet<String> {
        self.normal_verdicts
            .iter()
            .map(|v| KindParts::of(&v.kind))
            .filter(|k| k.granularity == granularity.as_str() && k.lead_detector == detector)
            .filter_map(|k| match k.evidence.as_slice() {
                [first, value, ..] if *first == key => Some(value.to_string()),
                _ => None,
            })
            .collect()
    }

    /// The rows of `granularity`'s training frame ([`TrainingData::frame`]; for sessions the
    /// same rows as `sessions.sessions`) that operators marked normal, whichever detector
    /// flagged them: the verdict is about the entity, so every detector of that granularity
    /// learns it. Sessions are found by key, windows by service and start. An entity outside
    /// the training range (or left out of a session sample) is not among them; 05-detect
    /// still suppresses its findings.
    pub fn normal_rows(&self, granularity: Granularity) -> Result<Vec<usize>> {
        let Some(frame) = self.frame(granularity) else {
            return Ok(Vec::new());
        };
        Ok(match granularity {
            Granularity::Session => {
                let marked = marked_sessions(&self.normal_verdicts);
                if marked.is_empty() {
                    return Ok(Vec::new());
                }
                let keys = features::strings(frame, "session_key")?;
                (0..keys.len())
                    .filter(|&i| marked.contains(keys[i].as_str()))
                    .collect()
            }
            Granularity::Window => {
                let marked: std::collections::BTreeSet<(&str, i64)> = self
                    .normal_verdicts
                    .iter()
                    .filter(|v| KindParts::of(&v.kind).granularity == Granularity::Window.as_str())
                    .filter_map(|v| Some((v.entity_key.as_str(), v.window_start?)))
                    .collect();
                if marked.is_empty() {
                    return Ok(Vec::new());
                }
                let services = features::strings(frame, "service")?;
                let starts = features::millis(frame, "window_start")?;
                (0..services.len())
                    .filter(|&i| marked.contains(&(services[i].as_str(), starts[i])))
                    .collect()
            }
            Granularity::Event => Vec::new(),
        })
    }

    /// The evidence objects of `feature` in the findings operators marked normal.
    pub fn normal_evidence(&self, feature: &str) -> Vec<serde_json::Value> {
        self.normal_verdicts
            .iter()
            .filter_map(|v| v.evidence.as_deref())
            .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
            .flat_map(|e| e.as_array().cloned().unwrap_or_default())
            .filter(|e| e["feature"] == feature)
            .collect()
    }

    /// The training range's events — silver's rows, whose template, level and values gold
    /// does not copy — as frames of `columns`, at most `window_lines` rows each, in order: a
    /// month of events is never in memory at once.
    pub fn event_windows(
        &self,
        columns: &[&str],
        mut each: impl FnMut(NaiveDate, DataFrame) -> Result<()>,
    ) -> Result<()> {
        event_windows(
            self.lake,
            self.source,
            self.dates,
            self.window_lines,
            columns,
            &mut each,
        )
    }

    /// A model with what every model has; the caller fills in the rest.
    pub fn model(
        &self,
        granularity: Granularity,
        detector: &str,
        features: Vec<String>,
        rows: u64,
        threshold: f64,
        model: impl serde::Serialize,
    ) -> Result<SavedModel> {
        Ok(SavedModel {
            model_version: String::new(),
            source: self.source.to_string(),
            granularity,
            detector: detector.into(),
            created_at: Utc::now(),
            train_from: self.train_from,
            train_to: self.train_to,
            train_rows: rows,
            features,
            vocabulary: Vec::new(),
            threshold,
            explain: Vec::new(),
            templates: BTreeMap::new(),
            params: serde_json::Value::Null,
            model: serde_json::to_value(model).context("serialising the model")?,
        })
    }

    /// An event model: the columns it judges by, its training events and threshold.
    pub fn event_model(
        &self,
        detector: &str,
        features: &[&str],
        rows: u64,
        threshold: f64,
        model: impl serde::Serialize,
    ) -> Result<SavedModel> {
        let features = features.iter().map(|f| f.to_string()).collect();
        self.model(
            Granularity::Event,
            detector,
            features,
            rows,
            threshold,
            model,
        )
    }

    /// A model over a feature matrix, with what scoring and explanations need: feature order,
    /// per-feature baselines and the text of the templates features name. (Session models set
    /// their template vocabulary after.)
    pub fn matrix_model(
        &self,
        granularity: Granularity,
        detector: &str,
        x: &Array2<f64>,
        features: Vec<String>,
        threshold: f64,
        model: impl serde::Serialize,
    ) -> Result<SavedModel> {
        let mut m = self.model(
            granularity,
            detector,
            features,
            x.nrows() as u64,
            threshold,
            model,
        )?;
        m.explain = robust_baselines(x, &m.features);
        m.templates = self.templates_for(&m.features);
        Ok(m)
    }

    /// The text of the templates that features name (`tpl_<id>`, `tc_<id>`).
    fn templates_for(&self, features: &[String]) -> BTreeMap<String, String> {
        features
            .iter()
            .filter_map(|f| {
                f.strip_prefix("tpl_")
                    .or_else(|| f.strip_prefix(features::TEMPLATE_COUNT_PREFIX))
            })
            .filter_map(|id| self.templates.get(id).map(|t| (id.to_string(), t.clone())))
            .collect()
    }

    /// The matrix a granularity's frame gives for `features`, with that frame.
    pub fn frame(&self, granularity: Granularity) -> Option<&DataFrame> {
        match granularity {
            Granularity::Window => self.windows.as_ref(),
            Granularity::Session => self.sessions.as_ref().map(|s| &s.frame),
            Granularity::Event => None,
        }
    }
}

/// The keys of the sessions operators marked normal (whichever detector flagged them).
pub fn marked_sessions(
    verdicts: &[crate::records::NormalVerdict],
) -> std::collections::BTreeSet<&str> {
    verdicts
        .iter()
        .filter(|v| KindParts::of(&v.kind).granularity == Granularity::Session.as_str())
        .map(|v| v.entity_key.as_str())
        .collect()
}

/// The events of `dates` as frames of `columns`, at most `window_lines` rows each, in order.
pub fn event_windows(
    lake: &Lake,
    source: &str,
    dates: &[NaiveDate],
    window_lines: usize,
    columns: &[&str],
    each: &mut dyn FnMut(NaiveDate, DataFrame) -> Result<()>,
) -> Result<()> {
    for &date in dates {
        lake.read_windows(
            Layer::Silver,
            tables::EVENTS,
            (source, date),
            RowWindows {
                rows: window_lines,
                columns,
            },
            &mut |df| each(date, df),
        )?;
    }
    Ok(())
}

/// Each template's text and count over the events of `dates`, from `silver/templates` (which
/// 02-silver writes with each template's event count): a few rows a day, where counting them
/// again from the events read every event of the range.
pub fn template_stats(
    lake: &Lake,
    source: &str,
    dates: &[NaiveDate],
) -> Result<BTreeMap<String, (String, u64)>> {
    let mut stats: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let Some(templates) = lake.scan(Layer::Silver, tables::TEMPLATES, source, dates)? else {
        return Ok(stats);
    };
    let df = templates
        .select([
            col("template_id"),
            col("template"),
            col("count").cast(DataType::UInt64),
        ])
        .collect()
        .map_err(anyhow::Error::from)
        .context("reading silver/templates")?;
    let ids = df.column("template_id")?.str()?;
    let texts = df.column("template")?.str()?;
    let counts = df.column("count")?.u64()?;
    for ((id, text), n) in ids.iter().zip(texts.iter()).zip(counts.iter()) {
        let (Some(id), Some(n)) = (id, n) else {
            continue;
        };
        stats
            .entry(id.to_string())
            .or_insert_with(|| (text.unwrap_or_default().to_string(), 0))
            .1 += n;
    }
    Ok(stats)
}

//! What a detector scores: the batch's gold views, read once by `05-detect` for every model,
//! in the column shapes the detectors read (window and session matrices, session sequences,
//! event columns), and how a row becomes an [`EntityScore`] and a [`Finding`].

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use ndarray::Array2;
use polars::prelude::*;

use super::contract::{EntityScore, Finding, Granularity, SampleQuery};
use super::explain::{Ranked, fmt_hm};
use super::saved_model::SavedModel;
use crate::features;

/// The batch's gold views; `None` where the source has none.
pub struct ScoringInput<'a> {
    pub windows: Option<&'a DataFrame>,
    /// Session features and the session × template counts.
    pub sessions: Option<(&'a DataFrame, &'a DataFrame)>,
    pub events: Option<&'a EventColumns<'a>>,
}

impl ScoringInput<'_> {
    /// How many entities of `granularity` the batch has, or `None` without that view.
    pub fn rows(&self, granularity: Granularity) -> Option<u64> {
        match granularity {
            Granularity::Window => self.windows.map(|w| w.height() as u64),
            Granularity::Session => self.sessions.map(|(s, _)| s.height() as u64),
            Granularity::Event => self.events.map(|e| e.len() as u64),
        }
    }
}

/// Window or session rows as a model's feature matrix, with each row's identity.
pub struct MatrixRows {
    pub granularity: Granularity,
    pub x: Array2<f64>,
    pub keys: Vec<String>,
    pub services: Vec<String>,
    pub starts: Vec<i64>,
    pub ends: Vec<i64>,
    /// Values of the grouping columns a grouped model looks baselines up by.
    group_values: BTreeMap<String, Vec<String>>,
}

impl MatrixRows {
    /// The rows `model` judges, in its feature order (session rows get its vocabulary's
    /// template counts); `None` when the batch has no such rows.
    pub fn of(
        model: &SavedModel,
        input: &ScoringInput<'_>,
        groupings: &[Vec<String>],
    ) -> Result<Option<Self>> {
        let session_frame;
        let (df, key_col, start_col, end_col) = match model.granularity {
            Granularity::Window => match input.windows {
                Some(w) => (w, "service", "window_start", "window_end"),
                None => return Ok(None),
            },
            Granularity::Session => match input.sessions {
                Some((s, c)) => {
                    session_frame = features::session_frame(s, c, &model.vocabulary)?;
                    (
                        &session_frame,
                        "session_key",
                        crate::stages::gold::sessions::START,
                        crate::stages::gold::sessions::END,
                    )
                }
                None => return Ok(None),
            },
            Granularity::Event => return Ok(None),
        };
        let mut group_values = BTreeMap::new();
        for c in groupings.iter().flatten() {
            if !group_values.contains_key(c) {
                group_values.insert(c.clone(), features::strings(df, c)?);
            }
        }
        Ok(Some(Self {
            granularity: model.granularity,
            x: features::matrix(df, &model.features)?,
            keys: features::strings(df, key_col)?,
            services: features::strings(df, "service")?,
            starts: features::millis(df, start_col)?,
            ends: features::millis(df, end_col)?,
            group_values,
        }))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Row `i`'s value of grouping column `column` ("" when not a grouping column).
    pub fn group_value(&self, i: usize, column: &str) -> &str {
        self.group_values
            .get(column)
            .map(|v| v[i].as_str())
            .unwrap_or("")
    }

    pub fn row(&self, i: usize) -> Vec<f64> {
        self.x.row(i).to_vec()
    }

    /// What a matrix detector does with its rows' scores: every row's score into `out`, and
    /// for each row past `model`'s threshold (by `crossing`) a finding with the row's most
    /// unusual features, its reason `reason(i, what, lead)` — row `i`, where it is, and the
    /// most unusual feature.
    pub fn judge_all<'m>(
        &self,
        model: &'m SavedModel,
        scores: &[f64],
        crossing: crate::detectors::Crossing,
        out: &mut crate::detectors::Scored<'m>,
        reason: impl Fn(usize, &str, &str) -> String,
    ) {
        for (i, &score) in scores.iter().enumerate() {
            out.scores.push(self.score(i, model, score));
            if !crossing.crosses(score, model.threshold) {
                continue;
            }
            let top = crate::detectors::explain::top_features(
                &self.row(i),
                &model.features,
                &model.explain,
                &model.templates,
            );
            out.findings
                .push(self.finding(i, model, score, top, None, |what, lead| {
                    reason(i, what, lead)
                }));
        }
    }

    pub fn score<'m>(&self, i: usize, model: &'m SavedModel, score: f64) -> EntityScore<'m> {
        EntityScore::new(model, self.keys[i].as_str(), self.starts[i], score)
    }

    /// Where row `i` is, as a reason ends: `in api 10:05–10:10`, `in session k (api)`.
    pub fn what(&self, i: usize) -> String {
        match self.granularity {
            Granularity::Window => format!(
                "in {} {}–{}",
                self.keys[i],
                fmt_hm(self.starts[i]),
                fmt_hm(self.ends[i])
            ),
            _ => format!("in session {} ({})", self.keys[i], self.services[i]),
        }
    }

    /// A finding on row `i`: `reason` gets where the row is and the most telling feature's
    /// sentence (or "unusual combination of features").
    pub fn finding(
        &self,
        i: usize,
        model: &SavedModel,
        score: f64,
        top: Vec<Ranked>,
        baseline_group: Option<String>,
        reason: impl FnOnce(&str, &str) -> String,
    ) -> Finding {
        let what = self.what(i);
        let lead = top
            .first()
            .map(|t| t.text.clone())
            .unwrap_or_else(|| "unusual combination of features".into());
        let top_feature = top
            .first()
            .and_then(|t| t.evidence["feature"].as_str().map(|s| s.to_string()));
        let samples = match self.granularity {
            Granularity::Window => SampleQuery::Window {
                template: top_feature
                    .as_deref()
                    .and_then(|f| f.strip_prefix("tpl_"))
                    .map(|s| s.to_string()),
                level: match top_feature.as_deref() {
                    Some("n_error") | Some("error_rate") => Some("ERROR"),
                    Some("n_warn") | Some("warn_rate") => Some("WARN"),
                    _ => None,
                },
            },
            _ => SampleQuery::Session {
                key: self.keys[i].clone(),
            },
        };
        Finding {
            granularity: self.granularity,
            entity_key: self.keys[i].clone(),
            service: self.services[i].clone(),
            start_ms: self.starts[i],
            end_ms: self.ends[i].max(self.starts[i]),
            detector: model.detector.clone(),
            score,
            threshold: model.threshold,
            reason: reason(&what, &lead),
            top: top.into_iter().map(|t| t.evidence).collect(),
            samples,
            model_version: model.model_version.clone(),
            baseline_group: baseline_group.filter(|g| !g.is_empty()),
            contributions: None,
        }
    }
}

/// The columns of `gold/event_features` every event detector reads, read once for all of
/// them: strings borrow from the frame, and each event's key is built once and shared.
pub struct EventColumns<'a> {
    pub ids: Vec<&'a str>,
    /// Masked values (JSON array text; empty when gold predates the column).
    pub params: Vec<&'a str>,
    pub levels: Vec<&'a str>,
    pub services: Vec<&'a str>,
    pub keys: Vec<Arc<str>>,
    pub files: Vec<&'a str>,
    pub line_nos: Vec<u64>,
    pub ts: Vec<i64>,
    templates: &'a StringChunked,
}

impl<'a> EventColumns<'a> {
    pub fn of(df: &'a DataFrame) -> Result<Self> {
        let text = |name: &str| -> Result<Vec<&'a str>> {
            Ok(df
                .column(name)?
                .str()?
                .iter()
                .map(|v| v.unwrap_or_default())
                .collect())
        };
        let files = text("file")?;
        let line_nos: Vec<u64> = df
            .column("line_no")?
            .u64()?
            .iter()
            .map(|v| v.unwrap_or_default())
            .collect();
        // `file:line` built in one reused buffer: one allocation a key, the Arc's own. The
        // number written by itoa: through `write!` it was a third of the keys' time.
        let mut buf = String::new();
        let mut digits = itoa::Buffer::new();
        let keys = files
            .iter()
            .zip(&line_nos)
            .map(|(f, n)| {
                buf.clear();
                buf.push_str(f);
                buf.push(':');
                buf.push_str(digits.format(*n));
                Arc::from(buf.as_str())
            })
            .collect();
        let params = match df.column("params") {
            Ok(c) => c.str()?.iter().map(|v| v.unwrap_or_default()).collect(),
            Err(_) => vec![""; df.height()],
        };
        Ok(Self {
            ids: text("template_id")?,
            params,
            levels: text("level")?,
            services: text("service")?,
            keys,
            files,
            line_nos,
            ts: features::millis(df, "ts")?,
            templates: df.column("template")?.str()?,
        })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Event `i`'s template text (read only for the few events a detector flags).
    pub fn template(&self, i: usize) -> &'a str {
        self.templates.get(i).unwrap_or_default()
    }

    pub fn score<'m>(&self, i: usize, model: &'m SavedModel, score: f64) -> EntityScore<'m> {
        EntityScore::new(model, self.keys[i].clone(), self.ts[i], score)
    }

    /// A finding on event `i`; `what` is completed with the service and time.
    pub fn finding(
        &self,
        i: usize,
        model: &SavedModel,
        score: f64,
        what: String,
        evidence: serde_json::Value,
    ) -> Finding {
        Finding {
            granularity: Granularity::Event,
            entity_key: self.keys[i].to_string(),
            service: self.services[i].to_string(),
            start_ms: self.ts[i],
            end_ms: self.ts[i],
            detector: model.detector.clone(),
            score,
            threshold: model.threshold,
            reason: format!("{what}, in {} at {}", self.services[i], fmt_hm(self.ts[i])),
            top: vec![evidence],
            samples: SampleQuery::Line {
                file: self.files[i].to_string(),
                line_no: self.line_nos[i],
            },
            model_version: model.model_version.clone(),
            baseline_group: None,
            contributions: None,
        }
    }
}

/// The session features the sequence-based detectors read.
pub struct SessionColumns {
    pub keys: Vec<String>,
    pub services: Vec<String>,
    pub sequences: Vec<String>,
    pub starts: Vec<i64>,
    pub ends: Vec<i64>,
}

impl SessionColumns {
    /// The batch's sessions, or `None` when the source has none.
    pub fn of(input: &ScoringInput<'_>) -> Result<Option<Self>> {
        let Some((df, _)) = input.sessions else {
            return Ok(None);
        };
        Ok(Some(Self {
            keys: features::strings(df, "session_key")?,
            services: features::strings(df, "service")?,
            sequences: features::strings(df, "template_sequence")?,
            starts: features::millis(df, crate::stages::gold::sessions::START)?,
            ends: features::millis(df, crate::stages::gold::sessions::END)?,
        }))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Session `i`'s score by a session model.
    pub fn score<'m>(&self, i: usize, model: &'m SavedModel, score: f64) -> EntityScore<'m> {
        EntityScore::new(model, self.keys[i].as_str(), self.starts[i], score)
    }

    /// A finding on session `i` by a session model.
    pub fn finding(
        &self,
        i: usize,
        model: &SavedModel,
        score: f64,
        reason: String,
        top: Vec<serde_json::Value>,
    ) -> Finding {
        Finding {
            granularity: Granularity::Session,
            entity_key: self.keys[i].clone(),
            service: self.services[i].clone(),
            start_ms: self.starts[i],
            end_ms: self.ends[i].max(self.starts[i]),
            detector: model.detector.clone(),
            score,
            threshold: model.threshold,
            reason,
            top,
            samples: SampleQuery::Session {
                key: self.keys[i].clone(),
            },
            model_version: model.model_version.clone(),
            baseline_group: None,
            contributions: None,
        }
    }
}

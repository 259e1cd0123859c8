//! The next-event LSTM in the pipeline: sessions whose events the model, reading each one's
//! history, did not expect (off by default until it earns its place; see the README's HDFS
//! table).

use anyhow::{Context as _, Result};
use linfa::ParamGuard;
use serde_json::json;

use super::{LstmError, LstmParams, LstmValidParams, NextEvent};
use crate::detectors::contract::{Detector, Granularity, Scored, Trained};
use crate::detectors::explain::template_name;
use crate::detectors::saved_model::SavedModel;
use crate::detectors::scoring::{ScoringInput, SessionColumns};
use crate::detectors::settings::{Common, Params, SettingError, guarded};
use crate::detectors::training::TrainingData;
use crate::features;

pub struct LstmDetector;

impl Params for LstmValidParams {
    fn default_common() -> Common {
        Common {
            enabled: false,
            granularities: vec![Granularity::Session],
            weight: 0.5,
            view: "order".into(),
        }
    }

    fn check(&self) -> Result<(), SettingError> {
        guarded(LstmParams(self.clone()).check(), |e| match e {
            LstmError::Zero(name) => name,
            LstmError::Share(_) => "max_flagged_share",
            _ => "learning_rate",
        })
    }
}

/// A session's template ids, from gold's space-separated sequence.
pub(crate) fn events(sequence: &str) -> Vec<&str> {
    sequence.split(' ').filter(|t| !t.is_empty()).collect()
}

impl Detector for LstmDetector {
    type Settings = LstmValidParams;
    const NAME: &'static str = "lstm";
    const SUPPORTS: &'static [Granularity] = &[Granularity::Session];

    fn train(
        &self,
        s: &LstmValidParams,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained> {
        let Some(sessions) = &data.sessions else {
            return Ok(Trained::TooLittleData("lstm: no sessions".into()));
        };
        let sequences = features::strings(&sessions.sessions, "template_sequence")?;
        let parsed: Vec<Vec<&str>> = sequences.iter().map(|s| events(s)).collect();
        (data.step)(format!("training {granularity}/{}", Self::NAME));
        let mut model = match s.fit(&parsed) {
            Ok(m) => m,
            Err(LstmError::TooFewEvents(have, need)) => {
                return Ok(Trained::TooLittleData(format!(
                    "lstm: not enough history yet ({have} of {need} events)"
                )));
            }
            Err(e) => return Err(e).context("training the next-event LSTM"),
        };
        tracing::info!(
            events = model.events,
            pairs = model.pairs,
            loss = model.loss,
            seconds = model.seconds,
            "lstm trained"
        );
        for i in data.normal_rows(Granularity::Session)? {
            model.accept_session(&parsed[i])?;
        }
        let mut m = data.model(
            granularity,
            Self::NAME,
            vec!["template_sequence".into()],
            sequences.len() as u64,
            1.0,
            &model,
        )?;
        m.templates = data.templates.clone();
        Ok(Trained::Model(Box::new(m)))
    }

    fn score<'m>(
        &self,
        model: &'m SavedModel,
        input: &ScoringInput<'_>,
        out: &mut Scored<'m>,
    ) -> Result<()> {
        let lstm: NextEvent = model.fitted()?;
        let Some(cols) = SessionColumns::of(input)? else {
            return Ok(());
        };
        let sessions: Vec<Vec<&str>> = cols.sequences.iter().map(|s| events(s)).collect();
        let steps = lstm
            .judge(&sessions)
            .context("scoring sessions with the LSTM")?;
        let name = |id: &Option<String>| match id {
            Some(id) => template_name(&model.templates, id),
            None => "END".to_string(),
        };
        for (i, step) in steps.into_iter().enumerate() {
            let score = step.as_ref().map_or(0.0, |s| s.score);
            out.scores.push(cols.score(i, model, score));
            let Some(step) = step.filter(|s| Self::CROSSING.crosses(s.score, model.threshold))
            else {
                continue;
            };
            let seen = if step.rank > lstm.vocabulary.len() {
                format!("{} (never seen in training)", name(&step.seen))
            } else {
                format!(
                    "{} (ranked {} of {})",
                    name(&step.seen),
                    step.rank + 1,
                    lstm.vocabulary.len() + 1
                )
            };
            let expected: Vec<String> = step.expected.iter().take(3).map(name).collect();
            let reason = format!(
                "step {} of session {} ({}, {} events): {seen} was not among the {} events \
                 expected after the {} before it; most expected: {}",
                step.position + 1,
                cols.keys[i],
                cols.services[i],
                sessions[i].len(),
                lstm.top_g(),
                lstm.window(),
                expected.join(" | ")
            );
            let top = vec![json!({
                "feature": "next_event",
                "step": step.position + 1,
                "seen": step.seen,
                "rank": step.rank + 1,
                "expected": step.expected,
            })];
            out.findings
                .push(cols.finding(i, model, score, reason, top));
        }
        Ok(())
    }
}

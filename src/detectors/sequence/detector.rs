//! The sequence detector in the pipeline: sessions that make an event-to-event transition
//! normal sessions (almost) never make.

use anyhow::Result;
use linfa::ParamGuard;
use serde_json::json;

use super::{END, RareTransition, START, SequenceError, SequenceParams, SequenceValidParams};
use crate::detectors::contract::{Detector, Granularity, Scored, Trained};
use crate::detectors::explain::template_name;
use crate::detectors::saved_model::SavedModel;
use crate::detectors::scoring::{ScoringInput, SessionColumns};
use crate::detectors::settings::{Common, Params, SettingError, guarded};
use crate::detectors::training::TrainingData;
use crate::features;

pub struct SequenceDetector;

/// `[detectors.sequence]` is the algorithm's own parameters (`SequenceValidParams`).
impl Params for SequenceValidParams {
    fn default_common() -> Common {
        Common {
            enabled: true,
            granularities: vec![Granularity::Session],
            weight: 0.5,
            view: "order".into(),
        }
    }

    fn check(&self) -> Result<(), SettingError> {
        guarded(SequenceParams(self.clone()).check(), |_| "max_rate")
    }
}

impl Detector for SequenceDetector {
    type Settings = SequenceValidParams;
    const NAME: &'static str = "sequence";
    const SUPPORTS: &'static [Granularity] = &[Granularity::Session];

    fn train(
        &self,
        s: &SequenceValidParams,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained> {
        let too_few = "sequence: too few sessions to learn transitions yet".to_string();
        let Some(sessions) = &data.sessions else {
            return Ok(Trained::TooLittleData(too_few));
        };
        (data.step)(format!("training {granularity}/{}", Self::NAME));
        let sequences = features::strings(&sessions.sessions, "template_sequence")?;
        let mut model = match s.fit(
            sequences
                .iter()
                .map(|s| s.split(' ').filter(|t| !t.is_empty()).collect()),
        ) {
            Ok(m) => m,
            Err(SequenceError::TooFewSessions { .. }) => {
                return Ok(Trained::TooLittleData(too_few));
            }
            Err(e) => return Err(e.into()),
        };
        // Sessions operators marked normal, and the transitions their findings named, are
        // common from now on.
        for i in data.normal_rows(Granularity::Session)? {
            let tokens: Vec<&str> = sequences[i].split(' ').filter(|t| !t.is_empty()).collect();
            model.accept_session(&tokens);
        }
        for e in data.normal_evidence("transition") {
            if let (Some(from), Some(to)) = (e["from"].as_str(), e["to"].as_str()) {
                model.accept(from, to);
            }
        }
        let mut m = data.model(
            granularity,
            Self::NAME,
            vec!["template_sequence".into()],
            model.sessions,
            model.threshold(),
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
        let seq: RareTransition = model.fitted()?;
        let Some(cols) = SessionColumns::of(input)? else {
            return Ok(());
        };
        let name = |id: &str| match id {
            START | END => id.to_string(),
            _ => template_name(&model.templates, id),
        };
        let index = seq.index();
        for i in 0..cols.len() {
            let sequence: Vec<&str> = cols.sequences[i]
                .split(' ')
                .filter(|t| !t.is_empty())
                .collect();
            let rarest = index.rarest_transition(&sequence);
            let score = rarest.as_ref().map(|r| seq.score(r.2)).unwrap_or(0.0);
            out.scores.push(cols.score(i, model, score));
            let Some((from, to, seen)) = rarest.filter(|r| r.2 <= seq.limit()) else {
                continue;
            };
            let how = if seen == 0 {
                "never made by a training session".to_string()
            } else {
                format!("made by only {seen} of {} training sessions", seq.sessions)
            };
            let reason = format!(
                "transition {} → {} {how}, in session {} ({}, {} events)",
                name(&from),
                name(&to),
                cols.keys[i],
                cols.services[i],
                sequence.len()
            );
            let top = vec![
                json!({"feature": "transition", "from": from, "to": to, "training_sessions_with": seen, "training_sessions": seq.sessions}),
            ];
            out.findings
                .push(cols.finding(i, model, score, reason, top));
        }
        Ok(())
    }
}

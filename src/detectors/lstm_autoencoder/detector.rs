//! The LSTM autoencoder in the pipeline: sessions whose event sequence the network cannot
//! rebuild (off by default until it earns its place; see the README's HDFS table).

use anyhow::{Context as _, Result};
use linfa::ParamGuard;
use serde_json::json;

use super::{
    LstmAutoencoderError, LstmAutoencoderParams, LstmAutoencoderValidParams, SequenceAutoencoder,
};
use crate::detectors::contract::{Detector, Granularity, Scored, Trained};
use crate::detectors::explain::template_name;
use crate::detectors::lstm::detector::events;
use crate::detectors::saved_model::SavedModel;
use crate::detectors::scoring::{ScoringInput, SessionColumns};
use crate::detectors::settings::{Common, Params, SettingError, guarded};
use crate::detectors::training::TrainingData;
use crate::features;

pub struct LstmAutoencoderDetector;

impl Params for LstmAutoencoderValidParams {
    fn default_common() -> Common {
        Common {
            enabled: false,
            granularities: vec![Granularity::Session],
            weight: 0.5,
            view: "order".into(),
        }
    }

    fn check(&self) -> Result<(), SettingError> {
        guarded(LstmAutoencoderParams(self.clone()).check(), |e| match e {
            LstmAutoencoderError::Zero(name) => name,
            LstmAutoencoderError::Quantile(_) => "quantile",
            LstmAutoencoderError::MinScore(_) => "min_score",
            _ => "learning_rate",
        })
    }
}

impl Detector for LstmAutoencoderDetector {
    type Settings = LstmAutoencoderValidParams;
    const NAME: &'static str = "lstm_autoencoder";
    const SUPPORTS: &'static [Granularity] = &[Granularity::Session];

    fn train(
        &self,
        s: &LstmAutoencoderValidParams,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained> {
        let Some(sessions) = &data.sessions else {
            return Ok(Trained::TooLittleData(
                "lstm_autoencoder: no sessions".into(),
            ));
        };
        let sequences = features::strings(&sessions.sessions, "template_sequence")?;
        let parsed: Vec<Vec<&str>> = sequences.iter().map(|s| events(s)).collect();
        (data.step)(format!("training {granularity}/{}", Self::NAME));
        let mut model = match s.fit(&parsed) {
            Ok(m) => m,
            Err(LstmAutoencoderError::NoEvents) => {
                return Ok(Trained::TooLittleData(
                    "lstm_autoencoder: no session has an event".into(),
                ));
            }
            Err(e) => return Err(e).context("training the LSTM autoencoder"),
        };
        tracing::info!(
            chunks = model.chunks,
            loss = model.loss,
            threshold = model.threshold,
            seconds = model.seconds,
            "lstm autoencoder trained"
        );
        for i in data.normal_rows(Granularity::Session)? {
            model.accept_session(&parsed[i])?;
        }
        let threshold = model.threshold;
        let mut m = data.model(
            granularity,
            Self::NAME,
            vec!["template_sequence".into()],
            sequences.len() as u64,
            threshold,
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
        let autoencoder: SequenceAutoencoder = model.fitted()?;
        let Some(cols) = SessionColumns::of(input)? else {
            return Ok(());
        };
        let sessions: Vec<Vec<&str>> = cols.sequences.iter().map(|s| events(s)).collect();
        let rebuilt = autoencoder
            .judge(&sessions)
            .context("scoring sessions with the LSTM autoencoder")?;
        let name = |id: &Option<String>| match id {
            Some(id) => template_name(&model.templates, id),
            None => "an event never seen in training".to_string(),
        };
        for (i, r) in rebuilt.into_iter().enumerate() {
            let score = r.as_ref().map_or(0.0, |r| r.score);
            out.scores.push(cols.score(i, model, score));
            let Some(r) = r.filter(|r| Self::CROSSING.crosses(r.score, model.threshold)) else {
                continue;
            };
            let reason = format!(
                "events {}–{} of session {} ({}, {} events) rebuilt with {:.2} nats per event \
                 (threshold {:.2}); worst at step {}: {} where the network rebuilt {}",
                r.start + 1,
                (r.start + autoencoder.chunk()).min(sessions[i].len()),
                cols.keys[i],
                cols.services[i],
                sessions[i].len(),
                r.score,
                model.threshold,
                r.position + 1,
                name(&r.seen),
                name(&r.rebuilt)
            );
            let top = vec![json!({
                "feature": "sequence_rebuilt",
                "step": r.position + 1,
                "seen": r.seen,
                "rebuilt": r.rebuilt,
            })];
            out.findings
                .push(cols.finding(i, model, score, reason, top));
        }
        Ok(())
    }
}

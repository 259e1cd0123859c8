use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::LstmAutoencoderError;

/// `[detectors.lstm_autoencoder]`: the settings are the parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LstmAutoencoderValidParams {
    /// Events per chunk a session is read in.
    pub chunk: usize,
    pub embedding: usize,
    /// Width of the encoder's and decoder's state.
    pub hidden: usize,
    /// Passes over the distinct chunks (more when they fit in a few batches; see the network).
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Distinct training chunks kept at most (a seeded sample beyond it, counts kept).
    pub max_chunks: usize,
    /// The threshold is at least this quantile of the training sessions' own scores...
    pub quantile: f64,
    /// ...and at least this error (nats per event).
    pub min_score: f64,
    pub seed: u64,
}

impl Default for LstmAutoencoderValidParams {
    fn default() -> Self {
        Self {
            chunk: 10,
            embedding: 16,
            hidden: 32,
            epochs: 30,
            batch_size: 64,
            learning_rate: 0.01,
            max_chunks: 4000,
            quantile: 0.97,
            min_score: 0.5,
            seed: 42,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LstmAutoencoderParams(pub LstmAutoencoderValidParams);

impl ParamGuard for LstmAutoencoderParams {
    type Checked = LstmAutoencoderValidParams;
    type Error = LstmAutoencoderError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        let p = &self.0;
        for (name, v) in [
            ("chunk", p.chunk),
            ("embedding", p.embedding),
            ("hidden", p.hidden),
            ("epochs", p.epochs),
            ("batch_size", p.batch_size),
            ("max_chunks", p.max_chunks),
        ] {
            if v == 0 {
                return Err(LstmAutoencoderError::Zero(name));
            }
        }
        if !(p.learning_rate > 0.0 && p.learning_rate <= 1.0) {
            return Err(LstmAutoencoderError::LearningRate(p.learning_rate));
        }
        if !(p.quantile > 0.0 && p.quantile <= 1.0) {
            return Err(LstmAutoencoderError::Quantile(p.quantile));
        }
        if p.min_score.is_nan() || p.min_score <= 0.0 {
            return Err(LstmAutoencoderError::MinScore(p.min_score));
        }
        Ok(p)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}

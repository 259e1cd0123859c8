use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::LstmError;

/// `[detectors.lstm]`: the model's own parameters (DeepLog's h, g, two layers of hidden
/// units), and what bounds training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LstmValidParams {
    /// h: how many previous events the model reads to predict the next.
    pub window: usize,
    /// g: an event is expected when it is among the g most likely next events...
    pub top_g: usize,
    /// ...or among as many as keep the training sessions flagged to this share at most: with
    /// many kinds of events, the g that suits a few dozen (DeepLog's HDFS) would flag a third
    /// of all sessions.
    pub max_flagged_share: f64,
    /// Hidden units of each of the two LSTM layers.
    pub hidden: usize,
    /// Size of the learned vector each event is read as.
    pub embedding: usize,
    /// Passes over the training pairs.
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// At most this many distinct (history, next event) pairs are trained on.
    pub max_samples: usize,
    /// Fewer training events than this: not enough history yet.
    pub min_events: usize,
    pub seed: u64,
}

impl Default for LstmValidParams {
    fn default() -> Self {
        Self {
            window: 10,
            top_g: 7,
            max_flagged_share: 0.05,
            hidden: 64,
            embedding: 16,
            epochs: 30,
            batch_size: 256,
            learning_rate: 0.005,
            max_samples: 50_000,
            min_events: 1_000,
            seed: 42,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct LstmParams(pub LstmValidParams);

impl ParamGuard for LstmParams {
    type Checked = LstmValidParams;
    type Error = LstmError;

    fn check_ref(&self) -> Result<&Self::Checked, Self::Error> {
        let p = &self.0;
        for (name, value) in [
            ("window", p.window),
            ("top_g", p.top_g),
            ("hidden", p.hidden),
            ("embedding", p.embedding),
            ("epochs", p.epochs),
            ("batch_size", p.batch_size),
            ("max_samples", p.max_samples),
        ] {
            if value == 0 {
                return Err(LstmError::Zero(name));
            }
        }
        if !(p.max_flagged_share > 0.0 && p.max_flagged_share < 1.0) {
            return Err(LstmError::Share(p.max_flagged_share));
        }
        if !(p.learning_rate > 0.0 && p.learning_rate <= 1.0) {
            return Err(LstmError::LearningRate(p.learning_rate));
        }
        Ok(p)
    }

    fn check(self) -> Result<Self::Checked, Self::Error> {
        self.check_ref()?;
        Ok(self.0)
    }
}

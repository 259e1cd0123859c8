//! Next-event LSTM over session template sequences, after DeepLog (Du, Li, Zheng &
//! Srikumar, CCS 2017): a two-layer LSTM reads the last `window` events of a session and
//! predicts the next one; a session is anomalous when some event is not among the `top_g`
//! events the model ranks most likely after what came before it. Unlike `sequence`, which
//! knows only pairs of events, it judges each step by its whole recent history.
//!
//! Sessions start with padding (so their first events are judged too) and end with an END
//! event (so a session that stops early is judged). Training uses the distinct (history,
//! next event) pairs of the training sessions, each weighted by how often it occurs, at most
//! `max_samples` of them (a seeded sample beyond): the same function of the data as every
//! window, at a bounded cost. Weights start from a seeded generator and batches come in a
//! seeded order, so a seed gives the same model. The network runs on the CPU with candle.

mod algorithm;
pub(crate) mod detector;
mod errors;
mod hyperparams;
pub(crate) mod network;

pub use algorithm::{NextEvent, Step};
pub use detector::LstmDetector;
pub use errors::LstmError;
pub use hyperparams::{LstmParams, LstmValidParams};

//! An LSTM autoencoder over session event sequences: an encoder LSTM reads a stretch of a
//! session's events into one state, a decoder LSTM unrolls that state back into the events,
//! and a session whose events the network cannot rebuild — an order, a mix or a length it
//! did not learn — is anomalous. The sequence counterpart of the dense `autoencoder`, as in
//! the log-anomaly toolkits (LogAI's LSTM autoencoder, deep-loglizer's AutoEncoder).
//!
//! A session is read in consecutive chunks of `chunk` events (the last one padded); the
//! network learns the distinct chunks of the training sessions, each weighted by how often it
//! occurs (a sample of `max_chunks` beyond that), and a chunk's error is its events' mean
//! negative log-likelihood in nats. A session's score is its worst chunk's error; the
//! threshold is the larger of `min_score` and the `quantile` of the training sessions' own
//! scores. candle on the CPU, seeded weights and batch order: the same data and settings
//! train the same network. Behind the `lstm` cargo feature with the next-event LSTM.

mod algorithm;
mod detector;
mod errors;
mod hyperparams;
mod network;

pub use algorithm::{Rebuilt, SequenceAutoencoder};
pub use detector::LstmAutoencoderDetector;
pub use errors::LstmAutoencoderError;
pub use hyperparams::{LstmAutoencoderParams, LstmAutoencoderValidParams};

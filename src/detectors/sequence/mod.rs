//! A sequence detector over each session's template sequence: a first-order (bigram) Markov
//! model of which event follows which, with `START` and `END` markers.
//!
//! A session is anomalous when it contains a transition that the training sessions (almost)
//! never make: a step repeated in a loop, a step skipped, a session that stops early (its last
//! event never ends a normal session). This is the signal an LSTM next-event model such as
//! DeepLog learns, at the cost of counting pairs.
//!
//! Rarity counts *sessions* containing a transition, not occurrences, and is relative: a
//! transition is rare when at most `max(max_sessions, max_rate × training sessions)` sessions
//! made it, so the limit scales with the training range instead of being outgrown by it.

mod algorithm;
mod detector;
mod errors;
mod hyperparams;

pub use algorithm::{END, RareTransition, START};
pub use detector::SequenceDetector;
pub use errors::SequenceError;
pub use hyperparams::{SequenceParams, SequenceValidParams};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum SequenceError {
    #[error("sequence max_rate must be in [0, 1), got {0}")]
    MaxRate(f64),
    #[error(
        "the training range has {got} sessions, fewer than min_sessions = {need} (ingest more data or lower detectors.sequence.min_sessions)"
    )]
    TooFewSessions { got: u64, need: u64 },
}

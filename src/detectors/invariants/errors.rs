use thiserror::Error;

#[derive(Debug, Error)]
pub enum InvariantsError {
    #[error("invariants {name} must be in (0, 1], got {value}")]
    Share { name: &'static str, value: f64 },
    #[error("invariants max_ratio must be at least 1, got {0}")]
    MaxRatio(u32),
    #[error(
        "the training range has {got} sessions, fewer than min_sessions = {need} (ingest more data or lower detectors.invariants.min_sessions)"
    )]
    TooFewSessions { got: u64, need: u64 },
}

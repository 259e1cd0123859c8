use thiserror::Error;

#[derive(Debug, Error)]
pub enum SeverityError {
    #[error(
        "severity min_level {0:?} is not one of TRACE, DEBUG, INFO, NOTICE, WARN, ERROR, FATAL"
    )]
    Level(String),
    #[error("severity max_share must be in [0, 1), got {0}")]
    MaxShare(f64),
    #[error(
        "the training range has {got} events, fewer than min_events = {need}: whether an error \
         is routine cannot be judged yet (ingest more data or lower detectors.severity.min_events)"
    )]
    TooFewEvents { got: u64, need: u64 },
}

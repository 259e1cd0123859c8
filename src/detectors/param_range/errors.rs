use thiserror::Error;

#[derive(Debug, Error)]
pub enum ParamRangeError {
    #[error("param_range quantile must be in (0.5, 1), got {0}")]
    Quantile(f64),
    #[error("param_range threshold must be positive, got {0}")]
    Threshold(f64),
    #[error("param_range min_factor must be above 1, got {0}")]
    MinFactor(f64),
    #[error("param_range min_numeric_share must be in (0, 1], got {0}")]
    NumericShare(f64),
    #[error(
        "no parameter position has {need} numeric training values yet (the most is {got}): \
         value ranges cannot be judged (ingest more data or lower detectors.param_range.quantile)"
    )]
    TooFewValues { got: u64, need: u64 },
}

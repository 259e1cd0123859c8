use thiserror::Error;

#[derive(Debug, Error)]
pub enum OneClassSvmError {
    #[error("nu must be in (0, 1), got {0}")]
    Nu(f64),
    #[error("gamma must be 0 (from the data's spread) or positive, got {0}")]
    Gamma(f64),
    #[error("max_samples must be between 2 and 20000, got {0}")]
    MaxSamples(usize),
    #[error("cannot fit a one-class SVM on {0} rows: need at least 2")]
    NotEnoughRows(usize),
    #[error(transparent)]
    Svm(#[from] linfa_svm::SvmError),
    #[error(transparent)]
    Linfa(#[from] linfa::Error),
}

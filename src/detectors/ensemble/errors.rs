use thiserror::Error;

#[derive(Debug, Error)]
pub enum EnsembleError {
    #[error("ensemble weight of {detector} must be a finite number >= 0, got {weight}")]
    Weight { detector: String, weight: f64 },
    #[error("every ensemble weight is 0: give at least one detector a positive weight")]
    AllZero,
}

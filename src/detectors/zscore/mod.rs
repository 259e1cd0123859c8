//! Per-feature z-scores against a baseline learned from the training rows.
//!
//! z = (x − center) / scale, with center/scale either mean/std or, by default, median and
//! 1.4826·MAD (the MAD scaled to estimate σ for normal data), so that a burst in the training
//! data does not inflate the baseline that should expose the next one. When the MAD is zero
//! (a feature that is mostly constant) the scale falls back to 1.2533·mean absolute deviation,
//! the same estimator's fallback in Iglewicz & Hoaglin's modified z-score.
//!
//! Count features get a Poisson floor: their scale is at least √max(center, 1), because a
//! count's own sampling noise is that large; without it a window with 3 errors instead of the
//! usual 0 would look like a 100σ event.

mod algorithm;
mod errors;
mod hyperparams;

pub use algorithm::{FeatureBaseline, ZScore};
pub use errors::ZScoreError;
pub use hyperparams::{ZScoreParams, ZScoreValidParams};

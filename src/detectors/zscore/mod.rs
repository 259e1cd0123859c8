//! Per-feature z-scores against a baseline learned from the training rows.
//!
//! z = (x − center) / scale, with center/scale either mean/std or, by default, median and
//! 1.4826·MAD (the MAD scaled to estimate σ for normal data), so that a burst in the training
//! data does not inflate the baseline that should expose the next one. When the MAD is zero
//! (a feature that is mostly constant) the scale falls back to 1.2533·mean absolute deviation,
//! the same estimator's fallback in Iglewicz & Hoaglin's modified z-score.
//!
//! Count features are judged on Anscombe's variance-stabilising scale `2·√(x + 3/8)`, where a
//! Poisson count has spread ≈ 1 whatever its mean, with the spread floored at 1. A count's own
//! sampling noise is that large — without the floor, 3 errors in a window that usually has 0
//! would look like a 100σ event — and a small count's noise is skewed: 6 where 1 is usual
//! happens in about 1 window in 1,700 by chance alone (Poisson), which z = (6 − 1)/√1 = 5
//! would call a 5σ event. On the stabilised scale it is z ≈ 2.7, while a real spike (789
//! events where 96 are usual) stays at z ≈ 36.
//!
//! Below the baseline the normal approximation fails the other way: it makes a drop towards
//! zero look rarer than it is (none where 10 are usual has probability e⁻¹⁰, 3.9σ; the
//! stabilised scale says 5.2σ), and lines that arrive in clumps — a request writes several —
//! drop to zero more easily still. So a count below its baseline takes the less extreme of
//! that z and the exact Poisson tail of its clumps, the clump size being the squared spread
//! on the stabilised scale. A quiet service's lull of one 5-minute window is no alarm (on
//! generated logs with 2 days of history, every remaining false window flag was one); a busy
//! service falling silent still is (none where 1,000 are usual: z below −50).

mod algorithm;
mod detector;
mod errors;
mod hyperparams;

pub use algorithm::ZScore;
pub use detector::{ZScoreDetector, ZScoreSettings};
pub use errors::ZScoreError;
pub use hyperparams::{ZScoreParams, ZScoreValidParams};

//! A feature's baseline — where its values centre and how far they spread — and the z of a
//! value against it. Shared by the z-score detector (which judges by it), the explanations every
//! detector gives (which feature deviates most from its baseline) and the grouped detectors'
//! per-group baselines, so it belongs to none of them.
//!
//! Count features are judged on Anscombe's variance-stabilising scale, and drops below the
//! baseline by the exact Poisson tail of their clumps: see the [`super::zscore`] module
//! documentation for why.

use serde::{Deserialize, Serialize};

use super::poisson;

/// One feature's baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureBaseline {
    pub center: f64,
    pub scale: f64,
    /// Count features: (center, scale) on the Anscombe scale `2·√(x + 3/8)`, where z is
    /// computed (see the module documentation). `center`/`scale` stay in counts, for reasons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stabilized: Option<(f64, f64)>,
}

/// Anscombe's variance-stabilising transform: a Poisson count's image has variance ≈ 1.
pub fn anscombe(count: f64) -> f64 {
    2.0 * (count.max(0.0) + 0.375).sqrt()
}

impl FeatureBaseline {
    pub fn z(&self, x: f64) -> f64 {
        match self.stabilized {
            Some((center, scale)) => {
                let z = (anscombe(x) - center) / scale;
                if z < 0.0 {
                    z.max(drop_z(x, center, scale))
                } else {
                    z
                }
            }
            None => (x - self.center) / self.scale,
        }
    }
}

impl FeatureBaseline {
    /// Learn an operator's "normal" verdict on a row with value `x`: widen the spread (on the
    /// scale z is computed on, and `scale` in step) just enough that `x` lies inside
    /// `threshold`. Values as far out as the marked one are usual from now on, further ones
    /// are not. Whether anything changed (`x` may already be inside).
    pub fn accept(&mut self, x: f64, threshold: f64) -> bool {
        if !x.is_finite() || self.z(x).abs() < threshold {
            return false;
        }
        let widened = |f: f64| FeatureBaseline {
            center: self.center,
            scale: self.scale * f,
            stabilized: self.stabilized.map(|(c, s)| (c, s * f)),
        };
        let inside = |f: f64| widened(f).z(x).abs() < threshold;
        // |z| falls as the spread grows — on either side, and on the exact Poisson tail for
        // drops, whose clump size is the spread squared: double until inside, then bisect to
        // the smallest widening found.
        let (mut lo, mut hi) = (1.0f64, 2.0f64);
        while !inside(hi) {
            if hi > 1e12 {
                return false;
            }
            lo = hi;
            hi *= 2.0;
        }
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if inside(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        *self = widened(hi);
        true
    }
}

/// How unlikely a count as low as `x` is, as a z, from the exact Poisson tail: the normal
/// approximation on Anscombe's scale overstates drops towards zero (for a mean of 10, none
/// at all is 3.9 standard deviations, not the 5.2 the transformed scale gives). A spread
/// above 1 on that scale means the count arrives in clumps (a request writes several lines):
/// its square `d` is the clump size, and the count is `d` times a Poisson count of clumps.
fn drop_z(x: f64, center: f64, scale: f64) -> f64 {
    let mean = ((center / 2.0).powi(2) - 0.375).max(0.0);
    let clump = (scale * scale).max(1.0);
    let p = poisson::cdf(mean / clump, (x.max(0.0) / clump).floor() as u64);
    poisson::normal_quantile(p)
}

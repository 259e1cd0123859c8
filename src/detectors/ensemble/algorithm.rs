use serde::Serialize;

use super::hyperparams::EnsembleValidParams;

/// One detector's score for an entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Vote<'a> {
    pub detector: &'a str,
    pub score: f64,
    pub threshold: f64,
}

impl Vote<'_> {
    /// The score in units of the detector's own threshold (1 = where it alone would alarm).
    pub fn calibrated(&self) -> f64 {
        crate::detectors::calibrated(self.score, self.threshold)
    }

    pub fn flags(&self) -> bool {
        self.calibrated() >= 1.0
    }
}

/// What one flagging detector adds to a verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    pub detector: String,
    pub calibrated: f64,
    pub weight: f64,
    /// The evidence it reads; of several flagging detectors of one view only the strongest
    /// is `counted`.
    pub view: String,
    pub counted: bool,
}

/// The combined evidence for an entity; anomalous when `score >= 1`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub score: f64,
    pub contributions: Vec<Contribution>,
}

impl Verdict {
    pub fn is_anomalous(&self) -> bool {
        self.score >= 1.0
    }
}

impl EnsembleValidParams {
    /// The evidence a detector reads (its own name when not configured).
    pub fn view_of<'a>(&'a self, detector: &'a str) -> &'a str {
        self.views.get(detector).map_or(detector, String::as_str)
    }

    pub fn weight_of(&self, detector: &str) -> f64 {
        self.weights
            .get(detector)
            .copied()
            .unwrap_or(self.default_weight)
    }

    /// Combine the votes on one entity. `scored_by` names every detector that scored the
    /// entity's granularity (flagging or not): the evidence is measured against the most
    /// trusted of them, so a granularity with a single detector follows that detector.
    pub fn combine<'a>(
        &self,
        votes: &[Vote<'_>],
        scored_by: impl IntoIterator<Item = &'a str>,
    ) -> Verdict {
        let top = scored_by
            .into_iter()
            .map(|d| self.weight_of(d))
            .fold(0.0f64, f64::max);
        if top <= 0.0 {
            return Verdict {
                score: 0.0,
                contributions: Vec::new(),
            };
        }
        let mut contributions: Vec<Contribution> = votes
            .iter()
            .filter(|v| v.flags() && self.weight_of(v.detector) > 0.0)
            .map(|v| Contribution {
                detector: v.detector.to_string(),
                // Capped at 4 × its threshold: one extreme score (z = 1000 on a count that is
                // usually 0) says no more than a clear one.
                calibrated: v.calibrated().min(4.0),
                weight: self.weight_of(v.detector),
                view: self.view_of(v.detector).to_string(),
                counted: false,
            })
            .collect();
        contributions.sort_by(|a, b| {
            (b.weight * b.calibrated)
                .total_cmp(&(a.weight * a.calibrated))
                .then_with(|| a.detector.cmp(&b.detector))
        });
        // Strongest first, so the first of each view is the one that counts.
        let mut seen_views = std::collections::BTreeSet::new();
        for c in &mut contributions {
            c.counted = seen_views.insert(c.view.clone());
        }
        let score = contributions
            .iter()
            .filter(|c| c.counted)
            .map(|c| c.weight * c.calibrated)
            .sum::<f64>()
            / top;
        Verdict {
            score,
            contributions,
        }
    }
}

#[cfg(test)]
mod tests {
    use linfa::ParamGuard;

    use super::super::{EnsembleError, EnsembleParams};
    use super::*;

    fn params() -> EnsembleValidParams {
        EnsembleParams::default()
            .weight("invariants", 1.0)
            .weight("zscore", 0.5)
            .weight("clustering", 0.5)
            .weight("sequence", 0.5)
            .view("zscore", "counts")
            .view("clustering", "counts")
            .view("sequence", "order")
            .check()
            .unwrap()
    }

    fn vote(detector: &str, calibrated: f64) -> Vote<'_> {
        Vote {
            detector,
            score: calibrated * 2.0,
            threshold: 2.0,
        }
    }

    const ALL: [&str; 4] = ["invariants", "zscore", "clustering", "sequence"];

    #[test]
    fn a_trusted_detector_convicts_alone_a_weak_one_needs_support() {
        let p = params();
        assert!(p.combine(&[vote("invariants", 1.1)], ALL).is_anomalous());
        assert!(!p.combine(&[vote("zscore", 1.5)], ALL).is_anomalous());
        // Twice its own threshold, or with a second weak detector.
        assert!(p.combine(&[vote("zscore", 2.0)], ALL).is_anomalous());
        let both = p.combine(&[vote("sequence", 1.0), vote("clustering", 1.2)], ALL);
        assert!(both.is_anomalous());
        assert_eq!(both.contributions[0].detector, "clustering");
        // Scores below a detector's own threshold add nothing.
        assert!(
            !p.combine(&[vote("sequence", 1.5), vote("clustering", 0.9)], ALL)
                .is_anomalous()
        );
    }

    #[test]
    fn detectors_reading_the_same_evidence_are_one_witness() {
        let p = params();
        // z-score and clustering both read the counts: 15 WARN lines are one finding, seen
        // twice, and the stronger of the two is what counts.
        let same = p.combine(&[vote("zscore", 1.3), vote("clustering", 1.1)], ALL);
        assert!(!same.is_anomalous(), "{same:?}");
        assert_eq!(same.score, 0.65);
        assert!(same.contributions[0].counted && !same.contributions[1].counted);
        // Counts and order are two witnesses.
        assert!(
            p.combine(&[vote("sequence", 1.1), vote("clustering", 1.1)], ALL)
                .is_anomalous()
        );
        // A detector with no view configured is its own.
        let q = EnsembleParams::default().check().unwrap();
        assert_eq!(q.view_of("zscore"), "zscore");
    }

    #[test]
    fn a_granularity_with_one_detector_follows_it() {
        let p = params();
        assert!(p.combine(&[vote("zscore", 1.0)], ["zscore"]).is_anomalous());
        assert!(
            !p.combine(&[vote("zscore", 0.99)], ["zscore"])
                .is_anomalous()
        );
    }

    #[test]
    fn one_extreme_score_is_capped() {
        let p = params();
        let v = p.combine(&[vote("zscore", 1000.0)], ALL);
        assert_eq!(v.score, 2.0);
    }

    #[test]
    fn bad_weights_are_refused() {
        assert!(matches!(
            EnsembleParams::default().weight("zscore", -1.0).check(),
            Err(EnsembleError::Weight { .. })
        ));
        assert!(matches!(
            EnsembleParams::default().default_weight(0.0).check(),
            Err(EnsembleError::AllZero)
        ));
    }
}

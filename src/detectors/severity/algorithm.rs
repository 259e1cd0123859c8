use std::collections::BTreeMap;

use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::SeverityError;
use super::hyperparams::{SeverityParams, SeverityValidParams, level_rank};
use crate::parse::LEVELS;

/// Training records: template id → normalised level → lines.
pub type LevelCounts = BTreeMap<String, BTreeMap<String, u64>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeverityRule {
    /// Template id → lines per level, indexed like [`LEVELS`].
    pub counts: BTreeMap<String, Vec<u64>>,
    pub total_events: u64,
    /// Template id → the most severe level operators marked routine for it (an index into
    /// [`LEVELS`]): its lines at that level or below are not unusual.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub accepted: BTreeMap<String, usize>,
    params: SeverityValidParams,
}

impl SeverityRule {
    pub fn params() -> SeverityParams {
        SeverityParams::default()
    }

    /// A line is anomalous when its score reaches this.
    pub fn threshold(&self) -> f64 {
        1.0
    }

    pub fn min_level(&self) -> &str {
        &self.params.min_level
    }

    /// Whether lines at `level` are judged at all.
    pub fn judges(&self, level: &str) -> bool {
        level_rank(level) >= level_rank(&self.params.min_level)
    }

    /// Training lines of `template` at `level` or above.
    pub fn at_or_above(&self, template: &str, level: &str) -> u64 {
        self.counts
            .get(template)
            .map(|c| c[level_rank(level)..].iter().sum())
            .unwrap_or(0)
    }

    /// Training lines of `template` at any level.
    pub fn occurrences(&self, template: &str) -> u64 {
        self.counts
            .get(template)
            .map(|c| c.iter().sum())
            .unwrap_or(0)
    }

    /// The level `template` was most often logged at in training.
    pub fn usual_level(&self, template: &str) -> Option<&'static str> {
        let c = self.counts.get(template)?;
        let (rank, _) = c
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .max_by_key(|(rank, n)| (**n, *rank))?;
        Some(LEVELS[rank])
    }

    /// Most lines of `template` at a severe level that still count as unusual.
    pub fn limit(&self, template: &str) -> f64 {
        (self.params.max_count as f64)
            .max(self.params.max_share * self.occurrences(template) as f64)
    }

    /// Learn an operator's "normal" verdict on a line of `template` at `level`: that
    /// template at that level, and below it, is routine from now on. Whether anything
    /// changed.
    pub fn accept(&mut self, template: &str, level: &str) -> bool {
        if self.score(template, level) < self.threshold() {
            return false;
        }
        let rank = level_rank(level);
        let at = self.accepted.entry(template.to_string()).or_insert(rank);
        *at = (*at).max(rank);
        true
    }

    /// `limit ÷ lines at this level or above` (none counting as half a line) for a judged
    /// level not accepted as routine, 0 otherwise: ≥ 1 is anomalous.
    pub fn score(&self, template: &str, level: &str) -> f64 {
        if !self.judges(level)
            || self
                .accepted
                .get(template)
                .is_some_and(|&rank| level_rank(level) <= rank)
        {
            return 0.0;
        }
        self.limit(template) / (self.at_or_above(template, level) as f64).max(0.5)
    }
}

impl SeverityValidParams {
    pub fn fit(&self, counts: &LevelCounts) -> Result<SeverityRule, SeverityError> {
        let mut per_template = BTreeMap::new();
        let mut total = 0u64;
        for (template, levels) in counts {
            let mut row = vec![0u64; LEVELS.len()];
            for (level, n) in levels {
                row[level_rank(level)] += n;
                total += n;
            }
            per_template.insert(template.clone(), row);
        }
        if total < self.min_events {
            return Err(SeverityError::TooFewEvents {
                got: total,
                need: self.min_events,
            });
        }
        Ok(SeverityRule {
            counts: per_template,
            total_events: total,
            accepted: BTreeMap::new(),
            params: self.clone(),
        })
    }
}

impl SeverityParams {
    pub fn fit(&self, counts: &LevelCounts) -> Result<SeverityRule, SeverityError> {
        self.check_ref()?.fit(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(rows: &[(&str, &str, u64)]) -> LevelCounts {
        let mut c = LevelCounts::new();
        for (t, l, n) in rows {
            *c.entry(t.to_string())
                .or_default()
                .entry(l.to_string())
                .or_default() += n;
        }
        c
    }

    fn rule() -> SeverityRule {
        SeverityRule::params()
            .min_events(100)
            .fit(&counts(&[
                ("request ok", "INFO", 50_000),
                ("request ok", "ERROR", 3),
                ("connection refused", "ERROR", 600),
                ("disk full", "ERROR", 1),
                ("cache miss", "DEBUG", 9_000),
            ]))
            .unwrap()
    }

    #[test]
    fn routine_errors_pass_new_and_escalated_ones_do_not() {
        let r = rule();
        let flags = |t: &str, l: &str| r.score(t, l) >= r.threshold();
        assert!(!flags("connection refused", "ERROR"), "600 a day: routine");
        assert!(flags("never seen before", "ERROR"));
        assert!(flags("disk full", "ERROR"), "once in training");
        // Usually INFO, 3 of 50,003 times ERROR (under 1 %): escalated.
        assert!(flags("request ok", "ERROR"));
        assert_eq!(r.usual_level("request ok"), Some("INFO"));
        // FATAL counts only FATAL and above: never seen at FATAL.
        assert!(flags("connection refused", "FATAL"));
        // Below min_level nothing is judged, however new.
        assert_eq!(r.score("never seen before", "WARN"), 0.0);
        assert!(!flags("cache miss", "DEBUG"));
    }

    #[test]
    fn a_line_marked_normal_makes_its_template_routine_at_its_level_and_below() {
        let mut r = rule();
        let flags = |r: &SeverityRule, t: &str, l: &str| r.score(t, l) >= r.threshold();
        assert!(r.accept("disk full", "ERROR"));
        assert!(!r.accept("disk full", "ERROR"), "once");
        assert!(!flags(&r, "disk full", "ERROR"));
        // A worse level is still news, and so are other templates.
        assert!(flags(&r, "disk full", "FATAL"));
        assert!(flags(&r, "request ok", "ERROR"));
        // Nothing to learn from a line that was routine already.
        assert!(!r.accept("connection refused", "ERROR"));
        let saved: SeverityRule =
            serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(saved, r);
    }

    #[test]
    fn rarer_is_scored_higher() {
        let r = rule();
        assert!(r.score("never seen before", "ERROR") > r.score("disk full", "ERROR"));
        assert!(r.score("disk full", "ERROR") > r.score("connection refused", "ERROR"));
    }

    #[test]
    fn min_level_and_bad_params() {
        let warn = SeverityRule::params()
            .min_level("warn")
            .min_events(1)
            .fit(&counts(&[("a", "INFO", 10)]))
            .unwrap();
        assert!(warn.judges("WARN") && warn.judges("FATAL") && !warn.judges("INFO"));
        assert!(matches!(
            SeverityRule::params().min_level("LOUD").check(),
            Err(SeverityError::Level(_))
        ));
        assert!(SeverityRule::params().max_share(1.0).check().is_err());
        assert!(matches!(
            SeverityRule::params().fit(&counts(&[("a", "INFO", 10)])),
            Err(SeverityError::TooFewEvents { got: 10, .. })
        ));
    }
}

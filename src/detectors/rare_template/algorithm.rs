use std::collections::BTreeMap;

use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::RareTemplateError;
use super::hyperparams::{RareTemplateParams, RareTemplateValidParams};

/// Training records: how often each template id occurred.
pub type TemplateCounts = BTreeMap<String, u64>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RareTemplate {
    pub counts: TemplateCounts,
    pub total_events: u64,
    params: RareTemplateValidParams,
}

impl RareTemplate {
    pub fn params() -> RareTemplateParams {
        RareTemplateParams::default()
    }

    pub fn max_count(&self) -> u64 {
        self.params.max_count
    }

    /// Training count of a template (0 when never seen).
    pub fn training_count(&self, template_id: &str) -> u64 {
        self.counts.get(template_id).copied().unwrap_or(0)
    }

    /// Score: how rare the template is, as −log10 of its training frequency (never seen is
    /// scored as if seen half a time). Higher is rarer; comparable across batches.
    pub fn score(&self, template_id: &str) -> f64 {
        let c = self.training_count(template_id) as f64;
        -((c.max(0.5)) / self.total_events.max(1) as f64).log10()
    }

    /// The score at the rarity limit: a template at exactly `max_count` scores this.
    pub fn threshold(&self) -> f64 {
        -((self.params.max_count as f64).max(0.5) / self.total_events.max(1) as f64).log10()
    }

    pub fn is_rare(&self, template_id: &str) -> bool {
        self.training_count(template_id) <= self.params.max_count
    }
}

impl RareTemplateValidParams {
    pub fn fit(&self, counts: &TemplateCounts) -> Result<RareTemplate, RareTemplateError> {
        let total: u64 = counts.values().sum();
        if total < self.min_events {
            return Err(RareTemplateError::TooFewEvents {
                got: total,
                need: self.min_events,
            });
        }
        Ok(RareTemplate {
            counts: counts.clone(),
            total_events: total,
            params: self.clone(),
        })
    }
}

impl RareTemplateParams {
    pub fn fit(&self, counts: &TemplateCounts) -> Result<RareTemplate, RareTemplateError> {
        self.check_ref()?.fit(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_templates_seen_at_most_max_count_times() {
        let counts: TemplateCounts = [
            ("common".to_string(), 10_000),
            ("twice".to_string(), 2),
            ("thrice".to_string(), 3),
        ]
        .into();
        let model = RareTemplate::params()
            .max_count(2)
            .min_events(100)
            .fit(&counts)
            .unwrap();
        assert!(model.is_rare("twice"));
        assert!(model.is_rare("never-seen"));
        assert!(!model.is_rare("thrice"));
        assert!(!model.is_rare("common"));
        assert!(model.score("never-seen") > model.score("twice"));
        assert!(model.score("twice") >= model.threshold());
        assert!(model.score("common") < model.threshold());
    }

    #[test]
    fn refuses_to_judge_on_too_little_data() {
        let counts: TemplateCounts = [("a".to_string(), 5)].into();
        assert!(matches!(
            RareTemplate::params().min_events(100).fit(&counts),
            Err(RareTemplateError::TooFewEvents { got: 5, need: 100 })
        ));
    }
}

//! The rare-template detector in the pipeline: lines whose template the training range has
//! (almost) never seen.

use anyhow::Result;
use linfa::ParamGuard;
use rustc_hash::FxHashMap;
use serde_json::json;

use super::{
    RareTemplate, RareTemplateError, RareTemplateParams, RareTemplateValidParams, TemplateCounts,
};
use crate::detectors::contract::{Detector, Granularity, Scored, Trained};
use crate::detectors::saved_model::SavedModel;
use crate::detectors::scoring::ScoringInput;
use crate::detectors::settings::{Common, Params, SettingError, guarded};
use crate::detectors::training::TrainingData;

pub struct RareTemplateDetector;

/// `[detectors.rare_template]` is the algorithm's own parameters (`RareTemplateValidParams`).
impl Params for RareTemplateValidParams {
    fn default_common() -> Common {
        Common {
            enabled: true,
            granularities: vec![Granularity::Event],
            weight: 1.0,
            view: "template".into(),
        }
    }

    fn check(&self) -> Result<(), SettingError> {
        guarded(RareTemplateParams(self.clone()).check(), |_| "min_events")
    }
}

impl Detector for RareTemplateDetector {
    type Settings = RareTemplateValidParams;
    const NAME: &'static str = "rare_template";
    const SUPPORTS: &'static [Granularity] = &[Granularity::Event];

    fn train(
        &self,
        s: &RareTemplateValidParams,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained> {
        (data.step)(format!("training {granularity}/{}", Self::NAME));
        let mut counts: TemplateCounts = data
            .template_stats
            .iter()
            .map(|(id, (_, n))| (id.clone(), *n))
            .collect();
        // An operator's "normal" verdict on a rare template makes it routine: counted as if
        // seen just more often than the rarity limit allows.
        for id in &data.marked_normal_values(Granularity::Event, Self::NAME, "template_id") {
            let n = counts.entry(id.clone()).or_default();
            *n = (*n).max(s.max_count + 1);
        }
        let total: u64 = counts.values().sum();
        let model = match s.fit(&counts) {
            Ok(m) => m,
            Err(RareTemplateError::TooFewEvents { got, need }) => {
                return Ok(Trained::TooLittleData(format!(
                    "rare_template: too few events to judge template rarity yet ({got} of {need})"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let m = data.event_model(
            Self::NAME,
            &["template_id"],
            total,
            model.threshold(),
            &model,
        )?;
        Ok(Trained::Model(Box::new(m)))
    }

    fn score<'m>(
        &self,
        model: &'m SavedModel,
        input: &ScoringInput<'_>,
        out: &mut Scored<'m>,
    ) -> Result<()> {
        let rare: RareTemplate = model.fitted()?;
        let Some(ev) = input.events else {
            return Ok(());
        };
        // A batch has few distinct templates and a million lines: each template's score and
        // rarity are looked up once.
        let mut by_template: FxHashMap<&str, (f64, bool)> = FxHashMap::default();
        out.scores.reserve(ev.len());
        for i in 0..ev.len() {
            let id = ev.ids[i];
            let (score, rare_here) = *by_template
                .entry(id)
                .or_insert_with(|| (rare.score(id), rare.is_rare(id)));
            out.scores.push(ev.score(i, model, score));
            if !rare_here {
                continue;
            }
            let seen = rare.training_count(id);
            let how = if seen == 0 {
                "never seen in training".to_string()
            } else {
                format!(
                    "seen {seen} time(s) in {} training events",
                    rare.total_events
                )
            };
            out.findings.push(ev.finding(
                i,
                model,
                score,
                format!("rare template '{}' {how}", ev.template(i)),
                json!({"feature": "template_id", "template_id": id, "template": ev.template(i), "training_count": seen, "training_events": rare.total_events}),
            ));
        }
        Ok(())
    }
}

//! The severity rule in the pipeline: ERROR-or-worse lines whose template is not routine at
//! that level in training.

use anyhow::Result;
use linfa::ParamGuard;
use rustc_hash::FxHashMap;
use serde_json::json;

use super::{LevelCounts, SeverityError, SeverityParams, SeverityRule, SeverityValidParams};
use crate::detectors::contract::{Detector, Granularity, Scored, Trained};
use crate::detectors::saved_model::SavedModel;
use crate::detectors::scoring::ScoringInput;
use crate::detectors::settings::{Common, Params, SettingError, guarded};
use crate::detectors::training::TrainingData;

pub struct SeverityDetector;

/// `[detectors.severity]` is the algorithm's own parameters (`SeverityValidParams`).
impl Params for SeverityValidParams {
    fn default_common() -> Common {
        Common {
            enabled: true,
            granularities: vec![Granularity::Event],
            weight: 1.0,
            view: "template".into(),
        }
    }

    fn check(&self) -> Result<(), SettingError> {
        guarded(SeverityParams(self.clone()).check(), |e| match e {
            SeverityError::Level(_) => "min_level",
            _ => "max_share",
        })
    }
}

impl Detector for SeverityDetector {
    type Settings = SeverityValidParams;
    const NAME: &'static str = "severity";
    const SUPPORTS: &'static [Granularity] = &[Granularity::Event];

    /// Per template, its training lines at each level.
    fn train(
        &self,
        s: &SeverityValidParams,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained> {
        let too_few = "severity: too few events to tell routine errors from unusual ones yet";
        (data.step)(format!("training {granularity}/{}", Self::NAME));
        let mut counts = LevelCounts::new();
        let mut events = 0u64;
        data.event_windows(&["template_id", "level"], |_, df| {
            // Counted per window by the borrowed pair (a window has a few hundred distinct
            // pairs), then added to the totals: no string is copied per event.
            let ids = df.column("template_id")?.str()?;
            let levels = df.column("level")?.str()?;
            let mut window: FxHashMap<(&str, &str), u64> = FxHashMap::default();
            for (id, level) in ids.iter().zip(levels.iter()) {
                let (Some(id), Some(level)) = (id, level) else {
                    continue;
                };
                events += 1;
                *window.entry((id, level)).or_default() += 1;
            }
            for ((id, level), n) in window {
                *counts
                    .entry(id.to_string())
                    .or_default()
                    .entry(level.to_string())
                    .or_default() += n;
            }
            Ok(())
        })?;
        if events == 0 {
            return Ok(Trained::TooLittleData(too_few.into()));
        }
        let mut rule = match s.fit(&counts) {
            Ok(r) => r,
            Err(SeverityError::TooFewEvents { got, need }) => {
                return Ok(Trained::TooLittleData(format!(
                    "{too_few} ({got} of {need})"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        // Lines operators marked normal: their template at their level is routine.
        for e in data.normal_evidence("level") {
            if let (Some(id), Some(level)) = (e["template_id"].as_str(), e["level"].as_str()) {
                rule.accept(id, level);
            }
        }
        let m = data.event_model(
            Self::NAME,
            &["template_id", "level"],
            rule.total_events,
            rule.threshold(),
            &rule,
        )?;
        Ok(Trained::Model(Box::new(m)))
    }

    fn score<'m>(
        &self,
        model: &'m SavedModel,
        input: &ScoringInput<'_>,
        out: &mut Scored<'m>,
    ) -> Result<()> {
        let rule: SeverityRule = model.fitted()?;
        let Some(ev) = input.events else {
            return Ok(());
        };
        for i in 0..ev.len() {
            let (id, level) = (ev.ids[i], ev.levels[i]);
            // Lines below min_level are not judged and get no score row (06-report counts
            // them as 0): a million rows of zeros would cost more than the rule itself.
            if !rule.judges(level) {
                continue;
            }
            let score = rule.score(id, level);
            out.scores.push(ev.score(i, model, score));
            if !Self::CROSSING.crosses(score, rule.threshold()) {
                continue;
            }
            let at_level = rule.at_or_above(id, level);
            let all = rule.occurrences(id);
            let or_above = if level == "FATAL" { "" } else { " or above" };
            let how = match rule.usual_level(id) {
                None => "a template never seen in training".to_string(),
                Some(usual) if usual != level => format!(
                    "a template logged at {level}{or_above} {at_level} time(s) in training, {all} time(s) in all (usually at {usual})"
                ),
                Some(_) => format!(
                    "a template logged {at_level} time(s) at {level}{or_above} in {} training events",
                    rule.total_events
                ),
            };
            out.findings.push(ev.finding(
                i,
                model,
                score,
                format!("{level} line '{}': {how}", ev.template(i)),
                json!({"feature": "level", "level": level, "template_id": id, "template": ev.template(i), "training_at_level": at_level, "training_count": all, "usual_level": rule.usual_level(id), "routine_limit": rule.limit(id)}),
            ));
        }
        Ok(())
    }
}

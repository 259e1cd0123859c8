//! The invariants detector in the pipeline: sessions that break the count relations normal
//! sessions keep, or contain an event almost no session has.

use anyhow::Result;
use linfa::ParamGuard;
use serde_json::json;

use super::{
    InvariantsError, InvariantsParams, InvariantsValidParams, ServiceInvariants, Violation,
};
use crate::detectors::contract::{Detector, Granularity, Scored, Trained};
use crate::detectors::explain::template_name;
use crate::detectors::saved_model::SavedModel;
use crate::detectors::scoring::{ScoringInput, SessionColumns};
use crate::detectors::settings::{Common, Params, SettingError, guarded};
use crate::detectors::training::TrainingData;
use crate::features;

pub struct InvariantsDetector;

/// `[detectors.invariants]` is the algorithm's own parameters (`InvariantsValidParams`).
impl Params for InvariantsValidParams {
    fn default_common() -> Common {
        Common {
            enabled: true,
            granularities: vec![Granularity::Session],
            weight: 1.0,
            view: "counts".into(),
        }
    }

    fn check(&self) -> Result<(), SettingError> {
        guarded(InvariantsParams(self.clone()).check(), |e| match e {
            InvariantsError::Share { name, .. } => match *name {
                "min_support" => "min_support",
                "min_frequency" => "min_frequency",
                _ => "rare_share",
            },
            _ => "max_ratio",
        })
    }
}

impl Detector for InvariantsDetector {
    type Settings = InvariantsValidParams;
    const NAME: &'static str = "invariants";
    const SUPPORTS: &'static [Granularity] = &[Granularity::Session];

    fn train(
        &self,
        s: &InvariantsValidParams,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained> {
        let too_few = "invariants: too few sessions to learn count invariants yet".to_string();
        let Some(sessions) = &data.sessions else {
            return Ok(Trained::TooLittleData(too_few));
        };
        (data.step)(format!("training {granularity}/{}", Self::NAME));
        let sequences = features::strings(&sessions.sessions, "template_sequence")?;
        let services = features::strings(&sessions.sessions, "service")?;
        let mut model = match s.fit_by_service(
            services
                .iter()
                .zip(&sequences)
                .map(|(service, s)| (service.as_str(), features::template_counts(s))),
        ) {
            Ok(m) => m,
            Err(InvariantsError::TooFewSessions { .. }) => {
                return Ok(Trained::TooLittleData(too_few));
            }
            Err(e) => return Err(e.into()),
        };
        // A way of breaking an invariant that operators marked normal is accepted: the next
        // session that breaks it with the same counts is not flagged. Every invariant a
        // session marked normal breaks (when it is among the training sessions), and every
        // one named in a marked finding's evidence.
        let mut accepted = Vec::new();
        for i in data.normal_rows(Granularity::Session)? {
            let counts = features::template_counts(&sequences[i]);
            for v in model.for_service(&services[i]).check(&counts) {
                if let Violation::Broken {
                    invariant,
                    count_a,
                    count_b,
                } = v
                {
                    accepted.push((invariant.a, invariant.b, count_a, count_b));
                }
            }
        }
        for (a, b, ca, cb) in accepted {
            model.accept(&a, &b, ca, cb);
        }
        for e in data.normal_evidence("invariant") {
            if let (Some(a), Some(b), Some(ca), Some(cb)) = (
                e["a"].as_str(),
                e["b"].as_str(),
                e["count_a"].as_u64(),
                e["count_b"].as_u64(),
            ) {
                model.accept(a, b, ca, cb);
            }
        }
        tracing::info!(
            invariants = model.all.invariants.len(),
            services = model.by_service.len(),
            sessions = model.sessions(),
            "count invariants mined"
        );
        let mut m = data.model(
            granularity,
            Self::NAME,
            vec!["template_sequence".into()],
            model.sessions(),
            model.threshold(),
            &model,
        )?;
        m.templates = data.templates.clone();
        Ok(Trained::Model(Box::new(m)))
    }

    fn score<'m>(
        &self,
        model: &'m SavedModel,
        input: &ScoringInput<'_>,
        out: &mut Scored<'m>,
    ) -> Result<()> {
        let by_service: ServiceInvariants = model.fitted()?;
        let Some(cols) = SessionColumns::of(input)? else {
            return Ok(());
        };
        let (keys, services) = (&cols.keys, &cols.services);
        let name = |id: &str| template_name(&model.templates, id);
        let pct = |share: f64| format!("{:.1}%", 100.0 * share);
        for i in 0..cols.len() {
            let inv = by_service.for_service(&services[i]);
            let violations = inv.check(&features::template_counts(&cols.sequences[i]));
            let score = violations.first().map(|v| inv.score_of(v)).unwrap_or(0.0);
            out.scores.push(cols.score(i, model, score));
            let Some(strongest) = violations.first() else {
                continue;
            };
            let what = match strongest {
                Violation::Broken {
                    invariant: v,
                    count_a,
                    count_b,
                } => format!(
                    "{} × count of {} = {} × count of {} holds in {} of training sessions, here {} vs {}",
                    v.p,
                    name(&v.a),
                    v.q,
                    name(&v.b),
                    pct(v.support),
                    count_a,
                    count_b
                ),
                Violation::Rare {
                    template,
                    sessions_with,
                } => format!(
                    "contains {}, present in {} of {} training sessions{} ({})",
                    name(template),
                    sessions_with,
                    inv.sessions,
                    if by_service.by_service.contains_key(&services[i]) {
                        format!(" of {}", services[i])
                    } else {
                        String::new()
                    },
                    pct(*sessions_with as f64 / inv.sessions.max(1) as f64)
                ),
            };
            let evidence: Vec<serde_json::Value> = violations
                .iter()
                .take(5)
                .map(|v| match v {
                    Violation::Broken {
                        invariant,
                        count_a,
                        count_b,
                    } => json!({"feature": "invariant", "a": invariant.a, "b": invariant.b, "p": invariant.p, "q": invariant.q, "support": invariant.support, "count_a": count_a, "count_b": count_b}),
                    Violation::Rare {
                        template,
                        sessions_with,
                    } => json!({"feature": "rare_template", "template_id": template, "template": model.templates.get(template), "training_sessions_with": sessions_with, "training_sessions": inv.sessions}),
                })
                .collect();
            let reason = format!(
                "{what}, in session {} ({}; {} violation(s))",
                keys[i],
                services[i],
                violations.len()
            );
            out.findings
                .push(cols.finding(i, model, score, reason, evidence));
        }
        Ok(())
    }
}

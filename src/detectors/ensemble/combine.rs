//! The ensemble in `05-detect`: one verdict per entity from the other detectors' scores.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{EnsembleValidParams, NAME, Vote};
use crate::detectors::contract::{EntityScore, Finding, Granularity};

/// One `ensemble` finding per entity whose weighted, calibrated evidence reaches 1, and
/// the ensemble's score for every entity some detector flagged (appended to `scores`;
/// every other entity's ensemble score is 0).
pub fn combine<'m>(
    params: &EnsembleValidParams,
    findings: &[Finding],
    scores: &mut Vec<EntityScore<'m>>,
) -> Vec<Finding> {
    // Only entities some detector flagged can have evidence: the ensemble judges those
    // and leaves the rest (nearly every entity) alone, scoring 0.
    let mut flagged: HashMap<(Granularity, &str, i64), Vec<&Finding>> = HashMap::new();
    for f in findings {
        flagged
            .entry((f.granularity, f.entity_key.as_str(), f.start_ms))
            .or_default()
            .push(f);
    }
    let mut scored_by: BTreeMap<Granularity, BTreeSet<&str>> = BTreeMap::new();
    let mut votes: HashMap<(Granularity, &str, i64), Vec<Vote>> = HashMap::new();
    for s in scores.iter() {
        scored_by
            .entry(s.granularity)
            .or_default()
            .insert(s.detector);
        let key = (s.granularity, &*s.entity_key, s.start_ms);
        if flagged.contains_key(&key) {
            votes.entry(key).or_default().push(Vote {
                detector: s.detector,
                score: s.score,
                threshold: s.threshold,
            });
        }
    }
    let mut out = Vec::new();
    let mut ensemble_scores = Vec::new();
    // Sorted so the table's rows come out in the same order on every run.
    let mut keys: Vec<&(Granularity, &str, i64)> = flagged.keys().collect();
    keys.sort();
    for key in keys {
        let (granularity, entity_key, start_ms) = *key;
        let members = &flagged[key];
        let Some(entity_votes) = votes.get(key) else {
            continue;
        };
        let verdict = params.combine(entity_votes, scored_by[&granularity].iter().copied());
        ensemble_scores.push(EntityScore {
            granularity,
            entity_key: entity_key.into(),
            start_ms,
            detector: NAME,
            score: verdict.score,
            threshold: 1.0,
        });
        if !verdict.is_anomalous() {
            continue;
        }
        let lead = verdict.contributions[0].detector.as_str();
        let Some(strongest) = members.iter().find(|f| f.detector == lead) else {
            continue;
        };
        let by: Vec<String> = verdict
            .contributions
            .iter()
            .map(|c| {
                if c.counted {
                    format!(
                        "{} ({:.2}× its threshold, weight {})",
                        c.detector, c.calibrated, c.weight
                    )
                } else {
                    format!(
                        "{} ({:.2}×, not added: same {} evidence)",
                        c.detector, c.calibrated, c.view
                    )
                }
            })
            .collect();
        out.push(Finding {
            granularity: strongest.granularity,
            entity_key: entity_key.to_string(),
            service: strongest.service.clone(),
            start_ms,
            end_ms: members.iter().map(|f| f.end_ms).max().unwrap_or(start_ms),
            detector: NAME.to_string(),
            score: verdict.score,
            threshold: 1.0,
            reason: format!(
                "evidence {:.2} from {}; {}",
                verdict.score,
                by.join(", "),
                strongest.reason
            ),
            top: strongest.top.clone(),
            samples: strongest.samples.clone(),
            model_version: strongest.model_version.clone(),
            baseline_group: None,
            contributions: Some(verdict.contributions),
        });
    }
    scores.extend(ensemble_scores);
    out
}

//! The ensemble in `05-detect`: one verdict per entity from the other detectors' scores.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::{EnsembleValidParams, NAME, Vote};
use crate::detectors::contract::{EntityScore, Finding, Granularity};

/// Entity key as the ensemble files it: granularity, key, start.
type Entity = (Granularity, String, i64);

/// The ensemble's evidence, gathered as `05-detect` scores the batch chunk by chunk: the
/// votes on every entity some detector flagged, and which detectors scored each granularity
/// at all (a detector that scored nothing in the batch does not count as silent). Every
/// score of an entity comes from the chunk that holds it, with its findings, so a chunk's
/// scores can be written and dropped once [`Ballots::add`] has seen them.
#[derive(Default)]
pub struct Ballots<'m> {
    scored_by: BTreeMap<Granularity, BTreeSet<&'m str>>,
    votes: HashMap<Entity, Vec<Vote<'m>>>,
}

impl<'m> Ballots<'m> {
    /// One chunk's findings and scores.
    pub fn add(&mut self, findings: &[Finding], scores: &[EntityScore<'m>]) {
        // Only entities some detector flagged can have evidence: the ensemble judges those
        // and leaves the rest (nearly every entity) alone, scoring 0.
        let flagged: HashSet<(Granularity, &str, i64)> = findings
            .iter()
            .map(|f| (f.granularity, f.entity_key.as_str(), f.start_ms))
            .collect();
        // A chunk's scores come a detector at a time: its name is filed once per run of
        // them, not per entity (a million events' scores filed a million times).
        let mut filed: Option<(Granularity, &str)> = None;
        for s in scores {
            if filed != Some((s.granularity, s.detector)) {
                self.scored_by
                    .entry(s.granularity)
                    .or_default()
                    .insert(s.detector);
                filed = Some((s.granularity, s.detector));
            }
            if !flagged.is_empty() && flagged.contains(&(s.granularity, &*s.entity_key, s.start_ms))
            {
                self.votes
                    .entry((s.granularity, s.entity_key.to_string(), s.start_ms))
                    .or_default()
                    .push(Vote {
                        detector: s.detector,
                        score: s.score,
                        threshold: s.threshold,
                    });
            }
        }
    }

    /// One `ensemble` finding per entity whose weighted, calibrated evidence reaches 1, and
    /// the ensemble's score for every entity some detector flagged (every other entity's
    /// ensemble score is 0). `findings` are all the batch's findings.
    pub fn combine(
        self,
        params: &EnsembleValidParams,
        findings: &[Finding],
    ) -> (Vec<Finding>, Vec<EntityScore<'m>>) {
        let mut flagged: HashMap<Entity, Vec<&Finding>> = HashMap::default();
        for f in findings {
            flagged
                .entry((f.granularity, f.entity_key.clone(), f.start_ms))
                .or_default()
                .push(f);
        }
        let (scored_by, votes) = (self.scored_by, self.votes);
        let mut out = Vec::new();
        let mut ensemble_scores = Vec::new();
        // Sorted so the table's rows come out in the same order on every run.
        let mut keys: Vec<&Entity> = flagged.keys().collect();
        keys.sort();
        for key in keys {
            let (granularity, entity_key, start_ms) = (key.0, key.1.as_str(), key.2);
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
        (out, ensemble_scores)
    }
}

/// The ensemble over one batch scored in one piece: its verdicts, with its scores appended
/// to `scores`.
pub fn combine<'m>(
    params: &EnsembleValidParams,
    findings: &[Finding],
    scores: &mut Vec<EntityScore<'m>>,
) -> Vec<Finding> {
    let mut ballots = Ballots::default();
    ballots.add(findings, scores);
    let (verdicts, ensemble_scores) = ballots.combine(params, findings);
    scores.extend(ensemble_scores);
    verdicts
}

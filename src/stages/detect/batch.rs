//! Scoring a batch: every model over the batch's views a chunk at a time ([`super::chunks`]),
//! the ensemble over their findings, and `detections/scores` written part by part as chunks
//! are scored. Only a chunk's views and scores are in memory at once, with the ensemble's
//! ballots, the findings (a few per thousand entities) and their sample lines.
//!
//! On an open day a run carries over what earlier runs scored for good ([`super::progress`]):
//! events before `Resume::from` are not read, and a session part 03-gold left as it was
//! (the same bytes) is not scored again; their scores parts are copied as they are, and
//! 05-detect keeps their verdicts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use super::progress::ScoredSessions;
use super::{chunks, rows, samples};
use crate::detectors::ensemble;
use crate::detectors::scoring::ScoringInput;
use crate::detectors::{AnyDetector, EntityScore, Finding, Granularity, SavedModel, Scored};
use crate::lake::{Layer, StagedPartition, tables};
use crate::stages::{Context, timed};

/// Where a run's scoring starts, and what it carries over.
#[derive(Default)]
pub struct Resume {
    /// Events scored for good by earlier runs, not read again.
    pub from: u64,
    /// Events gold has written for good (the rest, its tail, are scored but not kept).
    pub stable: u64,
    /// Positions of the scores parts holding the scores of the first `from` events.
    pub event_parts: Vec<usize>,
    /// Session parts scored by an earlier run, by their digest.
    pub sessions: Vec<ScoredSessions>,
}

/// What scoring the batch came to.
pub struct Scoring {
    pub scored: u64,
    pub findings: Vec<Finding>,
    pub collected: Option<samples::Collector>,
    /// The events scored, when the run resumed: earlier verdicts on them go.
    pub event_keys: FxHashSet<Arc<str>>,
    /// The sessions scored, when some session part was carried over: the same.
    pub session_keys: FxHashSet<Arc<str>>,
    /// Whether some session part was carried over (its sessions' verdicts are kept).
    pub sessions_carried: bool,
    /// What the next run may carry over.
    pub event_parts: Vec<usize>,
    pub sessions: Vec<ScoredSessions>,
}

/// A detector model and its detector.
type Judge<'m> = (&'m SavedModel, &'static dyn AnyDetector);

/// The batch being scored.
struct Batch<'l, 'm> {
    scores_out: StagedPartition<'l>,
    ballots: ensemble::Ballots<'m>,
    findings: Vec<Finding>,
    scored: u64,
    spent: BTreeMap<String, std::time::Duration>,
    collector: Option<samples::Collector>,
}

/// Score `date` with `models` (see the module docs).
pub fn score_batch(
    ctx: &Context,
    date: NaiveDate,
    models: &[SavedModel],
    resume: &Resume,
) -> Result<Scoring> {
    let old = ctx
        .lake
        .part_files(Layer::Detections, tables::SCORES, &ctx.source, date)?;
    let mut batch = Batch {
        scores_out: ctx
            .lake
            .stage_partition(Layer::Detections, tables::SCORES)?,
        ballots: ensemble::Ballots::default(),
        findings: Vec::new(),
        scored: 0,
        spent: BTreeMap::new(),
        collector: None,
    };
    let mut out = Scoring {
        scored: 0,
        findings: Vec::new(),
        collected: None,
        event_keys: FxHashSet::default(),
        session_keys: FxHashSet::default(),
        sessions_carried: false,
        event_parts: batch.copy_parts(&old, &resume.event_parts)?,
        sessions: Vec::new(),
    };
    let mut tail_keys = FxHashSet::default();
    // The session part of each session scored now: its ensemble score goes with it.
    let mut part_of_session = FxHashMap::default();
    for granularity in Granularity::ALL {
        let judging: Vec<Judge<'_>> = models
            .iter()
            .filter(|m| m.granularity == granularity)
            .filter_map(|m| crate::detectors::find(&m.detector).map(|d| (m, d)))
            .collect();
        if judging.is_empty() {
            continue;
        }
        let t0 = std::time::Instant::now();
        match granularity {
            Granularity::Window => {
                chunks::each_chunk(ctx, date, (granularity, 0..0), false, &mut |input, _| {
                    batch.chunk(&judging, granularity, input, None, None)?;
                    Ok(())
                })?;
            }
            Granularity::Session => {
                let sessions = batch.sessions(ctx, date, &judging, (&old, &resume.sessions))?;
                part_of_session = sessions.part_of_session;
                out.session_keys = sessions.keys;
                out.sessions = sessions.parts;
                out.sessions_carried = sessions.carried;
            }
            Granularity::Event => {
                // Events come last: the window and session findings are known by then.
                batch.collector = Some(samples::Collector::new(&batch.findings));
                let mut row = resume.from;
                let stable = usize::try_from(resume.stable).unwrap_or(usize::MAX);
                let chunk_of = (granularity, resume.from as usize..stable);
                chunks::each_chunk(ctx, date, chunk_of, true, &mut |input, events| {
                    // A chunk lies wholly in the events gold wrote for good, or in its tail.
                    row += input.rows(granularity).unwrap_or(0);
                    let stable = row <= resume.stable;
                    let keys = match (stable, resume.from > 0) {
                        (false, _) => Some(&mut tail_keys),
                        (true, true) => Some(&mut out.event_keys),
                        (true, false) => None,
                    };
                    let written = batch.chunk(&judging, granularity, input, events, keys)?;
                    if stable {
                        out.event_parts.extend(written);
                    }
                    Ok(())
                })?;
            }
        }
        tracing::debug!(
            ms = t0.elapsed().as_millis() as u64,
            "05-detect: {granularity} views read and scored"
        );
    }
    for (what, t) in &batch.spent {
        tracing::debug!(ms = t.as_millis() as u64, "05-detect: {what}");
    }
    let ensemble_scores = batch.ensemble(ctx);
    batch.write_ensemble(ensemble_scores, &tail_keys, &part_of_session, &mut out)?;
    timed("05-detect: write scores", || {
        batch.scores_out.commit(&ctx.source, date)
    })?;
    out.event_keys.extend(tail_keys);
    out.scored = batch.scored;
    out.findings = batch.findings;
    out.collected = batch.collector;
    Ok(out)
}

/// The session parts as one run scored or carried them over.
struct SessionsScored {
    /// Every part's digest and scores parts, in the partition's order.
    parts: Vec<ScoredSessions>,
    /// Whether some part was carried over.
    carried: bool,
    /// The sessions scored now, and the part each is in.
    keys: FxHashSet<Arc<str>>,
    part_of_session: FxHashMap<Arc<str>, usize>,
}

impl<'m> Batch<'_, 'm> {
    /// Score `date`'s session parts with `judging`, but for those scored by an earlier run
    /// (`scored`, by digest), whose scores parts are copied from the last run's (`old`).
    fn sessions(
        &mut self,
        ctx: &Context,
        date: NaiveDate,
        judging: &[Judge<'m>],
        (old, scored): (&[PathBuf], &[ScoredSessions]),
    ) -> Result<SessionsScored> {
        let mut out = SessionsScored {
            parts: Vec::new(),
            carried: false,
            keys: FxHashSet::default(),
            part_of_session: FxHashMap::default(),
        };
        for (k, part) in chunks::session_parts(ctx, date)?.iter().enumerate() {
            let digest = digest_of(part)?;
            if let Some(earlier) = scored.iter().find(|s| s.digest == digest) {
                let score_parts = self.copy_parts(old, &earlier.score_parts)?;
                out.parts.push(ScoredSessions {
                    digest,
                    score_parts,
                });
                out.carried = true;
                continue;
            }
            let mut keys = FxHashSet::default();
            let mut score_parts = Vec::new();
            chunks::session_part_chunks(ctx, part, &mut |input, _| {
                let written =
                    self.chunk(judging, Granularity::Session, input, None, Some(&mut keys))?;
                score_parts.extend(written);
                Ok(())
            })?;
            out.part_of_session
                .extend(keys.iter().map(|key| (key.clone(), k)));
            out.keys.extend(keys);
            out.parts.push(ScoredSessions {
                digest,
                score_parts,
            });
        }
        Ok(out)
    }

    /// Write the ensemble's scores with their entities' scores where those are carried over
    /// (events written for good, each session part scored now), recording their positions in
    /// `out`; the last part holds the others (an empty one keeps a batch with nothing scored
    /// from looking unscored).
    fn write_ensemble(
        &mut self,
        scores: Vec<EntityScore<'m>>,
        tail_keys: &FxHashSet<Arc<str>>,
        part_of_session: &FxHashMap<Arc<str>, usize>,
        out: &mut Scoring,
    ) -> Result<()> {
        let mut by_part: BTreeMap<usize, Vec<EntityScore<'_>>> = BTreeMap::new();
        let mut events = Vec::new();
        let mut last = Vec::new();
        for s in scores {
            match s.granularity {
                Granularity::Event if !tail_keys.contains(&s.entity_key) => events.push(s),
                Granularity::Session => match part_of_session.get(&s.entity_key) {
                    Some(&k) => by_part.entry(k).or_default().push(s),
                    None => last.push(s),
                },
                _ => last.push(s),
            }
        }
        if !events.is_empty() {
            out.event_parts.push(self.scores_out.len());
            self.scores_out.write(&mut rows::scores_frame(&events)?)?;
        }
        for (k, scores) in by_part {
            out.sessions[k].score_parts.push(self.scores_out.len());
            self.scores_out.write(&mut rows::scores_frame(&scores)?)?;
        }
        if !last.is_empty() || self.scores_out.is_empty() {
            self.scores_out.write(&mut rows::scores_frame(&last)?)?;
        }
        Ok(())
    }

    /// Copy the scores parts at `positions` of the last run's partition (`old`); their
    /// positions in this run's.
    fn copy_parts(&mut self, old: &[PathBuf], positions: &[usize]) -> Result<Vec<usize>> {
        let mut now = Vec::with_capacity(positions.len());
        for &p in positions {
            now.push(self.scores_out.len());
            self.scores_out.copy(&old[p])?;
        }
        Ok(now)
    }

    /// Score one chunk with every model of `judging`, file its ballots, keep its sample
    /// lines (events), write its scores part (its position, if any) and add the keys scored
    /// to `keys`.
    fn chunk(
        &mut self,
        judging: &[Judge<'m>],
        granularity: Granularity,
        input: &ScoringInput<'_>,
        events: Option<&polars::prelude::DataFrame>,
        keys: Option<&mut FxHashSet<Arc<str>>>,
    ) -> Result<Option<usize>> {
        let Some(rows) = input.rows(granularity) else {
            return Ok(None);
        };
        // Detectors judge a chunk independently, so they score it in parallel; their
        // outputs are gathered in registry order, as if they had run one after another.
        // Sample lines are marked meanwhile, from what was flagged before the chunk.
        let collector = self.collector.as_ref();
        let (each, marked) = rayon::join(
            || score_chunk(judging, input, rows),
            || match (collector, events) {
                (Some(c), Some(events)) => c.mark(events).map(|m| Some((m, events))),
                _ => Ok(None),
            },
        );
        let mut out = Scored {
            scores: Vec::with_capacity(rows as usize * judging.len()),
            findings: Vec::new(),
        };
        for (&(model, _), (one, took)) in judging.iter().zip(each?) {
            self.scored += rows;
            out.scores.extend(one.scores);
            out.findings.extend(one.findings);
            *self
                .spent
                .entry(format!("score {}/{}", model.granularity, model.detector))
                .or_default() += took;
        }
        // The chunk's score rows are laid out on one core while the other keeps its
        // sample lines and files its ballots: each alone kept the other core idle.
        let marked = marked?;
        let (ballots, collector) = (&mut self.ballots, &mut self.collector);
        let (kept, frame) = rayon::join(
            || -> Result<Option<std::time::Duration>> {
                ballots.add(&out.findings, &out.scores);
                let Some((c, (marked, events))) = collector.as_mut().zip(marked) else {
                    return Ok(None);
                };
                let t = std::time::Instant::now();
                c.keep(events, marked, &out.findings)?;
                Ok(Some(t.elapsed()))
            },
            || {
                (!out.scores.is_empty())
                    .then(|| rows::scores_frame(&out.scores))
                    .transpose()
            },
        );
        if let Some(took) = kept? {
            *self.spent.entry("keep samples".into()).or_default() += took;
        }
        if let Some(keys) = keys {
            keys.extend(out.scores.iter().map(|s| s.entity_key.clone()));
        }
        self.findings.extend(out.findings);
        let Some(mut frame) = frame? else {
            return Ok(None);
        };
        let at = self.scores_out.len();
        self.scores_out.write(&mut frame)?;
        Ok(Some(at))
    }

    /// The ensemble's verdicts (added to the findings) and its scores.
    fn ensemble(&mut self, ctx: &Context) -> Vec<EntityScore<'m>> {
        let (enabled, params) = ctx.settings.detectors.ensemble();
        if !enabled {
            return Vec::new();
        }
        let ballots = std::mem::take(&mut self.ballots);
        let (verdicts, scores) = ballots.combine(params, &self.findings);
        self.findings.extend(verdicts);
        scores
    }
}

/// Every model of `judging` scores one chunk, in parallel: each one's scores and findings,
/// with the time it took, in `judging`'s order.
fn score_chunk<'m>(
    judging: &[Judge<'m>],
    input: &ScoringInput<'_>,
    rows: u64,
) -> Result<Vec<(Scored<'m>, std::time::Duration)>> {
    judging
        .par_iter()
        .map(|&(model, detector)| {
            let t = std::time::Instant::now();
            let mut one = Scored {
                scores: Vec::with_capacity(rows as usize),
                findings: Vec::new(),
            };
            detector.score(model, input, &mut one).with_context(|| {
                format!("scoring with {}/{}", model.granularity, model.detector)
            })?;
            Ok((one, t.elapsed()))
        })
        .collect()
}

/// What names a session part's content: a digest of its two files' bytes (03-gold copies a
/// part it leaves as it was byte for byte).
fn digest_of((features, counts): &(PathBuf, PathBuf)) -> Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for file in [features, counts] {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(hasher
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect())
}

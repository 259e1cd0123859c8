use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::LstmError;
use super::hyperparams::LstmValidParams;
use super::network::{Network, Samples, Shape, Weights, train};

/// A fitted next-event model: the events it knows (by template id), the network's weights,
/// the (history, event) steps operators vouched for, and how training went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextEvent {
    pub vocabulary: Vec<String>,
    weights: BTreeMap<String, Weights>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    accepted: BTreeSet<String>,
    /// Training events, distinct (history, next event) pairs trained on, the last epoch's
    /// mean loss, and the seconds it took.
    pub events: usize,
    pub pairs: usize,
    pub loss: f64,
    pub seconds: f64,
    /// The g in use: `top_g`, or more where `max_flagged_share` asked for it.
    pub g: usize,
    params: LstmValidParams,
}

/// A session's least expected step: its position (0-based; the session's length is its END),
/// the event seen (`None`: END), that event's rank among the predictions (0 = most likely;
/// the vocabulary's size for an event the model has never seen), the `top_g` events expected
/// (`None`: END), and the score rank / g (≥ 1 is anomalous).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub position: usize,
    pub seen: Option<String>,
    pub rank: usize,
    pub expected: Vec<Option<String>>,
    pub score: f64,
}

impl NextEvent {
    fn shape(&self) -> Shape {
        shape(self.vocabulary.len(), &self.params)
    }

    pub fn top_g(&self) -> usize {
        self.g
    }

    pub fn window(&self) -> usize {
        self.params.window
    }

    /// The network's input ids of `events`: an event it has not seen is `v`.
    fn ids(&self, index: &FxHashMap<&str, u32>, events: &[&str]) -> Vec<u32> {
        let v = self.vocabulary.len() as u32;
        events
            .iter()
            .map(|e| index.get(e).copied().unwrap_or(v))
            .collect()
    }

    /// The least expected step of each session (every session has one: even an empty
    /// session has its END), scored in batches through the network. The events expected
    /// are listed for that step only.
    pub fn judge(&self, sessions: &[Vec<&str>]) -> Result<Vec<Option<Step>>, LstmError> {
        let net = Network::load(&self.weights, self.shape())?;
        let index = index_of(&self.vocabulary);
        let v = self.vocabulary.len();
        let w = self.params.window;
        let mut out = Vec::with_capacity(sessions.len());
        for chunk in sessions.chunks(512) {
            let (mut histories, mut next, mut owner) = (Vec::new(), Vec::new(), Vec::new());
            for (s, events) in chunk.iter().enumerate() {
                for (history, event) in pairs(&self.ids(&index, events), w, v) {
                    histories.extend(history);
                    next.push(event);
                    owner.push(s);
                }
            }
            let scores = net.forward(&histories, w)?.to_vec2::<f32>()?;
            // Per session: its worst step's (rank, row, position).
            let mut worst: Vec<Option<(usize, usize, usize)>> = vec![None; chunk.len()];
            let mut position = vec![0usize; chunk.len()];
            for (k, row) in scores.iter().enumerate() {
                let s = owner[k];
                let rank = self.rank(row, &histories[k * w..(k + 1) * w], next[k]);
                if worst[s].is_none_or(|(old, ..)| rank > old) {
                    worst[s] = Some((rank, k, position[s]));
                }
                position[s] += 1;
            }
            out.extend(worst.into_iter().enumerate().map(|(s, worst)| {
                worst.map(|(rank, k, at)| self.step(&scores[k], rank, chunk[s].get(at), at))
            }));
        }
        Ok(out)
    }

    /// The rank of the event `next` (an output id, or [`UNSEEN`]) among the network's
    /// scores `row` after `history`: 0 for the most likely, and for a step operators
    /// vouched for; past every event for an unseen one.
    fn rank(&self, row: &[f32], history: &[u32], next: u32) -> usize {
        if !self.accepted.is_empty() && self.accepted.contains(&step_key(history, next)) {
            0
        } else if next == UNSEEN {
            row.len()
        } else {
            row.iter().filter(|&&x| x > row[next as usize]).count()
        }
    }

    /// The step at `position` with its `rank` among the scores `row`; `seen` names the
    /// event (`None`: END).
    fn step(&self, row: &[f32], rank: usize, seen: Option<&&str>, position: usize) -> Step {
        let v = self.vocabulary.len();
        let name = |class: usize| (class < v).then(|| self.vocabulary[class].clone());
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        Step {
            position,
            seen: seen.map(|s| s.to_string()),
            rank,
            expected: order.into_iter().take(self.g).map(name).collect(),
            score: rank as f64 / self.g as f64,
        }
    }

    /// Learn an operator's "normal" verdict on a session: each step outside the top g
    /// becomes an expected one after that history. Whether anything changed.
    pub fn accept_session(&mut self, events: &[&str]) -> Result<bool, LstmError> {
        let (v, w) = (self.vocabulary.len(), self.params.window);
        let ids = self.ids(&index_of(&self.vocabulary), events);
        let steps: Vec<(Vec<u32>, u32)> = pairs(&ids, w, v).collect();
        let histories: Vec<u32> = steps.iter().flat_map(|s| s.0.iter().copied()).collect();
        let net = Network::load(&self.weights, self.shape())?;
        let scores = net.forward(&histories, w)?.to_vec2::<f32>()?;
        let mut changed = false;
        for ((history, event), row) in steps.iter().zip(&scores) {
            if self.rank(row, history, *event) >= self.g {
                changed |= self.accepted.insert(step_key(history, *event));
            }
        }
        Ok(changed)
    }
}

/// Each event's id: its place in the vocabulary.
fn index_of(vocabulary: &[String]) -> FxHashMap<&str, u32> {
    vocabulary
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i as u32))
        .collect()
}

impl NextEvent {
    /// The smallest g that flags at most `max_flagged_share` of `sessions`: each distinct
    /// session's least expected rank, weighted by how often it occurs.
    fn g_for_share(&self, sessions: &[Vec<&str>]) -> Result<usize, LstmError> {
        let mut counts: BTreeMap<&[&str], f64> = BTreeMap::new();
        for s in sessions {
            *counts.entry(s.as_slice()).or_default() += 1.0;
        }
        let distinct: Vec<Vec<&str>> = counts.keys().map(|s| s.to_vec()).collect();
        let mut ranks: Vec<(usize, f64)> = self
            .judge(&distinct)?
            .iter()
            .zip(counts.values())
            .map(|(step, &n)| (step.as_ref().map_or(0, |s| s.rank), n))
            .collect();
        ranks.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        let total: f64 = ranks.iter().map(|r| r.1).sum();
        // Walking down from the worst rank: g must exceed every rank of the sessions past
        // the allowed share.
        let mut flagged = 0.0;
        for (rank, n) in ranks {
            flagged += n;
            if flagged > self.params.max_flagged_share * total {
                return Ok(rank + 1);
            }
        }
        Ok(1)
    }
}

/// The network's shape for a vocabulary of `v` events.
fn shape(v: usize, p: &LstmValidParams) -> Shape {
    Shape {
        inputs: v + 2,
        outputs: v + 1,
        embedding: p.embedding,
        hidden: p.hidden,
    }
}

fn step_key(history: &[u32], next: u32) -> String {
    let h: Vec<String> = history.iter().map(u32::to_string).collect();
    format!("{} -> {next}", h.join(" "))
}

/// The output id of an event the model has never seen: past every event it can predict.
const UNSEEN: u32 = u32::MAX;

/// Each step of a session of input ids (`v`: an event the model has not seen; `v + 1`: PAD):
/// the `w` ids before it, padded, and the output id of the event it is (`v`: END, the step
/// after the last event; [`UNSEEN`] for an unseen event).
fn pairs(ids: &[u32], w: usize, v: usize) -> impl Iterator<Item = (Vec<u32>, u32)> + '_ {
    let pad = (v + 1) as u32;
    (0..=ids.len()).map(move |t| {
        let mut history = vec![pad; w.saturating_sub(t)];
        history.extend_from_slice(&ids[t.saturating_sub(w)..t]);
        let next = match ids.get(t) {
            None => v as u32,
            Some(&id) if id as usize == v => UNSEEN,
            Some(&id) => id,
        };
        (history, next)
    })
}

impl LstmValidParams {
    /// Learn the next event of the training `sessions` (template ids per session).
    pub fn fit(&self, sessions: &[Vec<&str>]) -> Result<NextEvent, LstmError> {
        let started = std::time::Instant::now();
        let events: usize = sessions.iter().map(Vec::len).sum();
        if events < self.min_events.max(1) {
            return Err(LstmError::TooFewEvents(events, self.min_events.max(1)));
        }
        let vocabulary: Vec<String> = sessions
            .iter()
            .flatten()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let index = index_of(&vocabulary);
        let v = vocabulary.len();
        let mut counts: BTreeMap<(Vec<u32>, u32), f32> = BTreeMap::new();
        for s in sessions {
            let ids: Vec<u32> = s.iter().map(|e| index[e]).collect();
            for pair in pairs(&ids, self.window, v) {
                *counts.entry(pair).or_default() += 1.0;
            }
        }
        let mut distinct: Vec<((Vec<u32>, u32), f32)> = counts.into_iter().collect();
        if distinct.len() > self.max_samples {
            let mut rng = Xoshiro256Plus::seed_from_u64(self.seed);
            let mut keep =
                rand::seq::index::sample(&mut rng, distinct.len(), self.max_samples).into_vec();
            keep.sort_unstable();
            distinct = keep.into_iter().map(|i| distinct[i].clone()).collect();
        }
        let histories: Vec<u32> = distinct
            .iter()
            .flat_map(|d| d.0.0.iter().copied())
            .collect();
        let next: Vec<u32> = distinct.iter().map(|d| d.0.1).collect();
        let weights: Vec<f32> = distinct.iter().map(|d| d.1).collect();
        let samples = Samples {
            histories: &histories,
            next: &next,
            counts: &weights,
        };
        let (weights, loss) = train(&samples, shape(v, self), self)?;
        let mut model = NextEvent {
            vocabulary,
            weights,
            accepted: BTreeSet::new(),
            events,
            pairs: next.len(),
            loss,
            seconds: 0.0,
            g: self.top_g,
            params: self.clone(),
        };
        model.g = self.top_g.max(model.g_for_share(sessions)?);
        model.seconds = started.elapsed().as_secs_f64();
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 600 sessions of two workflows (one with a retried step), then: a session whose steps
    /// come out of order, one that stops early, one with an event never seen.
    fn sessions() -> Vec<Vec<&'static str>> {
        let mut s: Vec<Vec<&str>> = Vec::new();
        for i in 0..600 {
            s.push(match i % 3 {
                0 => vec!["open", "alloc", "write", "write", "close"],
                1 => vec!["open", "alloc", "write", "retry", "write", "close"],
                _ => vec!["open", "read", "read", "read", "close"],
            });
        }
        s
    }

    fn small() -> LstmValidParams {
        LstmValidParams {
            top_g: 2,
            hidden: 16,
            embedding: 8,
            epochs: 60,
            min_events: 100,
            ..Default::default()
        }
    }

    #[test]
    fn steps_the_model_does_not_expect_are_anomalous_and_usual_ones_are_not() {
        let model = small().fit(&sessions()).unwrap();
        assert_eq!(model.vocabulary.len(), 6);
        let judged = model
            .judge(&[
                vec!["open", "alloc", "write", "write", "close"],
                vec!["open", "read", "read", "read", "close"],
                vec!["open", "write", "alloc", "write", "close"],
                vec!["open", "alloc", "write"],
                vec!["open", "alloc", "write", "panic", "close"],
            ])
            .unwrap();
        let score = |i: usize| judged[i].as_ref().unwrap().score;
        assert!(score(0) < 1.0 && score(1) < 1.0, "{judged:?}");
        for odd in 2..5 {
            assert!(score(odd) >= 1.0, "{odd}: {judged:?}");
        }
        let stopped = judged[3].as_ref().unwrap();
        assert_eq!(
            (stopped.position, stopped.seen.as_deref()),
            (3, None),
            "END came early"
        );
        let unseen = judged[4].as_ref().unwrap();
        assert_eq!(unseen.seen.as_deref(), Some("panic"));
        assert_eq!(unseen.rank, 7, "past every event the model can predict");
    }

    #[test]
    fn a_seed_gives_the_same_model_and_a_marked_session_becomes_usual() {
        let (a, b) = (
            small().fit(&sessions()).unwrap(),
            small().fit(&sessions()).unwrap(),
        );
        assert_eq!(a.weights, b.weights);
        let mut model = a;
        let odd = vec!["open", "write", "alloc", "write", "close"];
        assert!(model.accept_session(&odd).unwrap());
        let after = model.judge(&[odd]).unwrap();
        assert!(after[0].as_ref().unwrap().score < 1.0, "{after:?}");
        let saved: NextEvent =
            serde_json::from_value(serde_json::to_value(&model).unwrap()).unwrap();
        assert_eq!(saved, model);
    }

    #[test]
    fn too_little_history_is_said_and_invalid_params_are_rejected() {
        use linfa::ParamGuard;
        let few = vec![vec!["a", "b"]; 10];
        assert!(matches!(
            small().fit(&few),
            Err(LstmError::TooFewEvents(20, 100))
        ));
        for p in [
            LstmValidParams {
                window: 0,
                ..small()
            },
            LstmValidParams {
                top_g: 0,
                ..small()
            },
            LstmValidParams {
                learning_rate: 0.0,
                ..small()
            },
        ] {
            assert!(super::super::LstmParams(p).check().is_err());
        }
    }
}

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::LstmAutoencoderError;
use super::hyperparams::LstmAutoencoderValidParams;
use super::network::{Network, Shape, train};
use crate::detectors::distinct_rows::weighted_quantile;
use crate::detectors::lstm::network::Weights;

/// A trained sequence autoencoder: the events it knows (by template id), the network's
/// weights, the threshold, the chunks operators vouched for, and how training went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceAutoencoder {
    pub vocabulary: Vec<String>,
    weights: BTreeMap<String, Weights>,
    pub threshold: f64,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    accepted: BTreeSet<Vec<u32>>,
    /// Distinct chunks trained on, the last pass's mean error, and the seconds it took.
    pub chunks: usize,
    pub loss: f64,
    pub seconds: f64,
    params: LstmAutoencoderValidParams,
}

/// A session's worst chunk: its error (nats per event), where it starts, and its worst
/// position with the event there and the event the network rebuilt in its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebuilt {
    pub score: f64,
    pub start: usize,
    pub position: usize,
    pub seen: Option<String>,
    pub rebuilt: Option<String>,
}

impl SequenceAutoencoder {
    fn shape(&self) -> Shape {
        shape(self.vocabulary.len(), &self.params)
    }

    pub fn chunk(&self) -> usize {
        self.params.chunk
    }

    /// Each session's worst chunk (`None` for a session without events).
    pub fn judge(
        &self,
        sessions: &[Vec<&str>],
    ) -> Result<Vec<Option<Rebuilt>>, LstmAutoencoderError> {
        let net = Network::load(&self.weights, self.shape())?;
        let index = index_of(&self.vocabulary);
        let (len, v) = (self.params.chunk, self.vocabulary.len() as u32);
        let pad = v + 1;
        let mut out: Vec<Option<Rebuilt>> = vec![None; sessions.len()];
        let all: Vec<(usize, usize, Vec<u32>)> = sessions
            .iter()
            .enumerate()
            .flat_map(|(s, events)| {
                chunks_of(&ids(&index, events, v), len, pad)
                    .into_iter()
                    .enumerate()
                    .map(move |(k, c)| (s, k * len, c))
            })
            .collect();
        for batch in all.chunks(512) {
            let flat: Vec<u32> = batch
                .iter()
                .flat_map(|(_, _, c)| c.iter().copied())
                .collect();
            let log_p = net.rebuild(&flat, len)?.to_vec3::<f32>()?;
            for (b, (s, start, chunk)) in batch.iter().enumerate() {
                let rebuilt = self.rebuilt(&log_p[b], chunk, pad, *start);
                if out[*s].as_ref().is_none_or(|o| rebuilt.score > o.score) {
                    out[*s] = Some(rebuilt);
                }
            }
        }
        Ok(out)
    }

    /// A chunk's error from the network's log-probabilities (0 for a chunk operators
    /// vouched for), with its worst position.
    fn rebuilt(&self, log_p: &[Vec<f32>], chunk: &[u32], pad: u32, start: usize) -> Rebuilt {
        let name = |id: u32| self.vocabulary.get(id as usize).cloned();
        let (mut sum, mut real, mut worst) = (0.0, 0usize, (f64::NEG_INFINITY, 0usize));
        for (t, &id) in chunk.iter().enumerate().filter(|(_, id)| **id != pad) {
            let nll = -f64::from(log_p[t][id as usize]);
            sum += nll;
            real += 1;
            if nll > worst.0 {
                worst = (nll, t);
            }
        }
        let best = |row: &[f32]| {
            (0..row.len() as u32)
                .filter(|&c| c != pad)
                .max_by(|&a, &b| row[a as usize].total_cmp(&row[b as usize]))
                .unwrap_or(0)
        };
        let vouched = self.accepted.contains(chunk);
        Rebuilt {
            score: if vouched {
                0.0
            } else {
                sum / real.max(1) as f64
            },
            start,
            position: start + worst.1,
            seen: name(chunk[worst.1]),
            rebuilt: name(best(&log_p[worst.1])),
        }
    }

    /// Learn an operator's "normal" verdict on a session: its chunks score 0 from now on.
    /// Whether anything changed.
    pub fn accept_session(&mut self, events: &[&str]) -> Result<bool, LstmAutoencoderError> {
        let score = self.judge(&[events.to_vec()])?[0]
            .as_ref()
            .map_or(0.0, |r| r.score);
        if score < self.threshold {
            return Ok(false);
        }
        let index = index_of(&self.vocabulary);
        let v = self.vocabulary.len() as u32;
        let chunks = chunks_of(&ids(&index, events, v), self.params.chunk, v + 1);
        self.accepted.extend(chunks);
        Ok(true)
    }
}

fn shape(v: usize, p: &LstmAutoencoderValidParams) -> Shape {
    Shape {
        symbols: v + 2,
        embedding: p.embedding,
        hidden: p.hidden,
    }
}

fn index_of(vocabulary: &[String]) -> FxHashMap<&str, u32> {
    vocabulary
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i as u32))
        .collect()
}

/// The network's ids of `events`: an event it has not seen is `unknown`.
fn ids(index: &FxHashMap<&str, u32>, events: &[&str], unknown: u32) -> Vec<u32> {
    events
        .iter()
        .map(|e| index.get(e).copied().unwrap_or(unknown))
        .collect()
}

/// Consecutive chunks of `len` ids, the last one padded with `pad`.
fn chunks_of(ids: &[u32], len: usize, pad: u32) -> Vec<Vec<u32>> {
    ids.chunks(len)
        .map(|c| {
            let mut c = c.to_vec();
            c.resize(len, pad);
            c
        })
        .collect()
}

impl LstmAutoencoderValidParams {
    /// Train on the sessions' event sequences (template ids).
    pub fn fit(&self, sessions: &[Vec<&str>]) -> Result<SequenceAutoencoder, LstmAutoencoderError> {
        let started = std::time::Instant::now();
        let vocabulary: Vec<String> = sessions
            .iter()
            .flatten()
            .map(|e| e.to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if vocabulary.is_empty() {
            return Err(LstmAutoencoderError::NoEvents);
        }
        let index = index_of(&vocabulary);
        let v = vocabulary.len() as u32;
        let (len, pad) = (self.chunk, v + 1);
        let mut counts: BTreeMap<Vec<u32>, f32> = BTreeMap::new();
        for events in sessions {
            for c in chunks_of(&ids(&index, events, v), len, pad) {
                *counts.entry(c).or_default() += 1.0;
            }
        }
        let mut distinct: Vec<(Vec<u32>, f32)> = counts.into_iter().collect();
        if distinct.len() > self.max_chunks {
            let mut rng = Xoshiro256Plus::seed_from_u64(self.seed);
            let mut keep =
                rand::seq::index::sample(&mut rng, distinct.len(), self.max_chunks).into_vec();
            keep.sort_unstable();
            distinct = keep.into_iter().map(|i| distinct[i].clone()).collect();
        }
        let flat: Vec<u32> = distinct
            .iter()
            .flat_map(|(c, _)| c.iter().copied())
            .collect();
        let weights: Vec<f32> = distinct.iter().map(|(_, n)| *n).collect();
        let s = shape(vocabulary.len(), self);
        let (trained, loss) = train((&flat, &weights), len, pad, s, self)?;
        let mut model = SequenceAutoencoder {
            vocabulary,
            weights: trained,
            threshold: f64::INFINITY,
            accepted: BTreeSet::new(),
            chunks: distinct.len(),
            loss,
            seconds: 0.0,
            params: self.clone(),
        };
        // The threshold from the training sessions' own scores, each distinct sequence once
        // with its count.
        let mut sequences: BTreeMap<&[&str], f64> = BTreeMap::new();
        for s in sessions {
            *sequences.entry(s.as_slice()).or_default() += 1.0;
        }
        let (distinct, n): (Vec<Vec<&str>>, Vec<f64>) =
            sequences.into_iter().map(|(s, n)| (s.to_vec(), n)).unzip();
        let scores = model.judge(&distinct)?;
        let own: Vec<(f64, f64)> = scores
            .iter()
            .zip(n)
            .map(|(r, n)| (r.as_ref().map_or(0.0, |r| r.score), n))
            .collect();
        model.threshold = weighted_quantile(own, self.quantile).max(self.min_score);
        model.seconds = started.elapsed().as_secs_f64();
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::lstm_autoencoder::LstmAutoencoderParams;
    use linfa::ParamGuard;

    /// 600 sessions of two workflows (one repeats a step a varying number of times), then a
    /// session that swaps two steps of the first and one of the second.
    fn sessions() -> Vec<Vec<&'static str>> {
        let mut out = Vec::new();
        for i in 0..600 {
            out.push(if i % 2 == 0 {
                vec!["open", "read", "read", "close"]
            } else {
                let mut s = vec!["alloc"];
                s.extend(std::iter::repeat_n("write", 1 + i % 3));
                s.push("commit");
                s
            });
        }
        out.push(vec!["open", "close", "read", "read"]);
        out.push(vec!["alloc", "write", "write", "commit"]);
        out
    }

    fn small() -> LstmAutoencoderValidParams {
        LstmAutoencoderValidParams {
            chunk: 6,
            hidden: 16,
            embedding: 8,
            epochs: 10,
            ..Default::default()
        }
    }

    #[test]
    fn a_session_in_an_order_never_seen_is_rebuilt_badly() {
        let s = sessions();
        let model = small().fit(&s).unwrap();
        let scores = model.judge(&s).unwrap();
        let score = |i: usize| scores[i].as_ref().unwrap().score;
        assert!(
            score(600) >= model.threshold,
            "{} vs {}",
            score(600),
            model.threshold
        );
        assert!(
            score(601) < model.threshold,
            "{} vs {}",
            score(601),
            model.threshold
        );
        let flagged = (0..600).filter(|&i| score(i) >= model.threshold).count();
        assert_eq!(flagged, 0);
        let worst = scores[600].as_ref().unwrap();
        assert!(worst.position == 1 || worst.position == 2, "{worst:?}");
    }

    #[test]
    fn a_session_marked_normal_scores_zero_and_training_is_seeded() {
        let s = sessions();
        let mut model = small().fit(&s).unwrap();
        assert!(model.accept_session(&s[600]).unwrap());
        assert!(!model.accept_session(&s[600]).unwrap(), "once");
        assert_eq!(
            model.judge(&s[600..601]).unwrap()[0]
                .as_ref()
                .unwrap()
                .score,
            0.0
        );
        let saved: SequenceAutoencoder =
            serde_json::from_value(serde_json::to_value(&model).unwrap()).unwrap();
        assert_eq!(saved, model);
        let again = small().fit(&s).unwrap();
        assert_eq!(again.weights, small().fit(&s).unwrap().weights, "seeded");
    }

    #[test]
    fn invalid_params_are_rejected() {
        let p = |f: fn(&mut LstmAutoencoderValidParams)| {
            let mut v = LstmAutoencoderValidParams::default();
            f(&mut v);
            LstmAutoencoderParams(v).check()
        };
        assert!(p(|v| v.chunk = 0).is_err());
        assert!(p(|v| v.hidden = 0).is_err());
        assert!(p(|v| v.learning_rate = 0.0).is_err());
        assert!(p(|v| v.quantile = 1.5).is_err());
        assert!(p(|v| v.min_score = 0.0).is_err());
        assert!(p(|_| ()).is_ok());
        assert!(matches!(
            small().fit(&[vec![]]),
            Err(LstmAutoencoderError::NoEvents)
        ));
    }
}

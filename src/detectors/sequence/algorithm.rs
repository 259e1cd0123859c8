use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::SequenceError;
use super::hyperparams::{SequenceParams, SequenceValidParams};

pub const START: &str = "START";
pub const END: &str = "END";

/// Fitted transition counts: for each (from, to), how many training sessions contain it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RareTransition {
    /// Key `"from to"`.
    pub sessions_with: BTreeMap<String, u64>,
    pub sessions: u64,
    params: SequenceValidParams,
}

/// The rarest transition of a sequence: (from, to, training sessions containing it).
pub type Finding = (String, String, u64);

fn transitions<'s, 'a: 's>(
    sequence: &'s [&'a str],
) -> impl Iterator<Item = (&'a str, &'a str)> + 's {
    let with_markers = std::iter::once(START)
        .chain(sequence.iter().copied())
        .chain(std::iter::once(END));
    let shifted = sequence.iter().copied().chain(std::iter::once(END));
    with_markers.zip(shifted)
}

fn key(a: &str, b: &str) -> String {
    let mut k = String::new();
    write_key(&mut k, a, b);
    k
}

/// `"a b"` into `buf`, reused from transition to transition: a session's transitions are
/// looked up without an allocation each (scoring a million events' sessions made two
/// strings and a key per transition).
fn write_key<'b>(buf: &'b mut String, a: &str, b: &str) -> &'b str {
    buf.clear();
    buf.push_str(a);
    buf.push(' ');
    buf.push_str(b);
    buf
}

impl RareTransition {
    pub fn params() -> SequenceParams {
        SequenceParams::default()
    }

    /// Sessions at or below this count make a transition rare.
    pub fn limit(&self) -> u64 {
        self.params
            .max_sessions
            .max((self.params.max_rate * self.sessions as f64).floor() as u64)
    }

    /// The rarest transition in `sequence` (ties: the first), if it is rare.
    pub fn rarest(&self, sequence: &[&str]) -> Option<Finding> {
        self.rarest_transition(sequence)
            .filter(|f| f.2 <= self.limit())
    }

    /// The session's least common transition, rare or not.
    pub fn rarest_transition(&self, sequence: &[&str]) -> Option<Finding> {
        rarest_by(sequence, |k| self.sessions_with.get(k).copied())
    }

    /// The counts in a hash table, for scoring many sessions: a lookup in the sorted map
    /// compared the key with a dozen others, and scoring a million HDFS lines' sessions made
    /// one per transition.
    pub fn index(&self) -> TransitionIndex<'_> {
        TransitionIndex {
            sessions_with: self
                .sessions_with
                .iter()
                .map(|(k, &n)| (k.as_str(), n))
                .collect(),
        }
    }

    /// −log10 of the share of training sessions with the transition (0 seen counts as ½).
    pub fn score(&self, sessions_with: u64) -> f64 {
        -((sessions_with as f64).max(0.5) / self.sessions.max(1) as f64).log10()
    }

    pub fn threshold(&self) -> f64 {
        self.score(self.limit())
    }

    /// Accept `from → to` as common (an operator's "normal" verdict).
    pub fn accept(&mut self, from: &str, to: &str) {
        let common = self.limit() + 1;
        let n = self.sessions_with.entry(key(from, to)).or_default();
        *n = (*n).max(common);
    }

    /// Accept every rare transition of `sequence`: the session is no longer flagged.
    pub fn accept_session(&mut self, sequence: &[&str]) {
        while let Some((from, to, _)) = self.rarest(sequence) {
            self.accept(&from, &to);
        }
    }
}

/// [`RareTransition`]'s counts, keyed by `"from to"` in a hash table ([`RareTransition::index`]).
pub struct TransitionIndex<'m> {
    sessions_with: FxHashMap<&'m str, u64>,
}

impl TransitionIndex<'_> {
    /// [`RareTransition::rarest_transition`].
    pub fn rarest_transition(&self, sequence: &[&str]) -> Option<Finding> {
        rarest_by(sequence, |k| self.sessions_with.get(k).copied())
    }
}

/// The least common transition of `sequence` (ties: the first), its training sessions looked
/// up by `"from to"` key with `sessions_with` (none: 0).
fn rarest_by(sequence: &[&str], sessions_with: impl Fn(&str) -> Option<u64>) -> Option<Finding> {
    let mut best: Option<(&str, &str, u64)> = None;
    let mut buf = String::new();
    for (a, b) in transitions(sequence) {
        let n = sessions_with(write_key(&mut buf, a, b)).unwrap_or(0);
        if best.is_none_or(|f| n < f.2) {
            best = Some((a, b, n));
        }
    }
    best.map(|(a, b, n)| (a.to_string(), b.to_string(), n))
}

impl SequenceValidParams {
    pub fn fit<'a>(
        &self,
        sequences: impl IntoIterator<Item = Vec<&'a str>>,
    ) -> Result<RareTransition, SequenceError> {
        // Counted by the pair of borrowed ids, hashed; the model keeps them sorted by key.
        let mut counts: FxHashMap<(&'a str, &'a str), u64> = FxHashMap::default();
        let mut sessions = 0u64;
        let mut distinct: Vec<(&str, &str)> = Vec::new();
        for seq in sequences {
            sessions += 1;
            distinct.clear();
            distinct.extend(transitions(&seq));
            distinct.sort_unstable();
            distinct.dedup();
            for &pair in &distinct {
                *counts.entry(pair).or_default() += 1;
            }
        }
        let sessions_with = counts
            .into_iter()
            .map(|((a, b), n)| (key(a, b), n))
            .collect();
        if sessions < self.min_sessions {
            return Err(SequenceError::TooFewSessions {
                got: sessions,
                need: self.min_sessions,
            });
        }
        Ok(RareTransition {
            sessions_with,
            sessions,
            params: self.clone(),
        })
    }
}

impl SequenceParams {
    pub fn fit<'a>(
        &self,
        sequences: impl IntoIterator<Item = Vec<&'a str>>,
    ) -> Result<RareTransition, SequenceError> {
        self.check_ref()?.fit(sequences)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(i: usize) -> Vec<&'static str> {
        // Two normal variants: 90 % go a→b→c, 10 % a→r→b→c (a retry).
        if i.is_multiple_of(10) {
            vec!["a", "r", "b", "c"]
        } else {
            vec!["a", "b", "c"]
        }
    }

    #[test]
    fn flags_loops_and_early_stops_but_not_common_variants() {
        let mut training: Vec<Vec<&str>> = (0..5000).map(normal).collect();
        training.push(vec!["a", "b", "b", "b", "b", "c"]);
        training.push(vec!["a"]);
        let model = RareTransition::params().fit(training).unwrap();
        assert_eq!(model.limit(), 2);
        assert_eq!(model.rarest(&["a", "b", "c"]), None);
        assert_eq!(model.rarest(&["a", "r", "b", "c"]), None);
        assert_eq!(
            model.rarest(&["a", "b", "b", "b", "b", "c"]),
            Some(("b".into(), "b".into(), 1))
        );
        assert_eq!(model.rarest(&["a"]), Some(("a".into(), END.into(), 1)));
        assert_eq!(
            model.rarest(&["c", "a", "b"]),
            Some((START.into(), "c".into(), 0))
        );
        assert!(model.score(0) > model.score(1));
        assert!(model.score(1) >= model.threshold());
    }

    #[test]
    fn the_limit_grows_with_the_training_range() {
        let training: Vec<Vec<&str>> = (0..100_000).map(normal).collect();
        let model = RareTransition::params()
            .max_rate(1e-4)
            .fit(training)
            .unwrap();
        assert_eq!(model.limit(), 10);
    }

    #[test]
    fn too_little_data_is_refused() {
        assert!(matches!(
            RareTransition::params()
                .min_sessions(10)
                .fit(vec![vec!["a"]]),
            Err(SequenceError::TooFewSessions { got: 1, need: 10 })
        ));
    }

    #[test]
    fn a_session_marked_normal_makes_its_rare_transitions_common() {
        let mut training: Vec<Vec<&str>> = (0..2000).map(|_| vec!["a", "b", "c"]).collect();
        training.push(vec!["a", "x", "c"]);
        let mut model = RareTransition::params().fit(training).unwrap();
        let odd = ["a", "x", "y", "c"];
        assert!(model.rarest(&odd).is_some());
        model.accept_session(&odd);
        assert_eq!(model.rarest(&odd), None);
        assert!(
            model.rarest(&["a", "z", "c"]).is_some(),
            "other rare paths still are"
        );
    }
}

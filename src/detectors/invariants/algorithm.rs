use std::collections::BTreeMap;

// Fx hashing: a training range's sessions are counted template by template.
use rustc_hash::FxHashMap as HashMap;

use linfa::ParamGuard;
use serde::{Deserialize, Serialize};

use super::InvariantsError;
use super::hyperparams::{InvariantsParams, InvariantsValidParams};

/// `p × count(a) = q × count(b)` in `support` of the training sessions having `a` or `b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invariant {
    pub a: String,
    pub b: String,
    pub p: u64,
    pub q: u64,
    pub support: f64,
    /// How many training sessions broke it with each (count(a), count(b)), keyed `"a:b"`.
    pub broken_as: BTreeMap<String, u64>,
}

fn pattern(count_a: u64, count_b: u64) -> String {
    format!("{count_a}:{count_b}")
}

/// What a session did against the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Violation {
    /// An invariant the session breaks, with its counts of `a` and `b`.
    Broken {
        invariant: Invariant,
        count_a: u64,
        count_b: u64,
    },
    /// A template present in few training sessions (`sessions_with`).
    Rare {
        template: String,
        sessions_with: u64,
    },
}

/// The fitted model: invariants and, per template, how many training sessions have it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInvariants {
    pub invariants: Vec<Invariant>,
    pub sessions_with: BTreeMap<String, u64>,
    pub sessions: u64,
    params: InvariantsValidParams,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl SessionInvariants {
    pub fn params() -> InvariantsParams {
        InvariantsParams::default()
    }

    /// Sessions at or below this count make a template rare.
    pub fn rare_limit(&self) -> u64 {
        (self.params.rare_share * self.sessions as f64).floor() as u64
    }

    /// Everything a session (template → count) breaks, strongest first.
    pub fn check(&self, counts: &HashMap<&str, u64>) -> Vec<Violation> {
        let limit = self.rare_limit();
        let mut out: Vec<Violation> = Vec::new();
        for inv in &self.invariants {
            let ca = counts.get(inv.a.as_str()).copied().unwrap_or(0);
            let cb = counts.get(inv.b.as_str()).copied().unwrap_or(0);
            // Broken, and in a way few training sessions break it: a second normal path that
            // keeps its own ratio (a retry on a few percent of requests) is not a failure.
            if (ca > 0 || cb > 0)
                && inv.p * ca != inv.q * cb
                && inv.broken_as.get(&pattern(ca, cb)).copied().unwrap_or(0) <= limit
            {
                out.push(Violation::Broken {
                    invariant: inv.clone(),
                    count_a: ca,
                    count_b: cb,
                });
            }
        }
        let mut present: Vec<&&str> = counts.keys().collect();
        present.sort();
        for t in present {
            let seen = self.sessions_with.get(*t).copied().unwrap_or(0);
            if seen <= limit {
                out.push(Violation::Rare {
                    template: t.to_string(),
                    sessions_with: seen,
                });
            }
        }
        let mut scored: Vec<(f64, Violation)> =
            out.into_iter().map(|v| (self.score_of(&v), v)).collect();
        scored.sort_by(|x, y| y.0.total_cmp(&x.0));
        scored.into_iter().map(|(_, v)| v).collect()
    }

    /// −log10 of the share of training sessions that behave like this: for a broken
    /// invariant, the share breaking it; for a rare template, the share having it.
    pub fn score_of(&self, v: &Violation) -> f64 {
        match v {
            Violation::Broken { invariant, .. } => self.score_for_share(1.0 - invariant.support),
            Violation::Rare { sessions_with, .. } => {
                self.score_for_share(*sessions_with as f64 / self.sessions.max(1) as f64)
            }
        }
    }

    /// The lowest score a violation can have: every violation is at or above it.
    pub fn threshold(&self) -> f64 {
        let broken = self.score_for_share(1.0 - self.params.min_support);
        let rare = self.score_for_share(self.rare_limit() as f64 / self.sessions.max(1) as f64);
        broken.min(rare)
    }

    /// −log10 of a share of training sessions, none counting as half a session.
    fn score_for_share(&self, share: f64) -> f64 {
        -share.max(0.5 / self.sessions.max(1) as f64).log10()
    }
}

impl InvariantsValidParams {
    /// Fit on training sessions, each given as template → count.
    pub fn fit<'a>(
        &self,
        sessions: impl IntoIterator<Item = HashMap<&'a str, u64>>,
    ) -> Result<SessionInvariants, InvariantsError> {
        let sessions: Vec<HashMap<&str, u64>> = sessions.into_iter().collect();
        self.fit_sessions(&sessions.iter().collect::<Vec<_>>())
    }

    fn fit_sessions(
        &self,
        sessions: &[&HashMap<&str, u64>],
    ) -> Result<SessionInvariants, InvariantsError> {
        let n = sessions.len() as u64;
        if n < self.min_sessions {
            return Err(InvariantsError::TooFewSessions {
                got: n,
                need: self.min_sessions,
            });
        }
        let mut sessions_with: HashMap<&str, u64> = HashMap::default();
        for s in sessions {
            for &t in s.keys() {
                *sessions_with.entry(t).or_default() += 1;
            }
        }
        // Frequent templates, numbered in id order so the result does not depend on hashing.
        let mut frequent: Vec<&str> = sessions_with
            .iter()
            .filter(|(_, c)| **c as f64 >= self.min_frequency * n as f64)
            .map(|(t, _)| *t)
            .collect();
        frequent.sort_unstable();
        let index: HashMap<&str, usize> =
            frequent.iter().enumerate().map(|(i, t)| (*t, i)).collect();

        // For each pair (a < b) both present in a session: how often each reduced ratio
        // count(a) : count(b) occurs. Sessions with only one of the two break every ratio.
        let mut ratios: HashMap<(usize, usize, u64, u64), u64> = HashMap::default();
        let mut both: HashMap<(usize, usize), u64> = HashMap::default();
        for s in sessions {
            let mut present: Vec<(usize, u64)> = s
                .iter()
                .filter_map(|(t, &c)| index.get(t).map(|&i| (i, c)))
                .collect();
            present.sort_unstable();
            for (x, &(a, ca)) in present.iter().enumerate() {
                for &(b, cb) in &present[x + 1..] {
                    *both.entry((a, b)).or_default() += 1;
                    let g = gcd(ca, cb);
                    let (ra, rb) = (ca / g, cb / g);
                    if ra <= u64::from(self.max_ratio) && rb <= u64::from(self.max_ratio) {
                        *ratios.entry((a, b, ra, rb)).or_default() += 1;
                    }
                }
            }
        }
        // count(a) : count(b) = ra : rb  ⇔  rb × count(a) = ra × count(b).
        let mut best: BTreeMap<(usize, usize), (u64, u64, u64)> = BTreeMap::new();
        for (&(a, b, ra, rb), &hits) in &ratios {
            let e = best.entry((a, b)).or_insert((0, 0, 0));
            if hits > e.0 || (hits == e.0 && (ra, rb) < (e.1, e.2)) {
                *e = (hits, ra, rb);
            }
        }
        let mut invariants = Vec::new();
        for ((a, b), (hits, ra, rb)) in best {
            let (ta, tb) = (frequent[a], frequent[b]);
            let either = sessions_with[ta] + sessions_with[tb] - both[&(a, b)];
            let support = hits as f64 / either as f64;
            if support >= self.min_support {
                invariants.push(Invariant {
                    a: ta.to_string(),
                    b: tb.to_string(),
                    p: rb,
                    q: ra,
                    support,
                    broken_as: BTreeMap::new(),
                });
            }
        }
        for s in sessions {
            for inv in &mut invariants {
                let ca = s.get(inv.a.as_str()).copied().unwrap_or(0);
                let cb = s.get(inv.b.as_str()).copied().unwrap_or(0);
                if (ca > 0 || cb > 0) && inv.p * ca != inv.q * cb {
                    *inv.broken_as.entry(pattern(ca, cb)).or_default() += 1;
                }
            }
        }
        Ok(SessionInvariants {
            invariants,
            sessions_with: sessions_with
                .into_iter()
                .map(|(t, c)| (t.to_string(), c))
                .collect(),
            sessions: n,
            params: self.clone(),
        })
    }
}

/// One model per service with enough sessions, and one over all sessions for the rest.
///
/// Rarity only means something within one workflow: a payment retry in 10 % of checkout
/// requests is a normal branch, yet under 1 % of all sessions once four other services share
/// the count; and every event of a small service would look rare against the whole system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInvariants {
    pub by_service: BTreeMap<String, SessionInvariants>,
    pub all: SessionInvariants,
}

impl ServiceInvariants {
    /// The model judging a session of `service`.
    pub fn for_service(&self, service: &str) -> &SessionInvariants {
        self.by_service.get(service).unwrap_or(&self.all)
    }

    /// The lowest threshold among the models: every violation scores at or above it.
    pub fn threshold(&self) -> f64 {
        self.by_service
            .values()
            .map(SessionInvariants::threshold)
            .fold(self.all.threshold(), f64::min)
    }

    pub fn sessions(&self) -> u64 {
        self.all.sessions
    }

    /// Accept breaking `a`–`b` with these counts (an operator's "normal" verdict): in every
    /// service's model it counts as a common way to break it, which is not flagged.
    pub fn accept(&mut self, a: &str, b: &str, count_a: u64, count_b: u64) {
        for model in self
            .by_service
            .values_mut()
            .chain(std::iter::once(&mut self.all))
        {
            let common = model.rare_limit() + 1;
            for inv in model.invariants.iter_mut().filter(|i| i.a == a && i.b == b) {
                let seen = inv.broken_as.entry(pattern(count_a, count_b)).or_default();
                *seen = (*seen).max(common);
            }
        }
    }
}

impl InvariantsValidParams {
    /// Fit per service (services with at least `min_sessions` sessions) and over all
    /// sessions; each session given as (service, template → count).
    pub fn fit_by_service<'a>(
        &self,
        sessions: impl IntoIterator<Item = (&'a str, HashMap<&'a str, u64>)>,
    ) -> Result<ServiceInvariants, InvariantsError> {
        let sessions: Vec<(&str, HashMap<&str, u64>)> = sessions.into_iter().collect();
        let mut groups: BTreeMap<&str, Vec<&HashMap<&str, u64>>> = BTreeMap::new();
        for (service, counts) in &sessions {
            groups.entry(service).or_default().push(counts);
        }
        let all = self.fit_sessions(&sessions.iter().map(|(_, c)| c).collect::<Vec<_>>())?;
        let mut by_service = BTreeMap::new();
        for (service, group) in groups {
            // A single service is the whole system: its model is `all`.
            if group.len() as u64 >= self.min_sessions && group.len() as u64 != all.sessions {
                by_service.insert(service.to_string(), self.fit_sessions(&group)?);
            }
        }
        Ok(ServiceInvariants { by_service, all })
    }
}

impl InvariantsParams {
    pub fn fit_by_service<'a>(
        &self,
        sessions: impl IntoIterator<Item = (&'a str, HashMap<&'a str, u64>)>,
    ) -> Result<ServiceInvariants, InvariantsError> {
        self.check_ref()?.fit_by_service(sessions)
    }

    pub fn fit<'a>(
        &self,
        sessions: impl IntoIterator<Item = HashMap<&'a str, u64>>,
    ) -> Result<SessionInvariants, InvariantsError> {
        self.check_ref()?.fit(sessions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(pairs: &[(&'static str, u64)]) -> HashMap<&'static str, u64> {
        pairs.iter().copied().collect()
    }

    /// A block: allocated once, received three times, each receipt acknowledged; 1 in 50
    /// also verified (an optional step, no invariant).
    fn normal(i: usize) -> HashMap<&'static str, u64> {
        let mut s = session(&[("alloc", 1), ("recv", 3), ("ack", 3)]);
        if i.is_multiple_of(50) {
            s.insert("verify", 1);
        }
        s
    }

    #[test]
    fn learns_count_relations_and_flags_sessions_that_break_them() {
        let mut training: Vec<HashMap<&str, u64>> = (0..2000).map(normal).collect();
        // A few failures in the training data itself (unsupervised: no labels).
        training.push(session(&[("alloc", 1), ("recv", 3), ("ack", 2)]));
        training.push(session(&[
            ("alloc", 1),
            ("recv", 1),
            ("ack", 1),
            ("crash", 1),
        ]));
        let model = InvariantsParams::default().fit(training).unwrap();
        let has = |a: &str, b: &str, p: u64, q: u64| {
            model
                .invariants
                .iter()
                .any(|i| i.a == a && i.b == b && i.p == p && i.q == q)
        };
        // Ids sort: ack < alloc < recv. 3 × alloc = ack; ack = recv; 3 × alloc = recv.
        assert!(has("ack", "alloc", 1, 3), "{:?}", model.invariants);
        assert!(has("ack", "recv", 1, 1));
        assert!(has("alloc", "recv", 3, 1));
        // The optional step is in 2 % of sessions: below min_frequency, no invariant.
        assert!(
            model
                .invariants
                .iter()
                .all(|i| i.a != "verify" && i.b != "verify")
        );

        assert!(model.check(&normal(1)).is_empty());
        assert!(
            model.check(&normal(50)).is_empty(),
            "verify is in 2 % of sessions, above the 1 % rarity share"
        );
        let missing_ack = model.check(&session(&[("alloc", 1), ("recv", 3), ("ack", 2)]));
        assert!(matches!(
            &missing_ack[0],
            Violation::Broken { count_a: 2, .. }
        ));
        let crashed = model.check(&session(&[
            ("alloc", 1),
            ("recv", 3),
            ("ack", 3),
            ("crash", 1),
        ]));
        assert_eq!(
            crashed,
            vec![Violation::Rare {
                template: "crash".into(),
                sessions_with: 1
            }]
        );
        for v in missing_ack.iter().chain(&crashed) {
            assert!(model.score_of(v) >= model.threshold());
        }
    }

    #[test]
    fn a_common_way_of_breaking_a_relation_is_a_second_normal_path() {
        // 1.5 % of sessions retry a receipt (4 receipts, 3 acks): common enough to be normal,
        // rare enough that recv = ack still holds in 98.5 %.
        let training: Vec<HashMap<&str, u64>> = (0..2000)
            .map(|i| {
                if i % 200 < 3 {
                    session(&[("alloc", 1), ("recv", 4), ("ack", 3)])
                } else {
                    normal(i)
                }
            })
            .collect();
        let model = InvariantsParams::default().fit(training).unwrap();
        assert!(
            model
                .invariants
                .iter()
                .any(|i| i.a == "ack" && i.b == "recv")
        );
        assert!(
            model
                .check(&session(&[("alloc", 1), ("recv", 4), ("ack", 3)]))
                .is_empty()
        );
        assert!(
            !model
                .check(&session(&[("alloc", 1), ("recv", 5), ("ack", 3)]))
                .is_empty()
        );
    }

    #[test]
    fn a_relation_with_a_common_exception_still_catches_rare_breaks() {
        // One token per login, except the 5 % of logins that fail and get none; 3 sessions in
        // 4,000 loop and issue five tokens.
        let training: Vec<HashMap<&str, u64>> = (0..4000)
            .map(|i| match i % 100 {
                0..5 => session(&[("login", 1), ("failed", 1), ("done", 1)]),
                _ if (5..8).contains(&i) => session(&[("login", 1), ("token", 5), ("done", 1)]),
                _ => session(&[("login", 1), ("token", 1), ("done", 1)]),
            })
            .collect();
        let model = InvariantsParams::default().fit(training).unwrap();
        assert!(
            model
                .invariants
                .iter()
                .any(|i| (i.a.as_str(), i.b.as_str()) == ("login", "token")),
            "{:?}",
            model.invariants
        );
        let failed = session(&[("login", 1), ("failed", 1), ("done", 1)]);
        assert!(
            model.check(&failed).is_empty(),
            "{:?}",
            model.check(&failed)
        );
        let looped = session(&[("login", 1), ("token", 5), ("done", 1)]);
        assert!(!model.check(&looped).is_empty());
    }

    #[test]
    fn rarity_is_judged_within_the_session_s_service() {
        // Service "pay" (1,000 sessions) retries in 10 % of its sessions; with 9,200 sessions
        // of "shop" that is 0.98 % of all sessions, under the 1 % rarity share.
        let mut sessions: Vec<(&str, HashMap<&str, u64>)> =
            (0..9200).map(|i| ("shop", normal(i))).collect();
        for i in 0..1000 {
            let mut s = session(&[("charge", 1), ("done", 1)]);
            if i % 10 == 0 {
                s.insert("retry", 1);
            }
            sessions.push(("pay", s));
        }
        let model = InvariantsParams::default()
            .rare_share(0.01)
            .fit_by_service(sessions)
            .unwrap();
        let retried = session(&[("charge", 1), ("retry", 1), ("done", 1)]);
        assert!(
            !model.all.check(&retried).is_empty(),
            "rare across all sessions"
        );
        assert!(model.for_service("pay").check(&retried).is_empty());
        let crashed = session(&[("charge", 1), ("crash", 1)]);
        assert!(!model.for_service("pay").check(&crashed).is_empty());
        // A service too small for its own model is judged against all sessions.
        assert_eq!(model.for_service("rare-service"), &model.all);
        assert!(model.threshold() <= model.all.threshold());
    }

    #[test]
    fn bad_params_and_too_little_data_are_refused() {
        assert!(matches!(
            InvariantsParams::default().min_support(1.5).fit(Vec::new()),
            Err(InvariantsError::Share {
                name: "min_support",
                ..
            })
        ));
        assert!(matches!(
            InvariantsParams::default().fit(vec![normal(0)]),
            Err(InvariantsError::TooFewSessions { got: 1, need: 1000 })
        ));
    }

    #[test]
    fn a_way_of_breaking_an_invariant_marked_normal_is_accepted() {
        let training: Vec<(&str, HashMap<&str, u64>)> =
            (0..2000).map(|i| ("dn", normal(i))).collect();
        let mut model = InvariantsParams::default()
            .fit_by_service(training)
            .unwrap();
        let short = session(&[("alloc", 1), ("recv", 3), ("ack", 2)]);
        let broken = |m: &ServiceInvariants, s: &HashMap<&str, u64>| {
            m.for_service("dn")
                .check(s)
                .iter()
                .filter(|v| matches!(v, Violation::Broken { .. }))
                .count()
        };
        assert_eq!(broken(&model, &short), 2, "ack–alloc and ack–recv");
        model.accept("ack", "recv", 2, 3);
        assert_eq!(
            broken(&model, &short),
            1,
            "ack–recv 2:3 is accepted, ack–alloc is not"
        );
        // Other counts still break it.
        let shorter = session(&[("alloc", 1), ("recv", 3), ("ack", 1)]);
        assert_eq!(broken(&model, &shorter), 2);
    }
}

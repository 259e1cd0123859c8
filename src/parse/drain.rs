//! A Drain-style template miner (He et al., "Drain: An Online Log Parsing Approach with Fixed
//! Depth Tree", ICWS 2017), written for batch use.
//!
//! Messages are routed by token count, then by their first `depth - 2` tokens (tokens holding a
//! digit or a placeholder route to a shared `<*>` child), to a leaf holding candidate templates;
//! a message joins the most similar template if enough tokens agree, and positions that differ
//! become `<*>`. Otherwise it starts a template of its own.
//!
//! The miner sees each distinct masked message once, in first-seen order: after masking, a
//! batch has few distinct messages, so mining is cheap and its result does not depend on how
//! many threads parsed the lines. The template of a message is read *after* the whole batch is
//! mined, so every line of a group gets the group's final, most general template.

use std::collections::HashMap;

pub const WILDCARD: &str = "<*>";

#[derive(Debug, Clone)]
pub struct DrainParams {
    pub depth: usize,
    pub similarity_threshold: f64,
    pub max_children: usize,
}

#[derive(Debug, Clone)]
struct Cluster {
    tokens: Vec<String>,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<String, Node>,
    clusters: Vec<usize>,
}

#[derive(Debug)]
pub struct Drain {
    params: DrainParams,
    root: Node,
    clusters: Vec<Cluster>,
}

fn is_variable(token: &str) -> bool {
    token.bytes().any(|b| b.is_ascii_digit()) || (token.starts_with('<') && token.ends_with('>'))
}

impl Drain {
    pub fn new(params: DrainParams) -> Self {
        let params = DrainParams {
            depth: params.depth.max(3),
            ..params
        };
        Self {
            params,
            root: Node::default(),
            clusters: Vec::new(),
        }
    }

    /// Add one (masked) message; returns its cluster id.
    pub fn add(&mut self, message: &str) -> usize {
        let tokens: Vec<&str> = message.split(' ').collect();
        let max_children = self.params.max_children.max(2);
        let route_len = (self.params.depth - 2).min(tokens.len());

        let mut node = self
            .root
            .children
            .entry(tokens.len().to_string())
            .or_default();
        for token in &tokens[..route_len] {
            let key = if is_variable(token) { WILDCARD } else { token };
            // A full node sends new tokens down the shared wildcard branch.
            let fits = node.children.contains_key(key) || node.children.len() + 1 < max_children;
            let key = if fits || key == WILDCARD {
                key
            } else {
                WILDCARD
            };
            node = node.children.entry(key.to_string()).or_default();
        }

        // Most similar template in the leaf; ties go to the one with fewer wildcards (more
        // specific), then to the oldest, so the result is deterministic.
        let mut best: Option<(usize, f64, usize)> = None;
        for &id in &node.clusters {
            let cluster = &self.clusters[id];
            let (sim, wildcards) = similarity(&cluster.tokens, &tokens);
            let better = match best {
                None => true,
                Some((_, bs, bw)) => sim > bs || (sim == bs && wildcards < bw),
            };
            if better {
                best = Some((id, sim, wildcards));
            }
        }
        match best {
            Some((id, sim, _)) if sim >= self.params.similarity_threshold => {
                let cluster = &mut self.clusters[id];
                for (t, m) in cluster.tokens.iter_mut().zip(&tokens) {
                    if t != m {
                        *t = WILDCARD.to_string();
                    }
                }
                id
            }
            _ => {
                let id = self.clusters.len();
                self.clusters.push(Cluster {
                    tokens: tokens.iter().map(|t| t.to_string()).collect(),
                });
                node.clusters.push(id);
                id
            }
        }
    }

    /// The current template text of a cluster.
    pub fn template(&self, id: usize) -> String {
        self.clusters[id].tokens.join(" ")
    }

    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }
}

/// Fraction of positions where template and message agree (a wildcard agrees with anything
/// that is itself variable), and the template's wildcard count.
fn similarity(template: &[String], tokens: &[&str]) -> (f64, usize) {
    let mut same = 0usize;
    let mut wildcards = 0usize;
    for (t, m) in template.iter().zip(tokens) {
        if t == WILDCARD {
            wildcards += 1;
            if is_variable(m) {
                same += 1;
            }
        } else if t == m {
            same += 1;
        }
    }
    (same as f64 / template.len().max(1) as f64, wildcards)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain() -> Drain {
        Drain::new(DrainParams {
            depth: 4,
            similarity_threshold: 0.5,
            max_children: 100,
        })
    }

    #[test]
    fn groups_messages_that_differ_in_values() {
        let mut d = drain();
        let a = d.add("connected to alice from <IP>");
        let b = d.add("connected to bob from <IP>");
        let c = d.add("disk full on /var");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(d.template(a), "connected to <*> from <IP>");
        assert_eq!(d.template(c), "disk full on /var");
    }

    #[test]
    fn different_lengths_never_merge() {
        let mut d = drain();
        let a = d.add("request completed status=<NUM>");
        let b = d.add("request completed status=<NUM> retry");
        assert_ne!(a, b);
        assert_eq!(d.len(), 2);
    }
}

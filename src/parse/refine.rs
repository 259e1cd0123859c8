//! Second pass over Drain's clusters: decide, position by position, whether a token that varies
//! is a *variable* or one of a few *constants* that name different events.
//!
//! Drain's similarity threshold alone cannot tell `stored as bytes in memory` from `stored as
//! values in memory` (two events) apart from `Invalid user admin` / `Invalid user oracle` (one
//! event with a user name): both differ in one word. What does tell them apart is how many
//! values the position takes. An event's variable slot sees many values; a word that picks one
//! of a few events sees few. So one rule, applied both ways:
//!
//! - **split**: inside a Drain cluster, a position with at most `max_constant_values` distinct
//!   values is constant, and the cluster splits by those values;
//! - **merge**: clusters of the same length that agree everywhere except one position, where
//!   together they take more than `max_constant_values` values, are one event with a variable
//!   there. This also joins what Drain's prefix tree kept apart because the varying token came
//!   first (`com.apple.Safari: … job` / `com.apple.CacheDelete: … job`).
//!
//! A count alone cannot tell a slot that happens to see few values from a few constants: a
//! 2,000-line sample may hold four users (`session closed for user cyrus` … `news` … `test` …
//! `root`). What gives the slot away is that its values are *entities* that recur: the same
//! users stand in a varying slot of another event (`session opened for user cyrus by …`). So
//! a position whose few values share at least [`SHARED_VALUES`] with the values of a varying
//! position of another Drain cluster is a variable, however few its values; words that pick
//! one of a few events (`bytes` / `values`) are seldom the values of another event's slot.
//!
//! Values are compared with their placeholders unified (`rhost=<IP>` and `rhost=<*>` are the
//! same value), since masking already decided those tokens are variable. The pass sees distinct
//! masked messages in first-seen order and orders its output the same way, so it is as
//! deterministic as Drain's pass.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::drain::WILDCARD;

/// A merge needs this many constant words besides the varying one: two three-word messages
/// that share two words (`cupsd startup succeeded`, `klogd startup succeeded`) are weak
/// evidence of one event, while longer messages that differ in one slot rarely are not.
const MIN_SHARED_WORDS: usize = 3;

/// Values a position must share with another cluster's varying position to be a variable
/// (one shared word is a coincidence, two are a vocabulary).
const SHARED_VALUES: usize = 2;

/// Whether a (unified) token holds a masked value.
fn is_masked(token: &str) -> bool {
    token.contains(WILDCARD)
}

/// Values at one position where some hold a masked value and others are literal words are
/// one variable that masking only partly recognised — when the data shows it: the value is
/// sometimes missing (`rhost=<IP>` beside an empty `rhost=`; `(<*>)` beside `()`), several
/// different literal words stand where a masked value also stands, or the masked value
/// covers at least as many lines as the literal word (`for <*> [<IP>]` on 83 lines beside
/// `for ns.example.com [<IP>]` on 2: a host name that happens to have no digit). A literal
/// word on most lines beside a rare masked shape (`tty=NODEVssh` on 116 lines, `tty=:0` on
/// one) is a constant with a rare alternative, and follows the count rule. All-masked values
/// that differ in their literal part (`(uid=<*>)`, `LOGIN(uid=<*>)`) are likewise a few
/// constant shapes around a value.
///
/// `values` maps each unified value to the number of lines it stands on.
fn mixes_masked_and_literal(values: &HashMap<&str, u64>) -> bool {
    let (mut masked, mut literal) = (Vec::new(), Vec::new());
    let (mut masked_lines, mut literal_lines) = (0, 0);
    for (&value, &lines) in values {
        if is_masked(value) {
            masked.push(value);
            masked_lines += lines;
        } else {
            literal.push(value);
            literal_lines += lines;
        }
    }
    if masked.is_empty() || literal.is_empty() {
        return false;
    }
    let value_missing = masked
        .iter()
        .any(|m| literal.iter().any(|l| m.replace(WILDCARD, "") == *l));
    value_missing || literal.len() >= 2 || masked_lines >= literal_lines
}

/// A token (or any text) with every `<…>` placeholder replaced by `<*>`.
pub(super) fn unify(token: &str) -> Cow<'_, str> {
    if !token.contains('<') {
        return Cow::Borrowed(token);
    }
    let mut out = String::with_capacity(token.len());
    let mut rest = token;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        match rest[start..].find('>') {
            Some(len)
                if rest[start + 1..start + len]
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'*') =>
            {
                out.push_str(WILDCARD);
                rest = &rest[start + len + 1..];
            }
            _ => {
                out.push('<');
                rest = &rest[start + 1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// One refined group: its member messages (indices into the distinct messages) and, per
/// position, the unified value all members share (`None` = varies).
struct Group<'m> {
    members: Vec<usize>,
    /// Lines the members stand for.
    lines: u64,
    pattern: Vec<Option<Cow<'m, str>>>,
}

/// Refine Drain's clusters. `messages` are the distinct masked messages, `cluster_of[i]` the
/// Drain cluster of message `i`. Returns the refined group of every message and each group's
/// template text, groups numbered by their first message.
pub fn refine(
    messages: &[&str],
    weights: &[u64],
    cluster_of: &[usize],
    max_constant_values: usize,
) -> (Vec<usize>, Vec<String>) {
    let tokens: Vec<Vec<&str>> = messages.iter().map(|m| m.split(' ').collect()).collect();
    let unified: Vec<Vec<Cow<str>>> = tokens
        .iter()
        .map(|t| t.iter().map(|x| unify(x)).collect())
        .collect();

    // Drain clusters, in first-seen order.
    let mut clusters: Vec<Vec<usize>> = Vec::new();
    let mut slot_of_cluster: HashMap<usize, usize> = HashMap::new();
    for (i, &c) in cluster_of.iter().enumerate() {
        let slot = *slot_of_cluster.entry(c).or_insert_with(|| {
            clusters.push(Vec::new());
            clusters.len() - 1
        });
        clusters[slot].push(i);
    }

    // Split: positions with few values are constants. The split is one level deep: a part's
    // values are not recounted, since a smaller part sees fewer values of a true variable
    // (`session opened for user <*> by (uid=<*>)` keeps three users once `by LOGIN(uid=0)` is
    // split off) and would be cut by user.
    let entities = Entities::of(&clusters, &unified);
    let mut groups: Vec<Group> = Vec::new();
    for (c, members) in clusters.iter().enumerate() {
        let recur = |values: &HashMap<&str, u64>| entities.recur(c, values);
        for part in split_by_constants(members, weights, &unified, max_constant_values, recur) {
            let pattern = pattern_of(&part, &unified);
            let lines = part.iter().map(|&m| weights[m]).sum();
            groups.push(Group {
                members: part,
                lines,
                pattern,
            });
        }
    }
    groups.sort_by_key(|g| g.members[0]);

    // Merge: groups equal but for one position that takes many values there.
    loop {
        let mut merged_any = false;
        let max_len = groups.iter().map(|g| g.pattern.len()).max().unwrap_or(0);
        for p in 0..max_len {
            merged_any |= merge_at(&mut groups, p, &unified, max_constant_values);
        }
        if !merged_any {
            break;
        }
    }

    // Number groups by first member and write their templates.
    groups.sort_by_key(|g| g.members[0]);
    let mut group_of = vec![0; messages.len()];
    let templates = groups
        .iter()
        .enumerate()
        .map(|(gi, g)| {
            for &m in &g.members {
                group_of[m] = gi;
            }
            template_text(&g.members, &tokens, &g.pattern)
        })
        .collect();
    (group_of, templates)
}

/// Merge the groups that are equal but for position `p` where, together, they take many
/// values (or a variable); whether any merged.
fn merge_at<'m>(
    groups: &mut Vec<Group<'m>>,
    p: usize,
    unified: &[Vec<Cow<'m, str>>],
    max_constant_values: usize,
) -> bool {
    let mut buckets: HashMap<(usize, Vec<Option<&str>>), Vec<usize>> = HashMap::new();
    for (gi, g) in groups.iter().enumerate() {
        if p >= g.pattern.len() {
            continue;
        }
        let key: Vec<Option<&str>> = g
            .pattern
            .iter()
            .enumerate()
            .map(|(q, v)| if q == p { None } else { v.as_deref() })
            .collect();
        buckets.entry((g.pattern.len(), key)).or_default().push(gi);
    }
    let mut absorbed_into: HashMap<usize, usize> = HashMap::new();
    for bucket in buckets.into_values() {
        if bucket.len() < 2 {
            continue;
        }
        let shared_words = groups[bucket[0]]
            .pattern
            .iter()
            .enumerate()
            .filter(|(q, v)| *q != p && v.as_deref().is_some_and(|v| !is_masked(v)))
            .count();
        if shared_words < MIN_SHARED_WORDS {
            continue;
        }
        let mut values: HashMap<&str, u64> = HashMap::new();
        for &g in &bucket {
            if let Some(v) = groups[g].pattern[p].as_deref() {
                *values.entry(v).or_default() += groups[g].lines;
            }
        }
        let varies = bucket.iter().any(|&g| groups[g].pattern[p].is_none())
            || mixes_masked_and_literal(&values);
        if varies || values.len() > max_constant_values {
            let target = *bucket.iter().min().expect("non-empty bucket");
            for &g in &bucket {
                if g != target {
                    absorbed_into.insert(g, target);
                }
            }
        }
    }
    if absorbed_into.is_empty() {
        return false;
    }
    // Members are re-sorted below, so the order groups are absorbed in does not
    // matter; only the groups that grew need their pattern again.
    let targets: HashSet<usize> = absorbed_into.values().copied().collect();
    for (&from, &to) in &absorbed_into {
        let members = std::mem::take(&mut groups[from].members);
        groups[to].members.extend(members);
        groups[to].lines += std::mem::take(&mut groups[from].lines);
    }
    for &t in &targets {
        groups[t].members.sort_unstable();
        groups[t].pattern = pattern_of(&groups[t].members, unified);
    }
    groups.retain(|g| !g.members.is_empty());
    true
}

/// Split one group's members by the values of its constant positions (those with at most
/// `max_constant_values` values that are not one partly-masked variable), keeping first-seen
/// order within and across the parts.
fn split_by_constants(
    members: &[usize],
    weights: &[u64],
    unified: &[Vec<Cow<str>>],
    max_constant_values: usize,
    recur: impl Fn(&HashMap<&str, u64>) -> bool,
) -> Vec<Vec<usize>> {
    let len = unified[members[0]].len();
    let constant_positions: Vec<usize> = (0..len)
        .filter(|&p| {
            let mut values: HashMap<&str, u64> = HashMap::new();
            for &m in members {
                *values.entry(&*unified[m][p]).or_default() += weights[m];
            }
            values.len() > 1
                && values.len() <= max_constant_values
                && !mixes_masked_and_literal(&values)
                && !recur(&values)
        })
        .collect();
    let mut parts: Vec<Vec<usize>> = Vec::new();
    let mut part_of_key: HashMap<Vec<&str>, usize> = HashMap::new();
    for &m in members {
        let key: Vec<&str> = constant_positions
            .iter()
            .map(|&p| &*unified[m][p])
            .collect();
        let part = *part_of_key.entry(key).or_insert_with(|| {
            parts.push(Vec::new());
            parts.len() - 1
        });
        parts[part].push(m);
    }
    parts
}

/// The literal values of every varying position of every Drain cluster, to tell entities
/// (values that recur in other events' slots) from constants.
struct Entities<'m> {
    /// Literal value → the (cluster, position) pairs where it is one of several values.
    slots_of: HashMap<&'m str, Vec<(usize, usize)>>,
}

impl<'m> Entities<'m> {
    fn of(clusters: &[Vec<usize>], unified: &'m [Vec<Cow<'m, str>>]) -> Self {
        let mut slots_of: HashMap<&'m str, Vec<(usize, usize)>> = HashMap::new();
        for (c, members) in clusters.iter().enumerate() {
            for (p, _) in unified[members[0]].iter().enumerate() {
                let values: HashSet<&'m str> = members.iter().map(|&m| &*unified[m][p]).collect();
                if values.len() < 2 {
                    continue;
                }
                for v in values.into_iter().filter(|v| !is_masked(v)) {
                    slots_of.entry(v).or_default().push((c, p));
                }
            }
        }
        Entities { slots_of }
    }

    /// Whether a position of cluster `c` with `values` shares [`SHARED_VALUES`] literal values
    /// with one varying position of another cluster.
    fn recur(&self, c: usize, values: &HashMap<&str, u64>) -> bool {
        let mut shared: HashMap<(usize, usize), usize> = HashMap::new();
        for v in values.keys().filter(|v| !is_masked(v)) {
            for &slot in self.slots_of.get(v).into_iter().flatten() {
                if slot.0 != c {
                    let n = shared.entry(slot).or_default();
                    *n += 1;
                    if *n >= SHARED_VALUES {
                        return true;
                    }
                }
            }
        }
        false
    }
}

fn pattern_of<'m>(members: &[usize], unified: &[Vec<Cow<'m, str>>]) -> Vec<Option<Cow<'m, str>>> {
    let first = &unified[members[0]];
    (0..first.len())
        .map(|p| {
            members
                .iter()
                .all(|&m| unified[m][p] == first[p])
                .then(|| first[p].clone())
        })
        .collect()
}

/// Each position: the members' raw token when they all share it, the unified one when they
/// share that, else the wildcard.
fn template_text(members: &[usize], tokens: &[Vec<&str>], pattern: &[Option<Cow<str>>]) -> String {
    let first = &tokens[members[0]];
    let words: Vec<&str> = pattern
        .iter()
        .enumerate()
        .map(|(p, shared)| match shared {
            Some(unified) if members.iter().all(|&m| tokens[m][p] == first[p]) => first[p],
            Some(unified) => unified.as_ref(),
            None => WILDCARD,
        })
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unify_replaces_placeholders_only() {
        assert_eq!(unify("rhost=<IP>"), "rhost=<*>");
        assert_eq!(unify("(uid=<NUM>)"), "(uid=<*>)");
        assert_eq!(unify("IOThunderbolt<x>"), "IOThunderbolt<x>");
        assert_eq!(unify("plain"), "plain");
    }

    #[test]
    fn few_values_split_and_many_values_merge() {
        let messages = [
            "stored as bytes in memory",
            "stored as values in memory",
            "stored as bytes in memory now",
            "user alice logged in",
            "user bob logged in",
            "user carol logged in",
            "user dave logged in",
        ];
        // Drain put the first two together and split every user into its own cluster.
        let cluster_of = [0, 0, 1, 2, 3, 4, 5];
        let (group_of, templates) = refine(&messages, &[1; 7], &cluster_of, 3);
        assert_ne!(group_of[0], group_of[1]);
        assert_eq!(templates[group_of[0]], "stored as bytes in memory");
        assert_eq!(templates[group_of[1]], "stored as values in memory");
        assert!(group_of[3..].iter().all(|&g| g == group_of[3]));
        assert_eq!(templates[group_of[3]], "user <*> logged in");
        assert_eq!(templates.len(), 4);
    }

    #[test]
    fn values_that_recur_in_another_event_are_a_variable_however_few() {
        let messages = [
            "session closed for user cyrus",
            "session closed for user news",
            "session closed for user test",
            "session closed for user root",
            "session opened for user cyrus by (uid=<NUM>)",
            "session opened for user news by (uid=<NUM>)",
            "stored as bytes in memory",
            "stored as values in memory",
            "stored as blocks in memory",
            "stored as pages in memory",
        ];
        let cluster_of = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2];
        // Four values each: with max_constant_values 4 both positions could be constants;
        // the users stand in the other session event too, the storage words nowhere else.
        let (group_of, templates) = refine(&messages, &[10; 10], &cluster_of, 4);
        assert!(group_of[..4].iter().all(|&g| g == group_of[0]));
        assert_eq!(templates[group_of[0]], "session closed for user <*>");
        assert_eq!(
            templates[group_of[4]],
            "session opened for user <*> by (uid=<NUM>)"
        );
        let storage: HashSet<usize> = group_of[6..].iter().copied().collect();
        assert_eq!(storage.len(), 4, "{templates:?}");
        // One shared word is a coincidence, not a vocabulary.
        let messages = [
            "disk sda mounted ok",
            "disk sdb mounted ok",
            "user sda logged in now",
            "user carol logged in now",
        ];
        let (group_of, _) = refine(&messages, &[5; 4], &[0, 0, 1, 1], 3);
        assert_ne!(group_of[0], group_of[1]);
    }

    #[test]
    fn partly_masked_positions_follow_the_lines_they_stand_on() {
        let values = |pairs: &[(&'static str, u64)]| pairs.iter().copied().collect();
        // A word on most lines beside a rare masked shape: a constant with an alternative.
        assert!(!mixes_masked_and_literal(&values(&[
            ("tty=NODEVssh", 116),
            ("tty=<*>", 1)
        ])));
        // A masked value on most lines beside a word: a variable masking missed once.
        assert!(mixes_masked_and_literal(&values(&[
            ("<*>", 83),
            ("ns.example.com", 2)
        ])));
        // The value missing, or several words beside a masked value: a variable.
        assert!(mixes_masked_and_literal(&values(&[
            ("rhost=<*>", 1),
            ("rhost=", 9)
        ])));
        assert!(mixes_masked_and_literal(&values(&[
            ("<*>", 1),
            ("alpha", 5),
            ("beta", 5)
        ])));
        // No masked value at all: the count rule decides.
        assert!(!mixes_masked_and_literal(&values(&[("a", 1), ("b", 1)])));

        // Through refine: the rare `tty=:0` line is its own event.
        let messages = [
            "authentication failure; tty=NODEVssh ruser= rhost=<IP>",
            "authentication failure; tty=<*> ruser= rhost=",
        ];
        let (group_of, _) = refine(&messages, &[116, 1], &[0, 0], 3);
        assert_ne!(group_of[0], group_of[1]);
    }
}

//! Log-parser accuracy against ground truth, with the loghub metrics.
//!
//! - **GA**, grouping accuracy (Zhu et al., "Tools and Benchmarks for Automated Log Parsing",
//!   ICSE-SEIP 2019): a line is correct only when the set of lines the parser put in its group
//!   is exactly the set sharing its true event id; GA is the share of correct lines. It
//!   punishes over-merging and over-splitting and ignores template text.
//! - **FGA**, the F1 of groups (Jiang et al., "A Large-scale Evaluation for Log Parsing
//!   Techniques: How Far are We?", ISSTA 2024, loghub-2.0): a predicted group is correct when
//!   its lines are exactly one true group; precision over predicted groups, recall over true
//!   ones. Unlike GA, a rare event counts as much as a frequent one.
//! - **PA**, parsing accuracy (same paper): the share of lines whose template *text* is right.
//! - **FTA**, the F1 of templates: a predicted group counts when it is a correct group *and*
//!   its template text is right.
//!
//! Template text is compared after writing every placeholder as loghub does, `<*>` (ours name
//! their kind: `<NUM>`, `<IP>`, …), and collapsing runs of placeholders and of spaces on both
//! sides — loghub's own corrected templates differ in exactly those ways between versions.
//! A template that keeps a value's prefix (`blk_<*>` for loghub's `<*>`) counts as wrong:
//! that is what PA is for.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::path::Path;

use anyhow::{Context, Result, bail};

use chrono::NaiveDate;

use super::ParserConfig;
use super::{DETECTION_SAMPLE, Detection, Parsed, Parser};

/// Fraction of lines whose predicted group equals their true group. `predicted[i]` and
/// `truth[i]` are the group keys of line `i`.
pub fn grouping_accuracy<P: Eq + Hash, T: Eq + Hash>(predicted: &[P], truth: &[T]) -> f64 {
    assert_eq!(predicted.len(), truth.len(), "one prediction per line");
    if truth.is_empty() {
        return 1.0;
    }
    let correct_groups = correct_groups(predicted, truth);
    let correct = predicted
        .iter()
        .filter(|p| correct_groups.contains(p))
        .count();
    correct as f64 / truth.len() as f64
}

/// F1 of groups (FGA): a predicted group is correct when its lines are exactly the lines of
/// one true group.
pub fn grouping_f1<P: Eq + Hash, T: Eq + Hash>(predicted: &[P], truth: &[T]) -> f64 {
    let correct = correct_groups(predicted, truth).len();
    let predicted_groups = predicted.iter().collect::<HashSet<_>>().len();
    let true_groups = truth.iter().collect::<HashSet<_>>().len();
    f1(correct, predicted_groups, true_groups)
}

/// The predicted groups (by key) whose lines are exactly one true group.
fn correct_groups<'p, P: Eq + Hash, T: Eq + Hash>(
    predicted: &'p [P],
    truth: &[T],
) -> HashSet<&'p P> {
    let mut predicted_groups: HashMap<&P, Vec<usize>> = HashMap::new();
    for (i, p) in predicted.iter().enumerate() {
        predicted_groups.entry(p).or_default().push(i);
    }
    let mut true_sizes: HashMap<&T, usize> = HashMap::new();
    for t in truth {
        *true_sizes.entry(t).or_default() += 1;
    }
    predicted_groups
        .into_iter()
        .filter(|(_, lines)| {
            let first = &truth[lines[0]];
            lines.iter().all(|&i| &truth[i] == first) && true_sizes[first] == lines.len()
        })
        .map(|(p, _)| p)
        .collect()
}

fn f1(correct: usize, predicted: usize, actual: usize) -> f64 {
    if predicted == 0 || actual == 0 || correct == 0 {
        return 0.0;
    }
    let (p, r) = (
        correct as f64 / predicted as f64,
        correct as f64 / actual as f64,
    );
    2.0 * p * r / (p + r)
}

/// A template's text as compared with loghub's: placeholders written `<*>`, runs of them
/// (`<*> <*>`, `<*><*>`) one, runs of whitespace one space.
pub fn comparable_template(text: &str) -> String {
    let out = super::refine::unify(text);
    let spaced = out.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut collapsed = spaced;
    loop {
        let next = collapsed.replace("<*> <*>", "<*>").replace("<*><*>", "<*>");
        if next == collapsed {
            return next;
        }
        collapsed = next;
    }
}

/// PA and FTA: `predicted[i]`/`truth[i]` are line `i`'s group keys, `predicted_text[i]` and
/// `truth_text[i]` its template texts.
pub fn template_accuracy(
    predicted: &[String],
    predicted_text: &[String],
    truth: &[String],
    truth_text: &[String],
) -> (f64, f64) {
    let same: Vec<bool> = predicted_text
        .iter()
        .zip(truth_text)
        .map(|(p, t)| comparable_template(p) == comparable_template(t))
        .collect();
    let pa = same.iter().filter(|&&s| s).count() as f64 / same.len().max(1) as f64;
    let correct = correct_groups(predicted, truth);
    let mut right_text: HashMap<&String, bool> = HashMap::new();
    for (i, p) in predicted.iter().enumerate() {
        *right_text.entry(p).or_insert(true) &= same[i];
    }
    let templates_right = correct.iter().filter(|p| right_text[**p]).count();
    let fta = f1(
        templates_right,
        predicted.iter().collect::<HashSet<_>>().len(),
        truth.iter().collect::<HashSet<_>>().len(),
    );
    (pa, fta)
}

/// Ground truth, one entry per log line: the true event ids, and the true template texts
/// where the file has them.
#[derive(Debug, Clone)]
pub struct Truth {
    pub ids: Vec<String>,
    pub templates: Option<Vec<String>>,
}

/// Ground truth from a loghub `*_structured.csv` (its `EventId` and `EventTemplate` columns)
/// or a plain text file with one id per line (such as HDFS `event_ids.txt`, no templates).
pub fn read_truth(path: &Path) -> Result<Truth> {
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        return read_structured(path);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Truth {
        ids: text.lines().map(|l| l.trim().to_string()).collect(),
        templates: None,
    })
}

/// What [`evaluate_parser`] measured on one log.
#[derive(Debug, Clone)]
pub struct ParserAccuracy {
    pub lines: usize,
    pub quarantined: usize,
    pub templates: usize,
    pub true_events: usize,
    /// Grouping accuracy (GA).
    pub accuracy: f64,
    /// F1 of groups (FGA).
    pub group_f1: f64,
    /// Parsing accuracy (PA) and F1 of templates (FTA), when the truth has template texts.
    pub template_accuracy: Option<(f64, f64)>,
    /// For each true event that was not grouped exactly: (true id, [(template, lines)]),
    /// the templates its lines landed in. Largest mistakes first.
    pub mistakes: Vec<(String, Vec<(String, usize)>)>,
    /// The preset `format = "auto"` chose.
    pub detection: Option<Detection>,
}

/// Parse every line of `log` with `parser` and score its templates against `truth`. A
/// quarantined line is its own group (so it is wrong unless its true event has one line),
/// and its template text is empty.
pub fn evaluate_parser(
    settings: &ParserConfig,
    batch_date: NaiveDate,
    log: &Path,
    truth_all: &Truth,
) -> Result<ParserAccuracy> {
    let truth = &truth_all.ids;
    let bytes = std::fs::read(log).with_context(|| format!("reading {}", log.display()))?;
    let mut raw: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if raw.last().is_some_and(|l| l.is_empty()) {
        raw.pop();
    }
    if raw.len() != truth.len() {
        bail!(
            "{} has {} lines but the ground truth has {} ids: they must be the same lines in \
             the same order",
            log.display(),
            raw.len(),
            truth.len()
        );
    }
    let lines: Vec<Result<&str, String>> = raw
        .iter()
        .map(|l| std::str::from_utf8(l).map_err(|_| "invalid UTF-8".to_string()))
        .collect();
    let sample: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.as_ref().ok().copied())
        .take(DETECTION_SAMPLE)
        .collect();
    let (parser, detection) = Parser::for_sample(settings, batch_date, &sample)?;
    let batch = parser.parse_batch(&lines);
    let (parsed, templates) = (&batch.parsed, &batch.templates);
    let mut quarantined = 0;
    let predicted: Vec<String> = parsed
        .iter()
        .enumerate()
        .map(|(i, p)| match p {
            Parsed::Event(e) => templates[e.template].0.clone(),
            Parsed::Quarantined(_) => {
                quarantined += 1;
                format!("quarantined line {i}")
            }
            Parsed::Joined => format!("joined line {i}"),
        })
        .collect();
    let predicted_text: Vec<String> = parsed
        .iter()
        .map(|p| match p {
            Parsed::Event(e) => templates[e.template].1.clone(),
            _ => String::new(),
        })
        .collect();
    let template_accuracy = truth_all
        .templates
        .as_ref()
        .map(|texts| template_accuracy(&predicted, &predicted_text, truth, texts));
    let true_events = truth.iter().collect::<std::collections::HashSet<_>>().len();
    let text_of: HashMap<&str, &str> = templates
        .iter()
        .map(|(id, text)| (id.as_str(), text.as_str()))
        .collect();
    let mut spread: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
    for (p, t) in predicted.iter().zip(truth) {
        *spread.entry(t).or_default().entry(p).or_default() += 1;
    }
    let mut truth_count_of_prediction: HashMap<&str, std::collections::HashSet<&str>> =
        HashMap::new();
    for (p, t) in predicted.iter().zip(truth) {
        truth_count_of_prediction.entry(p).or_default().insert(t);
    }
    let mut mistakes: Vec<(String, Vec<(String, usize)>)> = spread
        .iter()
        .filter(|(_, preds)| {
            preds.len() > 1 || preds.keys().any(|p| truth_count_of_prediction[p].len() > 1)
        })
        .map(|(t, preds)| {
            let mut v: Vec<(String, usize)> = preds
                .iter()
                .map(|(p, n)| (text_of.get(p).copied().unwrap_or(p).to_string(), *n))
                .collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            (t.to_string(), v)
        })
        .collect();
    mistakes.sort_by(|a, b| {
        let total = |m: &(String, Vec<(String, usize)>)| m.1.iter().map(|x| x.1).sum::<usize>();
        total(b).cmp(&total(a)).then_with(|| a.0.cmp(&b.0))
    });
    Ok(ParserAccuracy {
        detection,
        mistakes,
        lines: raw.len(),
        quarantined,
        templates: predicted
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        true_events,
        accuracy: grouping_accuracy(&predicted, truth),
        group_f1: grouping_f1(&predicted, truth),
        template_accuracy,
    })
}

/// The `EventId` and (when present) `EventTemplate` columns of a loghub `*_structured.csv`.
fn read_structured(path: &Path) -> Result<Truth> {
    let (header, rows) = crate::evaluate::read_csv(path)?;
    let column = |name: &str| header.iter().position(|h| h == name);
    let Some(ids) = column("EventId") else {
        bail!(
            "{} has no EventId column (found {header:?})",
            path.display()
        );
    };
    let field = |i: usize, row: &[String], c: usize, name: &str| -> Result<String> {
        row.get(c)
            .cloned()
            .with_context(|| format!("{} row {} has no {name} field", path.display(), i + 2))
    };
    let ids_of: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| field(i, row, ids, "EventId"))
        .collect::<Result<_>>()?;
    let templates = match column("EventTemplate") {
        Some(c) => Some(
            rows.iter()
                .enumerate()
                .map(|(i, row)| field(i, row, c, "EventTemplate"))
                .collect::<Result<Vec<_>>>()?,
        ),
        None => None,
    };
    Ok(Truth {
        ids: ids_of,
        templates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_counts_only_exact_groups() {
        // True groups {0,1} {2} {3}; predicted merges 2 and 3 → only lines 0 and 1 correct.
        let truth = ["a", "a", "b", "c"];
        assert_eq!(grouping_accuracy(&[1, 1, 2, 2], &truth), 0.5);
        // Splitting a true group is as wrong as merging two.
        assert_eq!(grouping_accuracy(&[1, 9, 2, 3], &truth), 0.5);
        assert_eq!(grouping_accuracy(&[7, 7, 8, 9], &truth), 1.0);
    }

    #[test]
    fn group_and_template_f1() {
        // True groups {0,1} {2} {3}; predicted {0,1} {2,3}: one of two predicted groups is
        // right, one of three true ones is found.
        let truth = ["a", "a", "b", "c"];
        let fga = grouping_f1(&[1, 1, 2, 2], &truth);
        assert!((fga - 2.0 * 0.5 * (1.0 / 3.0) / (0.5 + 1.0 / 3.0)).abs() < 1e-12);
        assert_eq!(grouping_f1(&[7, 7, 8, 9], &truth), 1.0);

        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let predicted = s(&["g1", "g1", "g2", "g3"]);
        let truth = s(&["a", "a", "b", "c"]);
        let truth_text = s(&[
            "open <*> ok",
            "open <*> ok",
            "close <*> <*>",
            "block blk_<*> gone",
        ]);
        // g1's text is right (placeholder kinds do not matter); g2's run of values is one
        // placeholder on both sides; g3 keeps a prefix loghub does not.
        let predicted_text = s(&[
            "open <NUM> ok",
            "open <NUM> ok",
            "close <IP>",
            "block <*> gone",
        ]);
        let (pa, fta) = template_accuracy(&predicted, &predicted_text, &truth, &truth_text);
        assert_eq!(pa, 0.75);
        assert!((fta - 2.0 / 3.0).abs() < 1e-12, "{fta}");
    }

    #[test]
    fn templates_compare_as_loghub_writes_them() {
        assert_eq!(comparable_template("a <NUM>  <IP> b"), "a <*> b");
        assert_eq!(comparable_template("x=<*><*>, y"), "x=<*>, y");
        assert_eq!(comparable_template("a <b> c < d"), "a <b> c < d");
        assert_eq!(comparable_template("<*>"), "<*>");
    }

    #[test]
    fn csv_fields_with_quotes_and_commas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        std::fs::write(
            &path,
            "\u{feff}LineId,Content,EventId\r\n1,\"a, \"\"b\"\"\",E2\n2,x,E1",
        )
        .unwrap();
        assert_eq!(read_truth(&path).unwrap().ids, vec!["E2", "E1"]);
    }
}

//! Grouping accuracy, the standard loghub metric for log parsers (Zhu et al., "Tools and
//! Benchmarks for Automated Log Parsing", ICSE-SEIP 2019).
//!
//! A line counts as correctly parsed only when the set of lines the parser put in its group is
//! exactly the set of lines that share its ground-truth event id. Accuracy is the fraction of
//! correct lines. It punishes both over-merging and over-splitting, and it ignores the template
//! text itself, so parsers with different wildcard conventions are compared fairly.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::Path;

use anyhow::{Context, Result, bail};

use chrono::NaiveDate;

use super::ParseSettings;
use super::{DETECTION_SAMPLE, Detection, Parsed, Parser};

/// Fraction of lines whose predicted group equals their true group. `predicted[i]` and
/// `truth[i]` are the group keys of line `i`.
pub fn grouping_accuracy<P: Eq + Hash, T: Eq + Hash>(predicted: &[P], truth: &[T]) -> f64 {
    assert_eq!(predicted.len(), truth.len(), "one prediction per line");
    if truth.is_empty() {
        return 1.0;
    }
    let mut predicted_groups: HashMap<&P, Vec<usize>> = HashMap::new();
    for (i, p) in predicted.iter().enumerate() {
        predicted_groups.entry(p).or_default().push(i);
    }
    let mut true_sizes: HashMap<&T, usize> = HashMap::new();
    for t in truth {
        *true_sizes.entry(t).or_default() += 1;
    }
    // A predicted group is correct when all its lines share one true id and that id has no
    // other lines.
    let correct: usize = predicted_groups
        .values()
        .filter(|lines| {
            let first = &truth[lines[0]];
            lines.iter().all(|&i| &truth[i] == first) && true_sizes[first] == lines.len()
        })
        .map(|lines| lines.len())
        .sum();
    correct as f64 / truth.len() as f64
}

/// Ground-truth event ids, one per log line: a loghub `*_structured.csv` (its `EventId`
/// column) or a plain text file with one id per line (such as HDFS `event_ids.txt`).
pub fn read_truth(path: &Path) -> Result<Vec<String>> {
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        return read_structured_event_ids(path);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.lines().map(|l| l.trim().to_string()).collect())
}

/// What [`evaluate_parser`] measured on one log.
#[derive(Debug, Clone)]
pub struct ParserAccuracy {
    pub lines: usize,
    pub quarantined: usize,
    pub templates: usize,
    pub true_events: usize,
    pub accuracy: f64,
    /// For each true event that was not grouped exactly: (true id, [(template, lines)]),
    /// the templates its lines landed in. Largest mistakes first.
    pub mistakes: Vec<(String, Vec<(String, usize)>)>,
    /// The preset `format = "auto"` chose.
    pub detection: Option<Detection>,
}

/// Parse every line of `log` with `parser` and score its templates against `truth`. A
/// quarantined line is its own group (so it is wrong unless its true event has one line).
pub fn evaluate_parser(
    settings: &ParseSettings,
    batch_date: NaiveDate,
    log: &Path,
    truth: &[String],
) -> Result<ParserAccuracy> {
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
    })
}

/// The `EventId` column of a loghub `*_structured.csv`, one entry per row.
pub fn read_structured_event_ids(path: &Path) -> Result<Vec<String>> {
    let (header, rows) = crate::evaluate::read_csv(path)?;
    let Some(column) = header.iter().position(|h| h == "EventId") else {
        bail!(
            "{} has no EventId column (found {header:?})",
            path.display()
        );
    };
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            row.get(column)
                .cloned()
                .with_context(|| format!("{} row {} has no EventId field", path.display(), i + 2))
        })
        .collect()
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
    fn csv_fields_with_quotes_and_commas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        std::fs::write(
            &path,
            "\u{feff}LineId,Content,EventId\r\n1,\"a, \"\"b\"\"\",E2\n2,x,E1",
        )
        .unwrap();
        assert_eq!(read_structured_event_ids(&path).unwrap(), vec!["E2", "E1"]);
    }
}

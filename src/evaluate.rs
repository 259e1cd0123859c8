//! Scoring detections against ground-truth labels.
//!
//! Labels come in three shapes ([`LabelSet::read`]): the generator's `labels.jsonl`; loghub's
//! session labels (`BlockId,Label` — any key column beside a `Label` column); and per-line
//! labels (`LineId,Label`, optionally with a `file` column). [`metrics`] turns every scored
//! entity of one detector (the `detections/scores` table: flagged or not) into precision, recall,
//! F1, ROC-AUC and PR-AUC.
//!
//! A detection matches a label of its own granularity when it points at the same thing:
//! a window detection of the label's service overlapping the label's interval; a session
//! detection with the label's session key; an event detection at the label's file and line.
//! Precision counts distinct detected entities (several detectors flagging the same window
//! count once); recall counts labels found by at least one detection.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};

use crate::generate::{Label, read_labels};

/// Ground truth in one of the shapes loghub and the generator use.
#[derive(Debug, Clone)]
pub enum LabelSet {
    /// The generator's labels: windows, sessions and events, each with a kind.
    Generator(Vec<Label>),
    /// Session key → anomalous (loghub HDFS `anomaly_label.csv`).
    Sessions(HashMap<String, bool>),
    /// File base name ("" when the labels name no file) → line number → anomalous.
    Lines(HashMap<String, HashMap<u64, bool>>),
}

/// A CSV file's header and rows (RFC 4180: quoted fields may hold commas, quotes and
/// newlines; a byte-order mark is ignored; fields are trimmed).
pub fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let header: Vec<String> = reader
        .headers()
        .with_context(|| format!("reading the header of {}", path.display()))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{} row {}", path.display(), i + 2))?;
        rows.push(record.iter().map(str::to_string).collect());
    }
    Ok((header, rows))
}

/// A label cell read as anomalous or not: `Anomaly`/`Normal`, `1`/`0`, `true`/`false`, and
/// BGL's convention where `-` is normal and an alert category is not.
fn is_anomalous(cell: &str) -> bool {
    let c = cell.trim().trim_matches('"').to_ascii_lowercase();
    !matches!(
        c.as_str(),
        "normal" | "0" | "false" | "-" | "" | "no" | "benign"
    )
}

impl LabelSet {
    /// Read labels, recognising the shape from the extension and the CSV header.
    pub fn read(path: &Path) -> Result<Self> {
        let is_jsonl = path
            .extension()
            .is_some_and(|e| e == "jsonl" || e == "json");
        if is_jsonl {
            return Ok(Self::Generator(read_labels(path)?));
        }
        let (header, rows) = read_csv(path)?;
        let header: Vec<String> = header.iter().map(|h| h.to_ascii_lowercase()).collect();
        let lines = rows.into_iter().filter(|r| r.iter().any(|c| !c.is_empty()));
        let find = |names: &[&str]| header.iter().position(|h| names.contains(&h.as_str()));
        let Some(label) = find(&["label", "labels", "is_anomaly", "anomaly", "alert"]) else {
            bail!(
                "{}: no label column (expected a header such as BlockId,Label or LineId,Label)",
                path.display()
            );
        };
        let line = find(&["lineid", "line_id", "line", "line_no"]);
        let file = find(&["file", "filename", "path"]);
        let key = (0..header.len()).find(|&i| i != label && Some(i) != line && Some(i) != file);
        if let Some(line_col) = line {
            let mut out: HashMap<String, HashMap<u64, bool>> = HashMap::new();
            for (n, c) in lines.enumerate() {
                let no: u64 = c
                    .get(line_col)
                    .and_then(|v| v.parse().ok())
                    .with_context(|| {
                        format!(
                            "{} line {}: line number missing or not a number",
                            path.display(),
                            n + 2
                        )
                    })?;
                let f = file
                    .and_then(|i| c.get(i))
                    .map(|f| base_name(f).to_string())
                    .unwrap_or_default();
                out.entry(f)
                    .or_default()
                    .insert(no, c.get(label).is_some_and(|v| is_anomalous(v)));
            }
            return Ok(Self::Lines(out));
        }
        let Some(key) = key else {
            bail!("{}: no key column beside the label column", path.display());
        };
        Ok(Self::Sessions(
            lines
                .map(|c| {
                    (
                        c.get(key).cloned().unwrap_or_default(),
                        c.get(label).is_some_and(|v| is_anomalous(v)),
                    )
                })
                .collect(),
        ))
    }

    /// Per-line labels: whether line `line` of `file` (a path; its base name is matched) is
    /// labelled anomalous. Labels that name no file apply to any file.
    pub fn line_is_anomalous(&self, file: &str, line: u64) -> bool {
        let Self::Lines(map) = self else {
            return false;
        };
        let in_file = |f: &str| map.get(f).and_then(|m| m.get(&line)).copied();
        in_file(base_name(file))
            .or_else(|| in_file(""))
            .unwrap_or(false)
    }

    /// The generator's labels, if these are they.
    pub fn generator(&self) -> Option<&[Label]> {
        match self {
            Self::Generator(l) => Some(l),
            _ => None,
        }
    }
}

/// Whether a scored entity is anomalous under a label set; `None` when the labels say nothing
/// about that granularity.
pub struct Truth<'a> {
    pub labels: &'a LabelSet,
    /// Window length, to know where a window entity ends.
    pub window_ms: i64,
    /// Per-line labels: (service, window start) of windows holding an anomalous line.
    pub anomalous_windows: HashSet<(String, i64)>,
    /// Per-line labels: keys of sessions holding an anomalous line.
    pub anomalous_sessions: HashSet<String>,
}

impl Truth<'_> {
    pub fn of(&self, granularity: &str, entity_key: &str, start_ms: i64) -> Option<bool> {
        match self.labels {
            LabelSet::Generator(labels) => {
                let ts = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
                let end_ms = if granularity == "window" {
                    start_ms + self.window_ms
                } else {
                    start_ms
                };
                let (start, end) = (ts(start_ms), ts(end_ms));
                Some(
                    labels
                        .iter()
                        .any(|l| matches_entity(granularity, entity_key, start, end, l)),
                )
            }
            LabelSet::Sessions(map) => {
                (granularity == "session").then(|| map.get(entity_key).copied().unwrap_or(false))
            }
            LabelSet::Lines(_) => match granularity {
                "event" => {
                    let (file, line) = entity_key.rsplit_once(':')?;
                    Some(self.labels.line_is_anomalous(file, line.parse().ok()?))
                }
                "window" => Some(
                    self.anomalous_windows
                        .contains(&(entity_key.to_string(), start_ms)),
                ),
                "session" => Some(self.anomalous_sessions.contains(entity_key)),
                _ => None,
            },
        }
    }
}

/// Threshold and ranking quality of one detector at one granularity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub entities: u64,
    pub positives: u64,
    pub flagged: u64,
    pub true_positives: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// None when the entities are all positive or all negative.
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
}

/// One scored entity: (score, flagged by the detector, anomalous by the labels).
pub type Judged = (f64, bool, bool);

/// Metrics from (score, flagged, anomalous) per entity. ROC-AUC is the Mann–Whitney
/// probability that a random anomalous entity outscores a random normal one (ties count ½);
/// PR-AUC is average precision, with tied scores taken as one step.
pub fn metrics(entities: &[Judged]) -> Metrics {
    let n = entities.len() as u64;
    let positives = entities.iter().filter(|e| e.2).count() as u64;
    let flagged = entities.iter().filter(|e| e.1).count() as u64;
    let tp = entities.iter().filter(|e| e.1 && e.2).count() as u64;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (precision, recall) = (ratio(tp, flagged), ratio(tp, positives));
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    let (mut roc_auc, mut pr_auc) = (None, None);
    let negatives = n - positives;
    if positives > 0 && negatives > 0 {
        let mut sorted: Vec<(f64, bool)> = entities.iter().map(|e| (e.0, e.2)).collect();
        sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
        // Walk tie groups from the highest score down.
        let (mut above_neg, mut rank_sum, mut seen_tp, mut seen, mut ap) =
            (0u64, 0.0, 0u64, 0u64, 0.0);
        let mut i = 0;
        while i < sorted.len() {
            let mut j = i;
            while j < sorted.len() && sorted[j].0 == sorted[i].0 {
                j += 1;
            }
            let group_pos = sorted[i..j].iter().filter(|e| e.1).count() as u64;
            let group_neg = (j - i) as u64 - group_pos;
            // Each positive here beats the negatives below and ties half of those beside it.
            rank_sum += group_pos as f64
                * ((negatives - above_neg - group_neg) as f64 + 0.5 * group_neg as f64);
            above_neg += group_neg;
            seen_tp += group_pos;
            seen += (j - i) as u64;
            ap += (group_pos as f64 / positives as f64) * (seen_tp as f64 / seen as f64);
            i = j;
        }
        roc_auc = Some(rank_sum / (positives as f64 * negatives as f64));
        pr_auc = Some(ap);
    }
    Metrics {
        entities: n,
        positives,
        flagged,
        true_positives: tp,
        precision,
        recall,
        f1,
        roc_auc,
        pr_auc,
    }
}

/// One detected entity, as the anomalies table has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub granularity: String,
    pub entity_key: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub detector: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    pub true_positives: usize,
    pub detections: usize,
    pub labels_found: usize,
    pub labels: usize,
}

impl Scores {
    pub fn precision(&self) -> f64 {
        if self.detections == 0 {
            0.0
        } else {
            self.true_positives as f64 / self.detections as f64
        }
    }
    pub fn recall(&self) -> f64 {
        if self.labels == 0 {
            0.0
        } else {
            self.labels_found as f64 / self.labels as f64
        }
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    pub overall: Scores,
    /// Recall per label kind: (found, total).
    pub per_kind: BTreeMap<String, (usize, usize)>,
    /// Precision per detector: (matched, detections).
    pub per_detector: BTreeMap<String, (usize, usize)>,
}

/// The labels whose interval meets `[start, end)`: a batch's share of a labels file that
/// spans more days than the batch. A label whose times do not read cannot be placed and is
/// kept, so it is judged.
pub fn labels_within(labels: &[Label], start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<Label> {
    labels
        .iter()
        .filter(|l| match (parse_ts(&l.start), parse_ts(&l.end)) {
            (Some(l_start), Some(l_end)) => l_start < end && l_end >= start,
            _ => true,
        })
        .cloned()
        .collect()
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn base_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn matches(d: &Detection, l: &Label) -> bool {
    matches_entity(
        &d.granularity,
        &d.entity_key,
        d.window_start,
        d.window_end,
        l,
    )
}

/// Whether the entity (granularity, key, time range) is what label `l` points at.
fn matches_entity(
    granularity: &str,
    entity_key: &str,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    l: &Label,
) -> bool {
    if granularity != l.granularity {
        return false;
    }
    match l.granularity.as_str() {
        "window" => {
            let (Some(start), Some(end)) = (parse_ts(&l.start), parse_ts(&l.end)) else {
                return false;
            };
            entity_key == l.service && window_start < end && start < window_end
        }
        "session" => l.session_key.as_deref() == Some(entity_key),
        "event" => match (&l.file, l.line) {
            (Some(file), Some(line)) => entity_key.rsplit_once(':').is_some_and(|(f, n)| {
                base_name(f) == base_name(file) && n.parse::<u64>().ok() == Some(line)
            }),
            _ => false,
        },
        _ => false,
    }
}

/// The detections in an anomalies table (detections/anomalies has the database's columns).
/// Anomalies an operator's verdict suppressed (`details.suppressed_by`) are not detections.
pub fn detections_from(anomalies: &polars::prelude::DataFrame) -> anyhow::Result<Vec<Detection>> {
    use crate::features::{millis, strings};
    let suppressed: Vec<bool> = match anomalies.column("details") {
        Ok(details) => details
            .str()?
            .iter()
            .map(|d| d.is_some_and(is_suppressed))
            .collect(),
        Err(_) => vec![false; anomalies.height()],
    };
    let granularity = strings(anomalies, "granularity")?;
    let entity = strings(anomalies, "entity_key")?;
    let detector = strings(anomalies, "detector")?;
    let start = millis(anomalies, "window_start")?;
    let end = millis(anomalies, "window_end")?;
    let ts = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
    Ok((0..anomalies.height())
        .filter(|&i| !suppressed[i])
        .map(|i| Detection {
            granularity: granularity[i].clone(),
            entity_key: entity[i].clone(),
            window_start: ts(start[i]),
            window_end: ts(end[i]),
            detector: detector[i].clone(),
        })
        .collect())
}

/// Whether an anomaly's details say an operator's verdict suppressed it (`suppressed_by`):
/// such an anomaly is not a detection ([`detections_from`]).
pub fn is_suppressed(details: &str) -> bool {
    details.contains("\"suppressed_by\"")
}

pub fn evaluate(detections: &[Detection], labels: &[Label]) -> Evaluation {
    let mut eval = Evaluation::default();
    let mut entities: BTreeMap<(String, String, i64), bool> = BTreeMap::new();
    let mut found: BTreeSet<usize> = BTreeSet::new();
    for d in detections {
        let mut hit = false;
        for (i, l) in labels.iter().enumerate() {
            if matches(d, l) {
                hit = true;
                found.insert(i);
            }
        }
        let key = (
            d.granularity.clone(),
            d.entity_key.clone(),
            d.window_start.timestamp_millis(),
        );
        let e = entities.entry(key).or_insert(false);
        *e |= hit;
        let per = eval
            .per_detector
            .entry(format!("{}/{}", d.detector, d.granularity))
            .or_default();
        per.0 += hit as usize;
        per.1 += 1;
    }
    for (i, l) in labels.iter().enumerate() {
        let k = eval.per_kind.entry(l.kind.clone()).or_default();
        k.0 += found.contains(&i) as usize;
        k.1 += 1;
    }
    eval.overall = Scores {
        true_positives: entities.values().filter(|&&h| h).count(),
        detections: entities.len(),
        labels_found: found.len(),
        labels: labels.len(),
    };
    eval
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_and_average_precision_match_hand_computed_values() {
        // Scores 0.9 (+), 0.8 (−), 0.7 (+), 0.1 (−): 3 of 4 positive-negative pairs ordered.
        let m = metrics(&[
            (0.9, true, true),
            (0.8, true, false),
            (0.7, false, true),
            (0.1, false, false),
        ]);
        assert!((m.roc_auc.unwrap() - 0.75).abs() < 1e-12);
        // AP = ½·(1/1) + ½·(2/3).
        assert!((m.pr_auc.unwrap() - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
        assert_eq!((m.flagged, m.true_positives), (2, 1));
        assert!((m.f1 - 0.5).abs() < 1e-12);
        // All tied: chance.
        let tied = metrics(&[(0.0, false, true), (0.0, false, false)]);
        assert_eq!(tied.roc_auc, Some(0.5));
        assert_eq!(metrics(&[(1.0, true, true)]).roc_auc, None);
    }

    #[test]
    fn label_files_of_each_shape_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = dir.path().join("anomaly_label.csv");
        std::fs::write(
            &sessions,
            "BlockId,Label\nblk_1,Normal\nblk_2,Anomaly\n\"blk_3, retried\",\"Anomaly\"\n",
        )
        .unwrap();
        let set = LabelSet::read(&sessions).unwrap();
        let truth = Truth {
            labels: &set,
            window_ms: 0,
            anomalous_windows: HashSet::new(),
            anomalous_sessions: HashSet::new(),
        };
        assert_eq!(truth.of("session", "blk_2", 0), Some(true));
        assert_eq!(truth.of("session", "blk_1", 0), Some(false));
        // A quoted field may hold a comma.
        assert_eq!(truth.of("session", "blk_3, retried", 0), Some(true));
        assert_eq!(truth.of("window", "svc", 0), None);

        let lines = dir.path().join("lines.csv");
        std::fs::write(&lines, "LineId,Label\n1,-\n2,KERNDTLB\n").unwrap();
        let set = LabelSet::read(&lines).unwrap();
        let truth = Truth {
            labels: &set,
            window_ms: 0,
            anomalous_windows: HashSet::new(),
            // As 06-report derives it: the sessions whose messages include an anomalous line.
            anomalous_sessions: HashSet::from(["job-7".to_string()]),
        };
        assert_eq!(truth.of("event", "logs/bgl.log:2", 0), Some(true));
        assert_eq!(truth.of("event", "logs/bgl.log:1", 0), Some(false));
        assert_eq!(truth.of("session", "job-7", 0), Some(true));
        assert_eq!(truth.of("session", "job-8", 0), Some(false));

        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "a,b\n1,2\n").unwrap();
        assert!(
            LabelSet::read(&bad)
                .unwrap_err()
                .to_string()
                .contains("no label column")
        );
    }

    fn ts(s: &str) -> DateTime<Utc> {
        parse_ts(s).unwrap()
    }

    #[test]
    fn matches_by_granularity_and_counts_entities_once() {
        let labels = vec![
            Label {
                kind: "error_burst".into(),
                granularity: "window".into(),
                service: "auth".into(),
                start: "2026-11-20T10:02:00Z".into(),
                end: "2026-11-20T10:12:00Z".into(),
                session_key: None,
                file: None,
                line: None,
            },
            Label {
                kind: "never_seen".into(),
                granularity: "event".into(),
                service: "auth".into(),
                start: "2026-11-20T11:00:00Z".into(),
                end: "2026-11-20T11:00:00.001Z".into(),
                session_key: None,
                file: Some("shop-2026-11-20.log".into()),
                line: Some(42),
            },
        ];
        let window = |start: &str, end: &str, det: &str| Detection {
            granularity: "window".into(),
            entity_key: "auth".into(),
            window_start: ts(start),
            window_end: ts(end),
            detector: det.into(),
        };
        let detections = vec![
            window("2026-11-20T10:00:00Z", "2026-11-20T10:05:00Z", "zscore"),
            window(
                "2026-11-20T10:00:00Z",
                "2026-11-20T10:05:00Z",
                "isolation_forest",
            ),
            window("2026-11-20T10:10:00Z", "2026-11-20T10:15:00Z", "zscore"),
            window("2026-11-20T14:00:00Z", "2026-11-20T14:05:00Z", "zscore"),
            Detection {
                granularity: "event".into(),
                entity_key: "/data/raw/shop-2026-11-20.log:42".into(),
                window_start: ts("2026-11-20T11:00:00Z"),
                window_end: ts("2026-11-20T11:00:00Z"),
                detector: "rare_template".into(),
            },
        ];
        let e = evaluate(&detections, &labels);
        // Entities: 10:00 window (twice), 10:10 window, 14:00 window, the event → 4, of which 3 hit.
        assert_eq!(e.overall.detections, 4);
        assert_eq!(e.overall.true_positives, 3);
        assert_eq!(e.overall.labels_found, 2);
        assert!((e.overall.precision() - 0.75).abs() < 1e-12);
        assert_eq!(e.overall.recall(), 1.0);
        assert_eq!(e.per_detector["zscore/window"], (2, 3));
    }
}

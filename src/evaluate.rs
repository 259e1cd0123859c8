//! Scoring detections against ground-truth labels (the generator's `labels.jsonl`).
//!
//! A detection matches a label of its own granularity when it points at the same thing:
//! a window detection of the label's service overlapping the label's interval; a session
//! detection with the label's session key; an event detection at the label's file and line.
//! Precision counts distinct detected entities (several detectors flagging the same window
//! count once); recall counts labels found by at least one detection.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::generate::Label;

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

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn base_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn matches(d: &Detection, l: &Label) -> bool {
    if d.granularity != l.granularity {
        return false;
    }
    match l.granularity.as_str() {
        "window" => {
            let (Some(start), Some(end)) = (parse_ts(&l.start), parse_ts(&l.end)) else {
                return false;
            };
            d.entity_key == l.service && d.window_start < end && start < d.window_end
        }
        "session" => l.session_key.as_deref() == Some(d.entity_key.as_str()),
        "event" => match (&l.file, l.line) {
            (Some(file), Some(line)) => d.entity_key.rsplit_once(':').is_some_and(|(f, n)| {
                base_name(f) == base_name(file) && n.parse::<u64>().ok() == Some(line)
            }),
            _ => false,
        },
        _ => false,
    }
}

/// The detections in an anomalies table (gold/anomalies has the database's columns).
pub fn detections_from(anomalies: &polars::prelude::DataFrame) -> anyhow::Result<Vec<Detection>> {
    use crate::features::{millis, strings};
    let granularity = strings(anomalies, "granularity")?;
    let entity = strings(anomalies, "entity_key")?;
    let detector = strings(anomalies, "detector")?;
    let start = millis(anomalies, "window_start")?;
    let end = millis(anomalies, "window_end")?;
    let ts = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
    Ok((0..anomalies.height())
        .map(|i| Detection {
            granularity: granularity[i].clone(),
            entity_key: entity[i].clone(),
            window_start: ts(start[i]),
            window_end: ts(end[i]),
            detector: detector[i].clone(),
        })
        .collect())
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

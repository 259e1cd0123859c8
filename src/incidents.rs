//! Grouping anomalies into incidents.
//!
//! An operator does not want forty rows for one outage: a volume spike seen by two detectors in
//! three consecutive windows, and the sessions that failed during it, are one incident. Anomalies
//! of the same service whose time ranges lie within `gap` of each other form one incident
//! (single linkage in time); within it, an anomaly whose detector already raised the same kind
//! of finding (same feature, template, relation or transition) is counted as a repeat instead of
//! being news. Incident ids hash the source, service and first anomaly, so re-running a batch
//! gives the same ids.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use crate::detectors::{calibrated, severity_rank};
use crate::records::{AnomalyRow, Incident};

/// An incident of an earlier batch, as far as that batch's anomalies reach: what a batch's
/// first anomalies of the same service may continue.
#[derive(Debug, Clone, PartialEq)]
pub struct Tail {
    pub incident_id: String,
    pub service: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
}

/// The incidents `earlier` (anomalies of earlier batches, with their incident ids) reach
/// into, one tail per incident.
pub fn tails<'a>(earlier: impl IntoIterator<Item = &'a AnomalyRow>) -> Vec<Tail> {
    let mut by_id: BTreeMap<&str, Tail> = BTreeMap::new();
    for r in earlier {
        let Some(id) = r.incident_id.as_deref() else {
            continue;
        };
        let start = r.window_start;
        let end = r.window_end.max(r.window_start);
        by_id
            .entry(id)
            .and_modify(|t| {
                t.started_at = t.started_at.min(start);
                t.ended_at = t.ended_at.max(end);
            })
            .or_insert_with(|| Tail {
                incident_id: id.to_string(),
                service: r.service.clone(),
                started_at: start,
                ended_at: end,
            });
    }
    by_id.into_values().collect()
}

/// Set each row's `incident_id`: per service, anomalies whose times lie within `gap` of the
/// chain before them share one; a service's first chain continues the latest of `tails`
/// (incidents of earlier batches) of that service that ends within `gap` before it starts,
/// so an outage across a batch boundary stays one incident. Other chains get an id hashed
/// from their first anomaly, stable across re-runs.
pub fn assign_ids(rows: &mut [AnomalyRow], gap: Duration, tails: &[Tail]) {
    let mut by_service: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        by_service.entry(r.service.clone()).or_default().push(i);
    }
    for (service, mut idx) in by_service {
        idx.sort_by(|&a, &b| {
            (rows[a].window_start, &rows[a].anomaly_id)
                .cmp(&(rows[b].window_start, &rows[b].anomaly_id))
        });
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut end = DateTime::<Utc>::MIN_UTC;
        for i in idx {
            if groups.is_empty() || rows[i].window_start > end + gap {
                groups.push(Vec::new());
            }
            end = end.max(rows[i].window_end).max(rows[i].window_start);
            if let Some(g) = groups.last_mut() {
                g.push(i);
            }
        }
        for (n, group) in groups.iter().enumerate() {
            let first = &rows[group[0]];
            let continued = (n == 0)
                .then(|| {
                    tails
                        .iter()
                        .filter(|t| {
                            t.service == service
                                && t.started_at <= first.window_start
                                && first.window_start <= t.ended_at + gap
                        })
                        .max_by(|a, b| {
                            (a.ended_at, &a.incident_id).cmp(&(b.ended_at, &b.incident_id))
                        })
                })
                .flatten();
            let incident_id = match continued {
                Some(t) => t.incident_id.clone(),
                None => {
                    let id_input = format!(
                        "{}|{}|{}|{}",
                        first.source, service, first.window_start, first.anomaly_id
                    );
                    Sha256::digest(id_input.as_bytes())[..8]
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect()
                }
            };
            for &i in group {
                rows[i].incident_id = Some(incident_id.clone());
            }
        }
    }
}

/// The incident rows for every incident `rows` belong to (ids set by [`assign_ids`]), over
/// `rows` and `others`: the anomalies of other batches in the same incidents. An incident's
/// batch date is the one it started in.
pub fn summarize(rows: &[AnomalyRow], others: &[AnomalyRow]) -> Vec<Incident> {
    let ours: BTreeSet<&str> = rows
        .iter()
        .filter_map(|r| r.incident_id.as_deref())
        .collect();
    let mut members: BTreeMap<&str, Vec<&AnomalyRow>> = BTreeMap::new();
    for r in rows.iter().chain(others) {
        if let Some(id) = r.incident_id.as_deref().filter(|id| ours.contains(id)) {
            members.entry(id).or_default().push(r);
        }
    }
    let mut incidents = Vec::new();
    for (incident_id, mut group) in members {
        group.sort_by(|a, b| (a.window_start, &a.anomaly_id).cmp(&(b.window_start, &b.anomaly_id)));
        group.dedup_by(|a, b| a.anomaly_id == b.anomaly_id);
        let service = group[0].service.clone();
        let mut seen = BTreeSet::new();
        let mut repeats = 0;
        let mut entities = BTreeSet::new();
        let mut detectors = BTreeSet::new();
        let ratio = |r: &AnomalyRow| calibrated(r.score, r.threshold);
        let mut lead = 0;
        for (k, r) in group.iter().enumerate() {
            if !seen.insert(r.kind.as_str()) {
                repeats += 1;
            }
            entities.insert((r.granularity.clone(), r.entity_key.clone()));
            detectors.insert(r.detector.clone());
            let better = (severity_rank(&r.severity), ratio(r))
                > (severity_rank(&group[lead].severity), ratio(group[lead]));
            if better {
                lead = k;
            }
        }
        let lead_row = group[lead];
        let title = if group.len() == 1 {
            lead_row.reason.clone()
        } else {
            format!(
                "{} anomalies in {} ({} distinct); strongest: {}",
                group.len(),
                if service.is_empty() { "-" } else { &service },
                group.len() - repeats,
                lead_row.reason
            )
        };
        incidents.push(Incident {
            incident_id: incident_id.to_string(),
            source: group[0].source.clone(),
            batch_date: group.iter().map(|r| r.batch_date).min().unwrap_or_default(),
            service,
            started_at: group
                .iter()
                .map(|r| r.window_start)
                .min()
                .unwrap_or_default(),
            ended_at: group.iter().map(|r| r.window_end).max().unwrap_or_default(),
            anomalies: group.len() as u64,
            entities: entities.len() as u64,
            repeats: repeats as u64,
            detectors: detectors.into_iter().collect::<Vec<_>>().join(","),
            severity: lead_row.severity.clone(),
            max_score_ratio: (ratio(lead_row) * 1e6).round() / 1e6,
            title,
        });
    }
    incidents.sort_by(|a, b| (a.started_at, &a.incident_id).cmp(&(b.started_at, &b.incident_id)));
    incidents
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    /// One batch on its own: ids, then incident rows.
    fn assign(rows: &mut [AnomalyRow], gap: Duration) -> Vec<Incident> {
        assign_ids(rows, gap, &[]);
        summarize(rows, &[])
    }
    use chrono::TimeZone;

    fn row(id: &str, service: &str, minute: u32, detector: &str, feature: &str) -> AnomalyRow {
        let at = |m: u32| {
            Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap() + Duration::minutes(m as i64)
        };
        AnomalyRow {
            provisional: false,
            vote: false,
            anomaly_id: id.into(),
            run_id: "r".into(),
            detected_at: at(0),
            source: "app".into(),
            batch_date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            granularity: "window".into(),
            entity_key: service.into(),
            window_start: at(minute),
            window_end: at(minute + 5),
            detector: detector.into(),
            score: 10.0,
            threshold: 5.0,
            severity: "high".into(),
            reason: format!("{feature} high in {service}"),
            details:
                serde_json::json!({"service": service, "top_features": [{"feature": feature}]})
                    .to_string(),
            model_version: "v".into(),
            incident_id: None,
            service: service.into(),
            kind: crate::records::finding_kind(
                "window",
                detector,
                &serde_json::json!({ "feature": feature }),
            ),
        }
    }

    #[test]
    fn close_anomalies_of_a_service_form_one_incident_with_repeats_counted() {
        let mut rows = vec![
            row("a", "checkout", 0, "zscore", "n_events"),
            row("b", "checkout", 5, "zscore", "n_events"),
            row("c", "checkout", 10, "zscore", "n_events"),
            row("d", "checkout", 10, "zscore", "n_error"),
            // 3 hours later: a new incident.
            row("e", "checkout", 190, "zscore", "n_events"),
            // Same time, other service: its own incident.
            row("f", "search", 5, "zscore", "n_events"),
        ];
        let incidents = assign(&mut rows, Duration::minutes(15));
        assert_eq!(incidents.len(), 3);
        let first = &incidents.iter().find(|i| i.anomalies == 4).unwrap();
        assert_eq!(first.service, "checkout");
        assert_eq!(first.repeats, 2, "b and c repeat a; d is a new finding");
        assert_eq!(first.ended_at - first.started_at, Duration::minutes(15));
        assert!(
            first
                .title
                .starts_with("4 anomalies in checkout (2 distinct)")
        );
        let ids: BTreeSet<_> = rows
            .iter()
            .map(|r| r.incident_id.clone().unwrap())
            .collect();
        assert_eq!(ids.len(), 3);
        assert_eq!(rows[0].incident_id, rows[3].incident_id);
        assert_ne!(rows[0].incident_id, rows[4].incident_id);
        // Same input, same ids.
        let mut again = rows.clone();
        for r in &mut again {
            r.incident_id = None;
        }
        assert_eq!(assign(&mut again, Duration::minutes(15)), incidents);
    }

    #[test]
    fn an_outage_across_a_batch_boundary_is_one_incident() {
        let day2 = |r: &mut AnomalyRow| {
            r.batch_date = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        };
        // Batch 1 ends with an outage at minutes 40–50; batch 2 starts with its tail at 60.
        let mut first = vec![
            row("a", "checkout", 40, "zscore", "n_events"),
            row("b", "checkout", 45, "zscore", "n_error"),
        ];
        let batch1 = assign(&mut first, Duration::minutes(15));
        assert_eq!(batch1.len(), 1);
        let mut second = vec![
            row("c", "checkout", 60, "zscore", "n_events"),
            // Far later: its own incident.
            row("d", "checkout", 300, "zscore", "n_events"),
            // Another service at the same time: not a continuation.
            row("e", "search", 60, "zscore", "n_events"),
        ];
        second.iter_mut().for_each(day2);
        assign_ids(&mut second, Duration::minutes(15), &tails(&first));
        assert_eq!(second[0].incident_id, first[0].incident_id);
        assert_ne!(second[1].incident_id, first[0].incident_id);
        assert_ne!(second[2].incident_id, first[0].incident_id);
        let incidents = summarize(&second, &first);
        assert_eq!(incidents.len(), 3);
        let outage = incidents
            .iter()
            .find(|i| Some(&i.incident_id) == first[0].incident_id.as_ref())
            .unwrap();
        assert_eq!(outage.anomalies, 3);
        assert_eq!(outage.repeats, 1, "c repeats a");
        assert_eq!(
            outage.batch_date, first[0].batch_date,
            "dated by where it began"
        );
        assert_eq!(outage.ended_at - outage.started_at, Duration::minutes(25));
        // Re-running batch 1 with batch 2 present gives the same incident row.
        let mut rerun = first.clone();
        assign_ids(&mut rerun, Duration::minutes(15), &[]);
        let again = summarize(&rerun, &second);
        assert_eq!(again, vec![outage.clone()]);
        // Too long a pause: no continuation.
        let mut late = vec![row("f", "checkout", 90, "zscore", "n_events")];
        late.iter_mut().for_each(day2);
        assign_ids(&mut late, Duration::minutes(15), &tails(&first));
        assert_ne!(late[0].incident_id, first[0].incident_id);
    }
}

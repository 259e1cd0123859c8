//! What operators do between batches: list and inspect incidents, acknowledge and close them,
//! and give verdicts on anomalies (`loglake incidents …`, `loglake anomalies mark …`).
//!
//! These commands change only the database's `incidents.status` and `feedback`; they take no
//! lake lock, so they work while a batch runs. Closing an incident sends its resolved notice
//! to the alert receivers at once (the next 05-detect would otherwise).

use anyhow::Result;
use serde_json::Value;

use crate::config::Settings;
use crate::db::Database;
use crate::db::api::AnomalyFilter;
use crate::db::feedback::Verdict;
use crate::lake::Lake;
use crate::workspace::{Access, Workspace};

fn open(settings: &Settings) -> Result<(Database, Lake)> {
    let Workspace { lake, db, .. } = Workspace::open(settings, Access::Database)?;
    Ok((db.expect("the database access connects it"), lake))
}

/// `incidents list`: a table for people, or the rows as JSON.
pub fn list(
    settings: &Settings,
    source: Option<&str>,
    status: Option<&str>,
    limit: i64,
    json: bool,
) -> Result<String> {
    let (db, _) = open(settings)?;
    let rows = db.incidents_matching(source, status, None, limit)?;
    db.close();
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&rows)?));
    }
    let mut out = format!(
        "{:<16}  {:<12}  {:<8}  {:<20}  {:<19}  {:>9}  title\n",
        "incident", "status", "severity", "service", "started", "anomalies"
    );
    for r in &rows {
        out.push_str(&format!(
            "{:<16}  {:<12}  {:<8}  {:<20}  {:<19}  {:>9}  {}\n",
            text(&r["incident_id"]),
            text(&r["status"]),
            text(&r["severity"]),
            text(&r["service"]),
            text(&r["started_at"]).chars().take(19).collect::<String>(),
            text(&r["anomalies"]),
            text(&r["title"])
        ));
    }
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    Ok(out)
}

/// `incidents show ID`: the incident and its anomalies.
pub fn show(settings: &Settings, incident_id: &str, json: bool) -> Result<String> {
    let (db, _) = open(settings)?;
    let incident = db
        .incidents_matching(None, None, Some(incident_id), 1)?
        .pop()
        .ok_or_else(|| {
            anyhow::anyhow!("no incident {incident_id:?} (see `loglake incidents list`)")
        })?;
    let anomalies = db.anomalies_matching(&AnomalyFilter {
        incident_id: Some(incident_id.to_string()),
        limit: settings.serve.max_rows,
        ..Default::default()
    })?;
    db.close();
    if json {
        let both = serde_json::json!({ "incident": incident, "anomalies": anomalies });
        return Ok(format!("{}\n", serde_json::to_string_pretty(&both)?));
    }
    let mut out = format!(
        "incident {} ({}, {}) in {}/{}, {} to {}\n  {}\n  detectors: {}\n",
        text(&incident["incident_id"]),
        text(&incident["status"]),
        text(&incident["severity"]),
        text(&incident["source"]),
        text(&incident["service"]),
        text(&incident["started_at"]),
        text(&incident["ended_at"]),
        text(&incident["title"]),
        text(&incident["detectors"]),
    );
    out.push_str(&format!("  {} anomalies:\n", anomalies.len()));
    for a in &anomalies {
        out.push_str(&format!(
            "    {}  {:<8}  {}/{}  {}\n",
            text(&a["anomaly_id"]),
            text(&a["severity"]),
            text(&a["granularity"]),
            text(&a["detector"]),
            text(&a["reason"])
        ));
    }
    Ok(out)
}

/// `incidents ack|close ID`.
pub fn set_status(
    settings: &Settings,
    incident_id: &str,
    status: &str,
    verdict: &Verdict,
) -> Result<String> {
    let (db, lake) = open(settings)?;
    let source = db.set_incident_status(incident_id, status, verdict)?;
    let mut out = format!("incident {incident_id} {status} by {}\n", verdict.by);
    if status == "closed" && !settings.alerts.receivers.is_empty() {
        let delivery =
            crate::alerts::deliver(&settings.alerts, &db, &lake.reports_location(), &source)?;
        out.push_str(&format!("{}\n", delivery.summary()));
    }
    db.close();
    Ok(out)
}

/// `anomalies mark ID --normal|--anomaly`.
pub fn mark(
    settings: &Settings,
    anomaly_id: &str,
    verdict_word: &str,
    verdict: &Verdict,
) -> Result<String> {
    let (db, _) = open(settings)?;
    let marked = db.mark_anomaly(anomaly_id, verdict_word, verdict)?;
    db.close();
    Ok(format!(
        "anomaly {anomaly_id} ({}/{} on {} in {}) marked {verdict_word} by {}\n",
        marked.granularity, marked.detector, marked.entity_key, marked.source, verdict.by
    ))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

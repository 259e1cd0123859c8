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
use crate::records::Scope;
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
    let (db, lake) = open(settings)?;
    if let Some(source) = source {
        crate::stages::known_source(&lake, settings, source)?;
    }
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

/// `anomalies list`: a table for people, or the rows as JSON.
pub fn list_anomalies(
    settings: &Settings,
    source: Option<&str>,
    filter: &AnomalyFilter,
    json: bool,
) -> Result<String> {
    let (db, lake) = open(settings)?;
    if let Some(source) = source {
        crate::stages::known_source(&lake, settings, source)?;
    }
    let rows = db.anomalies_matching(filter)?;
    db.close();
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&rows)?));
    }
    let mut out = format!(
        "{:<16}  {:<24}  {:<8}  {:<20}  {:<8}  reason\n",
        "anomaly", "window_start", "severity", "service", "of"
    );
    for r in &rows {
        out.push_str(&format!(
            "{:<16}  {:<24}  {:<8}  {:<20}  {:<8}  {}\n",
            text(&r["anomaly_id"]),
            text(&r["window_start"]),
            text(&r["severity"]),
            text(&r["service"]),
            text(&r["granularity"]),
            text(&r["reason"]),
        ));
    }
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    Ok(out)
}

/// `anomalies show ID`: one anomaly in full.
pub fn show_anomaly(settings: &Settings, anomaly_id: &str, json: bool) -> Result<String> {
    let (db, _) = open(settings)?;
    let row = db
        .anomalies_matching(&AnomalyFilter {
            anomaly_id: Some(anomaly_id.to_string()),
            limit: 1,
            ..Default::default()
        })?
        .pop()
        .ok_or_else(|| {
            anyhow::anyhow!("no anomaly {anomaly_id:?} (see `loglake anomalies list`)")
        })?;
    db.close();
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&row)?));
    }
    let mut out = format!(
        "anomaly {} ({}, {}) in {}/{}: {} {} {} to {}\n  {}\n  detector {}, score {} against threshold {}, incident {}\n",
        text(&row["anomaly_id"]),
        text(&row["severity"]),
        text(&row["batch_date"]),
        text(&row["source"]),
        text(&row["service"]),
        text(&row["granularity"]),
        text(&row["entity_key"]),
        text(&row["window_start"]),
        text(&row["window_end"]),
        text(&row["reason"]),
        text(&row["detector"]),
        text(&row["score"]),
        text(&row["threshold"]),
        text(&row["incident_id"]),
    );
    for sample in row["details"]["samples"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {}:{}  {}\n",
            text(&sample["file"]),
            text(&sample["line_no"]),
            text(&sample["message"])
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
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// `tokens create`: make and store a token; the text that shows it, once.
pub fn create_token(settings: &Settings, name: &str, scopes: &[Scope]) -> Result<String> {
    let (row, token) = crate::tokens::make(name, scopes)?;
    let (db, _) = open(settings)?;
    db.create_token(&row)?;
    db.close();
    Ok(format!(
        "token {} for {} ({}):\n{token}\nshown once: keep it now (only its hash is stored); send it as Authorization: Bearer <token>\n",
        row.token_id,
        row.name,
        scope_list(&row.scopes)
    ))
}

/// `tokens list`: ids, names, scopes and state; never secrets.
pub fn list_tokens(settings: &Settings, json: bool) -> Result<String> {
    let (db, _) = open(settings)?;
    let rows = db.tokens()?;
    db.close();
    if json {
        let rows: Vec<Value> = rows
            .iter()
            .map(|t| {
                serde_json::json!({
                    "token_id": t.token_id, "name": t.name,
                    "scopes": t.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                    "created_at": t.created_at.to_rfc3339(),
                    "revoked_at": t.revoked_at.map(|r| r.to_rfc3339()),
                })
            })
            .collect();
        return Ok(format!("{}\n", serde_json::to_string_pretty(&rows)?));
    }
    let mut out = format!(
        "{:<12}  {:<20}  {:<20}  {:<16}  state\n",
        "token", "name", "scopes", "created"
    );
    for t in &rows {
        out.push_str(&format!(
            "{:<12}  {:<20}  {:<20}  {:<16}  {}\n",
            t.token_id,
            t.name,
            scope_list(&t.scopes),
            t.created_at.format("%Y-%m-%d %H:%M"),
            match t.revoked_at {
                Some(at) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
                None => "live".to_string(),
            }
        ));
    }
    if rows.is_empty() {
        out.push_str("(none: `loglake serve` answers only on loopback)\n");
    }
    Ok(out)
}

/// `tokens revoke`: what became of the token.
pub fn revoke_token(settings: &Settings, id: &str) -> Result<String> {
    let id = id.trim().trim_start_matches(crate::tokens::PREFIX);
    let id = id.split('_').next().unwrap_or_default();
    let (db, _) = open(settings)?;
    let revoked = db.revoke_token(id)?;
    db.close();
    if !revoked {
        anyhow::bail!("no live token {id:?} (see `loglake tokens list`)");
    }
    Ok(format!(
        "token {id} revoked: `loglake serve` refuses it within {} s\n",
        crate::serve::TOKEN_REFRESH.as_secs()
    ))
}

fn scope_list(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

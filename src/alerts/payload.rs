//! What each kind of receiver is sent: the request path and JSON body for one notice.

use serde_json::{Value, json};

use super::ReceiverKind;
use crate::db::alerts::{AlertIncident, Notice};

/// The URL to POST to and the body, for `notice` about `incident`; `report` links the day's
/// report (Alertmanager's `generatorURL`).
pub fn request(
    kind: ReceiverKind,
    url: &str,
    notice: Notice,
    incident: &AlertIncident,
    report: &str,
) -> (String, Value) {
    let base = url.trim_end_matches('/');
    match kind {
        ReceiverKind::Alertmanager => (
            format!("{base}/api/v2/alerts"),
            alertmanager(notice, incident, report),
        ),
        ReceiverKind::Slack => (
            base.to_string(),
            json!({ "text": slack_text(notice, incident, report) }),
        ),
        ReceiverKind::Webhook => (
            base.to_string(),
            json!({
                "notice": notice.as_str(),
                "incident": {
                    "incident_id": incident.incident_id,
                    "source": incident.source,
                    "service": incident.service,
                    "severity": incident.severity,
                    "started_at": rfc3339(&incident.started_at),
                    "ended_at": rfc3339(&incident.ended_at),
                    "anomalies": incident.anomalies,
                    "detectors": incident.detectors,
                    "status": incident.status,
                    "title": incident.title,
                    "batch_date": incident.batch_date,
                },
                "report": report,
            }),
        ),
    }
}

/// Alertmanager's v2 API takes a list of alerts; a resolved one is the same alert (same
/// labels) with `endsAt` in the past.
fn alertmanager(notice: Notice, incident: &AlertIncident, report: &str) -> Value {
    let mut alert = json!({
        "labels": {
            "alertname": "LoglakeIncident",
            "source": incident.source,
            "service": incident.service,
            "severity": incident.severity,
            "detector": incident.detectors,
            "incident_id": incident.incident_id,
        },
        "annotations": {
            "summary": incident.title,
            "description": format!(
                "{} anomalies in {} from {} to {} (batch {})",
                incident.anomalies, incident.service, rfc3339(&incident.started_at),
                rfc3339(&incident.ended_at), incident.batch_date
            ),
        },
        "startsAt": rfc3339(&incident.started_at),
        "generatorURL": report,
    });
    if notice == Notice::Resolved {
        alert["endsAt"] =
            json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    json!([alert])
}

fn slack_text(notice: Notice, incident: &AlertIncident, report: &str) -> String {
    match notice {
        Notice::Firing => format!(
            ":rotating_light: loglake {} incident in {}/{} since {}: {} ({} anomalies; {})",
            incident.severity,
            incident.source,
            incident.service,
            rfc3339(&incident.started_at),
            incident.title,
            incident.anomalies,
            report
        ),
        Notice::Resolved => format!(
            ":white_check_mark: loglake incident {} in {}/{} closed: {}",
            incident.incident_id, incident.source, incident.service, incident.title
        ),
    }
}

/// The database's timestamp text (`2026-11-20 14:05:00.000`, `+00` on PostgreSQL) as
/// RFC 3339 UTC; unchanged when it is not one.
fn rfc3339(ts: &str) -> String {
    let base = ts.get(..19).unwrap_or(ts);
    match chrono::NaiveDateTime::parse_from_str(base, "%Y-%m-%d %H:%M:%S") {
        Ok(t) => t
            .and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        Err(_) => ts.to_string(),
    }
}

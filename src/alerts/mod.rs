//! Alerts: after 05-detect, incidents at or above `[alerts] min_severity` are announced to
//! each configured receiver — Alertmanager, a Slack-compatible incoming webhook, or a generic
//! JSON webhook — and closed ones get a resolved notice.
//!
//! What was delivered is recorded per incident and receiver (the `alerts` table), so re-runs
//! and later batches never announce an incident twice; a firing notice goes again only when
//! the incident's severity has risen since. Each notice is tried `attempts` times with a
//! doubling pause; one that still fails does not fail the batch — it is recorded with its
//! error, counted in the stage's message and metrics, and tried again after the next
//! 05-detect. When a receiver cannot be reached at all (no connection, a timeout, a 5xx
//! answer), its other notices in that round are recorded as not delivered without being
//! tried: a receiver that is down costs one notice's retries per run, not every notice's.

mod payload;

use std::time::Duration;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::db::Database;
use crate::db::alerts::{AlertIncident, Notice};
use crate::detectors::{SEVERITIES, severity_rank as rank};

/// `[alerts]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertSettings {
    /// Incidents of this severity or worse are announced: low, medium, high or critical.
    pub min_severity: String,
    /// Where the daily HTML reports are published (the `<date>/index.html` pages of
    /// `<lake>/reports`), for the link in each alert; empty: the lake's own folder.
    pub report_url: String,
    /// Tries per notice in one run, with a pause that starts at `retry_pause_ms` and doubles.
    pub attempts: u32,
    pub retry_pause_ms: u64,
    /// Per request.
    pub timeout_seconds: u64,
    /// `[[alerts.receivers]]`: none by default.
    pub receivers: Vec<Receiver>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            min_severity: "high".into(),
            report_url: String::new(),
            attempts: 3,
            retry_pause_ms: 1000,
            timeout_seconds: 10,
            receivers: Vec::new(),
        }
    }
}

/// One `[[alerts.receivers]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Receiver {
    /// Names the receiver in the `alerts` table and in messages.
    pub name: String,
    pub kind: ReceiverKind,
    /// Alertmanager: its base URL (`http://alertmanager:9093`); Slack and webhook: the URL
    /// to POST to.
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiverKind {
    Alertmanager,
    Slack,
    Webhook,
}

impl AlertSettings {
    /// Refuse a setting that would make alerts silently never fire.
    pub fn check(&self) -> Result<(), String> {
        if !SEVERITIES.contains(&self.min_severity.as_str()) {
            return Err(format!(
                "alerts.min_severity must be low, medium, high or critical, not {:?}",
                self.min_severity
            ));
        }
        if self.attempts == 0 {
            return Err("alerts.attempts must be at least 1".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for r in &self.receivers {
            if !names.insert(r.name.as_str()) {
                return Err(format!("two alert receivers are named {:?}", r.name));
            }
            if !(r.url.starts_with("http://") || r.url.starts_with("https://")) {
                return Err(format!(
                    "alert receiver {:?}: url must start with http:// or https://, got {:?}",
                    r.name, r.url
                ));
            }
        }
        Ok(())
    }
}

/// What one delivery round did.
#[derive(Debug, Default)]
pub struct Delivery {
    pub sent: usize,
    pub failed: usize,
    /// `receiver: error` of the first failure per receiver.
    pub errors: Vec<String>,
}

impl Delivery {
    /// For the stage's message: `alerts: 3 sent, 1 not delivered (pager: connection refused)`.
    pub fn summary(&self) -> String {
        if self.failed == 0 {
            format!("alerts: {} sent", self.sent)
        } else {
            format!(
                "alerts: {} sent, {} not delivered, retried after the next 05-detect ({})",
                self.sent,
                self.failed,
                self.errors.join("; ")
            )
        }
    }
}

/// Send what is due for `source` to every receiver; `reports` is where the lake's reports are
/// (a link in each notice unless `report_url` is set).
pub fn deliver(
    settings: &AlertSettings,
    db: &Database,
    reports: &str,
    source: &str,
) -> Result<Delivery> {
    let mut delivery = Delivery::default();
    if settings.receivers.is_empty() {
        return Ok(delivery);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the alert sender")?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(settings.timeout_seconds.max(1)))
        .build()
        .context("building the HTTP client for alerts")?;
    for receiver in &settings.receivers {
        let mut first_error = None;
        // Set once a notice finds the receiver not there at all: why.
        let mut unreachable: Option<String> = None;
        for incident in db.incidents_for_alerts(source, &receiver.name)? {
            let Some(notice) = due(settings, &incident) else {
                continue;
            };
            let (attempts, outcome) = match &unreachable {
                Some(e) => (0, Err(format!("not tried in this round: {e}"))),
                None => {
                    let report = report_link(settings, reports, &incident);
                    let (url, body) =
                        payload::request(receiver.kind, &receiver.url, notice, &incident, &report);
                    let (attempts, outcome) =
                        runtime.block_on(post(&client, settings, &url, &body));
                    (
                        attempts,
                        outcome.map_err(|f| {
                            if f.unreachable {
                                unreachable = Some(f.text.clone());
                            }
                            f.text
                        }),
                    )
                }
            };
            db.record_alert(
                &incident.incident_id,
                &receiver.name,
                notice,
                &incident.severity,
                attempts,
                &outcome,
            )?;
            match outcome {
                Ok(()) => delivery.sent += 1,
                Err(e) => {
                    delivery.failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            tracing::warn!(receiver = %receiver.name, error = %e, "alerts not delivered");
            delivery.errors.push(format!("{}: {e}", receiver.name));
        }
    }
    Ok(delivery)
}

/// The notice `incident` is due at a receiver, given what it was sent before.
fn due(settings: &AlertSettings, incident: &AlertIncident) -> Option<Notice> {
    let fired = incident.fired_at_severity.as_deref();
    if incident.status == "closed" {
        return (fired.is_some() && !incident.resolved_sent).then_some(Notice::Resolved);
    }
    let severe_enough = rank(&incident.severity) >= rank(&settings.min_severity);
    let new_or_worse = fired.is_none_or(|sent| rank(&incident.severity) > rank(sent));
    (severe_enough && new_or_worse).then_some(Notice::Firing)
}

fn report_link(settings: &AlertSettings, reports: &str, incident: &AlertIncident) -> String {
    let base = if settings.report_url.is_empty() {
        reports.to_string()
    } else {
        settings.report_url.trim_end_matches('/').to_string()
    };
    format!("{base}/{}/index.html", incident.batch_date)
}

/// Why a notice was not delivered: the last try's error, and whether it says the receiver
/// is not there at all (no connection, a timeout, a server error) rather than refusing this
/// one notice.
struct Failure {
    text: String,
    unreachable: bool,
}

/// POST `body` to `url`, trying up to `attempts` times; how many tries it took, and whether
/// one was answered with a success status.
async fn post(
    client: &reqwest::Client,
    settings: &AlertSettings,
    url: &str,
    body: &serde_json::Value,
) -> (u32, std::result::Result<(), Failure>) {
    let mut pause = Duration::from_millis(settings.retry_pause_ms);
    let mut last = Failure {
        text: String::new(),
        unreachable: false,
    };
    for attempt in 1..=settings.attempts {
        last = match client.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => return (attempt, Ok(())),
            Ok(r) => Failure {
                text: format!("{url} answered {}", r.status()),
                unreachable: r.status().is_server_error(),
            },
            Err(e) => Failure {
                text: format!("{url}: {}", crate::secrets::scrub(&error_chain(&e))),
                unreachable: e.is_connect() || e.is_timeout() || e.is_request(),
            },
        };
        if attempt < settings.attempts {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
    (settings.attempts, Err(last))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(
        severity: &str,
        status: &str,
        fired: Option<&str>,
        resolved: bool,
    ) -> AlertIncident {
        AlertIncident {
            incident_id: "i".into(),
            source: "s".into(),
            service: "api".into(),
            severity: severity.into(),
            started_at: "2026-11-20 14:05:00.000".into(),
            ended_at: "2026-11-20 14:10:00.000".into(),
            title: "t".into(),
            detectors: "zscore".into(),
            anomalies: 2,
            status: status.into(),
            batch_date: "2026-11-20".into(),
            fired_at_severity: fired.map(str::to_string),
            resolved_sent: resolved,
        }
    }

    #[test]
    fn an_incident_fires_once_again_when_worse_and_resolves_once_closed() {
        let s = AlertSettings::default(); // high and above
        assert_eq!(due(&s, &incident("medium", "open", None, false)), None);
        assert_eq!(
            due(&s, &incident("high", "open", None, false)),
            Some(Notice::Firing)
        );
        assert_eq!(
            due(&s, &incident("high", "acknowledged", Some("high"), false)),
            None
        );
        // Escalated since it was announced.
        assert_eq!(
            due(&s, &incident("critical", "open", Some("high"), false)),
            Some(Notice::Firing)
        );
        assert_eq!(
            due(&s, &incident("high", "closed", Some("high"), false)),
            Some(Notice::Resolved)
        );
        assert_eq!(
            due(&s, &incident("high", "closed", Some("high"), true)),
            None
        );
        // Never announced: nothing to resolve.
        assert_eq!(due(&s, &incident("high", "closed", None, false)), None);
    }

    #[test]
    fn settings_that_would_never_alert_are_refused() {
        let mut s = AlertSettings {
            min_severity: "severe".into(),
            ..Default::default()
        };
        assert!(s.check().unwrap_err().contains("min_severity"));
        s.min_severity = "low".into();
        s.receivers = vec![Receiver {
            name: "x".into(),
            kind: ReceiverKind::Slack,
            url: "hooks.example".into(),
        }];
        assert!(s.check().unwrap_err().contains("http://"));
    }
}

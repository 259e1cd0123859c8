//! The rows stages hand to the database and read back: pipeline runs, anomalies, incidents,
//! evaluations. `db.rs` stores them; the stages build them. Typed, so that no stage parses
//! back JSON another stage wrote to learn a service or what kind of finding a row is.

use chrono::{DateTime, NaiveDate, Utc};

use crate::evaluate::Metrics;

/// One stage run, as recorded in `pipeline_runs`.
#[derive(Debug, Clone)]
pub struct RunStart<'a> {
    pub run_id: &'a str,
    pub stage: &'a str,
    pub source: &'a str,
    pub batch_dates: &'a str,
    pub started_at: DateTime<Utc>,
}

/// One row of the user-facing `anomalies` table (column names are a stable contract).
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyRow {
    pub anomaly_id: String,
    pub run_id: String,
    pub detected_at: DateTime<Utc>,
    pub source: String,
    pub batch_date: NaiveDate,
    pub granularity: String,
    pub entity_key: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub detector: String,
    pub score: f64,
    pub threshold: f64,
    pub severity: String,
    pub reason: String,
    pub details: String,
    pub model_version: String,
    pub incident_id: Option<String>,
    /// The service it concerns (the `service` column; also in `details.service`).
    pub service: String,
    /// What kind of finding it is beyond which entity (see [`finding_kind`]); incidents count
    /// a second finding of the same kind as a repeat. Not a column of the table.
    pub kind: String,
    /// Its window or session had not closed when it was judged (`gold::closing`): the
    /// verdict may change, so it belongs to no incident and raises no alert.
    pub provisional: bool,
    /// A detector's finding where the ensemble judges: evidence for the ensemble's verdict
    /// on the same entity (its row, `detector = 'ensemble'`, is the anomaly), not an anomaly
    /// of its own. Kept so that each detector can be evaluated and its evidence read, but
    /// counted nowhere, in no incident, and it raises no alert. With the ensemble turned off
    /// every finding is a verdict.
    pub vote: bool,
}

/// One row of the `evaluations` table: one detector at one granularity against one label set.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationRow {
    pub source: String,
    pub date_from: NaiveDate,
    pub date_to: NaiveDate,
    pub labels: String,
    pub detector: String,
    pub granularity: String,
    pub run_id: String,
    pub evaluated_at: DateTime<Utc>,
    pub metrics: Metrics,
}

/// How a stage run ended, as `pipeline_runs` records it.
#[derive(Debug, Clone, Default)]
pub struct RunEnd {
    /// `succeeded`, `skipped` or `failed`.
    pub status: &'static str,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_quarantined: u64,
    pub message: String,
    pub error: Option<String>,
}

/// One row of the `incidents` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub incident_id: String,
    pub source: String,
    pub batch_date: NaiveDate,
    pub service: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub anomalies: u64,
    pub entities: u64,
    pub repeats: u64,
    pub detectors: String,
    pub severity: String,
    pub max_score_ratio: f64,
    pub title: String,
}

/// What kind of finding an anomaly is, beyond which entity: the detector that leads it (an
/// ensemble finding restates its strongest member's) and its leading evidence (feature and
/// the template, relation or transition it names).
pub fn finding_kind(granularity: &str, lead_detector: &str, top: &serde_json::Value) -> String {
    let parts: Vec<&str> = ["feature", "template_id", "a", "b", "from", "to"]
        .iter()
        .filter_map(|k| top[*k].as_str())
        .collect();
    format!("{granularity}|{lead_detector}|{}", parts.join("|"))
}

/// A kind as [`finding_kind`] writes it, taken apart again: readers ask for its parts instead
/// of matching the text's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindParts<'a> {
    pub granularity: &'a str,
    pub lead_detector: &'a str,
    /// The leading evidence's values, in [`finding_kind`]'s order of keys.
    pub evidence: Vec<&'a str>,
}

impl<'a> KindParts<'a> {
    pub fn of(kind: &'a str) -> Self {
        let mut parts = kind.split('|');
        let granularity = parts.next().unwrap_or_default();
        let lead_detector = parts.next().unwrap_or_default();
        Self {
            granularity,
            lead_detector,
            evidence: parts.filter(|p| !p.is_empty()).collect(),
        }
    }
}

/// The service and kind of an anomaly whose details were written by `05-detect` (reading
/// detections/anomalies back).
pub fn service_and_kind(granularity: &str, detector: &str, details: &str) -> (String, String) {
    let details: serde_json::Value = serde_json::from_str(details).unwrap_or_default();
    (
        details["service"].as_str().unwrap_or_default().to_string(),
        kind_of(granularity, detector, &details),
    )
}

/// The service an anomaly's details name (empty when they name none or do not parse), read
/// without building the rest of the details: their sample lines are most of them, and the
/// report read a day's 12,721 anomalies' 26 MB of details whole for this one field.
pub fn service_of(details: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Service {
        #[serde(default)]
        service: Option<serde_json::Value>,
    }
    serde_json::from_str::<Service>(details)
        .ok()
        .and_then(|d| d.service)
        .and_then(|s| s.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The kind of an anomaly from its parsed details (see [`service_and_kind`]).
pub fn kind_of(granularity: &str, detector: &str, details: &serde_json::Value) -> String {
    let lead = details["contributions"][0]["detector"]
        .as_str()
        .unwrap_or(detector);
    finding_kind(granularity, lead, &details["top_features"][0])
}

/// A "normal" verdict as 05-detect applies it: findings of this detector and kind are
/// suppressed.
#[derive(Debug, Clone)]
pub struct NormalVerdict {
    pub feedback_id: i64,
    pub anomaly_id: String,
    pub detector: String,
    pub kind: String,
    /// The entity judged: a session key, a service, an event's `file:line`.
    pub entity_key: String,
    /// The marked finding's evidence (`details.top_features`, JSON), if it had any.
    pub evidence: Option<String>,
    /// When the judged window (or session, or event) started, in epoch milliseconds: with
    /// the service, what names a window.
    pub window_start: Option<i64>,
    pub by: String,
    pub note: Option<String>,
}

/// What an API token lets its holder do with `loglake serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Scope {
    /// Read anomalies, incidents and the service's metrics.
    Read,
    /// Score raw lines against a source's models.
    Score,
    /// Give verdicts on anomalies (they steer later detection and training).
    Feedback,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Score, Scope::Feedback];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Score => "score",
            Scope::Feedback => "feedback",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text.trim())
    }
}

/// One row of `api_tokens`: a token's public part and the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// The token's public id (its first part), shown in listings and logs.
    pub token_id: String,
    /// Whom it speaks for: verdicts given with it are recorded as theirs.
    pub name: String,
    pub scopes: Vec<Scope>,
    /// SHA-256 of the secret, in hex.
    pub secret_sha256: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

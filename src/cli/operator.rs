//! The operator commands' arguments (`loglake incidents …`, `loglake anomalies mark …`) and
//! their dispatch to [`crate::operator`].

use anyhow::Result;
use clap::{Args, Subcommand};

use super::Output;
use crate::config::Settings;

#[derive(Debug, Subcommand)]
pub enum IncidentAction {
    /// Incidents, newest first (of `--source` when given).
    List {
        /// Only incidents in this state.
        #[arg(long, value_enum)]
        status: Option<IncidentStatus>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// text for people, json for scripts.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// One incident and its anomalies.
    Show {
        /// The incident's id (first column of `incidents list`).
        id: String,
        /// text for people, json for scripts.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Mark it acknowledged: someone is on it.
    Ack {
        /// The incident's id.
        id: String,
        #[command(flatten)]
        who: WhoArgs,
    },
    /// Close it; the alert receivers get a resolved notice.
    Close {
        /// The incident's id.
        id: String,
        #[command(flatten)]
        who: WhoArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AnomalyAction {
    /// Anomalies, newest window first (of `--source` when given): the ensemble's verdicts, or
    /// with --detector that detector's findings (its votes).
    List {
        /// Only windows starting on or after this date.
        #[arg(long, value_name = "DATE", value_parser = super::parse_date)]
        since: Option<chrono::NaiveDate>,
        /// Only this severity and worse.
        #[arg(long, value_enum)]
        min_severity: Option<Severity>,
        /// Only this detector's findings.
        #[arg(long, value_name = "NAME")]
        detector: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// text for people, json for scripts.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// One anomaly in full: its reason, evidence and sample lines.
    Show {
        /// The anomaly's id (`anomalies list`, `incidents show`).
        id: String,
        /// text for people, json for scripts.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Record a verdict on an anomaly: --normal (a false alarm) or --anomaly (confirmed).
    Mark {
        /// The anomaly's id (`anomalies.anomaly_id`).
        id: String,
        /// It is normal: a false alarm.
        #[arg(long, conflicts_with = "anomaly", required_unless_present = "anomaly")]
        normal: bool,
        /// It is a real anomaly.
        #[arg(long)]
        anomaly: bool,
        #[command(flatten)]
        who: WhoArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Make a token for `loglake serve`; it is printed once, only its hash is kept.
    Create {
        /// Whom it speaks for: verdicts given with it are recorded under this name.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// What it may do (repeatable): read (anomalies, incidents, metrics), score (lines),
        /// feedback (verdicts).
        #[arg(long, value_enum, required = true)]
        scope: Vec<crate::records::Scope>,
    },
    /// The tokens, live and revoked (ids and names; never secrets).
    List {
        /// text for people, json for scripts.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Revoke a token: `serve` refuses it within seconds.
    Revoke {
        /// The token's id (`tokens list`; the part after `llt_` of the token).
        id: String,
    },
}

/// Run a `tokens` command; what it prints.
pub(super) fn tokens(settings: &Settings, action: &TokenAction) -> Result<String> {
    use crate::operator;
    match action {
        TokenAction::Create { name, scope } => operator::create_token(settings, name, scope),
        TokenAction::List { output } => operator::list_tokens(settings, *output == Output::Json),
        TokenAction::Revoke { id } => operator::revoke_token(settings, id),
    }
}

/// A severity word, for `--min-severity` (see `detectors::SEVERITIES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Who gives a verdict, and why: kept in the `feedback` table.
#[derive(Debug, Clone, Args)]
pub struct WhoArgs {
    /// Who [default: $USER].
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// Why, in a few words.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
}

impl WhoArgs {
    fn verdict(&self) -> crate::db::feedback::Verdict {
        crate::db::feedback::Verdict {
            by: self
                .by
                .clone()
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "operator".into()),
            note: self.note.clone(),
        }
    }
}

/// The states of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IncidentStatus {
    Open,
    Acknowledged,
    Closed,
}

impl IncidentStatus {
    fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::Closed => "closed",
        }
    }
}

/// Run an `incidents` command; what it prints.
pub(super) fn incidents(
    settings: &Settings,
    only_source: Option<&str>,
    action: &IncidentAction,
) -> Result<String> {
    use crate::operator;
    match action {
        IncidentAction::List {
            status,
            limit,
            output,
        } => operator::list(
            settings,
            only_source,
            status.map(IncidentStatus::as_str),
            *limit,
            *output == Output::Json,
        ),
        IncidentAction::Show { id, output } => {
            operator::show(settings, id, *output == Output::Json)
        }
        IncidentAction::Ack { id, who } => {
            operator::set_status(settings, id, "acknowledged", &who.verdict())
        }
        IncidentAction::Close { id, who } => {
            operator::set_status(settings, id, "closed", &who.verdict())
        }
    }
}

/// Run an `anomalies` command; what it prints.
pub(super) fn anomalies(
    settings: &Settings,
    only_source: Option<&str>,
    action: &AnomalyAction,
) -> Result<String> {
    match action {
        AnomalyAction::List {
            since,
            min_severity,
            detector,
            limit,
            output,
        } => {
            let filter = crate::db::api::AnomalyFilter {
                source: only_source.map(str::to_string),
                since: since.map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()),
                detector: detector.clone(),
                min_severity: min_severity.map(|s| s.as_str().to_string()),
                limit: *limit,
                ..Default::default()
            };
            crate::operator::list_anomalies(settings, only_source, &filter, *output == Output::Json)
        }
        AnomalyAction::Show { id, output } => {
            crate::operator::show_anomaly(settings, id, *output == Output::Json)
        }
        AnomalyAction::Mark {
            id, normal, who, ..
        } => {
            let verdict = if *normal { "normal" } else { "anomaly" };
            crate::operator::mark(settings, id, verdict, &who.verdict())
        }
    }
}

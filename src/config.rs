//! Settings: `config/loglake.toml`, then `LOGLAKE__SECTION__KEY` environment variables, then
//! command-line flags, each layer overriding the one before (the `config` crate does the merge).
//!
//! Every setting has a default here, so an empty or missing config file is valid; the shipped
//! `config/loglake.toml` repeats those defaults with a comment on each, and a test keeps the
//! two in step. Secrets (the database URL's password) belong in the environment only, and are
//! never printed: see [`redact_url`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::lake::lock::OnLocked;

/// The whole configuration, one struct per `[section]` of `config/loglake.toml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub lake: LakeSettings,
    pub database: DatabaseSettings,
    pub parse: ParseSettings,
    /// Per-source overrides of `[parse]`, keyed by source name: `[sources.hdfs]`.
    pub sources: BTreeMap<String, SourceSettings>,
    pub gold: GoldSettings,
    pub train: TrainSettings,
    pub detectors: DetectorSettings,
    pub detect: DetectSettings,
    pub run: RunSettings,
}

/// How stage commands behave as batch jobs: locking, exit codes, metrics.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSettings {
    /// When another loglake process holds the lake's lock: wait for it, or fail at once.
    pub on_locked: OnLocked,
    /// How long `wait` waits before failing.
    pub lock_timeout_seconds: u64,
    /// Exit code when a stage has nothing to do for the batch date. 0 for cron; 99 makes
    /// Airflow's BashOperator mark the task skipped.
    pub skip_exit_code: u8,
    /// Prometheus textfile (for node_exporter's textfile collector) rewritten after each
    /// stage; empty: none.
    pub metrics_textfile: PathBuf,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            on_locked: OnLocked::Wait,
            lock_timeout_seconds: 3600,
            skip_exit_code: 0,
            metrics_textfile: PathBuf::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LakeSettings {
    /// Root folder of the lake.
    pub path: PathBuf,
    /// Rows per bronze row group: bounds bronze's memory whatever the file size.
    pub bronze_batch_rows: usize,
}

impl Default for LakeSettings {
    fn default() -> Self {
        Self {
            path: PathBuf::from("lake"),
            bronze_batch_rows: 65_536,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://…`; empty means the embedded SQLite file `<lake>/loglake.db`.
    pub url: String,
    pub max_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_connections: 4,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParseSettings {
    /// A preset name (`generator`, `hdfs`, …) or a logparser-style format string.
    pub format: String,
    /// Regex that finds the session key in a message (first capture group if it has one), or
    /// `field:<name>` for a parsed field's value. Empty: no session features.
    pub session_key: String,
    /// Drain: similarity a message needs to join an existing template (0..1]. Stricter than
    /// Drain's usual 0.4–0.5 because Drain here only groups near-identical messages; the
    /// refine pass (`parse::refine`) joins clusters that differ in a slot with many values.
    /// Clusters Drain joins too eagerly cannot be taken apart reliably afterwards (a slot
    /// with four event-naming words looks like a variable), clusters it keeps apart can.
    pub similarity_threshold: f64,
    /// Drain: how many leading tokens route a message down the prefix tree.
    pub tree_depth: usize,
    /// Drain: children per tree node before new tokens share a wildcard child.
    pub max_children: usize,
    /// A token position that takes at most this many values across otherwise equal messages
    /// holds constants naming different events (`stored as bytes` / `stored as values`);
    /// more values make it a variable (`Invalid user <*>`). See `parse::refine`.
    pub max_constant_values: usize,
    /// Zone of timestamps that do not carry an offset: an IANA name (`Europe/Berlin`) or UTC.
    pub timezone: String,
    /// Year of timestamps that have none (syslog's `Jun 14 15:16:01`); unset: the batch
    /// date's year, or the year before for dates after the batch date.
    pub year: Option<i32>,
    /// Join continuation lines (indented stack frames, `Caused by:`, exception lines) onto
    /// the event before them instead of quarantining them.
    pub multiline: bool,
    /// JSON / logfmt: candidate keys of each header field, comma-separated, first present
    /// wins; dots reach into nested JSON objects.
    pub timestamp_field: String,
    pub level_field: String,
    pub service_field: String,
    pub message_field: String,
}

impl Default for ParseSettings {
    fn default() -> Self {
        Self {
            format: "auto".into(),
            session_key: String::new(),
            similarity_threshold: 0.6,
            tree_depth: 4,
            max_children: 100,
            max_constant_values: 3,
            timezone: "UTC".into(),
            year: None,
            multiline: true,
            timestamp_field: "timestamp,time,ts,@timestamp,datetime,date".into(),
            level_field: "level,severity,lvl,loglevel,log.level".into(),
            service_field: "service,logger,component,app,name,source".into(),
            message_field: "message,msg,log,text,event".into(),
        }
    }
}

/// What a `[sources.<name>]` table may override.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceSettings {
    pub format: Option<String>,
    pub session_key: Option<String>,
    /// Overrides `[gold] granularities` for this source.
    pub granularities: Option<Vec<String>>,
    /// Overrides `[gold] window_minutes` for this source.
    pub window_minutes: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GoldSettings {
    /// Length of the service × time windows, in minutes.
    pub window_minutes: u32,
    /// How many of the batch's most frequent templates get their own count column.
    pub top_templates: usize,
    /// Granularities trained and detected on: "window", "session", "event".
    pub granularities: Vec<String>,
    /// Days of earlier windows behind the same-hour baseline columns; 0: none.
    pub baseline_days: u32,
}

impl Default for GoldSettings {
    fn default() -> Self {
        Self {
            window_minutes: 5,
            top_templates: 20,
            granularities: vec!["window".into(), "session".into(), "event".into()],
            baseline_days: 7,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSettings {
    /// Gold partitions from this many days before the batch date up to it train the models.
    pub lookback_days: u32,
    /// Keep using the latest model while it was trained on data no older than this many days
    /// before the batch date (04-train then has nothing to do); 0 retrains on every run.
    /// A daily schedule with 7 retrains weekly.
    pub retrain_every_days: u32,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            lookback_days: 30,
            retrain_every_days: 0,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorSettings {
    pub isolation_forest: IsolationForestSettings,
    pub zscore: ZScoreSettings,
    pub percentile: PercentileSettings,
    pub rare_template: RareTemplateSettings,
    pub severity: SeveritySettings,
    pub param_range: ParamRangeSettings,
    pub sequence: SequenceSettings,
    pub invariants: InvariantsSettings,
    pub clustering: ClusteringSettings,
    pub ensemble: EnsembleSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnsembleSettings {
    pub enabled: bool,
    /// Detector → weight of its calibrated score (score ÷ its threshold); see
    /// `detectors::ensemble` for why the defaults differ.
    pub weights: BTreeMap<String, f64>,
    /// Weight of a detector not in `weights`.
    pub default_weight: f64,
    /// Detector → the evidence it reads; of detectors reading the same evidence only the
    /// strongest flag counts (a detector not named is a view of its own).
    pub views: BTreeMap<String, String>,
}

impl Default for EnsembleSettings {
    fn default() -> Self {
        let weights = [
            ("invariants", 1.0),
            ("rare_template", 1.0),
            ("severity", 1.0),
            ("param_range", 1.0),
            ("sequence", 0.5),
            ("zscore", 0.5),
            ("percentile", 0.5),
            ("clustering", 0.5),
            ("isolation_forest", 0.5),
        ];
        let views = [
            ("invariants", "counts"),
            ("zscore", "counts"),
            ("percentile", "counts"),
            ("clustering", "counts"),
            ("isolation_forest", "counts"),
            ("sequence", "order"),
            ("rare_template", "template"),
            ("severity", "template"),
            ("param_range", "values"),
        ];
        Self {
            enabled: true,
            weights: weights.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            default_weight: 1.0,
            views: views
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IsolationForestSettings {
    pub enabled: bool,
    /// Granularities it runs on (`window`, `session`).
    pub granularities: Vec<String>,
    pub n_trees: usize,
    pub max_samples: usize,
    /// `auto` (scikit-learn's: anomalous when the score exceeds 0.5) or a fraction in (0, 0.5].
    pub contamination: String,
    pub seed: u64,
}

impl Default for IsolationForestSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            granularities: vec!["session".into()],
            n_trees: 100,
            max_samples: 256,
            contamination: "auto".into(),
            seed: 42,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZScoreSettings {
    pub enabled: bool,
    pub granularities: Vec<String>,
    /// Median/MAD instead of mean/std: one burst in the training data does not hide the next.
    pub robust: bool,
    /// |z| at or above this is anomalous.
    pub threshold: f64,
}

impl Default for ZScoreSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            granularities: vec!["window".into(), "session".into()],
            robust: true,
            threshold: 5.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PercentileSettings {
    pub enabled: bool,
    pub granularities: Vec<String>,
    /// Upper quantile of a count's usual range (the lower one is 1 − quantile).
    pub quantile: f64,
    /// How far past the range, in tail widths (median → quantile), raises an anomaly.
    pub threshold: f64,
}

impl Default for PercentileSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            granularities: vec!["window".into()],
            quantile: 0.99,
            threshold: 1.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeveritySettings {
    pub enabled: bool,
    /// Lines at this level or above are judged (TRACE … FATAL).
    pub min_level: String,
    /// A template logged at a line's level or above at most this many times in training…
    pub max_count: u64,
    /// …or in at most this share of its training lines, is not routine at that level.
    pub max_share: f64,
    /// Only judge once the training range holds this many events.
    pub min_events: u64,
}

impl Default for SeveritySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            min_level: "ERROR".into(),
            max_count: 2,
            max_share: 0.01,
            min_events: 10_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParamRangeSettings {
    pub enabled: bool,
    /// Upper quantile of a value's usual range (the lower one is 1 − quantile); a position
    /// needs 1 / (1 − quantile) training values.
    pub quantile: f64,
    /// How far past the range, in tail widths (median → quantile), raises an anomaly.
    pub threshold: f64,
    /// The narrowest tail width, as a factor around the median: a value that barely moved in
    /// training is out of range beyond this factor per tail width of `threshold`.
    pub min_factor: f64,
}

impl Default for ParamRangeSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            quantile: 0.99,
            threshold: 1.5,
            min_factor: 2.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RareTemplateSettings {
    pub enabled: bool,
    /// A template seen at most this many times in the training range is rare.
    pub max_count: u64,
    /// …and only when the training range has at least this many events, so that a tiny first
    /// batch does not call everything rare.
    pub min_events: u64,
}

impl Default for RareTemplateSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_count: 2,
            min_events: 10_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SequenceSettings {
    pub enabled: bool,
    /// A transition made by at most this many training sessions is rare…
    pub max_sessions: u64,
    /// …or by at most this share of them, whichever is larger.
    pub max_rate: f64,
    /// Only judge once the training range holds this many sessions.
    pub min_sessions: u64,
}

impl Default for SequenceSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_sessions: 2,
            max_rate: 1e-4,
            min_sessions: 1000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct InvariantsSettings {
    pub enabled: bool,
    /// Share of the sessions having either event in which `p × count(a) = q × count(b)`
    /// must hold to be an invariant.
    pub min_support: f64,
    /// Templates present in at least this share of sessions take part in invariants.
    pub min_frequency: f64,
    /// Largest p and q tried.
    pub max_ratio: u32,
    /// A template present in at most this share of training sessions is rare.
    pub rare_share: f64,
    /// Only judge once the training range holds this many sessions.
    pub min_sessions: u64,
}

impl Default for InvariantsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            min_support: 0.9,
            min_frequency: 0.05,
            max_ratio: 3,
            rare_share: 0.01,
            min_sessions: 1000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusteringSettings {
    pub enabled: bool,
    /// k of k-means; at least the number of normal session behaviours.
    pub n_clusters: usize,
    /// A cluster holding less than this share of training sessions is rare.
    pub min_cluster_share: f64,
    /// Robust z of the distance to the cluster centre at which a session is far.
    pub distance_threshold: f64,
    /// Cluster counts on the log scale ln(1 + count), where distance measures how many times
    /// more or less often a template occurs rather than how many more events.
    pub log_counts: bool,
    pub seed: u64,
}

impl Default for ClusteringSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            n_clusters: 16,
            min_cluster_share: 1e-3,
            distance_threshold: 5.0,
            log_counts: true,
            seed: 42,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectSettings {
    /// Sample raw lines kept in each anomaly's `details`.
    pub sample_lines: usize,
    /// Anomalies of one service this close in time (minutes) belong to one incident.
    pub incident_gap_minutes: u32,
}

impl Default for DetectSettings {
    fn default() -> Self {
        Self {
            sample_lines: 3,
            incident_gap_minutes: 30,
        }
    }
}

/// Flag values that override file and environment (only the ones given).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub lake: Option<PathBuf>,
    pub database_url: Option<String>,
    pub on_locked: Option<OnLocked>,
    pub skip_exit_code: Option<u8>,
}

impl Settings {
    /// Load `path` (if given it must exist; if not, `config/loglake.toml` is used when present),
    /// then `LOGLAKE__…` environment variables, then `overrides`.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Self> {
        let mut builder = config::Config::builder();
        match path {
            Some(p) => {
                if !p.exists() {
                    anyhow::bail!(
                        "config file {} does not exist (pass --config with an existing file, or omit it to use defaults)",
                        p.display()
                    );
                }
                builder = builder.add_source(config::File::from(p.to_path_buf()));
            }
            None => {
                let default = Path::new("config/loglake.toml");
                if default.exists() {
                    builder = builder.add_source(config::File::from(default.to_path_buf()));
                }
            }
        }
        builder = builder.add_source(
            config::Environment::with_prefix("LOGLAKE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("detectors.isolation_forest.granularities")
                .with_list_parse_key("detectors.zscore.granularities")
                .with_list_parse_key("detectors.percentile.granularities")
                .with_list_parse_key("gold.granularities"),
        );
        if let Some(lake) = &overrides.lake {
            builder = builder.set_override("lake.path", lake.to_string_lossy().to_string())?;
        }
        if let Some(url) = &overrides.database_url {
            builder = builder.set_override("database.url", url.clone())?;
        }
        if let Some(on_locked) = overrides.on_locked {
            let name = match on_locked {
                OnLocked::Wait => "wait",
                OnLocked::Fail => "fail",
            };
            builder = builder.set_override("run.on_locked", name)?;
        }
        if let Some(code) = overrides.skip_exit_code {
            builder = builder.set_override("run.skip_exit_code", i64::from(code))?;
        }
        let merged = builder.build().context("reading configuration")?;
        let settings: Settings = merged.try_deserialize().context(
            "invalid configuration (see config/loglake.toml for every key and its default)",
        )?;
        Ok(settings)
    }

    /// The gold settings for one source: `[sources.<name>]` over `[gold]`.
    pub fn gold_for(&self, source: &str) -> GoldSettings {
        let mut gold = self.gold.clone();
        if let Some(s) = self.sources.get(source) {
            if let Some(g) = &s.granularities {
                gold.granularities = g.clone();
            }
            if let Some(w) = s.window_minutes {
                gold.window_minutes = w;
            }
        }
        gold
    }

    /// The parse settings for one source: `[sources.<name>]` over `[parse]`.
    pub fn parse_for(&self, source: &str) -> ParseSettings {
        let mut parse = self.parse.clone();
        if let Some(s) = self.sources.get(source) {
            if let Some(f) = &s.format {
                parse.format = f.clone();
            }
            if let Some(k) = &s.session_key {
                parse.session_key = k.clone();
            }
        }
        parse
    }
}

/// Replace the password in a database URL with `***`, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}://{}:***{}",
            &url[..scheme_end],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("sqlite://lake/loglake.db"),
            "sqlite://lake/loglake.db"
        );
    }

    #[test]
    fn shipped_config_matches_the_defaults() {
        // The shipped file documents every key with its default value: if the two drift, users
        // read one thing and get another.
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/loglake.toml"))
                .unwrap();
        let from_file: Settings = toml_like(&text);
        let defaults = Settings::default();
        assert_eq!(
            serde_json::to_value(&from_file).unwrap(),
            serde_json::to_value(&defaults).unwrap()
        );
    }

    fn toml_like(text: &str) -> Settings {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap()
    }

    #[test]
    fn sources_override_parse_defaults() {
        let mut s = Settings::default();
        s.sources.insert(
            "hdfs".into(),
            SourceSettings {
                format: Some("hdfs".into()),
                session_key: Some(r"(blk_-?\d+)".into()),
                granularities: Some(vec!["session".into()]),
                window_minutes: None,
            },
        );
        assert_eq!(s.parse_for("hdfs").format, "hdfs");
        assert_eq!(s.parse_for("other").format, "auto");
        assert_eq!(s.gold_for("hdfs").granularities, vec!["session"]);
        assert_eq!(s.gold_for("hdfs").window_minutes, 5);
        assert_eq!(s.gold_for("other").granularities.len(), 3);
    }
}

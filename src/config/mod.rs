//! Settings: a config file (`--config`, `$LOGLAKE_CONFIG`, `config/loglake.toml` or
//! `/etc/loglake/loglake.toml`: see [`file`]), then `LOGLAKE__SECTION__KEY` environment
//! variables, then command-line flags, each layer overriding the one before (the `config` crate
//! does the merge).
//!
//! Every setting has a default here, so an empty or missing config file is valid; the shipped
//! `config/loglake.toml` repeats those defaults with a comment on each, and a test keeps the
//! two in step. Secrets (the database URL's password) belong in the environment only, and are
//! never printed: see [`crate::secrets`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub mod file;
pub mod resolved;
pub mod show;

use crate::detectors::settings::DetectorsConfig;
use crate::lake::location::LakeLocation;
use crate::lake::lock::OnLocked;
/// `[parse]`: owned by the parser, which is its only reader.
pub use crate::parse::ParseSettings;

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
    /// `[detectors.<name>]`: each detector's own section, read and checked by the detector
    /// (see `detectors::settings`).
    pub detectors: DetectorsConfig,
    pub detect: DetectSettings,
    pub run: RunSettings,
    pub serve: ServeSettings,
    pub alerts: crate::alerts::AlertSettings,
}

/// `loglake serve`: where it listens and what it accepts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeSettings {
    /// Address and port to listen on (`--listen` overrides it).
    pub listen: String,
    /// Largest request body accepted, in bytes; a bigger one is refused with 413.
    pub max_body_bytes: usize,
    /// Longest line a scoring request may hold, in bytes (413 beyond).
    pub max_line_bytes: usize,
    /// Most rows `GET /v1/anomalies` returns (its `limit` may ask for fewer).
    pub max_rows: i64,
    /// Requests one API token may make in a minute (429 beyond).
    pub requests_per_minute: u32,
    /// A connection that has not sent a request's headers within this time is closed.
    pub header_timeout_seconds: u64,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8765".into(),
            max_body_bytes: 16 << 20,
            max_line_bytes: 64 << 10,
            max_rows: 10_000,
            requests_per_minute: 6000,
            header_timeout_seconds: 10,
            max_connections: 1024,
        }
    }
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
    /// Where the lake is: a folder, or `s3://bucket/prefix` (read once, here, into its type).
    pub path: LakeLocation,
    /// Rows per bronze row group: bounds bronze's memory whatever the file size.
    pub bronze_batch_rows: usize,
    /// A plain file's last line without a newline is left for a later run while the file
    /// changed less than this many seconds ago (it is probably still being written); an
    /// older file's unfinished last line is taken as its last line.
    pub unfinished_line_wait_seconds: u64,
}

impl Default for LakeSettings {
    fn default() -> Self {
        Self {
            path: LakeLocation::default(),
            bronze_batch_rows: 65_536,
            unfinished_line_wait_seconds: 300,
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
    /// Kafka brokers (`host:port`, comma-separated) that `01-bronze --kafka <topic>` reads
    /// this source's topics from (`--kafka-brokers` overrides it).
    pub kafka_brokers: Option<String>,
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
    /// 03-gold builds session features from at most about this many events at a time: a day
    /// with more is split into buckets by session key, spilled to the lake's staging area and
    /// aggregated one bucket at a time, so memory follows this number, not the day.
    pub session_bucket_events: usize,
    /// How late a line may reach the lake and still belong to what it happened in: a window
    /// closes (its verdict final) when the day's latest event time less this passes its
    /// end, and a day closes whole once its end plus this is past by the wall clock.
    pub allowed_lateness_minutes: u32,
    /// A session is complete once the day's latest event time, less the allowed lateness,
    /// is this many minutes past its last event: until then its verdict is provisional.
    pub session_idle_minutes: u32,
}

impl GoldSettings {
    /// Whether `date` (a UTC day) is closed at `now`: its end plus
    /// `allowed_lateness_minutes` has passed, so no more of its lines are waited for.
    pub fn day_closed(&self, date: chrono::NaiveDate, now: chrono::DateTime<chrono::Utc>) -> bool {
        let end = (date + chrono::Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc();
        end + chrono::Duration::minutes(i64::from(self.allowed_lateness_minutes)) <= now
    }
}

impl Default for GoldSettings {
    fn default() -> Self {
        Self {
            window_minutes: 5,
            top_templates: 20,
            granularities: vec!["window".into(), "session".into(), "event".into()],
            baseline_days: 7,
            // At 1 << 19, a generated 10 M-line day's 03-gold peaked at 570–600 MiB, most of it
            // memory the allocator kept from buckets already aggregated; at 1 << 18, 408 MiB in
            // the same time (a million HDFS lines: 0.46 → 0.47 s, 379 → 327 MiB).
            session_bucket_events: 1 << 18,
            allowed_lateness_minutes: 10,
            session_idle_minutes: 30,
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
    /// Session detectors train on at most this many sessions of the training range: with
    /// more, a fixed sample of them (the sessions whose key hashes lowest), so memory and time
    /// follow this number and not the range (a month of a busy source holds tens of millions).
    pub max_sessions: usize,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            lookback_days: 30,
            retrain_every_days: 0,
            max_sessions: 100_000,
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
    /// Load the config file ([`file::choose`]: `path`, else `$LOGLAKE_CONFIG`, else
    /// `config/loglake.toml`, else `/etc/loglake/loglake.toml`; relative paths in it taken
    /// from its folder), then `LOGLAKE__…` environment variables (and `DATABASE_URL` when
    /// `LOGLAKE__DATABASE__URL` is unset), then `overrides`.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Self> {
        Self::load_from(&file::find(path)?, overrides)
    }

    /// [`Settings::load`] with the config file already chosen.
    pub fn load_from(from: &file::ConfigFrom, overrides: &Overrides) -> Result<Self> {
        let mut builder = config::Config::builder();
        if let Some(p) = from.path() {
            builder = builder.add_source(config::File::from(p.to_path_buf()));
            let alone = config::Config::builder()
                .add_source(config::File::from(p.to_path_buf()))
                .build()
                .with_context(|| format!("reading the config file {}", p.display()))?;
            let anchored = file::anchored_paths(p, |key| alone.get_string(key).ok());
            if !anchored.is_empty() {
                builder =
                    builder.add_source(config::File::from_str(&anchored, config::FileFormat::Toml));
            }
        }
        // The variable most tools and platforms set, below loglake's own.
        if std::env::var_os("LOGLAKE__DATABASE__URL").is_none()
            && let Ok(url) = std::env::var("DATABASE_URL")
            && !url.is_empty()
        {
            let quoted = serde_json::to_string(&url).expect("a string serialises");
            builder = builder.add_source(config::File::from_str(
                &format!("[database]\nurl = {quoted}\n"),
                config::FileFormat::Toml,
            ));
        }
        let mut environment = config::Environment::with_prefix("LOGLAKE")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("gold.granularities");
        for d in crate::detectors::DETECTORS {
            environment =
                environment.with_list_parse_key(&format!("detectors.{}.granularities", d.name()));
        }
        builder = builder.add_source(environment);
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
        let settings: Settings = merged.try_deserialize().map_err(|e| {
            let place = where_in_file(from.path(), &e.to_string());
            anyhow::Error::new(e).context(format!(
                "invalid configuration{place} (see config/loglake.toml for every key and its default)"
            ))
        })?;
        crate::secrets::register_url(&settings.database.url);
        // Every detector's section was read and checked as the settings were deserialised,
        // before any stage writes anything.
        settings
            .alerts
            .check()
            .map_err(anyhow::Error::msg)
            .context(
                "invalid configuration (see config/loglake.toml for every key and its default)",
            )?;
        Ok(settings)
    }
}

/// Where the unknown key a settings error names is in the config file, if it is there:
/// ` in FILE, line N`. (The settings are merged from the file, the environment and flags
/// before they are read, so the error itself knows neither.)
fn where_in_file(file: Option<&std::path::Path>, error: &str) -> String {
    let Some(file) = file else {
        return String::new();
    };
    let key = error
        .split("unknown field `")
        .nth(1)
        .and_then(|rest| rest.split('`').next());
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let line = key.and_then(|key| {
        text.lines().position(|line| {
            let line = line.trim_start();
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
    });
    match line {
        Some(n) => format!(" in {}, line {}", file.display(), n + 1),
        None if key.is_some() => format!(
            " (not in {}: set in the environment, LOGLAKE__…?)",
            file.display()
        ),
        None => format!(" in {} or the environment", file.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_is_named_with_its_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loglake.toml");
        std::fs::write(
            &path,
            "[gold]\nwindow_minutes = 15\n\n[parse]\n  formatt = \"x\"\n",
        )
        .unwrap();
        let err = Settings::load_from(&file::ConfigFrom::Flag(path.clone()), &Overrides::default())
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains(&format!("in {}, line 5", path.display()))
                && text.contains("unknown field `formatt`"),
            "{text}"
        );
    }

    #[test]
    fn shipped_config_matches_the_defaults() {
        // The shipped file documents every key with its default value: if the two drift, users
        // read one thing and get another.
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/loglake.toml"))
                .unwrap();
        let mut from_file: Settings = toml_like(&text);
        let mut defaults = Settings::default();
        // Sections compared with every key resolved by its detector (1 and 1.0 alike).
        assert_eq!(
            from_file.detectors.resolved(),
            defaults.detectors.resolved()
        );
        let written = from_file.detectors.written();
        let resolved = defaults.detectors.resolved();
        // (A detector this build lacks, behind a cargo feature, is documented all the same.)
        let built = |k: &&String| {
            !crate::detectors::settings::NOT_BUILT
                .iter()
                .any(|(n, _)| n == k)
        };
        assert_eq!(
            written.keys().filter(built).collect::<Vec<_>>(),
            resolved.keys().collect::<Vec<_>>(),
            "the shipped file documents every detector's section"
        );
        for (name, section) in &resolved {
            let keys = |v: &serde_json::Value| {
                v.as_object()
                    .map(|m| m.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default()
            };
            assert_eq!(
                keys(&written[name]),
                keys(section),
                "[detectors.{name}] in config/loglake.toml lists every key"
            );
        }
        from_file.detectors = Default::default();
        defaults.detectors = Default::default();
        // Paths in the file are relative to its folder, `config/`: `../lake` is the default
        // `lake` of a command run in the project folder.
        assert_eq!(
            from_file.lake.path.local().unwrap(),
            Path::new("..").join(defaults.lake.path.local().unwrap())
        );
        from_file.lake.path = defaults.lake.path.clone();
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
        use super::resolved::{Resolved, SourceOverrides};
        let mut s = Settings::default();
        s.sources.insert(
            "hdfs".into(),
            SourceSettings {
                format: Some("hdfs".into()),
                session_key: Some(r"(blk_-?\d+)".into()),
                granularities: Some(vec!["session".into()]),
                ..Default::default()
            },
        );
        let none = SourceOverrides::default();
        let hdfs = Resolved::new(&s, "hdfs", &none).unwrap();
        let other = Resolved::new(&s, "other", &none).unwrap();
        assert_eq!(hdfs.parse.format.spec(), "hdfs");
        assert!(hdfs.parse.session_key.is_some());
        assert!(other.parse.format.is_auto());
        assert_eq!(
            hdfs.granularities,
            vec![crate::detectors::Granularity::Session]
        );
        assert_eq!(hdfs.gold.window_minutes, 5);
        assert_eq!(other.granularities.len(), 3);
        // The command line over the source's section.
        let flags = SourceOverrides {
            format: Some("syslog".into()),
            ..Default::default()
        };
        let flagged = Resolved::new(&s, "hdfs", &flags).unwrap();
        assert_eq!(flagged.parse.format.spec(), "syslog");
    }
}

#[cfg(test)]
mod detector_settings_tests {
    use super::*;

    fn load(toml: &str) -> Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loglake.toml");
        std::fs::write(&path, toml).unwrap();
        Settings::load(Some(&path), &Overrides::default())
    }

    fn error(toml: &str) -> String {
        format!("{:#}", load(toml).expect_err(toml))
    }

    #[test]
    fn bad_detector_settings_are_refused_with_their_key() {
        assert!(
            error("[detectors.zscore]\nthreshold = -1\n")
                .contains("detectors.zscore.threshold: z-score threshold must be positive, got -1")
        );
        assert!(error("[detectors.percentile]\nquantile = 0.3\n").contains(
            "detectors.percentile.quantile: percentile quantile must be in (0.5, 1), got 0.3"
        ));
        assert!(
            error("[detectors.isolation_forest]\ncontamination = \"lots\"\n")
                .contains("detectors.isolation_forest.contamination")
        );
        assert!(
            error("[detectors.zscore]\nthreshhold = 4\n").contains("unknown field `threshhold`")
        );
        assert!(
            error("[detectors.zscore]\ngranularities = [\"event\"]\n").contains(
                "detectors.zscore.granularities may name only window, session, got event"
            )
        );
        assert!(error("[detectors.zscore]\nweight = -2\n").contains("detectors.zscore.weight"));
        assert!(
            error("[detectors.nope]\nenabled = true\n")
                .contains("unknown detector section [detectors.nope]")
        );
        assert!(
            error("[detectors.ensemble]\nweights = { zscore = 1.0 }\n")
                .contains("weights and views are set in each detector's section")
        );
    }

    /// A binary built without the `lstm` feature reads the shipped config's `[detectors.lstm]`
    /// but refuses to enable it, saying how to build one that can.
    #[cfg(not(feature = "lstm"))]
    #[test]
    fn a_detector_this_build_lacks_may_be_configured_but_not_enabled() {
        assert!(load("[detectors.lstm]\nenabled = false\ntop_g = 7\n").is_ok());
        assert!(
            error("[detectors.lstm]\nenabled = true\n").contains(
                "built without it: build it with `cargo build --release --features lstm`"
            )
        );
    }

    #[test]
    fn a_section_overrides_only_the_keys_it_names() {
        let s = load("[detectors.zscore]\nthreshold = 4\nweight = 0.25\n").unwrap();
        let resolved = s.detectors.resolved();
        assert_eq!(resolved["zscore"]["threshold"], 4.0);
        assert_eq!(resolved["zscore"]["robust"], true);
        assert_eq!(resolved["zscore"]["weight"], 0.25);
        assert_eq!(resolved["percentile"]["quantile"], 0.99);
        let (enabled, ensemble) = s.detectors.ensemble();
        assert!(enabled);
        assert_eq!(ensemble.weight_of("zscore"), 0.25);
        assert_eq!(ensemble.weight_of("invariants"), 1.0);
        assert_eq!(ensemble.view_of("sequence"), "order");
    }
}

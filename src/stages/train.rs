//! `04-train`: fit the enabled detectors on gold and save versioned models.
//!
//! Training data is every gold partition of the source from `train.lookback_days` before the
//! last batch date up to it. Which detector runs on which granularity is configuration
//! (`[detectors.*] granularities`); the defaults are:
//!
//! - window: robust z-scores and percentile ranges per service × hour of day (falling back to
//!   per service when an hour has too few windows), on counts; the daily curve is in the
//!   baseline, not an anomaly;
//! - session: robust z-scores per service on length, duration, warnings, errors; rare
//!   event-to-event transitions in the template sequence; (when enabled) an isolation forest on
//!   those features plus the template count vector;
//! - event: rare templates over the training range's template counts; templates that are
//!   rarely logged at ERROR or above; the usual range of each template's numeric values.
//!
//! Thresholds are unsupervised: a z limit, a distance past a training quantile, the forest's
//! contamination rule, a rarity count.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use chrono::{Duration, NaiveDate, Utc};
use linfa::traits::Fit;
use linfa::{DatasetBase, ParamGuard};
use ndarray::{Array2, Axis};
use polars::prelude::*;

use super::Context;
use crate::config::Settings;
use crate::db::RunOutcome;
use crate::detectors::clustering::Clustering;
use crate::detectors::invariants::{InvariantsError, SessionInvariants};
use crate::detectors::isolation_forest::{Contamination, IsolationForest};
use crate::detectors::param_range::{ParamRangeError, ParamRanges};
use crate::detectors::percentile::{PercentileBaseline, min_rows_for};
use crate::detectors::rare_template::{RareTemplate, TemplateCounts};
use crate::detectors::sequence::{RareTransition, SequenceError};
use crate::detectors::severity::{LevelCounts, SeverityError, SeverityRule};
use crate::detectors::zscore::{FeatureBaseline, ZScore};
use crate::features::{self, EVENT, SESSION, WINDOW};
use crate::lake::{Layer, tables};
use crate::models::{Grouped, Model, SavedModel};

/// A z-score group needs this many training rows, or rows fall back to a coarser grouping.
pub const MIN_GROUP_ROWS: usize = 8;

pub const ISOLATION_FOREST: &str = "isolation_forest";
pub const ZSCORE: &str = "zscore";
pub const PERCENTILE: &str = "percentile";
pub const RARE_TEMPLATE: &str = "rare_template";
pub const SEVERITY: &str = "severity";
pub const PARAM_RANGE: &str = "param_range";
pub const SEQUENCE: &str = "sequence";
pub const INVARIANTS: &str = "invariants";
pub const CLUSTERING: &str = "clustering";
/// Not trained: `05-detect` combines the others' scores.
pub const ENSEMBLE: &str = "ensemble";

pub fn run(ctx: &Context) -> Result<RunOutcome> {
    let to = *ctx.dates.last().expect("at least one date");
    let from = to - Duration::days(ctx.settings.train.lookback_days as i64);
    let dates: Vec<NaiveDate> = ctx
        .lake
        .partition_dates(Layer::Gold, tables::EVENT_FEATURES, &ctx.source)?
        .into_iter()
        .filter(|d| *d >= from && *d <= to)
        .collect();
    if dates.is_empty() {
        return Ok(RunOutcome::nothing_to_do(format!(
            "no gold data for source {:?} between {from} and {to} (run 03-gold first)",
            ctx.source
        )));
    }
    let every = ctx.settings.train.retrain_every_days;
    if every > 0
        && let Some(last) = SavedModel::latest_train_to(&ctx.lake, &ctx.source, to)?
        && (to - last).num_days() < i64::from(every)
    {
        return Ok(RunOutcome::nothing_to_do(format!(
            "the latest models were trained on data up to {last}, less than [train] retrain_every_days = {every} days before {to}"
        )));
    }
    let (train_from, train_to) = (dates[0], *dates.last().unwrap());
    let trainer = Trainer {
        ctx,
        dates: &dates,
        train_from,
        train_to,
    };
    let stats = trainer.template_stats()?;
    let templates: BTreeMap<String, String> = stats
        .iter()
        .map(|(id, (text, _))| (id.clone(), text.clone()))
        .collect();

    let mut trained = Trained::default();
    let s = &ctx.settings.detectors;
    // A detector runs on a granularity when it is enabled for it and the source has it.
    let source_granularities = ctx.settings.gold_for(&ctx.source).granularities;
    let has = |g: &str| source_granularities.iter().any(|x| x == g);
    let wants = |enabled: bool, grans: &[String], g: &str| {
        enabled && grans.iter().any(|x| x == g) && has(g)
    };

    if let Some(windows) =
        ctx.lake
            .scan(Layer::Gold, tables::WINDOW_FEATURES, &ctx.source, &dates)?
    {
        let windows = windows
            .collect()
            .map_err(anyhow::Error::from)
            .context("reading window features")?;
        if wants(s.zscore.enabled, &s.zscore.granularities, WINDOW) {
            let feats = features::window_count_features(&windows);
            trained.add(
                trainer.zscore(WINDOW, &windows, feats, window_groupings(), &templates)?,
                || format!("window z-score: no service has {MIN_GROUP_ROWS} training windows yet"),
            );
        }
        if wants(s.percentile.enabled, &s.percentile.granularities, WINDOW) {
            let feats = features::window_count_features(&windows);
            trained.add(
                trainer.percentile(WINDOW, &windows, feats, window_groupings(), &templates)?,
                || percentile_too_few(WINDOW, s.percentile.quantile),
            );
        }
        if wants(
            s.isolation_forest.enabled,
            &s.isolation_forest.granularities,
            WINDOW,
        ) {
            let feats = features::window_forest_features(&windows);
            trained
                .models
                .push(trainer.forest(WINDOW, &windows, feats, Vec::new(), &templates)?);
        }
    }

    let sessions = ctx
        .lake
        .scan(Layer::Gold, tables::SESSION_FEATURES, &ctx.source, &dates)?;
    let counts = ctx.lake.scan(
        Layer::Gold,
        tables::SESSION_TEMPLATE_COUNTS,
        &ctx.source,
        &dates,
    )?;
    if let (Some(sessions), Some(counts)) = (sessions, counts) {
        let sessions = sessions
            .collect()
            .map_err(anyhow::Error::from)
            .context("reading session features")?;
        let counts = counts
            .collect()
            .map_err(anyhow::Error::from)
            .context("reading session template counts")?;
        let vocabulary = features::session_vocabulary(&counts)?;
        let frame = features::session_frame(&sessions, &counts, &vocabulary)?;
        if wants(s.zscore.enabled, &s.zscore.granularities, SESSION) {
            let feats = features::session_numeric_features();
            trained.add(
                trainer.zscore(SESSION, &frame, feats, session_groupings(), &templates)?,
                || format!("session z-score: fewer than {MIN_GROUP_ROWS} training sessions yet"),
            );
        }
        if wants(s.percentile.enabled, &s.percentile.granularities, SESSION) {
            let feats = features::session_numeric_features();
            trained.add(
                trainer.percentile(SESSION, &frame, feats, session_groupings(), &templates)?,
                || percentile_too_few(SESSION, s.percentile.quantile),
            );
        }
        if wants(
            s.isolation_forest.enabled,
            &s.isolation_forest.granularities,
            SESSION,
        ) {
            let feats = features::session_feature_names(&vocabulary);
            trained.models.push(trainer.forest(
                SESSION,
                &frame,
                feats,
                vocabulary.clone(),
                &templates,
            )?);
        }
        if s.clustering.enabled && has(SESSION) {
            let feats: Vec<String> = vocabulary
                .iter()
                .map(|t| format!("{}{t}", features::TEMPLATE_COUNT_PREFIX))
                .collect();
            trained.models.push(trainer.clustering(
                &frame,
                feats,
                vocabulary.clone(),
                &templates,
            )?);
        }
        if s.invariants.enabled && has(SESSION) {
            trained.add(trainer.invariants(&sessions, &templates)?, || {
                "invariants: too few sessions to learn count invariants yet".into()
            });
        }
        if s.sequence.enabled && has(SESSION) {
            trained.add(trainer.sequence(&sessions, &templates)?, || {
                "sequence: too few sessions to learn transitions yet".into()
            });
        }
    }

    if s.rare_template.enabled && has(EVENT) {
        trained.add(trainer.rare_template(&stats)?, || {
            "rare_template: too few events to judge template rarity yet".into()
        });
    }

    if s.severity.enabled && has(EVENT) {
        trained.add(trainer.severity()?, || {
            "severity: too few events to tell routine errors from unusual ones yet".into()
        });
    }

    if s.param_range.enabled && has(EVENT) {
        trained.add(trainer.param_range()?, || {
            "param_range: no value position has enough numeric training values yet".into()
        });
    }

    let models = trained.models;
    if models.is_empty() {
        if trained.skipped.is_empty() {
            bail!(
                "no detector could be trained: enable one in [detectors] (and a session key for session detectors)"
            );
        }
        bail!(
            "no detector could be trained yet ({}); ingest more days, or lower the minimums in [detectors.*]",
            trained.skipped.join("; ")
        );
    }
    let mut summary = Vec::new();
    let mut rows = 0u64;
    for mut m in models {
        m.seal()?;
        let path = m.save(&ctx.lake)?;
        ctx.db.register_model(&m, &path.to_string_lossy())?;
        rows += m.train_rows;
        summary.push(format!(
            "{}/{} {} ({} rows)",
            m.granularity, m.detector, m.model_version, m.train_rows
        ));
    }
    Ok(RunOutcome {
        rows_in: rows,
        rows_out: summary.len() as u64,
        rows_quarantined: 0,
        message: format!(
            "trained on {train_from}..{train_to}: {}",
            summary.join(", ")
        ),
        ..Default::default()
    })
}

struct Trainer<'a> {
    ctx: &'a Context,
    dates: &'a [NaiveDate],
    train_from: NaiveDate,
    train_to: NaiveDate,
}

impl Trainer<'_> {
    fn settings(&self) -> &Settings {
        &self.ctx.settings
    }

    fn base(
        &self,
        granularity: &str,
        detector: &str,
        features: Vec<String>,
        rows: u64,
        model: Model,
    ) -> SavedModel {
        SavedModel {
            model_version: String::new(),
            source: self.ctx.source.clone(),
            granularity: granularity.into(),
            detector: detector.into(),
            created_at: Utc::now(),
            train_from: self.train_from,
            train_to: self.train_to,
            train_rows: rows,
            features,
            vocabulary: Vec::new(),
            threshold: 0.0,
            explain: Vec::new(),
            templates: BTreeMap::new(),
            params: serde_json::Value::Null,
            model,
        }
    }

    /// An event model: the columns it judges by, its training events, threshold and settings.
    fn event_model(
        &self,
        detector: &str,
        features: &[&str],
        rows: u64,
        threshold: f64,
        params: serde_json::Value,
        model: Model,
    ) -> SavedModel {
        let features = features.iter().map(|f| f.to_string()).collect();
        let mut m = self.base(EVENT, detector, features, rows, model);
        m.threshold = threshold;
        m.params = params;
        m
    }

    /// A model over a feature matrix, with what scoring and explanations need: feature order,
    /// session vocabulary, per-feature baselines and the text of the templates features name.
    #[allow(clippy::too_many_arguments)]
    fn matrix_model(
        &self,
        granularity: &str,
        detector: &str,
        x: &Array2<f64>,
        features: Vec<String>,
        vocabulary: Vec<String>,
        templates: &BTreeMap<String, String>,
        model: Model,
        threshold: f64,
        params: serde_json::Value,
    ) -> SavedModel {
        let mut m = self.base(granularity, detector, features, x.nrows() as u64, model);
        m.threshold = threshold;
        m.explain = robust_baselines(x, &m.features);
        m.templates = Self::templates_for(&m.features, templates);
        m.vocabulary = vocabulary;
        m.params = params;
        m
    }

    /// Each template's text and count over the training range, read once for all models.
    fn template_stats(&self) -> Result<BTreeMap<String, (String, u64)>> {
        let Some(events) = self.ctx.lake.scan(
            Layer::Gold,
            tables::EVENT_FEATURES,
            &self.ctx.source,
            self.dates,
        )?
        else {
            return Ok(BTreeMap::new());
        };
        let df = events
            .group_by([col("template_id")])
            .agg([
                col("template").first(),
                len().cast(DataType::Int64).alias("count"),
            ])
            .collect()
            .map_err(anyhow::Error::from)
            .context("reading templates")?;
        let ids = features::strings(&df, "template_id")?;
        let texts = features::strings(&df, "template")?;
        let counts = df.column("count")?.i64()?;
        Ok(ids
            .into_iter()
            .zip(texts)
            .zip(counts.iter())
            .map(|((id, text), n)| (id, (text, n.unwrap_or(0) as u64)))
            .collect())
    }

    fn templates_for(
        features: &[String],
        all: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        features
            .iter()
            .filter_map(|f| {
                f.strip_prefix("tpl_")
                    .or_else(|| f.strip_prefix(features::TEMPLATE_COUNT_PREFIX))
            })
            .filter_map(|id| all.get(id).map(|t| (id.to_string(), t.clone())))
            .collect()
    }

    /// A grouped-baseline model (z-score, percentile): one baseline per group with at least
    /// `spec.min_rows` training rows (see [`fit_grouped`]), saved as `wrap` makes it; `None`
    /// when no group has enough rows yet.
    fn grouped_model<M>(
        &self,
        spec: BaselineSpec,
        df: &DataFrame,
        templates: &BTreeMap<String, String>,
        fit: impl Fn(Array2<f64>) -> Result<M>,
        wrap: impl FnOnce(Grouped<M>) -> Model,
    ) -> Result<Option<SavedModel>> {
        let BaselineSpec {
            granularity,
            detector,
            features,
            groupings,
            min_rows,
            threshold,
            params,
        } = spec;
        self.ctx
            .progress
            .step(format!("training {granularity}/{detector}"));
        let x = features::matrix(df, &features)?;
        let models = fit_grouped(df, &x, &groupings, min_rows, |sub, key| {
            fit(sub).with_context(|| format!("{granularity} {detector} baseline for group {key}"))
        })?;
        if models.is_empty() {
            return Ok(None);
        }
        let model = wrap(Grouped { groupings, models });
        Ok(Some(self.matrix_model(
            granularity,
            detector,
            &x,
            features,
            Vec::new(),
            templates,
            model,
            threshold,
            params,
        )))
    }

    fn zscore(
        &self,
        granularity: &'static str,
        df: &DataFrame,
        features: Vec<String>,
        groupings: Vec<Vec<String>>,
        templates: &BTreeMap<String, String>,
    ) -> Result<Option<SavedModel>> {
        let cfg = &self.settings().detectors.zscore;
        let params = ZScore::params()
            .robust(cfg.robust)
            .threshold(cfg.threshold)
            .count_features(count_flags(&features))
            .check()?;
        let spec = BaselineSpec {
            granularity,
            detector: ZSCORE,
            features,
            groupings,
            min_rows: MIN_GROUP_ROWS,
            threshold: cfg.threshold,
            params: serde_json::json!({"robust": cfg.robust, "threshold": cfg.threshold, "min_group_rows": MIN_GROUP_ROWS}),
        };
        self.grouped_model(
            spec,
            df,
            templates,
            |sub| params.fit(&DatasetBase::from(sub)).map_err(Into::into),
            |mut set| {
                pool_hourly_spreads(&mut set);
                Model::ZScore(set)
            },
        )
    }

    /// Percentile ranges per group; `None` when no group has the rows its quantile needs yet.
    fn percentile(
        &self,
        granularity: &'static str,
        df: &DataFrame,
        features: Vec<String>,
        groupings: Vec<Vec<String>>,
        templates: &BTreeMap<String, String>,
    ) -> Result<Option<SavedModel>> {
        let cfg = &self.settings().detectors.percentile;
        let params = PercentileBaseline::params()
            .quantile(cfg.quantile)
            .threshold(cfg.threshold)
            .count_features(count_flags(&features))
            .check()?;
        let min_rows = params.min_rows();
        let spec = BaselineSpec {
            granularity,
            detector: PERCENTILE,
            features,
            groupings,
            min_rows,
            threshold: cfg.threshold,
            params: serde_json::json!({"quantile": cfg.quantile, "threshold": cfg.threshold, "min_group_rows": min_rows}),
        };
        self.grouped_model(
            spec,
            df,
            templates,
            |sub| params.fit(&DatasetBase::from(sub)).map_err(Into::into),
            Model::Percentile,
        )
    }

    fn forest(
        &self,
        granularity: &str,
        df: &DataFrame,
        features: Vec<String>,
        vocabulary: Vec<String>,
        templates: &BTreeMap<String, String>,
    ) -> Result<SavedModel> {
        self.ctx
            .progress
            .step(format!("training {granularity}/isolation_forest"));
        let cfg = &self.settings().detectors.isolation_forest;
        let contamination: Contamination = cfg.contamination.parse().map_err(|e: String| {
            anyhow::anyhow!("detectors.isolation_forest.contamination: {e}")
        })?;
        let x = features::matrix(df, &features)?;
        let forest = IsolationForest::params()
            .n_trees(cfg.n_trees)
            .max_samples(cfg.max_samples)
            .contamination(contamination)
            .seed(cfg.seed)
            .fit(&DatasetBase::from(x.clone()))
            .with_context(|| format!("{granularity} isolation forest"))?;
        let params = serde_json::json!({
            "n_trees": cfg.n_trees, "max_samples": cfg.max_samples,
            "contamination": cfg.contamination, "seed": cfg.seed,
        });
        let threshold = forest.threshold();
        let model = Model::IsolationForest(forest);
        Ok(self.matrix_model(
            granularity,
            ISOLATION_FOREST,
            &x,
            features,
            vocabulary,
            templates,
            model,
            threshold,
            params,
        ))
    }

    fn sequence(
        &self,
        sessions: &DataFrame,
        templates: &BTreeMap<String, String>,
    ) -> Result<Option<SavedModel>> {
        self.ctx.progress.step("training session/sequence");
        let cfg = &self.settings().detectors.sequence;
        let sequences = features::strings(sessions, "template_sequence")?;
        let params = RareTransition::params()
            .max_sessions(cfg.max_sessions)
            .max_rate(cfg.max_rate)
            .min_sessions(cfg.min_sessions);
        let model = match params.fit(
            sequences
                .iter()
                .map(|s| s.split(' ').filter(|t| !t.is_empty()).collect()),
        ) {
            Ok(m) => m,
            Err(SequenceError::TooFewSessions { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut m = self.base(
            SESSION,
            SEQUENCE,
            vec!["template_sequence".into()],
            model.sessions,
            Model::Sequence(model.clone()),
        );
        m.threshold = model.threshold();
        m.templates = templates.clone();
        m.params = serde_json::json!({"max_sessions": cfg.max_sessions, "max_rate": cfg.max_rate, "min_sessions": cfg.min_sessions});
        Ok(Some(m))
    }

    fn invariants(
        &self,
        sessions: &DataFrame,
        templates: &BTreeMap<String, String>,
    ) -> Result<Option<SavedModel>> {
        self.ctx.progress.step("training session/invariants");
        let cfg = &self.settings().detectors.invariants;
        let sequences = features::strings(sessions, "template_sequence")?;
        let services = features::strings(sessions, "service")?;
        let params = SessionInvariants::params()
            .min_support(cfg.min_support)
            .min_frequency(cfg.min_frequency)
            .max_ratio(cfg.max_ratio)
            .rare_share(cfg.rare_share)
            .min_sessions(cfg.min_sessions);
        let model = match params.fit_by_service(
            services
                .iter()
                .zip(&sequences)
                .map(|(service, s)| (service.as_str(), features::template_counts(s))),
        ) {
            Ok(m) => m,
            Err(InvariantsError::TooFewSessions { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        tracing::info!(
            invariants = model.all.invariants.len(),
            services = model.by_service.len(),
            sessions = model.sessions(),
            "count invariants mined"
        );
        let mut m = self.base(
            SESSION,
            INVARIANTS,
            vec!["template_sequence".into()],
            model.sessions(),
            Model::Invariants(model.clone()),
        );
        m.threshold = model.threshold();
        m.templates = templates.clone();
        m.params = serde_json::json!({"min_support": cfg.min_support, "min_frequency": cfg.min_frequency, "max_ratio": cfg.max_ratio, "rare_share": cfg.rare_share, "min_sessions": cfg.min_sessions});
        Ok(Some(m))
    }

    fn clustering(
        &self,
        df: &DataFrame,
        features: Vec<String>,
        vocabulary: Vec<String>,
        templates: &BTreeMap<String, String>,
    ) -> Result<SavedModel> {
        self.ctx.progress.step("training session/clustering");
        let cfg = &self.settings().detectors.clustering;
        let x = features::matrix(df, &features)?;
        let model = Clustering::params()
            .n_clusters(cfg.n_clusters)
            .min_cluster_share(cfg.min_cluster_share)
            .distance_threshold(cfg.distance_threshold)
            .log_counts(cfg.log_counts)
            .seed(cfg.seed)
            .fit_matrix(&x)
            .context("session clustering")?;
        let params = serde_json::json!({
            "n_clusters": cfg.n_clusters, "min_cluster_share": cfg.min_cluster_share,
            "distance_threshold": cfg.distance_threshold, "log_counts": cfg.log_counts,
            "seed": cfg.seed,
        });
        let threshold = model.threshold();
        let model = Model::Clustering(model);
        Ok(self.matrix_model(
            SESSION, CLUSTERING, &x, features, vocabulary, templates, model, threshold, params,
        ))
    }

    fn rare_template(&self, stats: &BTreeMap<String, (String, u64)>) -> Result<Option<SavedModel>> {
        self.ctx.progress.step("training event/rare_template");
        let cfg = &self.settings().detectors.rare_template;
        let counts: TemplateCounts = stats.iter().map(|(id, (_, n))| (id.clone(), *n)).collect();
        let total: u64 = counts.values().sum();
        let model = match RareTemplate::params()
            .max_count(cfg.max_count)
            .min_events(cfg.min_events)
            .fit(&counts)
        {
            Ok(m) => m,
            Err(crate::detectors::rare_template::RareTemplateError::TooFewEvents { .. }) => {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Some(self.event_model(
            RARE_TEMPLATE,
            &["template_id"],
            total,
            model.threshold(),
            serde_json::json!({"max_count": cfg.max_count, "min_events": cfg.min_events}),
            Model::RareTemplate(model),
        )))
    }

    /// Per template, its training lines at each level.
    fn severity(&self) -> Result<Option<SavedModel>> {
        self.ctx.progress.step("training event/severity");
        let cfg = &self.settings().detectors.severity;
        let Some(events) = self.ctx.lake.scan(
            Layer::Gold,
            tables::EVENT_FEATURES,
            &self.ctx.source,
            self.dates,
        )?
        else {
            return Ok(None);
        };
        let df = events
            .group_by([col("template_id"), col("level")])
            .agg([len().cast(DataType::Int64).alias("count")])
            .collect()
            .map_err(anyhow::Error::from)
            .context("reading template levels")?;
        let ids = features::strings(&df, "template_id")?;
        let levels = features::strings(&df, "level")?;
        let mut counts = LevelCounts::new();
        for ((id, level), n) in ids
            .into_iter()
            .zip(levels)
            .zip(df.column("count")?.i64()?.iter())
        {
            *counts.entry(id).or_default().entry(level).or_default() += n.unwrap_or(0) as u64;
        }
        let rule = match SeverityRule::params()
            .min_level(&cfg.min_level)
            .max_count(cfg.max_count)
            .max_share(cfg.max_share)
            .min_events(cfg.min_events)
            .fit(&counts)
        {
            Ok(r) => r,
            Err(SeverityError::TooFewEvents { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(Some(self.event_model(
            SEVERITY,
            &["template_id", "level"],
            rule.total_events,
            rule.threshold(),
            serde_json::json!({"min_level": cfg.min_level, "max_count": cfg.max_count, "max_share": cfg.max_share, "min_events": cfg.min_events}),
            Model::Severity(rule),
        )))
    }

    /// Per template and value position, the usual range of its numeric values.
    fn param_range(&self) -> Result<Option<SavedModel>> {
        self.ctx.progress.step("training event/param_range");
        let cfg = &self.settings().detectors.param_range;
        let params = ParamRanges::params()
            .quantile(cfg.quantile)
            .threshold(cfg.threshold)
            .min_factor(cfg.min_factor);
        let mut sampler = params.sampler()?;
        let mut lines = 0u64;
        // A day at a time: the sampler keeps a bounded sample, so a month of values is never
        // in memory at once.
        for date in self.dates {
            let Some(events) = self.ctx.lake.scan(
                Layer::Gold,
                tables::EVENT_FEATURES,
                &self.ctx.source,
                std::slice::from_ref(date),
            )?
            else {
                continue;
            };
            let df = events
                .select([col("service"), col("template_id"), col("params")])
                .collect()
                .map_err(anyhow::Error::from)
                .with_context(|| format!("reading event values of {date}"))?;
            let services = df.column("service")?.str()?;
            let ids = df.column("template_id")?.str()?;
            let arrays = df.column("params")?.cast(&DataType::String)?;
            let mut values = Vec::new();
            for ((service, id), json) in services.iter().zip(ids.iter()).zip(arrays.str()?.iter()) {
                let (Some(id), Some(json)) = (id, json) else {
                    continue;
                };
                if json == "[]" {
                    continue;
                }
                features::json_strings_into(json, &mut values)
                    .with_context(|| format!("reading the values of an event of {date}"))?;
                sampler.add(
                    service.unwrap_or_default(),
                    id,
                    values.iter().map(|v| v.as_ref()),
                );
                lines += 1;
            }
        }
        let model = match params.fit(sampler) {
            Ok(m) => m,
            Err(ParamRangeError::TooFewValues { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(Some(self.event_model(
            PARAM_RANGE,
            &["params"],
            lines,
            model.threshold(),
            serde_json::json!({"quantile": cfg.quantile, "threshold": cfg.threshold, "min_factor": cfg.min_factor, "min_values": params.check_ref()?.min_values()}),
            Model::ParamRange(model),
        )))
    }
}

/// What a grouped-baseline detector is trained on and saved with.
struct BaselineSpec {
    granularity: &'static str,
    detector: &'static str,
    features: Vec<String>,
    groupings: Vec<Vec<String>>,
    min_rows: usize,
    threshold: f64,
    params: serde_json::Value,
}

/// The models trained so far, and why the others were not.
///
/// A detector short of data (a new source, a small log) is left out with a warning and the
/// others still train: one day of a quiet source is enough for some detectors and not for
/// others. Only when none can train does the stage fail, naming each one's shortfall.
#[derive(Default)]
struct Trained {
    models: Vec<SavedModel>,
    skipped: Vec<String>,
}

impl Trained {
    fn add(&mut self, model: Option<SavedModel>, why_not: impl FnOnce() -> String) {
        match model {
            Some(m) => self.models.push(m),
            None => {
                let why = why_not();
                tracing::warn!("{why}; not trained");
                self.skipped.push(why);
            }
        }
    }
}

/// Why the percentile detector could not train at `granularity`.
fn percentile_too_few(granularity: &str, quantile: f64) -> String {
    format!(
        "{granularity} percentile: no group has the {} training rows a {quantile} quantile needs yet",
        min_rows_for(quantile)
    )
}

/// Window baselines per service × hour of day (the daily curve is in the baseline), else per
/// service when an hour has too few training windows.
fn window_groupings() -> Vec<Vec<String>> {
    vec![
        vec!["service".into(), "hour".into()],
        vec!["service".into()],
    ]
}

/// Session baselines per service, else over all sessions.
fn session_groupings() -> Vec<Vec<String>> {
    vec![vec!["service".into()], vec![]]
}

/// Raise each hour-of-day group's count spreads to the median over its service's hours.
///
/// Lines come in clumps — a request writes several INFO lines, so a service's INFO count per
/// window varies 3–5 times more than a Poisson count (variance/mean measured on generated
/// traffic) — and one hour of one day holds only 12 windows: a quiet hour can show a MAD
/// well below the service's usual spread by chance, and then a night-time window with no
/// request (0 INFO lines where 12 are typical) reads as z = −6. The median over the
/// service's 24 hours is a steadier estimate of that dispersion; counts that really are
/// Poisson (errors) keep a spread near 1, so bursts stay as visible as before.
fn pool_hourly_spreads(set: &mut Grouped<ZScore>) {
    let Some(hourly) = set
        .groupings
        .iter()
        .position(|g| g.last().is_some_and(|c| c == "hour"))
    else {
        return;
    };
    let prefix = format!("{hourly}|");
    // The group's key without its hour: "0|svc|14" → "0|svc".
    let parent = |key: &str| key.rsplit_once('|').map(|(p, _)| p.to_string());
    let mut spreads: BTreeMap<(String, usize), Vec<f64>> = BTreeMap::new();
    for (key, model) in &set.models {
        let Some(p) = parent(key).filter(|_| key.starts_with(&prefix)) else {
            continue;
        };
        for (j, b) in model.baselines.iter().enumerate() {
            if let Some((_, spread)) = b.stabilized {
                spreads.entry((p.clone(), j)).or_default().push(spread);
            }
        }
    }
    let pooled: BTreeMap<(String, usize), f64> = spreads
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by(|a, b| a.total_cmp(b));
            (k, crate::detectors::robust::median(&v))
        })
        .collect();
    for (key, model) in set.models.iter_mut() {
        let Some(p) = parent(key).filter(|_| key.starts_with(&prefix)) else {
            continue;
        };
        for (j, b) in model.baselines.iter_mut().enumerate() {
            if let (Some((center, spread)), Some(floor)) =
                (b.stabilized, pooled.get(&(p.clone(), j)))
            {
                b.stabilized = Some((center, spread.max(*floor)));
            }
        }
    }
}

/// Which features are counts, in matrix order.
fn count_flags(features: &[String]) -> Vec<bool> {
    features
        .iter()
        .map(|f| features::is_count_feature(f))
        .collect()
}

/// One model per group of each grouping, keyed by [`Grouped::key`]. Groups with fewer than
/// `min_rows` training rows get none: their rows fall back to the next, coarser grouping.
fn fit_grouped<M>(
    df: &DataFrame,
    x: &Array2<f64>,
    groupings: &[Vec<String>],
    min_rows: usize,
    mut fit: impl FnMut(Array2<f64>, &str) -> Result<M>,
) -> Result<BTreeMap<String, M>> {
    let mut models = BTreeMap::new();
    for (gi, grouping) in groupings.iter().enumerate() {
        let columns: Vec<Vec<String>> = grouping
            .iter()
            .map(|c| features::strings(df, c))
            .collect::<Result<_>>()?;
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for row in 0..df.height() {
            let vals: Vec<&str> = columns.iter().map(|c| c[row].as_str()).collect();
            groups
                .entry(Grouped::<M>::key(gi, &vals))
                .or_default()
                .push(row);
        }
        for (key, rows) in groups {
            if rows.len() < min_rows {
                continue;
            }
            let fitted = fit(x.select(Axis(0), &rows), &key)?;
            models.insert(key, fitted);
        }
    }
    Ok(models)
}

/// Median and 1.4826·MAD per column, for explanations (counts with a Poisson floor, so that
/// "0 instead of the usual 1" reads as the one-event change it is, not as z = −9000).
fn robust_baselines(x: &Array2<f64>, features: &[String]) -> Vec<FeatureBaseline> {
    let params = ZScore::params().count_features(count_flags(features));
    match params.fit(&DatasetBase::from(x.clone())) {
        Ok(z) => z.baselines,
        Err(_) => vec![
            FeatureBaseline {
                center: 0.0,
                scale: 1.0,
                stabilized: None,
            };
            x.ncols()
        ],
    }
}

#[cfg(test)]
mod tests {
    use linfa::traits::Predict;
    use ndarray::array;

    use super::*;

    /// A count baseline fitted on one hour's windows.
    fn hour(values: &[f64]) -> ZScore {
        let x = Array2::from_shape_vec((values.len(), 1), values.to_vec()).unwrap();
        ZScore::params()
            .count_features(vec![true])
            .fit(&DatasetBase::from(x))
            .unwrap()
    }

    #[test]
    fn a_quiet_hour_borrows_its_services_usual_spread() {
        // Hour 1 happened to be steady (120 ± 10); the service's other hours swing the way
        // clumped request traffic does.
        let steady: Vec<f64> = (0..12).map(|i| [110.0, 120.0, 130.0][i % 3]).collect();
        let clumped: Vec<f64> = (0..12).map(|i| [40.0, 120.0, 220.0, 90.0][i % 4]).collect();
        let mut set = Grouped {
            groupings: window_groupings(),
            models: BTreeMap::from([
                ("0|auth|1".to_string(), hour(&steady)),
                ("0|auth|2".to_string(), hour(&clumped)),
                ("0|auth|3".to_string(), hour(&clumped)),
                ("0|search|1".to_string(), hour(&steady)),
                ("1|auth".to_string(), hour(&steady)),
            ]),
        };
        let zero_at_one =
            |set: &Grouped<ZScore>, key: &str| set.models[key].predict(&array![[0.0]])[[0, 0]];
        let before = zero_at_one(&set, "0|auth|1");
        assert!(
            before < -5.0,
            "a window with no request reads as z = {before}"
        );
        pool_hourly_spreads(&mut set);
        let spread = |key: &str| set.models[key].baselines[0].stabilized.unwrap().1;
        assert_eq!(spread("0|auth|1"), spread("0|auth|2"));
        let after = zero_at_one(&set, "0|auth|1");
        assert!(after > -5.0, "after pooling: z = {after}");
        // A spike still stands out; other services and the per-service fallback keep theirs.
        assert!(set.models["0|auth|1"].predict(&array![[1000.0]])[[0, 0]] > 5.0);
        assert!(zero_at_one(&set, "0|search|1") < -5.0);
        assert!(zero_at_one(&set, "1|auth") < -5.0);
    }
}

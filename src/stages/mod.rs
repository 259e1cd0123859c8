//! The numbered stages, one module each, and what they share: the [`Context`] a stage runs in
//! and [`run_stage`], which records every run in `pipeline_runs`.
//!
//! Every stage is a function of (source, batch date) and replaces its output partitions whole,
//! so running it again for the same input gives the same lake, and a backfill is a loop over
//! dates.

pub mod bronze;
pub mod closing;
pub mod detect;
pub mod gold;
pub mod init;
pub mod metrics;
pub mod progress;
pub mod report;
pub mod silver;
pub mod template_store;
pub mod train;

use std::path::PathBuf;

use anyhow::{Result, bail};
use chrono::{NaiveDate, Utc};

use crate::config::Settings;
pub use crate::config::resolved::Resolved;
use crate::db::Database;
use crate::lake::Lake;
use crate::lake::lock::LakeLock;
use crate::records::{RunEnd, RunStart};
use crate::workspace::{Access, Workspace};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Init,
    Bronze,
    Silver,
    Gold,
    Train,
    Detect,
    Report,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Init,
        Stage::Bronze,
        Stage::Silver,
        Stage::Gold,
        Stage::Train,
        Stage::Detect,
        Stage::Report,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Init => "00-init",
            Stage::Bronze => "01-bronze",
            Stage::Silver => "02-silver",
            Stage::Gold => "03-gold",
            Stage::Train => "04-train",
            Stage::Detect => "05-detect",
            Stage::Report => "06-report",
        }
    }

    /// Accepts `01-bronze`, `bronze`, `01` or `1`.
    pub fn parse(s: &str) -> Result<Stage> {
        let s = s.trim().to_ascii_lowercase();
        for stage in Stage::ALL {
            let name = stage.name();
            let (num, word) = name.split_once('-').unwrap();
            if s == name
                || s == word
                || s == num
                || s == num.trim_start_matches('0')
                || (num == "00" && s == "0")
            {
                return Ok(stage);
            }
        }
        let names: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
        bail!("unknown stage {s:?}: use one of {}", names.join(", "))
    }
}

/// What a stage did: rows in and out, and a one-line summary.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_quarantined: u64,
    pub message: String,
    /// Alert notices 05-detect could not deliver (tried again after its next run).
    pub alerts_undelivered: u64,
    /// The stage found nothing to do for its batch dates (no input that day, no upstream
    /// partition, a model still fresh): recorded as `skipped`, and the process exits with
    /// `[run] skip_exit_code`.
    pub nothing_to_do: bool,
}

impl RunOutcome {
    /// A stage that had nothing to do, and why (the reason becomes the run's message).
    pub fn nothing_to_do(reason: impl Into<String>) -> Self {
        Self {
            message: format!("nothing to do: {}", reason.into()),
            nothing_to_do: true,
            ..Default::default()
        }
    }

    /// How `pipeline_runs` records a stage that ended with `result`.
    pub fn record(result: &Result<RunOutcome>) -> RunEnd {
        match result {
            Ok(o) => RunEnd {
                status: if o.nothing_to_do {
                    "skipped"
                } else {
                    "succeeded"
                },
                rows_in: o.rows_in,
                rows_out: o.rows_out,
                rows_quarantined: o.rows_quarantined,
                message: o.message.clone(),
                error: None,
            },
            Err(e) => RunEnd {
                status: "failed",
                error: Some(format!("{e:#}")),
                ..Default::default()
            },
        }
    }
}

/// Inputs and overrides a stage may take from the command line.
#[derive(Debug, Clone, Default)]
pub struct StageOptions {
    /// Raw files or folders for `01-bronze`.
    pub inputs: Vec<PathBuf>,
    /// Kafka topics for `01-bronze` (their brokers are resolved in [`Resolved`]).
    pub kafka_topics: Vec<String>,
    /// The input shard `01-bronze` and `02-silver` work on (see [`Lake::for_shard`]).
    pub shard: Option<String>,
    /// Ground-truth labels for `06-report`.
    pub labels: Option<PathBuf>,
    /// `06-report` also writes the HTML report.
    pub html: bool,
    /// Logs are JSON lines (for a collector): no spinner even on a terminal.
    pub json_logs: bool,
    /// `06-report` prints one JSON document instead of text (and no summary line after it).
    pub report_json: bool,
}

pub struct Context {
    pub settings: Settings,
    /// This source's settings with the command line's overrides, resolved once.
    pub resolved: Resolved,
    pub lake: Lake,
    /// Held for the whole command: one writer per lake (see [`crate::lake::lock`]).
    _lock: LakeLock,
    pub db: Database,
    pub source: String,
    /// Batch dates, ascending.
    pub dates: Vec<NaiveDate>,
    pub run_id: String,
    pub options: StageOptions,
    /// The terminal's spinner (hidden under cron and Airflow).
    pub progress: progress::Progress,
}

impl Context {
    /// Open the workspace for a stage command: `resolved` is `source`'s settings as
    /// [`Resolved::new`] read them; `access` is [`Access::Create`] when the command may make
    /// the lake (00-init), else [`Access::Write`].
    pub fn open(
        settings: Settings,
        resolved: Resolved,
        source: String,
        dates: Vec<NaiveDate>,
        options: StageOptions,
        access: Access,
    ) -> Result<Self> {
        let folder_name = crate::lake::is_folder_name;
        if !folder_name(&source) {
            bail!(
                "source name {source:?} must be non-empty and use only letters, digits, - and _ (it names lake folders)"
            );
        }
        if let Some(shard) = options.shard.as_deref().filter(|s| !folder_name(s)) {
            bail!(
                "shard name {shard:?} must be non-empty and use only letters, digits, - and _ (it names lake folders)"
            );
        }
        if dates.is_empty() {
            bail!("no batch date: --from-date is after --to-date");
        }
        let Workspace { lake, db, lock } = Workspace::open(&settings, access)?;
        let (db, mut lock) = (
            db.expect("a writer's workspace connects the database"),
            lock.expect("a writer's workspace holds the lock"),
        );
        let lake = match &options.shard {
            Some(shard) => lake.for_shard(shard),
            None => lake,
        };
        let run_id = format!(
            "{}-{}",
            Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
            std::process::id()
        );
        let leftovers = lake.clear_staging(&lock)?;
        lock.record_run(&run_id)?;
        if lake.is_remote() {
            // In date order, so two writers of overlapping date ranges cannot each hold a
            // date the other waits for. A shard's writer holds its shard only, so the day's
            // other shards run at once (a whole-day writer of the same day is not kept apart
            // from them: a day is run whole or in shards).
            let shard = options
                .shard
                .as_ref()
                .map(|s| format!(" shard={s}"))
                .unwrap_or_default();
            for date in &dates {
                db.hold_lease(
                    &format!("{} source={source} date={date}{shard}", lake.location()),
                    settings.run.on_locked,
                    std::time::Duration::from_secs(settings.run.lock_timeout_seconds),
                )?;
            }
        }
        if let Some(previous) = &lock.recovered_from {
            // Before 00-init the runs table may not exist yet: nothing to mark then.
            let abandoned = match &previous.run_id {
                Some(id) => db.fail_abandoned_runs(id, previous.pid).unwrap_or(0),
                None => 0,
            };
            tracing::warn!(
                pid = previous.pid,
                host = %previous.host,
                since = %previous.since,
                staging_entries_removed = leftovers,
                runs_marked_failed = abandoned,
                "the previous writer of this lake did not exit cleanly; the system released its lock, its unfinished work was discarded (committed partitions are intact) and its running stages marked failed"
            );
        }
        // Before 00-init the runs table may not exist yet: nothing to close then.
        let closed = db.close_dead_runs(&source, &run_id).unwrap_or(0);
        if closed > 0 {
            tracing::warn!(
                rows = closed,
                "closed pipeline_runs rows left 'running' by processes that no longer exist"
            );
        }
        Ok(Self {
            settings,
            resolved,
            lake,
            _lock: lock,
            db,
            source,
            dates,
            run_id,
            progress: progress::Progress::new(options.json_logs),
            options,
        })
    }

    pub fn dates_label(&self) -> String {
        match (self.dates.first(), self.dates.last()) {
            (Some(a), Some(b)) if a == b => a.to_string(),
            (Some(a), Some(b)) => format!("{a}..{b}"),
            _ => String::new(),
        }
    }

    /// Fail with a helpful message unless `00-init` has created the lake.
    pub fn require_lake(&self) -> Result<()> {
        crate::workspace::require_initialised(&self.lake)
    }

    /// For a lake on object storage, hold the lease on this source's own state as well
    /// (04-train's models), which every batch date of the source shares: the date leases
    /// taken at [`Context::open`] do not keep two dates' writers apart there. A no-op for a
    /// local lake, whose writer holds the whole lake.
    pub fn hold_source_lease(&self) -> Result<()> {
        if !self.lake.is_remote() {
            return Ok(());
        }
        self.db.hold_lease(
            &self.source_lease(),
            self.settings.run.on_locked,
            std::time::Duration::from_secs(self.settings.run.lock_timeout_seconds),
        )
    }

    /// `f` under the source's lease (see [`Context::hold_source_lease`]), released after it
    /// unless this command held it already: 02-silver rebuilds the template store every shard
    /// and date share this way, while the shards' parsing before it runs at once.
    pub fn with_source_lease<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let name = self.source_lease();
        if !self.lake.is_remote() || self.db.holds_lease(&name) {
            return f();
        }
        self.hold_source_lease()?;
        let out = f();
        self.db.release_lease(&name);
        out
    }

    fn source_lease(&self) -> String {
        format!("{} source={}", self.lake.location(), self.source)
    }
}

/// Run `f`, logging how long it took at debug level (`RUST_LOG=loglake=debug`) as `what`:
/// where a stage spends its time, step by step.
pub fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t0 = std::time::Instant::now();
    let out = f();
    tracing::debug!(ms = t0.elapsed().as_millis() as u64, "{what}");
    out
}

/// Run one stage, recording it in `pipeline_runs` (started, then succeeded or failed).
pub fn run_stage(ctx: &Context, stage: Stage) -> Result<RunOutcome> {
    let started = Utc::now();
    let start = RunStart {
        run_id: &ctx.run_id,
        stage: stage.name(),
        source: &ctx.source,
        batch_dates: &ctx.dates_label(),
        started_at: started,
    };
    ctx.progress.start(stage.name());
    let result = if stage == Stage::Init {
        // The runs table does not exist before the migrations, so init records itself after.
        let result = init::run(ctx);
        if let Ok(id) = ctx.db.start_run(&start) {
            ctx.db
                .finish_run(id, started, &RunOutcome::record(&result))?;
        }
        result
    } else {
        ctx.require_lake()?;
        if ctx.options.shard.is_some() && !matches!(stage, Stage::Bronze | Stage::Silver) {
            bail!(
                "{} reads a day whole, not one shard: run it without --shard once every shard's 01-bronze and 02-silver is done (`run --shard` takes --to 02-silver)",
                stage.name()
            );
        }
        if stage == Stage::Train {
            ctx.hold_source_lease()?;
        }

        // A lake initialised by an older loglake gets this version's schema before the first
        // write, so upgrading the binary never leaves a stage writing to tables it predates.
        ctx.db.migrate()?;
        let id = ctx.db.start_run(&start)?;
        let result = match stage {
            Stage::Init => unreachable!("handled above"),
            Stage::Bronze => bronze::run(ctx),
            Stage::Silver => silver::run(ctx),
            Stage::Gold => gold::run(ctx),
            Stage::Train => train::run(ctx),
            Stage::Detect => detect::run(ctx),
            Stage::Report => report::run(ctx),
        };
        match ctx.db.finish_run(id, started, &RunOutcome::record(&result)) {
            Ok(()) => result,
            // The stage's own error comes first; the next run closes the row left open.
            Err(db) => Err(match result {
                Err(e) => e.context(format!(
                    "(its pipeline_runs row could not be closed either: {db:#})"
                )),
                Ok(_) => db.context(
                    "the stage's work is committed, but its pipeline_runs row could not be closed (the next run closes it)",
                ),
            }),
        }
    };
    ctx.progress.finish();
    let seconds = (Utc::now() - started).num_milliseconds() as f64 / 1000.0;
    if let Err(e) = metrics::record(ctx, stage, seconds, &result) {
        // Metrics are for dashboards; a full disk there must not fail the batch.
        tracing::warn!(error = %format!("{e:#}"), "could not write the metrics textfile");
    }
    if let Ok(outcome) = &result {
        tracing::info!(stage = stage.name(), source = %ctx.source, rows_in = outcome.rows_in, rows_out = outcome.rows_out, rows_quarantined = outcome.rows_quarantined, seconds, skipped = outcome.nothing_to_do, "stage finished");
        // A JSON report is the whole of stdout: a script parses it.
        if !(stage == Stage::Report && ctx.options.report_json) {
            crate::cli::output::println(&format!("{}: {}", stage.name(), outcome.message))?;
        }
    }
    result.map_err(|e| e.context(format!("{} failed", stage.name())))
}

/// Refuse `source` when the lake holds no data of it and no `[sources.<name>]` configures
/// it, naming the sources there are: a read-only command on a misspelled source would
/// otherwise succeed with nothing to show.
pub fn known_source(lake: &Lake, settings: &Settings, source: &str) -> Result<()> {
    let mut known = lake.sources_with_data()?;
    if known.iter().any(|s| s == source) || settings.sources.contains_key(source) {
        return Ok(());
    }
    known.extend(settings.sources.keys().cloned());
    known.sort();
    known.dedup();
    if known.is_empty() {
        bail!(
            "the lake at {} holds no data yet, of source \"{source}\" or any other: ingest some first (`loglake --source {source} run --input <logs>`)",
            lake.location()
        );
    }
    bail!(
        "no source \"{source}\" in the lake at {} (it has: {}): check --source",
        lake.location(),
        known.join(", ")
    )
}

/// Run stages `from..=to` in order, stopping at the first failure. Returns whether every
/// stage that moves data (all but 00-init and 06-report) had nothing to do: then the whole
/// run had nothing to do, and exits like a stage that had nothing to do.
pub fn run_range(ctx: &Context, from: Stage, to: Stage) -> Result<bool> {
    if from > to {
        bail!("--from {} comes after --to {}", from.name(), to.name());
    }
    if ctx.options.shard.is_some() && to > Stage::Silver {
        bail!(
            "`run --shard` runs one shard's 01-bronze and 02-silver: give it --to 02-silver, then run 03-gold onwards once for the whole day"
        );
    }
    let mut worked = false;
    let mut moving_stages = 0;
    for stage in Stage::ALL.into_iter().filter(|s| *s >= from && *s <= to) {
        let outcome = run_stage(ctx, stage)?;
        if !matches!(stage, Stage::Init | Stage::Report) {
            moving_stages += 1;
            worked |= !outcome.nothing_to_do;
        }
    }
    Ok(moving_stages > 0 && !worked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_parse_in_every_short_form() {
        assert_eq!(Stage::parse("01-bronze").unwrap(), Stage::Bronze);
        assert_eq!(Stage::parse("bronze").unwrap(), Stage::Bronze);
        assert_eq!(Stage::parse("1").unwrap(), Stage::Bronze);
        assert_eq!(Stage::parse("00").unwrap(), Stage::Init);
        assert_eq!(Stage::parse("0").unwrap(), Stage::Init);
        assert_eq!(Stage::parse("06-report").unwrap(), Stage::Report);
        assert!(Stage::parse("07").is_err());
    }
}

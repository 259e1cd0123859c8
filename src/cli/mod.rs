//! Command-line arguments, in one place: parse, load settings, dispatch. No pipeline logic.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use chrono::{NaiveDate, Utc};
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::config::file::ConfigFrom;
use crate::config::resolved::{Resolved, SourceOverrides};
use crate::config::{Overrides, Settings};
use crate::generate::{GenerateOptions, generate};
use crate::lake::lock::OnLocked;
use crate::parse::accuracy;
use crate::stages::{self, Context, Stage, StageOptions};
use crate::workspace::Access;

mod operator;
pub mod output;
mod stage_args;
pub use operator::{AnomalyAction, IncidentAction, IncidentStatus, TokenAction, WhoArgs};
pub use stage_args::{IngestArgs, ParseArgs, ReportArgs, SessionArgs, ShardArgs};

/// loglake: raw logs → bronze/silver/gold Parquet lake → explained anomalies in SQL.
///
/// Stages run one by one (`loglake 02-silver --date 2026-11-20`) or together (`loglake run`).
/// Each is idempotent: running it again for the same source and date gives the same result.
#[derive(Debug, Parser)]
#[command(
    name = "loglake",
    version,
    about,
    long_about = "Batch log-anomaly pipeline over a Parquet data lake: raw logs -> bronze (lossless lines) -> silver (parsed, masked, templated) -> gold (features per window, session and event) -> models -> explained anomalies and incidents in SQL (the embedded SQLite file, or PostgreSQL).\n\nStages run one by one (`loglake 02-silver --date 2026-11-20`) or together (`loglake run`); each is idempotent: running it again for the same source and date gives the same result.",
    after_help = "Examples:\n  \
        loglake --source web --date 2026-11-20 run --input /var/log/web/2026-11-20\n  \
        loglake --source web --date 2026-11-20 06-report --output json\n  \
        loglake status\n  \
        loglake vacuum --keep-days 90\n\n\
        Exit codes: 0 done (or nothing to do), 1 failed, 2 usage error, 75 the lake is held by another writer (try again later)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes; shown under their own heading in each command's help, apart
/// from the command's own.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Config file [default: $LOGLAKE_CONFIG, else config/loglake.toml here, else
    /// /etc/loglake/loglake.toml, else built-in defaults]. Relative paths in it are relative
    /// to its folder.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Lake root folder (overrides lake.path) [env: LOGLAKE_LAKE, the name the Airflow DAGs
    /// use].
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "LOGLAKE_LAKE",
        hide_env = true
    )]
    pub lake: Option<PathBuf>,
    /// postgres://… or sqlite://… (overrides database.url; prefer LOGLAKE__DATABASE__URL for
    /// URLs with passwords, which would otherwise show in process listings).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Source name: names the lake partitions (`source=<name>`) and picks `[sources.<name>]`
    /// [env: LOGLAKE_SOURCE].
    #[arg(
        long,
        global = true,
        default_value = "default",
        env = "LOGLAKE_SOURCE",
        hide_env = true
    )]
    pub source: String,
    /// Batch date (YYYY-MM-DD), e.g. Airflow's {{ ds }} [default: today, UTC].
    #[arg(long, global = true, value_name = "DATE", value_parser = parse_date, conflicts_with_all = ["from_date", "to_date"])]
    pub date: Option<NaiveDate>,
    /// First batch date of a range (backfills), inclusive.
    #[arg(long, global = true, value_name = "DATE", value_parser = parse_date, requires = "to_date")]
    pub from_date: Option<NaiveDate>,
    /// Last batch date of a range, inclusive.
    #[arg(long, global = true, value_name = "DATE", value_parser = parse_date, requires = "from_date")]
    pub to_date: Option<NaiveDate>,
    /// The same as `--log-format json` (kept for scripts that use it; hidden from help).
    #[arg(long, global = true, hide = true)]
    pub log_json: bool,
    /// Log lines as text, or as JSON lines for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub log_format: Output,
    /// Exit code when the stage has nothing to do for the batch date (overrides
    /// [run] skip_exit_code; 0 by default for cron, 99 for Airflow's BashOperator, which then
    /// marks the task skipped).
    #[arg(long, global = true, value_name = "CODE")]
    pub skip_exit_code: Option<u8>,
    /// When another loglake process holds the lake: wait for it or fail at once (overrides
    /// [run] on_locked).
    #[arg(long, global = true, value_name = "WHAT")]
    pub on_locked: Option<OnLocked>,
}

/// How a command ended, for the process's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Work done: exit 0.
    Done,
    /// Nothing to do for the batch date: exit with `[run] skip_exit_code`.
    NothingToDo { exit_code: u8 },
}

impl Completion {
    pub fn exit_code(self) -> u8 {
        match self {
            Completion::Done => 0,
            Completion::NothingToDo { exit_code } => exit_code,
        }
    }
}

impl GlobalArgs {
    /// Logs are JSON lines (`--log-json` or `--log-format json`).
    fn json_logs(&self) -> bool {
        self.log_json || self.log_format == Output::Json
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the lake layout and apply database migrations.
    #[command(name = "00-init", alias = "init")]
    Init,
    /// Ingest raw files (plain or .gz) or Kafka topics into bronze, losslessly.
    #[command(name = "01-bronze", alias = "bronze")]
    Bronze {
        #[command(flatten)]
        ingest: IngestArgs,
        #[command(flatten)]
        shard: ShardArgs,
    },
    /// Parse bronze into silver events; unparseable lines go to quarantine.
    #[command(name = "02-silver", alias = "silver")]
    Silver {
        #[command(flatten)]
        parse: ParseArgs,
        #[command(flatten)]
        shard: ShardArgs,
    },
    /// Build gold feature tables (windows, sessions, events).
    #[command(name = "03-gold", alias = "gold")]
    Gold {
        #[command(flatten)]
        sessions: SessionArgs,
    },
    /// Train detectors on gold; save versioned models.
    #[command(name = "04-train", alias = "train")]
    Train,
    /// Score gold with the latest models; write anomalies to the lake and the database.
    #[command(name = "05-detect", alias = "detect")]
    Detect,
    /// Print a summary (and precision/recall with --labels).
    #[command(name = "06-report", alias = "report")]
    Report {
        #[command(flatten)]
        report: ReportArgs,
        /// text for people, json (one document on stdout) for scripts.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Run stages in order.
    #[command(after_help = "Examples:\n  \
        loglake --source web --date 2026-11-20 run --input /var/log/web/2026-11-20\n  \
        loglake --date 2026-11-20 run --from silver --to detect     # re-parse and re-score a day\n  \
        loglake --from-date 2026-11-01 --to-date 2026-11-07 run --from 3   # backfill from 03-gold")]
    Run {
        /// First stage to run (a name, its word or its number: 01-bronze, bronze, 1).
        #[arg(long, value_enum, default_value = "00-init")]
        from: Stage,
        /// Last stage to run.
        #[arg(long, value_enum, default_value = "06-report")]
        to: Stage,
        #[command(flatten)]
        ingest: IngestArgs,
        #[command(flatten)]
        shard: ShardArgs,
        #[command(flatten)]
        parse: ParseArgs,
        #[command(flatten)]
        report: ReportArgs,
    },
    /// Write synthetic logs with ground-truth anomaly labels.
    Generate {
        /// Output folder: logs go to <out>/logs/, labels to <out>/labels.jsonl.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Days of logs.
        #[arg(long, default_value_t = 3)]
        days: u32,
        /// First day [default: `--days` days before today].
        #[arg(long, value_name = "DATE")]
        start_date: Option<NaiveDate>,
        /// Approximate lines per day.
        #[arg(long, default_value_t = 100_000)]
        lines_per_day: u64,
        /// Random seed: the same seed writes the same logs and labels.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Score the silver parser's templates against ground truth (loghub grouping accuracy).
    ///
    /// Parses a raw log with the configured (or `--format`) parser and compares its template
    /// groups with the true event ids: a loghub `*_structured.csv` or a file of one id per line.
    ParseAccuracy {
        /// Raw log file.
        #[arg(long, value_name = "FILE")]
        log: PathBuf,
        /// Ground truth: `*_structured.csv` (EventId column) or one event id per line.
        #[arg(long, value_name = "FILE")]
        truth: PathBuf,
        /// Also list this many true events that were split or merged, with the templates
        /// their lines landed in.
        #[arg(long, default_value_t = 0, value_name = "N")]
        show_mistakes: usize,
        /// Line format: "auto", a preset or a format string (overrides the config).
        #[arg(long)]
        format: Option<String>,
    },
    /// Print a shell completion script to stdout.
    ///
    /// bash: `loglake completions bash > /etc/bash_completion.d/loglake`; zsh: into a folder
    /// of `$fpath` as `_loglake`; fish: `~/.config/fish/completions/loglake.fish`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout: `loglake man > /usr/local/share/man/man1/loglake.1`;
    /// with --dir, write it and one page per command (`loglake-run.1`, …) there.
    Man {
        /// Write every page (`loglake.1`, `loglake-<command>.1`, …) into this folder
        /// (created if missing), e.g. /usr/local/share/man/man1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Settings: `loglake config show` prints the merged settings and where each came from.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Retention: remove lake partitions, old model versions (each detector's latest is
    /// kept), reports and pipeline_runs rows older than --keep-days. A dry run unless --yes.
    #[command(after_help = "Examples:\n  \
        loglake vacuum --keep-days 90          # list what would go, and the bytes it frees\n  \
        loglake vacuum --keep-days 90 --yes    # delete it")]
    Vacuum {
        /// Keep this many days: anything whose batch date (or training end, or report date)
        /// is older goes.
        #[arg(long, value_name = "N")]
        keep_days: u32,
        /// Delete; without it, only list.
        #[arg(long)]
        yes: bool,
        /// A lake on object storage: files in partitions that no commit manifest names (left
        /// by writers killed mid-upload, or by replaced partitions) go once they are this many
        /// hours old. Younger ones may belong to a write still running.
        #[arg(long, value_name = "H", default_value_t = 24)]
        unreferenced_after_hours: u32,
    },
    /// Serve HTTP: score raw lines against the latest models, answer anomaly and incident
    /// queries, take verdicts; takes no lock. With API tokens (`loglake tokens`) every route
    /// but /healthz needs one; without, it answers only on loopback. Stops on SIGTERM or Ctrl-C.
    #[command(after_help = "Endpoints:\n  \
        POST /v1/sources/{source}/score   raw lines in the body, one per line\n  \
        GET  /v1/anomalies?source=&since=&until=&detector=&min_severity=&limit=\n  \
        GET  /v1/incidents?status=open&source=\n  \
        POST /v1/anomalies/{id}/feedback  {\"verdict\": \"normal\"|\"anomaly\", \"by\": …}\n  \
        GET  /healthz, /metrics, /v1/openapi.json\n\n\
        Example:\n  \
        loglake serve --listen 127.0.0.1:8765 &\n  \
        curl --data-binary @app.log http://127.0.0.1:8765/v1/sources/app/score")]
    Serve {
        /// Address and port to listen on (overrides [serve] listen); port 0 picks a free one.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Incidents: list, show, acknowledge, close (closing sends the resolved alert).
    Incidents {
        #[command(subcommand)]
        action: IncidentAction,
    },
    /// Anomalies: an operator's verdict on one (`mark ID --normal` for a false alarm).
    Anomalies {
        #[command(subcommand)]
        action: AnomalyAction,
    },
    /// API tokens for `loglake serve`: create (printed once), list, revoke.
    #[command(after_help = "Examples:\n  \
        loglake tokens create --name grafana --scope read\n  \
        loglake tokens create --name alice --scope read --scope feedback\n  \
        loglake tokens revoke 3f9c2a71b0de")]
    Tokens {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Show what the lake holds and how its last runs went; read-only, takes no lock.
    ///
    /// Per source: partitions per layer with row counts and bytes, quarantined lines, the last
    /// run of each stage, the latest model of each detector and the open incidents. Every
    /// source unless `--source` names one.
    Status {
        /// text for people, json for scripts.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print every setting as the command would run with it (file, environment and flags
    /// merged; the database password redacted), each with where it came from.
    Show,
}

/// Text for people, or JSON for programs: how `status` prints, and how logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Stages as command-line values: `01-bronze`, or its word (`bronze`) or number (`01`, `1`),
/// all listed in help and completions.
impl clap::ValueEnum for Stage {
    fn value_variants<'a>() -> &'a [Self] {
        &Stage::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let name = self.name();
        let (number, word) = name.split_once('-').expect("stage names are NN-word");
        let short = match number.trim_start_matches('0') {
            "" => "0",
            short => short,
        };
        Some(
            clap::builder::PossibleValue::new(name)
                .alias(word)
                .alias(number)
                .alias(short),
        )
    }
}

/// Colour on stderr only for a terminal, and not when `NO_COLOR` is set to anything
/// (<https://no-color.org>): cron mails, CI logs and a user who asked for none get plain text.
pub fn colour_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,loglake=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| crate::secrets::ScrubbingWriter(crate::stages::progress::LogWriter))
        .with_ansi(colour_on_stderr());
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// A batch date as YYYY-MM-DD, with a message that says what was expected (chrono's own are
/// "trailing input" and "input is out of range").
pub(crate) fn parse_date(text: &str) -> std::result::Result<NaiveDate, String> {
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shaped {
        return Err(format!(
            "expected a date as YYYY-MM-DD (e.g. 2026-11-20, Airflow's {{{{ ds }}}}), got {text:?}"
        ));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("{text} is not a calendar date (no such day in that month)"))
}

fn batch_dates(g: &GlobalArgs) -> Result<Vec<NaiveDate>> {
    match (g.date, g.from_date, g.to_date) {
        (Some(d), _, _) => Ok(vec![d]),
        (None, Some(from), Some(to)) => {
            if from > to {
                bail!("--from-date {from} is after --to-date {to}");
            }
            Ok(from.iter_days().take_while(|d| *d <= to).collect())
        }
        _ => Ok(vec![Utc::now().date_naive()]),
    }
}

pub fn main() -> Result<Completion> {
    let cli = Cli::parse();
    // Before anything can print: the passwords this process was given, by flag or
    // environment, are scrubbed from every message and log line (the config file's are
    // registered when it is read).
    if let Some(url) = &cli.global.database_url {
        crate::secrets::register_url(url);
    }
    for variable in ["LOGLAKE__DATABASE__URL", "DATABASE_URL"] {
        if let Ok(url) = std::env::var(variable) {
            crate::secrets::register_url(&url);
        }
    }
    init_logging(cli.global.json_logs());
    run(cli)
}

/// `man`: the top page to stdout, or with `dir` every page (`loglake-run.1`, …) there.
/// Generated from the parser's own definitions, so they cannot drift from it.
fn write_man(dir: Option<&std::path::Path>) -> Result<()> {
    let Some(dir) = dir else {
        let mut page = Vec::new();
        // As `--dir` writes it: no page for clap's `help` command, so none named.
        clap_mangen::Man::new(Cli::command().disable_help_subcommand(true))
            .render(&mut page)
            .context("rendering the man page")?;
        return output::write_bytes(&page);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    let pages = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".1"))
        .count();
    output::println(&format!("man: {pages} pages in {}", dir.display()))
}

/// Run the command: one arm per command, each handing typed values to the module that does
/// the work.
pub fn run(cli: Cli) -> Result<Completion> {
    let g = &cli.global;
    // `--source` has a default; left at it, the operator commands and `status` show every
    // source.
    let only_source = (g.source != "default").then_some(g.source.as_str());
    match &cli.command {
        // Generated from the parser's own definitions, so they cannot drift from it.
        Command::Completions { shell } => {
            // Rendered first, then written: clap_complete panics on a write error.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "loglake", &mut script);
            output::write_bytes(&script)?;
        }
        Command::Man { dir } => write_man(dir.as_deref())?,
        Command::Generate {
            out,
            days,
            start_date,
            lines_per_day,
            seed,
        } => {
            let start = start_date
                .unwrap_or_else(|| Utc::now().date_naive() - chrono::Duration::days(*days as i64));
            write_generated(&GenerateOptions {
                out_dir: out.clone(),
                source: if g.source == "default" {
                    "app".into()
                } else {
                    g.source.clone()
                },
                start,
                days: *days,
                lines_per_day: *lines_per_day,
                seed: *seed,
            })?;
        }
        Command::Config {
            action: ConfigAction::Show,
        } => {
            let (from, overrides, settings) = load_settings(g)?;
            let shown = crate::config::show::show(&settings, &from, &overrides)?;
            output::print(&crate::config::show::render(&from, &shown))?;
        }
        Command::Vacuum {
            keep_days,
            yes,
            unreferenced_after_hours,
        } => {
            let retention = crate::vacuum::Retention {
                keep_days: *keep_days,
                unreferenced_after: chrono::Duration::hours(i64::from(*unreferenced_after_hours)),
            };
            output::print(&crate::vacuum::run(&load_settings(g)?.2, &retention, *yes)?)?;
        }
        Command::Incidents { action } => {
            output::print(&operator::incidents(
                &load_settings(g)?.2,
                only_source,
                action,
            )?)?;
        }
        Command::Anomalies { action } => {
            output::print(&operator::anomalies(
                &load_settings(g)?.2,
                only_source,
                action,
            )?)?;
        }
        Command::Tokens { action } => {
            output::print(&operator::tokens(&load_settings(g)?.2, action)?)?;
        }
        Command::Serve { listen } => crate::serve::run(load_settings(g)?.2, listen.clone())?,
        Command::Status { output } => {
            let status = crate::status::collect(&load_settings(g)?.2, only_source)?;
            match output {
                Output::Text => output::print(&crate::status::render(&status))?,
                Output::Json => output::println(&serde_json::to_string_pretty(&status)?)?,
            }
        }
        Command::ParseAccuracy {
            log,
            truth,
            show_mistakes,
            format,
        } => {
            let settings = load_settings(g)?.2;
            let overrides = SourceOverrides {
                format: format.clone(),
                ..Default::default()
            };
            let resolved = Resolved::new(&settings, &g.source, &overrides)?;
            parse_accuracy(&resolved, batch_dates(g)?[0], log, truth, *show_mistakes)?;
        }
        Command::Init => return run_stages(g, &cli.command, Stages::One(Stage::Init)),
        Command::Bronze { .. } => return run_stages(g, &cli.command, Stages::One(Stage::Bronze)),
        Command::Silver { .. } => return run_stages(g, &cli.command, Stages::One(Stage::Silver)),
        Command::Gold { .. } => return run_stages(g, &cli.command, Stages::One(Stage::Gold)),
        Command::Train => return run_stages(g, &cli.command, Stages::One(Stage::Train)),
        Command::Detect => return run_stages(g, &cli.command, Stages::One(Stage::Detect)),
        Command::Report { .. } => return run_stages(g, &cli.command, Stages::One(Stage::Report)),
        Command::Run { from, to, .. } => {
            return run_stages(g, &cli.command, Stages::Range(*from, *to));
        }
    }
    Ok(Completion::Done)
}

/// The config file, the flags that override it, and the settings they merge to.
fn load_settings(g: &GlobalArgs) -> Result<(ConfigFrom, Overrides, Settings)> {
    let overrides = Overrides {
        lake: g.lake.clone(),
        database_url: g.database_url.clone(),
        on_locked: g.on_locked,
        skip_exit_code: g.skip_exit_code,
    };
    let from = crate::config::file::find(g.config.as_deref())?;
    let settings = Settings::load_from(&from, &overrides)?;
    Ok((from, overrides, settings))
}

fn write_generated(options: &GenerateOptions) -> Result<()> {
    let summary = generate(options)?;
    output::println(&format!(
        "generate: {} lines in {} file(s) under {}, {} labelled anomalies in {}",
        summary.lines,
        summary.files.len(),
        options.out_dir.join("logs").display(),
        summary.labels,
        summary.labels_path.display()
    ))
}

/// `parse-accuracy`: the parser's template groups against ground truth, printed.
fn parse_accuracy(
    resolved: &Resolved,
    date: NaiveDate,
    log: &std::path::Path,
    truth: &std::path::Path,
    show_mistakes: usize,
) -> Result<()> {
    let truth = accuracy::read_truth(truth)?;
    let m = accuracy::evaluate_parser(&resolved.parse, date, log, &truth)?;
    if let Some(d) = &m.detection {
        output::println(&format!(
            "parse-accuracy: format auto-detected: {} {:?} ({} of the first {} lines)",
            d.preset, d.format, d.matched, d.sampled
        ))?;
    }
    let text = match m.template_accuracy {
        Some((pa, fta)) => format!(", PA {pa:.4}, FTA {fta:.4}"),
        None => String::new(),
    };
    output::println(&format!(
        "parse-accuracy: {} lines, {} quarantined, {} templates ({} true events), FGA {:.4}{text}, grouping accuracy {:.4}",
        m.lines, m.quarantined, m.templates, m.true_events, m.group_f1, m.accuracy
    ))?;
    for (event, templates) in m.mistakes.iter().take(show_mistakes) {
        output::println(&format!("  true event {event}:"))?;
        for (template, n) in templates {
            output::println(&format!("    {n:>6}  {template}"))?;
        }
    }
    Ok(())
}

/// Which stages a stage command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stages {
    /// A stage command (`02-silver`).
    One(Stage),
    /// `run --from … --to …`.
    Range(Stage, Stage),
}

/// A stage command or `run`: its flags turned into the source's resolved settings and the
/// stages' options, the workspace opened, the stages run.
fn run_stages(g: &GlobalArgs, command: &Command, stages: Stages) -> Result<Completion> {
    let (_, _, settings) = load_settings(g)?;
    let (ingest, shard, parse, sessions, report) = match command {
        Command::Bronze { ingest, shard } => (Some(ingest), Some(shard), None, None, None),
        Command::Silver { parse, shard } => (None, Some(shard), Some(parse), None, None),
        Command::Gold { sessions } => (None, None, None, Some(sessions), None),
        Command::Report { report, .. } => (None, None, None, None, Some(report)),
        Command::Run {
            ingest,
            shard,
            parse,
            report,
            ..
        } => (Some(ingest), Some(shard), Some(parse), None, Some(report)),
        _ => (None, None, None, None, None),
    };
    let sessions = sessions.or(parse.map(|p| &p.sessions));
    let overrides = SourceOverrides {
        format: parse.and_then(|p| p.format.clone()),
        session_key: sessions.and_then(|s| s.session_key.clone()),
        kafka_brokers: ingest.and_then(|i| i.kafka_brokers.clone()),
        reads_kafka: ingest.is_some_and(|i| !i.kafka.is_empty()),
    };
    let options = StageOptions {
        inputs: ingest.map(|i| i.input.clone()).unwrap_or_default(),
        kafka_topics: ingest.map(|i| i.kafka.clone()).unwrap_or_default(),
        shard: shard.and_then(|s| s.shard.clone()),
        labels: report.and_then(|r| r.labels.clone()),
        html: report.is_some_and(|r| r.html),
        json_logs: g.json_logs(),
        report_json: matches!(
            command,
            Command::Report {
                output: Output::Json,
                ..
            }
        ),
    };
    let (name, creates) = match stages {
        Stages::One(stage) => (stage.name(), stage == Stage::Init),
        Stages::Range(from, _) => ("run", from == Stage::Init),
    };
    let access = if creates {
        Access::Create
    } else {
        Access::Write
    };
    let skip = Completion::NothingToDo {
        exit_code: settings.run.skip_exit_code,
    };
    let dates = batch_dates(g)?;
    // Before the lock and the lake: a bad setting is refused before anything is written.
    let ctx = Resolved::new(&settings, &g.source, &overrides)
        .and_then(|resolved| {
            Context::open(settings, resolved, g.source.clone(), dates, options, access)
        })
        .with_context(|| format!("{name} could not start"))?;
    if stages == Stages::One(Stage::Report) {
        // A report alone only reads: on a source with no data it would say "0 rows" and
        // succeed, and a misspelled --source would look like an empty day.
        ctx.require_lake()
            .and_then(|()| stages::known_source(&ctx.lake, &ctx.settings, &ctx.source))
            .context("06-report could not start")?;
    }
    let nothing_to_do = match stages {
        Stages::One(stage) => stages::run_stage(&ctx, stage).map(|o| o.nothing_to_do),
        Stages::Range(from, to) => stages::run_range(&ctx, from, to),
    };
    ctx.db.close();
    Ok(if nothing_to_do? {
        skip
    } else {
        Completion::Done
    })
}

//! The arguments stage commands and `run` share: what to ingest, which shard, how to parse,
//! how sessions are keyed, what the report adds. Each is flattened into the commands that take
//! it, and turned into settings by `config::resolved` and the stages' options by `run_stages`.

use std::path::PathBuf;

use clap::Args;

/// What `01-bronze` and `run` ingest.
#[derive(Debug, Clone, Default, Args)]
pub struct IngestArgs {
    /// Raw file or folder to ingest (plain or .gz), a quoted glob pattern ('/var/log/app/*.log'),
    /// or - for standard input; repeatable.
    #[arg(long, value_name = "PATH")]
    pub input: Vec<PathBuf>,
    /// Kafka topic to ingest, each partition from where bronze stopped up to its latest
    /// offset when the batch starts; repeatable. SASL and TLS settings come from
    /// LOGLAKE_KAFKA_* (see README).
    #[arg(long, value_name = "TOPIC")]
    pub kafka: Vec<String>,
    /// Kafka brokers, host:port[,host:port…] (overrides [sources.<name>] kafka_brokers).
    #[arg(long, value_name = "HOSTS", requires = "kafka")]
    pub kafka_brokers: Option<String>,
}

/// Which input shard of the batch `01-bronze`, `02-silver` and `run --to 02-silver` work on.
#[derive(Debug, Clone, Default, Args)]
pub struct ShardArgs {
    /// Work on one shard of the day (a file, an hour of files): its lines go to the day's
    /// `shard=<NAME>` sub-partition, so shards run as separate tasks, on several machines at
    /// once; 03-gold onwards read every shard of the day.
    #[arg(long, value_name = "NAME")]
    pub shard: Option<String>,
}

/// How `02-silver` and `run` read lines: the source's format and session key, over the
/// config's `[sources.<name>]` and `[parse]`.
#[derive(Debug, Clone, Default, Args)]
pub struct ParseArgs {
    /// Line format: "auto", a preset (hdfs, syslog, json, … see README) or a format string
    /// such as "<Date> <Time> <Level> <Component>: <Content>" (overrides the config).
    #[arg(long)]
    pub format: Option<String>,
    #[command(flatten)]
    pub sessions: SessionArgs,
}

/// How `02-silver`, `03-gold` and `run` key sessions. Silver keeps a `field:` key's value on
/// each event and gold groups by it, so both take it; later stages read gold's sessions.
#[derive(Debug, Clone, Default, Args)]
pub struct SessionArgs {
    /// Session key: a regex over the message, e.g. 'blk_-?\d+' or 'req=(\S+)', or
    /// 'field:NAME' for a parsed field's value (a format's <NAME>, a JSON/logfmt key such as
    /// field:trace_id) (overrides the config).
    #[arg(long, value_name = "REGEX|field:NAME")]
    pub session_key: Option<String>,
}

/// What `06-report` and `run` add to the report.
#[derive(Debug, Clone, Default, Args)]
pub struct ReportArgs {
    /// Ground-truth labels for the evaluation (precision, recall, F1, ROC-AUC, PR-AUC):
    /// labels.jsonl from `generate`, session labels (loghub's BlockId,Label CSV) or per-line
    /// labels (LineId,Label CSV).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Also write a self-contained HTML page (charts, templates, incidents) to
    /// <lake>/reports/<date>/index.html.
    #[arg(long)]
    pub html: bool,
}

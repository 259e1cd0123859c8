//! `loglake status`: what a lake holds and how its last runs went, read-only.
//!
//! It takes no writer lock and writes nothing — not even the embedded database, which it only
//! reads when it exists — so an operator can run it while a batch is in flight: partitions
//! per layer with row counts (from Parquet footers, no data read) and bytes, quarantined
//! lines, the latest model of each detector, the last run of each stage and the open
//! incidents, per source.

use anyhow::Result;
use serde::Serialize;

use crate::config::Settings;
use crate::db::status::{LastRun, LatestModel, OpenIncidents};
use crate::lake::{Lake, Layer};
use crate::workspace::{Access, Workspace};

/// Everything `status` reports.
#[derive(Debug, Serialize)]
pub struct Status {
    pub lake: String,
    /// The database (password redacted), or why it was not read.
    pub database: String,
    pub tables: Vec<TableStatus>,
    pub last_runs: Vec<LastRun>,
    pub models: Vec<LatestModel>,
    /// Model files that do not read (skipped by 04-train's successors and `serve`; remove or
    /// replace them).
    pub unreadable_models: Vec<String>,
    pub open_incidents: Vec<OpenIncidents>,
}

/// One table of one source.
#[derive(Debug, Serialize)]
pub struct TableStatus {
    pub source: String,
    /// `layer/table`, e.g. `silver/events`.
    pub table: String,
    pub partitions: usize,
    pub rows: u64,
    pub bytes: u64,
    pub first_date: String,
    pub last_date: String,
}

/// The status of the lake `settings` point at; `source`: only that source.
pub fn collect(settings: &Settings, source: Option<&str>) -> Result<Status> {
    let ws = Workspace::open(settings, Access::Read)?;
    let lake = &ws.lake;
    if let Some(source) = source {
        crate::stages::known_source(lake, settings, source)?;
    }
    let mut tables = Vec::new();
    for layer in Layer::ALL {
        for table in lake.tables(layer)? {
            for s in lake.sources(layer, &table)? {
                if source.is_some_and(|only| only != s) {
                    continue;
                }
                tables.push(table_status(lake, layer, &table, &s)?);
            }
        }
    }
    tables
        .sort_by(|a, b| (&a.source, layer_rank(&a.table)).cmp(&(&b.source, layer_rank(&b.table))));
    let (database, last_runs, models, open_incidents) = match &ws.db {
        None => (
            format!(
                "none yet ({} does not exist)",
                lake.default_database_path().display()
            ),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        ),
        Some(db) => (
            db.display_url().to_string(),
            db.last_runs(source)?,
            db.latest_models(source)?,
            db.open_incidents(source)?,
        ),
    };
    let status = Status {
        lake: match settings.lake.path.local() {
            None => lake.location(),
            Some(root) => std::fs::canonicalize(root)
                .unwrap_or_else(|_| root.to_path_buf())
                .display()
                .to_string(),
        },
        database,
        tables,
        last_runs,
        models,
        unreadable_models: crate::detectors::SavedModel::unreadable(lake, source)
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        open_incidents,
    };
    ws.close();
    Ok(status)
}

fn layer_rank(table: &str) -> (usize, &str) {
    let layer = table.split('/').next().unwrap_or_default();
    let rank = Layer::ALL
        .iter()
        .position(|l| l.dir_name() == layer)
        .unwrap_or(Layer::ALL.len());
    (rank, table)
}

fn table_status(lake: &Lake, layer: Layer, table: &str, source: &str) -> Result<TableStatus> {
    let dates = lake.partition_dates(layer, table, source)?;
    let (mut rows, mut bytes) = (0, 0);
    for &date in &dates {
        let (r, b) = lake.partition_size(layer, table, source, date)?;
        rows += r;
        bytes += b;
    }
    // A table kept per source rather than per date (silver's template store).
    let kept = lake.source_files(layer, table, source)?;
    rows += Lake::row_count(&kept)?;
    bytes += kept.iter().map(|f| crate::lake::tree_bytes(f)).sum::<u64>();
    let day = |d: Option<&chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    Ok(TableStatus {
        source: source.to_string(),
        table: format!("{}/{table}", layer.dir_name()),
        partitions: dates.len(),
        rows,
        bytes,
        first_date: day(dates.first()),
        last_date: day(dates.last()),
    })
}

/// The status as text, a section per source.
pub fn render(status: &Status) -> String {
    let mut out = format!("lake {}\ndatabase {}\n", status.lake, status.database);
    let mut sources: Vec<&str> = status
        .tables
        .iter()
        .map(|t| t.source.as_str())
        .chain(status.last_runs.iter().map(|r| r.source.as_str()))
        .collect();
    sources.sort_unstable();
    sources.dedup();
    if sources.is_empty() {
        out.push_str("no data yet: run `loglake run --input <logs>`\n");
    }
    for source in sources {
        out.push_str(&format!("\nsource {source}\n"));
        out.push_str(&format!(
            "  {:<32} {:>10} {:>14} {:>12}  dates\n",
            "table", "partitions", "rows", "bytes"
        ));
        for t in status.tables.iter().filter(|t| t.source == source) {
            out.push_str(&format!(
                "  {:<32} {:>10} {:>14} {:>12}  {}{}\n",
                t.table,
                t.partitions,
                t.rows,
                t.bytes,
                t.first_date,
                if t.last_date != t.first_date {
                    format!("..{}", t.last_date)
                } else {
                    String::new()
                }
            ));
        }
        let runs: Vec<&LastRun> = status
            .last_runs
            .iter()
            .filter(|r| r.source == source)
            .collect();
        if !runs.is_empty() {
            out.push_str("  last runs:\n");
        }
        for r in runs {
            let seconds = r
                .duration_ms
                .map(|ms| format!(" in {:.1} s", ms as f64 / 1000.0))
                .unwrap_or_default();
            out.push_str(&format!(
                "    {:<10} {:<9} {} (batch {}){seconds}{}\n",
                r.stage,
                r.status,
                r.started_at,
                r.batch_dates,
                if r.status == "failed" {
                    format!(": {}", r.note)
                } else {
                    String::new()
                }
            ));
        }
        let models: Vec<&LatestModel> = status
            .models
            .iter()
            .filter(|m| m.source == source)
            .collect();
        if !models.is_empty() {
            out.push_str("  latest models:\n");
        }
        for m in models {
            out.push_str(&format!(
                "    {:<26} {}  trained on {}..{}\n",
                format!("{}/{}", m.granularity, m.detector),
                m.model_version,
                m.train_from,
                m.train_to
            ));
        }
        let prefix = format!("/models/{source}/");
        for bad in status
            .unreadable_models
            .iter()
            .filter(|p| p.contains(&prefix))
        {
            out.push_str(&format!(
                "    unreadable model (skipped; remove or replace it): {bad}\n"
            ));
        }
        match status.open_incidents.iter().find(|i| i.source == source) {
            Some(i) => out.push_str(&format!(
                "  open incidents: {} (worst {}, latest started {})\n",
                i.open, i.worst_severity, i.latest_started_at
            )),
            None => out.push_str("  open incidents: 0\n"),
        }
    }
    out
}

//! `loglake vacuum --keep-days N`: retention. Lake partitions whose batch date is more than N
//! days old, model versions trained on data that old (the latest of each detector is always
//! kept, however old: detection needs it), report folders and `pipeline_runs` rows.
//!
//! A dry run by default — it lists what would go and how many bytes that frees — because a
//! retention job with a typo in N should cost a re-run, not a lake; `--yes` deletes. Anomalies
//! and incidents in the database are the product and are kept. It takes the writer lock, like a
//! stage: nothing is removed under a running batch.

use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::NaiveDate;

use crate::db::Database;
use crate::lake::lock::LakeLock;
use crate::lake::{Lake, Layer, subdirectories, tree_bytes};
use crate::workspace::{Access, Workspace};

/// What vacuum keeps.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Days of batch dates (training ends, report dates) kept.
    pub keep_days: u32,
    /// Unreferenced files of a lake on object storage younger than this are kept.
    pub unreferenced_after: chrono::Duration,
}

/// One thing vacuum removes.
#[derive(Debug, Clone)]
pub struct Doomed {
    /// `partition`, `model`, `report` or `unreferenced` (a file of a lake on object storage
    /// that no manifest names).
    pub kind: &'static str,
    /// What it is, for the listing (`silver/events source=web date=2026-10-01`).
    pub what: String,
    pub path: PathBuf,
    pub bytes: u64,
    /// A model version's id, whose `models` row goes with its files.
    pub model_version: Option<String>,
    /// The object, for an unreferenced file.
    pub object: Option<crate::lake::remote::Object>,
}

/// What a vacuum would remove.
#[derive(Debug)]
pub struct Plan {
    /// Batch dates (and training ends, report dates) before this are removed.
    pub cutoff: NaiveDate,
    pub doomed: Vec<Doomed>,
    /// `pipeline_runs` rows started before the cutoff.
    pub runs: i64,
}

/// What `retention` means for this lake on `today`.
pub fn plan(lake: &Lake, db: &Database, retention: &Retention, today: NaiveDate) -> Result<Plan> {
    let cutoff = today - chrono::Duration::days(i64::from(retention.keep_days));
    let mut doomed = Vec::new();
    for layer in Layer::ALL {
        for table in lake.tables(layer)? {
            for source in lake.sources(layer, &table)? {
                for date in lake.partition_dates(layer, &table, &source)? {
                    if date >= cutoff {
                        continue;
                    }
                    let path = lake.partition_dir(layer, &table, &source, date);
                    doomed.push(Doomed {
                        kind: "partition",
                        what: format!("{}/{table} source={source} date={date}", layer.dir_name()),
                        bytes: lake.stored_bytes(&path)?,
                        path,
                        model_version: None,
                        object: None,
                    });
                }
            }
        }
    }
    lake.fetch_tree(&lake.models_dir())?;
    doomed.extend(old_models(&lake.models_dir(), cutoff));
    for (date, path) in report_folders(lake)? {
        if date < cutoff {
            doomed.push(Doomed {
                kind: "report",
                what: format!("reports/{date}"),
                bytes: lake.stored_bytes(&path)?,
                path,
                model_version: None,
                object: None,
            });
        }
    }
    for object in lake.orphans(retention.unreferenced_after)? {
        doomed.push(Doomed {
            kind: "unreferenced",
            what: object.key.clone(),
            bytes: object.bytes,
            path: lake.root().join(&object.key),
            model_version: None,
            object: Some(object),
        });
    }
    Ok(Plan {
        cutoff,
        doomed,
        runs: db.runs_before(cutoff)?,
    })
}

/// Model versions (`models/<source>/<granularity>/<detector>/<YYYYMMDD-hash>/`) trained up to
/// a day before `cutoff`, except each detector's latest training day.
fn old_models(root: &Path, cutoff: NaiveDate) -> Vec<Doomed> {
    let mut doomed = Vec::new();
    for source in subdirectories(root) {
        for granularity in subdirectories(&source) {
            for detector in subdirectories(&granularity) {
                // (training day, version, folder)
                let versions: Vec<(NaiveDate, String, PathBuf)> = subdirectories(&detector)
                    .into_iter()
                    .filter_map(|v| {
                        let name = v.file_name()?.to_string_lossy().into_owned();
                        let day = NaiveDate::parse_from_str(name.get(..8)?, "%Y%m%d").ok()?;
                        Some((day, name, v))
                    })
                    .collect();
                let Some(latest) = versions.iter().map(|(d, _, _)| *d).max() else {
                    continue;
                };
                let owner = detector.strip_prefix(root).unwrap_or(&detector).display();
                for (day, version, path) in versions {
                    if day >= cutoff || day == latest {
                        continue;
                    }
                    doomed.push(Doomed {
                        kind: "model",
                        what: format!("{owner} {version}"),
                        bytes: tree_bytes(&path),
                        path,
                        model_version: Some(version),
                        object: None,
                    });
                }
            }
        }
    }
    doomed
}

/// The report folders (`reports/<YYYY-MM-DD>/`) by date; listed, not fetched.
fn report_folders(lake: &Lake) -> Result<Vec<(NaiveDate, PathBuf)>> {
    Ok(lake
        .folders(&lake.reports_dir())?
        .into_iter()
        .filter_map(|name| {
            let date = NaiveDate::parse_from_str(&name, "%Y-%m-%d").ok()?;
            Some((date, lake.reports_dir().join(name)))
        })
        .collect())
}

/// Remove everything `plan` lists (the bytes it frees are in the plan).
pub fn apply(lake: &Lake, db: &Database, plan: &Plan, held: &LakeLock) -> Result<()> {
    let mut versions = Vec::new();
    let mut unreferenced = Vec::new();
    for d in &plan.doomed {
        match &d.object {
            Some(object) => unreferenced.push(object.clone()),
            None => lake.remove(&d.path, held)?,
        }
        versions.extend(d.model_version.clone());
    }
    lake.remove_orphans(&unreferenced)?;
    db.delete_models(&versions)?;
    db.delete_runs_before(plan.cutoff)?;
    Ok(())
}

/// The plan as text: one line per item, then totals and what to do next.
pub fn render(plan: &Plan, applied: bool) -> String {
    let mut out = String::new();
    for d in &plan.doomed {
        out.push_str(&format!(
            "  {:<9} {:<64} {:>12} bytes\n",
            d.kind, d.what, d.bytes
        ));
    }
    let count = |kind: &str| plan.doomed.iter().filter(|d| d.kind == kind).count();
    let bytes: u64 = plan.doomed.iter().map(|d| d.bytes).sum();
    let verb = if applied { "removed" } else { "would remove" };
    out.push_str(&format!(
        "vacuum: {verb} everything before {}: {} partition(s), {} model version(s), {} report(s), {} unreferenced file(s) ({bytes} bytes) and {} pipeline_runs row(s)\n",
        plan.cutoff,
        count("partition"),
        count("model"),
        count("report"),
        count("unreferenced"),
        plan.runs
    ));
    if !applied {
        out.push_str("vacuum: dry run, nothing deleted; run again with --yes to delete\n");
    }
    out
}

/// `loglake vacuum`: plan for the lake `settings` point at, delete with `yes`; the listing.
pub fn run(settings: &crate::config::Settings, retention: &Retention, yes: bool) -> Result<String> {
    let ws = Workspace::open(settings, Access::Write)?;
    let (lake, db) = (&ws.lake, ws.db());
    let held = ws
        .lock
        .as_ref()
        .expect("a writer's workspace holds the lock");
    db.migrate()?;
    let plan = plan(lake, db, retention, chrono::Utc::now().date_naive())?;
    if yes {
        apply(lake, db, &plan, held)?;
    }
    ws.close();
    Ok(render(&plan, yes))
}

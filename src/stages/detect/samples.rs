//! Sample lines for anomalies: a few of the batch's silver lines that illustrate each finding
//! (the window's lines of the leading template or level, the session's lines, the line
//! itself), with where they are in the lake.

use std::collections::{HashMap, HashSet};

use anyhow::{Context as _, Result};
use chrono::{NaiveDate, TimeZone, Utc};
use polars::prelude::*;
use serde_json::json;

use crate::detectors::{Finding, SampleQuery};
use crate::features;
use crate::lake::{Layer, tables};
use crate::stages::Context;

/// The batch's silver events, held in memory to pick sample lines for anomalies. Text stays in
/// Polars' columns and is read only for the rows picked: turning a million rows into owned
/// strings would cost more than all the lookups together.
pub struct Samples {
    ts: Vec<i64>,
    line_no: Vec<u64>,
    service: StringChunked,
    file: StringChunked,
    level: StringChunked,
    template_id: StringChunked,
    message: StringChunked,
    /// The lines of each flagged session (file → line numbers), as 03-gold keyed them.
    session_lines: HashMap<String, SessionLines>,
    /// Row indices sorted by time.
    by_time: Vec<usize>,
    partition: String,
}

/// A session's lines: file → line numbers.
type SessionLines = HashMap<String, HashSet<u64>>;

fn text(column: &StringChunked, i: usize) -> &str {
    column.get(i).unwrap_or_default()
}

/// The silver columns sample lines show.
const COLUMNS: [&str; 7] = [
    "ts",
    "line_no",
    "service",
    "file",
    "level",
    "template_id",
    "message",
];

impl Samples {
    /// The batch's lines, when some finding needs them (else none are read).
    pub fn load(ctx: &Context, date: NaiveDate, findings: &[Finding]) -> Result<Self> {
        let partition = format!(
            "silver/{}/source={}/date={date}",
            tables::EVENTS,
            ctx.source
        );
        let lf = if findings.is_empty() {
            None
        } else {
            ctx.lake
                .scan(Layer::Silver, tables::EVENTS, &ctx.source, &[date])?
        };
        let df = match lf {
            Some(lf) => lf
                .select(COLUMNS.iter().map(|c| col(*c)).collect::<Vec<_>>())
                .collect()
                .map_err(anyhow::Error::from)
                .context("reading silver events for sample lines")?,
            // Nothing to explain: an empty frame with the same columns.
            None => DataFrame::new_infer_height(vec![
                Column::new("ts".into(), Vec::<i64>::new()),
                Column::new("line_no".into(), Vec::<u64>::new()),
                Column::new("service".into(), Vec::<&str>::new()),
                Column::new("file".into(), Vec::<&str>::new()),
                Column::new("level".into(), Vec::<&str>::new()),
                Column::new("template_id".into(), Vec::<&str>::new()),
                Column::new("message".into(), Vec::<&str>::new()),
            ])?,
        };
        let session_lines = session_lines(ctx, date, findings)?;
        Self::new(df, partition, session_lines)
    }

    fn new(
        mut df: DataFrame,
        partition: String,
        session_lines: HashMap<String, SessionLines>,
    ) -> Result<Self> {
        // One chunk per column keeps `get(i)` a direct lookup.
        df.rechunk_mut_par();
        let ts = features::millis(&df, "ts")?;
        let mut by_time: Vec<usize> = (0..ts.len()).collect();
        by_time.sort_by_key(|&i| (ts[i], i));
        let strings = |name: &str| -> Result<StringChunked> { Ok(df.column(name)?.str()?.clone()) };
        Ok(Samples {
            line_no: df
                .column("line_no")?
                .u64()?
                .iter()
                .map(|v| v.unwrap_or_default())
                .collect(),
            service: strings("service")?,
            file: strings("file")?,
            level: strings("level")?,
            template_id: strings("template_id")?,
            message: strings("message")?,
            session_lines,
            ts,
            by_time,
            partition,
        })
    }

    /// Rows with start <= ts <= end, in time order.
    fn in_range(&self, start: i64, end: i64) -> impl Iterator<Item = usize> + '_ {
        let from = self.by_time.partition_point(|&i| self.ts[i] < start);
        self.by_time[from..]
            .iter()
            .copied()
            .take_while(move |&i| self.ts[i] <= end)
    }

    /// Up to `k` lines that illustrate `f`, as `details.samples` lists them.
    pub fn find(&self, f: &Finding, k: usize) -> Vec<serde_json::Value> {
        let mut picked: Vec<usize> = Vec::new();
        match &f.samples {
            SampleQuery::Line { file, line_no } => {
                picked.extend(
                    self.in_range(f.start_ms, f.end_ms)
                        .filter(|&i| text(&self.file, i) == file && self.line_no[i] == *line_no)
                        .take(1),
                );
            }
            SampleQuery::Window { template, level } => {
                // Window end is exclusive.
                let rows: Vec<usize> = self
                    .in_range(f.start_ms, f.end_ms - 1)
                    .filter(|&i| text(&self.service, i) == f.service)
                    .collect();
                let preferred = rows.iter().copied().filter(|&i| {
                    template
                        .as_ref()
                        .is_some_and(|t| text(&self.template_id, i) == t)
                        || level.is_some_and(|l| text(&self.level, i) == l)
                });
                picked.extend(preferred.take(k));
                if picked.is_empty() {
                    picked.extend(rows.into_iter().take(k));
                }
            }
            SampleQuery::Session { key } => {
                if let Some(lines) = self.session_lines.get(key) {
                    picked.extend(
                        self.in_range(f.start_ms, f.end_ms)
                            .filter(|&i| {
                                lines
                                    .get(text(&self.file, i))
                                    .is_some_and(|n| n.contains(&self.line_no[i]))
                            })
                            .take(k),
                    );
                }
            }
        }
        picked
            .into_iter()
            .map(|i| {
                json!({
                    "ts": Utc.timestamp_millis_opt(self.ts[i]).single().map(|t| t.to_rfc3339()).unwrap_or_default(),
                    "level": text(&self.level, i),
                    "message": text(&self.message, i),
                    "file": text(&self.file, i),
                    "line_no": self.line_no[i],
                    "lake_partition": self.partition,
                })
            })
            .collect()
    }
}

/// The lines of each session some finding flagged, from `gold/event_features` (where 03-gold
/// put each event's session key): sample lines follow the key exactly as sessions were built.
fn session_lines(
    ctx: &Context,
    date: NaiveDate,
    findings: &[Finding],
) -> Result<HashMap<String, SessionLines>> {
    let keys: HashSet<&str> = findings
        .iter()
        .filter_map(|f| match &f.samples {
            SampleQuery::Session { key } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    let mut lines: HashMap<String, SessionLines> = HashMap::new();
    if keys.is_empty() {
        return Ok(lines);
    }
    let Some(events) = ctx
        .lake
        .scan(Layer::Gold, tables::EVENT_FEATURES, &ctx.source, &[date])?
    else {
        return Ok(lines);
    };
    let df = events
        .select([col("session_key"), col("file"), col("line_no")])
        .filter(col("session_key").is_not_null())
        .collect()
        .map_err(anyhow::Error::from)
        .context("reading the session of each event (gold/event_features; re-run 03-gold if an older loglake wrote it)")?;
    let session = df.column("session_key")?.str()?;
    let file = df.column("file")?.str()?;
    let line_no = df.column("line_no")?.u64()?;
    for i in 0..df.height() {
        let (Some(s), Some(f), Some(n)) = (session.get(i), file.get(i), line_no.get(i)) else {
            continue;
        };
        if keys.contains(s) {
            lines
                .entry(s.to_string())
                .or_default()
                .entry(f.to_string())
                .or_default()
                .insert(n);
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::Granularity;

    fn finding(samples: SampleQuery, service: &str, start_ms: i64, end_ms: i64) -> Finding {
        Finding {
            granularity: Granularity::Window,
            entity_key: service.into(),
            service: service.into(),
            start_ms,
            end_ms,
            detector: "zscore".into(),
            score: 9.0,
            threshold: 5.0,
            reason: String::new(),
            top: vec![],
            samples,
            model_version: "v".into(),
            baseline_group: None,
            contributions: None,
        }
    }

    fn samples() -> Samples {
        let df = df!(
            "ts" => [3_000i64, 1_000, 2_000, 4_000, 400_000],
            "line_no" => [3u64, 1, 2, 4, 5],
            "service" => ["api", "api", "api", "db", "api"],
            "file" => ["a.log"; 5],
            "level" => ["ERROR", "INFO", "INFO", "INFO", "INFO"],
            "template_id" => ["t2", "t1", "t1", "t3", "t1"],
            "message" => ["boom req=7", "start req=7", "step req=8", "db ok", "late req=7"],
        )
        .unwrap();
        let sessions = HashMap::from([(
            "7".to_string(),
            HashMap::from([("a.log".to_string(), HashSet::from([1, 3, 5]))]),
        )]);
        Samples::new(df, "silver/events/source=s/date=d".into(), sessions).unwrap()
    }

    fn lines(found: Vec<serde_json::Value>) -> Vec<u64> {
        found
            .iter()
            .map(|v| v["line_no"].as_u64().unwrap())
            .collect()
    }

    #[test]
    fn window_samples_prefer_the_leading_level_and_keep_time_order() {
        let s = samples();
        let error = SampleQuery::Window {
            template: None,
            level: Some("ERROR"),
        };
        assert_eq!(
            lines(s.find(&finding(error, "api", 0, 300_000), 3)),
            vec![3]
        );
        // Nothing preferred: the window's lines in time order, its end exclusive.
        let any = SampleQuery::Window {
            template: None,
            level: None,
        };
        assert_eq!(
            lines(s.find(&finding(any, "api", 0, 300_000), 3)),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn session_and_line_samples_follow_gold_placement() {
        let s = samples();
        let session = SampleQuery::Session { key: "7".into() };
        assert_eq!(
            lines(s.find(&finding(session, "api", 0, 400_000), 2)),
            vec![1, 3]
        );
        let unknown = SampleQuery::Session { key: "9".into() };
        assert!(s.find(&finding(unknown, "api", 0, 400_000), 2).is_empty());
        let line = SampleQuery::Line {
            file: "a.log".into(),
            line_no: 4,
        };
        let found = s.find(&finding(line, "db", 4_000, 4_000), 3);
        assert_eq!(lines(found.clone()), vec![4]);
        assert_eq!(found[0]["message"], "db ok");
        assert_eq!(found[0]["lake_partition"], "silver/events/source=s/date=d");
    }
}

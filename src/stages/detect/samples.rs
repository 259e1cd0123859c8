//! Sample lines for anomalies: a few of the batch's silver lines that illustrate each finding
//! (the window's lines of the leading template or level, the session's lines, the line
//! itself), with where they are in the lake.

// Fx hashing: every silver row of the batch is looked up by (file, line number).
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use anyhow::{Context as _, Result};
use chrono::{NaiveDate, TimeZone, Utc};
use polars::prelude::*;
use serde_json::json;

use crate::detectors::{Finding, SampleQuery};
use crate::features;
use crate::lake::{Layer, RowWindows, tables};
use crate::stages::Context;

/// The batch's silver events that some finding may show as a sample line, held in memory to
/// pick from. Text stays in Polars' columns and is read only for the rows picked: turning
/// them into owned strings would cost more than all the lookups together.
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
    /// The lines findings may show (none when there are no findings): a window finding's
    /// lines in its time range, a session's lines, a flagged line. Silver is read a window of
    /// rows at a time and only those rows are kept, so memory follows the findings, not the
    /// batch; kept rows stay in silver order, as whole-batch reading had them.
    pub fn load(ctx: &Context, date: NaiveDate, findings: &[Finding]) -> Result<Self> {
        let partition = format!(
            "silver/{}/source={}/date={date}",
            tables::EVENTS,
            ctx.source
        );
        let session_lines = session_lines(ctx, date, findings)?;
        let wanted = Wanted::of(findings, &session_lines);
        let mut kept: Vec<DataFrame> = Vec::new();
        if !findings.is_empty() {
            ctx.lake.read_windows(
                Layer::Silver,
                tables::EVENTS,
                (&ctx.source, date),
                RowWindows {
                    rows: ctx.resolved.parse.window_lines,
                    columns: &COLUMNS,
                },
                &mut |df| {
                    let ts = features::millis(&df, "ts")?;
                    let file = df.column("file")?.str()?;
                    let line_no = df.column("line_no")?.u64()?;
                    let mask: BooleanChunked = (0..df.height())
                        .map(|i| {
                            wanted.time(ts[i])
                                || wanted.line(
                                    file.get(i).unwrap_or_default(),
                                    line_no.get(i).unwrap_or_default(),
                                )
                        })
                        .collect();
                    kept.push(crate::lake::keep_rows(&df, &mask)?);
                    Ok(())
                },
            )?;
        }
        let df = if !kept.is_empty() {
            crate::lake::concat_rows(kept)?
        } else {
            // Nothing to explain: an empty frame with the same columns.
            DataFrame::new_infer_height(vec![
                Column::new("ts".into(), Vec::<i64>::new()),
                Column::new("line_no".into(), Vec::<u64>::new()),
                Column::new("service".into(), Vec::<&str>::new()),
                Column::new("file".into(), Vec::<&str>::new()),
                Column::new("level".into(), Vec::<&str>::new()),
                Column::new("template_id".into(), Vec::<&str>::new()),
                Column::new("message".into(), Vec::<&str>::new()),
            ])?
        };
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

/// Which silver rows a batch's findings may take samples from.
struct Wanted<'a> {
    /// Window findings' time ranges, sorted and merged.
    ranges: Vec<(i64, i64)>,
    /// Flagged sessions' and flagged lines' (file, line number).
    lines: HashMap<&'a str, HashSet<u64>>,
}

impl<'a> Wanted<'a> {
    fn of(findings: &'a [Finding], sessions: &'a HashMap<String, SessionLines>) -> Self {
        let mut ranges: Vec<(i64, i64)> = Vec::new();
        let mut lines: HashMap<&'a str, HashSet<u64>> = HashMap::default();
        for f in findings {
            match &f.samples {
                SampleQuery::Window { .. } => ranges.push((f.start_ms, f.end_ms)),
                SampleQuery::Line { file, line_no } => {
                    lines.entry(file.as_str()).or_default().insert(*line_no);
                }
                SampleQuery::Session { .. } => {}
            }
        }
        for by_file in sessions.values() {
            for (file, numbers) in by_file {
                lines
                    .entry(file.as_str())
                    .or_default()
                    .extend(numbers.iter().copied());
            }
        }
        ranges.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::new();
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        Self {
            ranges: merged,
            lines,
        }
    }

    /// Whether `ts` lies in some window finding's range (ends included).
    fn time(&self, ts: i64) -> bool {
        let i = self.ranges.partition_point(|r| r.1 < ts);
        self.ranges.get(i).is_some_and(|r| r.0 <= ts)
    }

    fn line(&self, file: &str, line_no: u64) -> bool {
        self.lines.get(file).is_some_and(|n| n.contains(&line_no))
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
    let mut lines: HashMap<String, SessionLines> = HashMap::default();
    if keys.is_empty() {
        return Ok(lines);
    }
    ctx.lake.read_windows(
        Layer::Gold,
        tables::EVENT_FEATURES,
        (&ctx.source, date),
        RowWindows {
            rows: ctx.resolved.parse.window_lines,
            columns: &["session_key", "file", "line_no"],
        },
        &mut |df| {
            let session = df.column("session_key")?.str()?;
            let file = df.column("file")?.str()?;
            let line_no = df.column("line_no")?.u64()?;
            for i in 0..df.height() {
                let (Some(s), Some(f), Some(n)) = (session.get(i), file.get(i), line_no.get(i))
                else {
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
            Ok(())
        },
    )
    .context("reading the session of each event (gold/event_features; re-run 03-gold if an older loglake wrote it)")?;
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
        let sessions: HashMap<String, SessionLines> = [(
            "7".to_string(),
            [("a.log".to_string(), [1, 3, 5].into_iter().collect())]
                .into_iter()
                .collect(),
        )]
        .into_iter()
        .collect();
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

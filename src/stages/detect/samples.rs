//! Sample lines for anomalies: a few of the batch's silver lines that illustrate each finding
//! (the window's lines of the leading template or level, the session's lines, the line
//! itself), with where they are in the lake.

// Fx hashing: every silver row of the batch is looked up by (file, line number).
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use anyhow::{Context as _, Result};
use chrono::{NaiveDate, TimeZone, Utc};
use polars::prelude::*;

use super::chunks::each_event_window_from;
use crate::detectors::{Finding, SampleQuery};
use crate::features;
use crate::lake::tables;
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

/// Where sample lines come from, as `details.samples[].lake_partition` names it.
pub fn partition_of(ctx: &Context, date: NaiveDate) -> String {
    format!(
        "silver/{}/source={}/date={date}",
        tables::EVENTS,
        ctx.source
    )
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
    /// The lines findings may show (none when there are no findings), read after scoring:
    /// the batch's events are read again a window at a time and a [`Collector`] keeps the
    /// rows, as 05-detect's event phase does when it scores events, so memory follows the
    /// findings, not the batch.
    pub fn load(ctx: &Context, date: NaiveDate, findings: &[Finding]) -> Result<Self> {
        let mut collector = Collector::new(findings);
        if !findings.is_empty() {
            let from = first_row_wanted(ctx, date, findings)?;
            tracing::debug!(
                findings = findings.len(),
                from,
                "sample lines read from row"
            );
            let columns = (&COLLECTED_GOLD[..], &COLUMNS[..]);
            each_event_window_from(ctx, (date, from..usize::MAX), columns, &mut |events| {
                let marked = collector.mark(&events)?;
                collector.keep(&events, marked, &[])
            })
            .context("reading the batch's events for sample lines (gold/event_features; re-run 03-gold if an older loglake wrote it)")?;
        }
        collector.into_samples(partition_of(ctx, date))
    }

    /// The samples from the rows kept, in silver order.
    fn of_kept(
        kept: Vec<DataFrame>,
        partition: String,
        session_lines: HashMap<String, SessionLines>,
    ) -> Result<Self> {
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
    pub fn find(&self, f: &Finding, k: usize) -> Vec<SampleLine<'_>> {
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
            .map(|i| SampleLine {
                file: text(&self.file, i),
                lake_partition: &self.partition,
                level: text(&self.level, i),
                line_no: self.line_no[i],
                message: text(&self.message, i),
                ts: Utc
                    .timestamp_millis_opt(self.ts[i])
                    .single()
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
            })
            .collect()
    }
}

/// The first event of `date` that may be a sample line of some finding: every sample lies in
/// its finding's time range, so an event whose time window ends before the earliest finding
/// starts is none, and neither is any event before the first that is not. A run every few
/// minutes mostly explains recent windows and sessions: it reads the day's last events only.
fn first_row_wanted(ctx: &Context, date: NaiveDate, findings: &[Finding]) -> Result<usize> {
    let earliest = findings
        .iter()
        .map(|f| f.start_ms)
        .min()
        .unwrap_or(i64::MIN);
    let window_ms = i64::from(ctx.resolved.gold.window_minutes.max(1)) * 60_000;
    // An event without a time reads as 1970 (see `features::millis`).
    if earliest <= 0 {
        return Ok(0);
    }
    // Parts whose latest window ends before the earliest finding starts hold no sample:
    // skipped from their footers, so a run every few minutes reads the day's last parts
    // only. (The parts are in silver's order, which is time order but for late lines: a
    // part is skipped only when all of it is too early.)
    let files = ctx.lake.part_files(
        crate::lake::Layer::Gold,
        tables::EVENT_FEATURES,
        &ctx.source,
        date,
    )?;
    let (mut before, mut from_file) = (0usize, files.len());
    for (k, file) in files.iter().enumerate() {
        let (rows, latest) = crate::lake::Lake::rows_and_max(file, "window_start")?;
        if latest.is_none_or(|w| w + window_ms > earliest) {
            from_file = k;
            break;
        }
        before += rows as usize;
    }
    if from_file == files.len() {
        return Ok(usize::MAX);
    }
    let events = crate::lake::Lake::scan_files(&files[from_file..])?;
    let first = events
        .select([col("window_start").cast(DataType::Int64)])
        .with_row_index("row", None)
        .filter((col("window_start") + lit(window_ms)).gt(lit(earliest)))
        .select([col("row").first()])
        .collect()
        .map_err(anyhow::Error::from)
        .context("finding the first event a sample line may come from")?;
    Ok(first
        .column("row")?
        .idx()?
        .get(0)
        .map_or(usize::MAX, |r| before + r as usize))
}

/// One sample line as `details.samples[]` holds it. Its fields are in name order, as a JSON
/// object's come out; written straight from the silver columns, where a JSON value per line
/// took a dozen allocations.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SampleLine<'a> {
    pub file: &'a str,
    pub lake_partition: &'a str,
    pub level: &'a str,
    pub line_no: u64,
    pub message: &'a str,
    pub ts: String,
}

/// Which silver rows a batch's findings may take samples from.
#[derive(Default)]
struct Wanted {
    /// Window findings' time ranges by service, sorted and merged. A window's samples are
    /// its service's lines ([`Samples::find`]): other services' lines in its time range are
    /// not kept (on a generated 10 M-line day they were most of the rows kept).
    ranges: HashMap<String, Vec<(i64, i64)>>,
    /// Flagged lines' (file, line number).
    lines: HashMap<String, HashSet<u64>>,
    /// Flagged sessions' keys.
    sessions: HashSet<String>,
    /// The line numbers in `lines`, whatever their file.
    numbers: HashSet<u64>,
}

impl Wanted {
    fn of(findings: &[Finding]) -> Self {
        let mut ranges: HashMap<&str, Vec<(i64, i64)>> = HashMap::default();
        let mut wanted = Wanted::default();
        for f in findings {
            match &f.samples {
                SampleQuery::Window { .. } => ranges
                    .entry(f.service.as_str())
                    .or_default()
                    .push((f.start_ms, f.end_ms)),
                SampleQuery::Line { file, line_no } => wanted.add_line(file, *line_no),
                SampleQuery::Session { key } => {
                    wanted.sessions.insert(key.clone());
                }
            }
        }
        for (service, mut ranges) in ranges {
            ranges.sort_unstable();
            let mut merged: Vec<(i64, i64)> = Vec::new();
            for (a, b) in ranges {
                match merged.last_mut() {
                    Some(last) if a <= last.1 => last.1 = last.1.max(b),
                    _ => merged.push((a, b)),
                }
            }
            wanted.ranges.insert(service.to_string(), merged);
        }
        wanted
    }

    fn add_line(&mut self, file: &str, line_no: u64) {
        self.numbers.insert(line_no);
        if let Some(numbers) = self.lines.get_mut(file) {
            numbers.insert(line_no);
        } else {
            self.lines
                .insert(file.to_string(), std::iter::once(line_no).collect());
        }
    }

    /// Whether every row `other` wants, this wants too.
    fn covers(&self, other: &Wanted) -> bool {
        other.ranges.iter().all(|(service, theirs)| {
            let mine = self.ranges.get(service).map_or(&[][..], Vec::as_slice);
            theirs.iter().all(|&(a, b)| {
                let i = mine.partition_point(|r| r.1 < a);
                mine.get(i).is_some_and(|r| r.0 <= a && b <= r.1)
            })
        }) && other.sessions.is_subset(&self.sessions)
            && other.lines.iter().all(|(file, numbers)| {
                self.lines
                    .get(file)
                    .is_some_and(|mine| numbers.is_subset(mine))
            })
    }

    /// Whether `ts` lies in the range of some window finding of `service` (ends included).
    fn time(&self, service: &str, ts: i64) -> bool {
        let Some(ranges) = self.ranges.get(service) else {
            return false;
        };
        let i = ranges.partition_point(|r| r.1 < ts);
        ranges.get(i).is_some_and(|r| r.0 <= ts)
    }

    fn line(&self, file: &str, line_no: u64) -> bool {
        self.lines.get(file).is_some_and(|n| n.contains(&line_no))
    }
}

/// Sample lines kept from the batch's events as they are read, window by window.
///
/// 05-detect's event phase reads the events anyway: it starts a collector from the window
/// and session findings (scored before events) and tells it each event chunk's findings
/// before it sees the chunk, so explaining the findings needs no second pass over silver and
/// `gold/event_features` (one took about 150 ms of a million-line batch, on one core). That
/// collector serves only when the final findings — the ensemble's verdicts included — want
/// no row it was not told about ([`Collector::finish`] answers `None` otherwise); then
/// [`Samples::load`] reads the events again with a collector that knows every finding, so
/// the samples are the same either way.
pub struct Collector {
    wanted: Wanted,
    session_lines: HashMap<String, SessionLines>,
    kept: Vec<DataFrame>,
}

/// An event chunk's rows marked by [`Collector::mark`].
pub struct Marked {
    rows: Vec<bool>,
    /// Rows of flagged sessions.
    in_sessions: Vec<usize>,
}

/// The columns an event chunk must hold for [`Collector::keep`], besides [`COLUMNS`]:
/// from gold, each event's session as 03-gold keyed it.
pub const COLLECTED_GOLD: [&str; 1] = ["session_key"];

impl Collector {
    pub fn new(findings_so_far: &[Finding]) -> Self {
        Collector {
            wanted: Wanted::of(findings_so_far),
            session_lines: HashMap::default(),
            kept: Vec::new(),
        }
    }

    /// Which rows of an event chunk the findings known before the chunk was scored may show
    /// (the window findings' times, the flagged sessions), and the flagged sessions' rows. It
    /// only reads, so it runs while the chunk is scored; [`Collector::keep`] finishes it.
    pub fn mark(&self, events: &DataFrame) -> Result<Marked> {
        let ts = features::millis(events, "ts")?;
        let session = events.column("session_key")?.str()?;
        let service = events.column("service")?.str()?;
        let mut marked = Marked {
            rows: vec![false; events.height()],
            in_sessions: Vec::new(),
        };
        for (i, key) in session.iter().enumerate() {
            if key.is_some_and(|k| self.wanted.sessions.contains(k)) {
                marked.rows[i] = true;
                marked.in_sessions.push(i);
            } else if self.wanted.time(service.get(i).unwrap_or_default(), ts[i]) {
                marked.rows[i] = true;
            }
        }
        Ok(marked)
    }

    /// Keep the rows of one event chunk that some finding may show: those `marked`, and the
    /// lines the chunk's own findings flag (a flagged event shows its own line).
    pub fn keep(
        &mut self,
        events: &DataFrame,
        mut marked: Marked,
        chunk_findings: &[Finding],
    ) -> Result<()> {
        let file = events.column("file")?.str()?;
        let line_no = events.column("line_no")?.u64()?;
        let session = events.column("session_key")?.str()?;
        for &i in &marked.in_sessions {
            let (Some(key), Some(f), Some(n)) = (session.get(i), file.get(i), line_no.get(i))
            else {
                continue;
            };
            // A flagged session has tens of lines: its key and file are copied once.
            if !self.session_lines.contains_key(key) {
                self.session_lines
                    .insert(key.to_string(), HashMap::default());
            }
            let by_file = self.session_lines.get_mut(key).expect("inserted above");
            if let Some(numbers) = by_file.get_mut(f) {
                numbers.insert(n);
            } else {
                by_file.insert(f.to_string(), std::iter::once(n).collect());
            }
        }
        for f in chunk_findings {
            if let SampleQuery::Line { file, line_no } = &f.samples {
                self.wanted.add_line(file, *line_no);
            }
        }
        // A row's line number is looked up first: most rows are not wanted, and a number
        // hashes faster than a file name.
        if !self.wanted.numbers.is_empty() {
            for (i, keep) in marked.rows.iter_mut().enumerate() {
                let n = line_no.get(i).unwrap_or_default();
                if !*keep && self.wanted.numbers.contains(&n) {
                    *keep = self.wanted.line(file.get(i).unwrap_or_default(), n);
                }
            }
        }
        let mask: BooleanChunked = marked.rows.into_iter().collect();
        self.kept
            .push(crate::lake::keep_rows(&events.select(COLUMNS)?, &mask)?);
        Ok(())
    }

    /// The samples for `findings`, or `None` when some finding wants a row that was not kept
    /// (then [`Samples::load`] reads them).
    pub fn finish(self, findings: &[Finding], partition: String) -> Result<Option<Samples>> {
        if !self.wanted.covers(&Wanted::of(findings)) {
            return Ok(None);
        }
        self.into_samples(partition).map(Some)
    }

    fn into_samples(self, partition: String) -> Result<Samples> {
        Samples::of_kept(self.kept, partition, self.session_lines)
    }
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

    fn samples_frame() -> DataFrame {
        df!(
            "ts" => [3_000i64, 1_000, 2_000, 4_000, 400_000],
            "line_no" => [3u64, 1, 2, 4, 5],
            "service" => ["api", "api", "api", "db", "api"],
            "file" => ["a.log"; 5],
            "level" => ["ERROR", "INFO", "INFO", "INFO", "INFO"],
            "template_id" => ["t2", "t1", "t1", "t3", "t1"],
            "message" => ["boom req=7", "start req=7", "step req=8", "db ok", "late req=7"],
        )
        .unwrap()
    }

    fn samples() -> Samples {
        let df = samples_frame();
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

    fn lines(found: Vec<SampleLine<'_>>) -> Vec<u64> {
        found.iter().map(|v| v.line_no).collect()
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

    /// An event chunk as 05-detect's event phase reads it: silver's columns and gold's
    /// session key (line 4 belongs to no session).
    fn chunk() -> DataFrame {
        let mut df = samples_frame();
        df.with_column(Column::new(
            "session_key".into(),
            [Some("7"), Some("7"), Some("8"), None, Some("7")],
        ))
        .unwrap();
        df
    }

    #[test]
    fn samples_kept_while_reading_events_are_the_samples_loaded_after() {
        let window = |start, end| {
            finding(
                SampleQuery::Window {
                    template: None,
                    level: None,
                },
                "api",
                start,
                end,
            )
        };
        let session = finding(SampleQuery::Session { key: "7".into() }, "api", 0, 400_000);
        let line = finding(
            SampleQuery::Line {
                file: "a.log".into(),
                line_no: 4,
            },
            "db",
            4_000,
            4_000,
        );
        // A window's samples are its service's lines: another service's line in its time
        // range is not wanted.
        let wanted = Wanted::of(&[window(3_500, 4_500)]);
        assert!(wanted.time("api", 4_000) && !wanted.time("db", 4_000));

        let before = vec![window(1_500, 2_500), session.clone()];
        let mut collector = Collector::new(&before);
        let events = chunk();
        let marked = collector.mark(&events).unwrap();
        collector
            .keep(&events, marked, std::slice::from_ref(&line))
            .unwrap();
        let all = [before.clone(), vec![line.clone()]].concat();
        let kept = collector
            .finish(&all, "p".into())
            .unwrap()
            .expect("every finding was known while the chunk was read");
        // Line 2 for the window's time, 1, 3 and 5 for session 7, 4 for the flagged line.
        assert_eq!(kept.line_no, vec![3, 1, 2, 4, 5]);
        let full = samples();
        for f in &all {
            assert_eq!(lines(kept.find(f, 3)), lines(full.find(f, 3)));
        }
        assert_eq!(lines(kept.find(&session, 3)), vec![1, 3, 5]);

        // A finding that wants rows no one asked for while the chunk was read: the caller
        // must load the samples instead.
        let mut collector = Collector::new(&before);
        let marked = collector.mark(&events).unwrap();
        collector.keep(&events, marked, &[]).unwrap();
        assert!(collector.finish(&all, "p".into()).unwrap().is_none());
        let mut collector = Collector::new(&before);
        let marked = collector.mark(&events).unwrap();
        collector.keep(&events, marked, &[]).unwrap();
        let wider = [before, vec![window(0, 300_000)]].concat();
        assert!(collector.finish(&wider, "p".into()).unwrap().is_none());
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
        assert_eq!(found[0].message, "db ok");
        assert_eq!(found[0].lake_partition, "silver/events/source=s/date=d");
    }
}

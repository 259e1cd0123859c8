//! `gold/window_features`, built a window of silver rows at a time.
//!
//! Each window of rows is reduced to partial counts per service × time window × template
//! ([`WindowPartials::add`]); the partials of a day are a few thousand rows whatever its size,
//! and [`WindowPartials::finish`] sums them into one row per service × time window. Every
//! feature is a sum over events except `distinct_templates` (the templates with a partial row)
//! and `new_templates`, which needs the first time of each template within its service × time
//! window: partials keep that time and how many events of the template fall on it, and the
//! finish keeps the counts of the partials whose time is the group's first.

use anyhow::{Context as _, Result};
use polars::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use super::window_start_ms;

/// A partial's columns, in the order [`WindowPartials::add`] makes them.
const PARTIAL_COLUMNS: [&str; 11] = [
    "service",
    "window_start_ms",
    "template_id",
    "n",
    "n_debug",
    "n_info",
    "n_warn",
    "n_error",
    "is_new",
    "first_ts",
    "n_first",
];

/// Partial window counts of the rows seen so far.
pub struct WindowPartials {
    window_ms: i64,
    /// Templates an earlier batch had (`is_new = false`); any other is new (`is_new` null).
    seen_before: FxHashSet<String>,
    parts: Vec<DataFrame>,
}

/// One service × time window × template's counts within a window of rows.
#[derive(Default)]
struct Partial {
    n: i64,
    n_debug: i64,
    n_info: i64,
    n_warn: i64,
    n_error: i64,
    first_ts: Option<i64>,
    n_first: i64,
}

impl WindowPartials {
    /// `seen_before`: the templates an earlier batch had.
    pub fn new(window_ms: i64, seen_before: FxHashSet<String>) -> Self {
        Self {
            window_ms,
            seen_before,
            parts: Vec::new(),
        }
    }

    /// Reduce one window of rows (`ts`, `service`, `level`, `template_id`) to partials: one
    /// row per service × time window × template (nulls are a group of their own), in no
    /// particular order, since [`Self::finish`] groups and sorts them again.
    ///
    /// Counted in a hash table over the rows rather than with a Polars group-by of eight
    /// aggregations, which took 5–25 ms of each 131,072-row window of a million HDFS lines,
    /// on the thread that hands windows on (the time window is still Polars' expression, so
    /// times before 1970 fall where they always did).
    pub fn add(&mut self, rows: &DataFrame) -> Result<()> {
        let ts_column = rows.column("ts")?;
        let ts_type = ts_column.dtype().clone();
        let ts_ms = ts_column.cast(&DataType::Int64)?;
        let ts = ts_ms.i64()?;
        let windows = rows
            .clone()
            .lazy()
            .select([window_start_ms(self.window_ms).alias("window_start_ms")])
            .collect()
            .map_err(anyhow::Error::from)
            .context("counting window features")?;
        let window = windows.column("window_start_ms")?.i64()?;
        let services = rows.column("service")?.str()?;
        let levels = rows.column("level")?.str()?;
        let templates = rows.column("template_id")?.str()?;

        type Key<'a> = (Option<&'a str>, Option<i64>, Option<&'a str>);
        let mut index: FxHashMap<Key<'_>, usize> = FxHashMap::default();
        let mut keys: Vec<Key<'_>> = Vec::new();
        let mut partials: Vec<Partial> = Vec::new();
        for (((service, w), template), (level, t)) in services
            .iter()
            .zip(window.iter())
            .zip(templates.iter())
            .zip(levels.iter().zip(ts.iter()))
        {
            let key = (service, w, template);
            let at = *index.entry(key).or_insert_with(|| {
                keys.push(key);
                partials.push(Partial::default());
                partials.len() - 1
            });
            let p = &mut partials[at];
            p.n += 1;
            match level {
                Some("DEBUG" | "TRACE") => p.n_debug += 1,
                Some("INFO") => p.n_info += 1,
                Some("WARN") => p.n_warn += 1,
                Some("ERROR" | "FATAL") => p.n_error += 1,
                _ => {}
            }
            if let Some(t) = t {
                match p.first_ts {
                    Some(first) if first < t => {}
                    Some(first) if first == t => p.n_first += 1,
                    _ => {
                        p.first_ts = Some(t);
                        p.n_first = 1;
                    }
                }
            }
        }
        let count = |f: fn(&Partial) -> i64| partials.iter().map(f).collect::<Vec<i64>>();
        let part = DataFrame::new_infer_height(vec![
            Column::new(
                "service".into(),
                keys.iter().map(|k| k.0).collect::<Vec<_>>(),
            ),
            Column::new(
                "window_start_ms".into(),
                keys.iter().map(|k| k.1).collect::<Vec<_>>(),
            ),
            Column::new(
                "template_id".into(),
                keys.iter().map(|k| k.2).collect::<Vec<_>>(),
            ),
            Column::new("n".into(), count(|p| p.n)),
            Column::new("n_debug".into(), count(|p| p.n_debug)),
            Column::new("n_info".into(), count(|p| p.n_info)),
            Column::new("n_warn".into(), count(|p| p.n_warn)),
            Column::new("n_error".into(), count(|p| p.n_error)),
            Column::new(
                "is_new".into(),
                keys.iter()
                    .map(|k| match k.2 {
                        Some(t) if self.seen_before.contains(t) => Some(false),
                        _ => None,
                    })
                    .collect::<Vec<Option<bool>>>(),
            ),
            Column::new(
                "first_ts".into(),
                partials.iter().map(|p| p.first_ts).collect::<Vec<_>>(),
            )
            .cast(&ts_type)?,
            Column::new("n_first".into(), count(|p| p.n_first)),
        ])?;
        self.parts.push(part);
        Ok(())
    }

    /// Partials carried over from the runs before (see [`Self::saved`]), as read back from
    /// the lake (with its partition columns).
    pub fn restore(&mut self, saved: DataFrame) -> Result<()> {
        if saved.height() > 0 {
            self.parts.insert(0, saved.select(PARTIAL_COLUMNS)?);
        }
        Ok(())
    }

    /// The partials so far, one row per service × time window × template: what 03-gold
    /// keeps of an open day between runs, a few thousand rows however long the day.
    pub fn saved(&self) -> Result<DataFrame> {
        if self.parts.is_empty() {
            return Ok(DataFrame::default());
        }
        Ok(self
            .per_template()?
            .collect()
            .map_err(anyhow::Error::from)
            .context("summing window partials")?
            .select(PARTIAL_COLUMNS)?)
    }

    /// Events per service × time window × template (`service`, `window_start_ms`,
    /// `template_id`, `count`), sorted by them: `gold/window_template_counts`.
    pub fn template_counts(&self) -> Result<LazyFrame> {
        if self.parts.is_empty() {
            return Ok(DataFrame::new_infer_height(vec![
                Column::new("service".into(), Vec::<Option<String>>::new()),
                Column::new("window_start_ms".into(), Vec::<Option<i64>>::new()),
                Column::new("template_id".into(), Vec::<Option<String>>::new()),
                Column::new("count".into(), Vec::<i64>::new()),
            ])?
            .lazy());
        }
        Ok(self
            .per_template()?
            .select([
                col("service"),
                col("window_start_ms"),
                col("template_id"),
                col("n").alias("count"),
            ])
            .sort(
                ["service", "window_start_ms", "template_id"],
                SortMultipleOptions::default(),
            ))
    }

    /// Across row windows (and runs), one service × time window × template may have several
    /// partials: first time, and events at it, over all of them.
    fn per_template(&self) -> Result<LazyFrame> {
        let partials = concat(
            self.parts
                .iter()
                .cloned()
                .map(IntoLazy::lazy)
                .collect::<Vec<_>>(),
            UnionArgs::default(),
        )?;
        Ok(partials
            .group_by([col("service"), col("window_start_ms"), col("template_id")])
            .agg([
                col("n").sum(),
                col("n_debug").sum(),
                col("n_info").sum(),
                col("n_warn").sum(),
                col("n_error").sum(),
                col("is_new").first(),
                col("n_first")
                    .filter(col("first_ts").eq(col("first_ts").min()))
                    .sum()
                    .alias("n_first"),
                col("first_ts").min(),
            ]))
    }

    /// One row per service × time window: counts, distinct and new templates, and a
    /// `tpl_<id>` count for each of `top` (ordered by `service`, then `window_start_ms`).
    pub fn finish(self, top: &[String]) -> Result<LazyFrame> {
        let per_template = self.per_template()?;
        let mut aggs = vec![
            col("n").sum().alias("n_events"),
            col("n_debug").sum(),
            col("n_info").sum(),
            col("n_warn").sum(),
            col("n_error").sum(),
            col("template_id")
                .n_unique()
                .cast(DataType::Int64)
                .alias("distinct_templates"),
            col("n_first")
                .filter(col("is_new").fill_null(lit(true)))
                .sum()
                .alias("new_templates"),
        ];
        for t in top {
            aggs.push(
                col("n")
                    .filter(col("template_id").eq(lit(t.as_str())))
                    .sum()
                    .alias(format!("tpl_{t}")),
            );
        }
        Ok(per_template
            .group_by([col("service"), col("window_start_ms")])
            .agg(aggs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::gold::{count_of, is_error};

    /// The partials as the Polars group-by computed them before `add` counted them itself:
    /// the reference it is checked against.
    fn reference(rows: &DataFrame, novelty: &DataFrame, window_ms: i64) -> DataFrame {
        rows.clone()
            .lazy()
            .join(
                novelty.clone().lazy(),
                [col("template_id")],
                [col("template_id")],
                JoinArgs::new(JoinType::Left),
            )
            .with_column(window_start_ms(window_ms).alias("window_start_ms"))
            .group_by([col("service"), col("window_start_ms"), col("template_id")])
            .agg([
                len().cast(DataType::Int64).alias("n"),
                count_of(
                    col("level")
                        .eq(lit("DEBUG"))
                        .or(col("level").eq(lit("TRACE"))),
                    "n_debug",
                ),
                count_of(col("level").eq(lit("INFO")), "n_info"),
                count_of(col("level").eq(lit("WARN")), "n_warn"),
                count_of(is_error(), "n_error"),
                col("is_new").first().alias("is_new"),
                col("ts").min().alias("first_ts"),
                count_of(col("ts").eq(col("ts").min()), "n_first"),
            ])
            .collect()
            .unwrap()
    }

    fn sorted(df: DataFrame) -> DataFrame {
        df.sort(
            ["service", "window_start_ms", "template_id"],
            SortMultipleOptions::default().with_nulls_last(true),
        )
        .unwrap()
    }

    /// Nulls in every key and in the level and time, ties on a group's first time, times
    /// before 1970, templates seen before and not: the same rows, counts and types.
    #[test]
    fn partials_match_the_polars_group_by() {
        let utc = DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
        let ts: Vec<Option<i64>> = vec![
            Some(1_000),
            Some(1_000),
            Some(500),
            Some(61_000),
            None,
            Some(-59_000),
            Some(-1),
            Some(500),
            Some(2_000),
            Some(500),
            None,
            Some(120_500),
        ];
        let rows = DataFrame::new_infer_height(vec![
            Column::new("ts".into(), ts).cast(&utc).unwrap(),
            Column::new(
                "service".into(),
                [
                    Some("a"),
                    Some("a"),
                    Some("a"),
                    Some("a"),
                    Some("b"),
                    Some("b"),
                    None,
                    Some("a"),
                    Some("a"),
                    None,
                    None,
                    Some("b"),
                ],
            ),
            Column::new(
                "level".into(),
                [
                    Some("INFO"),
                    Some("ERROR"),
                    Some("WARN"),
                    Some("DEBUG"),
                    Some("FATAL"),
                    None,
                    Some("TRACE"),
                    Some("INFO"),
                    Some("NOTICE"),
                    Some("INFO"),
                    Some("WARN"),
                    Some("ERROR"),
                ],
            ),
            Column::new(
                "template_id".into(),
                [
                    Some("t1"),
                    Some("t1"),
                    Some("t2"),
                    Some("t1"),
                    None,
                    Some("t3"),
                    Some("t1"),
                    Some("t2"),
                    Some("t1"),
                    Some("t1"),
                    Some("t1"),
                    Some("t3"),
                ],
            ),
        ])
        .unwrap();
        let novelty = DataFrame::new_infer_height(vec![
            Column::new("template_id".into(), ["t1", "t4"]),
            Column::new("is_new".into(), [false, false]),
        ])
        .unwrap();
        let seen_before = ["t1", "t4"].into_iter().map(String::from).collect();
        let mut partials = WindowPartials::new(60_000, seen_before);
        partials.add(&rows).unwrap();
        let ours = sorted(partials.parts.pop().unwrap());
        let theirs = sorted(reference(&rows, &novelty, 60_000));
        assert_eq!(ours.schema(), theirs.schema());
        assert!(ours.equals_missing(&theirs), "{ours}\n{theirs}");
        assert!(ours.height() >= 8, "{ours}");
    }
}

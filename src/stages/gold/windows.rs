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

use super::{count_of, is_error, window_start_ms};

/// Partial window counts of the rows seen so far.
pub struct WindowPartials {
    window_ms: i64,
    /// `template_id`, `is_new`: whether no earlier batch had the template.
    novelty: DataFrame,
    parts: Vec<DataFrame>,
}

impl WindowPartials {
    pub fn new(window_ms: i64, novelty: DataFrame) -> Self {
        Self {
            window_ms,
            novelty,
            parts: Vec::new(),
        }
    }

    /// Reduce one window of rows (`ts`, `service`, `level`, `template_id`) to partials.
    pub fn add(&mut self, rows: LazyFrame) -> Result<()> {
        let part = rows
            .join(
                self.novelty.clone().lazy(),
                [col("template_id")],
                [col("template_id")],
                JoinArgs::new(JoinType::Left),
            )
            .with_column(window_start_ms(self.window_ms).alias("window_start_ms"))
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
            .map_err(anyhow::Error::from)
            .context("counting window features")?;
        self.parts.push(part);
        Ok(())
    }

    /// One row per service × time window: counts, distinct and new templates, and a
    /// `tpl_<id>` count for each of `top` (ordered by `service`, then `window_start_ms`).
    pub fn finish(self, top: &[String]) -> Result<LazyFrame> {
        let partials = concat(
            self.parts
                .into_iter()
                .map(IntoLazy::lazy)
                .collect::<Vec<_>>(),
            UnionArgs::default(),
        )?;
        // Across row windows, one service × time window × template may have several partials:
        // first time, and events at it, over all of them.
        let per_template = partials
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
            ]);
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

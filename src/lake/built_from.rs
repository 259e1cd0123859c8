//! What a stage last built a day from: a short text naming its inputs (their files and row
//! counts, the models, the settings that shape the output), kept in the stage's layer as
//! table `built_from`. A stage compares it with the inputs it is about to read and does
//! nothing when they are the same: a run every few minutes that finds nothing new costs a
//! listing of the lake, not a rebuild of the day.

use anyhow::Result;
use chrono::NaiveDate;
use polars::prelude::*;

use super::{Lake, Layer};

/// The table the record lives in (one row a day).
pub const BUILT_FROM: &str = "built_from";

impl Lake {
    /// What `layer`'s stage last built `date` of `source` from, if it recorded it.
    pub fn built_from(
        &self,
        layer: Layer,
        source: &str,
        date: NaiveDate,
    ) -> Result<Option<String>> {
        let own = self.partition_dir(layer, BUILT_FROM, source, date);
        let files = self.part_files(layer, BUILT_FROM, source, date)?;
        let Some(file) = files.iter().find(|f| f.parent() == Some(own.as_path())) else {
            return Ok(None);
        };
        let read = LazyFrame::scan_parquet(
            PlRefPath::new(file.to_string_lossy().to_string()),
            Default::default(),
        )
        .and_then(|lf| lf.collect());
        // An unreadable record only costs a rebuild.
        Ok(read.ok().and_then(|df| {
            df.column("inputs")
                .ok()?
                .str()
                .ok()?
                .get(0)
                .map(str::to_string)
        }))
    }

    /// Record what `date` of `source` was just built from (after the outputs are committed).
    pub fn record_built_from(
        &self,
        layer: Layer,
        source: &str,
        date: NaiveDate,
        inputs: &str,
    ) -> Result<()> {
        let df = DataFrame::new_infer_height(vec![Column::new("inputs".into(), [inputs])])?;
        self.commit_partition(layer, BUILT_FROM, source, date, &df)?;
        Ok(())
    }

    /// A partition's files as `name:rows:bytes` (rows from the footers), in read order: what
    /// names it as an input.
    pub fn partition_fingerprint(
        &self,
        layer: Layer,
        table: &str,
        source: &str,
        date: NaiveDate,
    ) -> Result<String> {
        let mut parts = Vec::new();
        for file in self.part_files(layer, table, source, date)? {
            let rows = Self::row_count(std::slice::from_ref(&file))?;
            let bytes = std::fs::metadata(&file)
                .map(|m| m.len())
                .unwrap_or_default();
            let name = file
                .strip_prefix(self.root())
                .unwrap_or(&file)
                .to_string_lossy()
                .into_owned();
            parts.push(format!("{name}:{rows}:{bytes}"));
        }
        Ok(parts.join(","))
    }
}

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

/// The column a day record's text is in.
const RECORD: &str = "record";

impl Lake {
    /// What `layer`'s stage last built `date` of `source` from, if it recorded it.
    pub fn built_from(
        &self,
        layer: Layer,
        source: &str,
        date: NaiveDate,
    ) -> Result<Option<String>> {
        // An unreadable record only costs a rebuild.
        Ok(self
            .day_record(layer, BUILT_FROM, source, date)
            .ok()
            .flatten())
    }

    /// Record what `date` of `source` was just built from (after the outputs are committed).
    pub fn record_built_from(
        &self,
        layer: Layer,
        source: &str,
        date: NaiveDate,
        inputs: &str,
    ) -> Result<()> {
        self.commit_day_record(layer, BUILT_FROM, source, date, inputs)
    }

    /// A stage's record of one day (its state, what it built the day from, what it judged
    /// by): one text in table `table`, one row a day. Only this lake's own: a whole day does
    /// not read a record one of its shards left. `None` when there is none.
    pub fn day_record(
        &self,
        layer: Layer,
        table: &str,
        source: &str,
        date: NaiveDate,
    ) -> Result<Option<String>> {
        let own = self.partition_dir(layer, table, source, date);
        let files = self.part_files(layer, table, source, date)?;
        let Some(file) = files.iter().find(|f| f.parent() == Some(own.as_path())) else {
            return Ok(None);
        };
        let df = Self::scan_files(std::slice::from_ref(file))?.collect()?;
        Ok(df.column(RECORD)?.str()?.get(0).map(str::to_string))
    }

    /// Commit a stage's record of one day (see [`Lake::day_record`]).
    pub fn commit_day_record(
        &self,
        layer: Layer,
        table: &str,
        source: &str,
        date: NaiveDate,
        text: &str,
    ) -> Result<()> {
        let df = DataFrame::new_infer_height(vec![Column::new(RECORD.into(), [text])])?;
        self.commit_partition(layer, table, source, date, &df)?;
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

//! What a Parquet part says of itself in its footer: rows, column statistics, key-value
//! metadata. Read without decoding any data, so a stage can tell which parts it must open.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use parquet::file::reader::FileReader;
use parquet::file::statistics::Statistics;

use super::Lake;

/// A Parquet file's footer.
fn footer(path: &Path) -> Result<ParquetMetaData> {
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(file)
        .with_context(|| format!("reading the Parquet footer of {}", path.display()))?;
    Ok(reader.metadata().clone())
}

/// One row group's statistics of `column`, if it has any.
fn statistics<'g>(group: &'g RowGroupMetaData, column: &str) -> Option<&'g Statistics> {
    group
        .columns()
        .iter()
        .find(|c| c.column_path().string() == column)
        .and_then(|c| c.statistics())
}

impl Lake {
    /// Rows in a set of Parquet files, from their footers only (no data is read).
    pub fn row_count(files: &[PathBuf]) -> Result<u64> {
        let mut total = 0u64;
        for f in files {
            total += footer(f)?.file_metadata().num_rows() as u64;
        }
        Ok(total)
    }

    /// A Parquet file's rows and, from its footer's statistics, the largest value of the
    /// integer or timestamp column `column` (`None` when a row group has no statistics for
    /// it, or the file no rows).
    pub fn rows_and_max(path: &Path, column: &str) -> Result<(u64, Option<i64>)> {
        let metadata = footer(path)?;
        let rows = metadata.file_metadata().num_rows() as u64;
        let mut max: Option<i64> = None;
        for group in metadata.row_groups() {
            let group_max = match statistics(group, column) {
                Some(Statistics::Int64(stats)) => stats.max_opt().copied(),
                Some(Statistics::Int32(stats)) => stats.max_opt().map(|v| i64::from(*v)),
                _ => None,
            };
            match group_max {
                Some(m) => max = Some(max.map_or(m, |x| x.max(m))),
                None if group.num_rows() > 0 => return Ok((rows, None)),
                None => {}
            }
        }
        Ok((rows, max))
    }

    /// A Parquet file's rows and, from its footer's statistics, whether every value of the
    /// boolean column `column` is true (`None` when a row group has no statistics for it).
    pub fn rows_and_all_true(path: &Path, column: &str) -> Result<(u64, Option<bool>)> {
        let metadata = footer(path)?;
        let rows = metadata.file_metadata().num_rows() as u64;
        let mut all_true = Some(true);
        for group in metadata.row_groups() {
            let min = match statistics(group, column) {
                Some(Statistics::Boolean(stats)) => stats.min_opt().copied(),
                _ => None,
            };
            all_true = match (all_true, min) {
                (Some(true), Some(min)) => Some(min),
                (Some(false), _) => Some(false),
                _ => None,
            };
        }
        Ok((rows, all_true))
    }

    /// The value of each of `keys` in a Parquet file's footer metadata, if it has one: the
    /// footer read once for all of them.
    pub fn footer_value(path: &Path, keys: &[&str]) -> Result<Vec<Option<String>>> {
        let metadata = footer(path)?;
        let kv = metadata.file_metadata().key_value_metadata();
        Ok(keys
            .iter()
            .map(|key| {
                kv.and_then(|kv| kv.iter().find(|e| e.key == *key))
                    .and_then(|e| e.value.clone())
            })
            .collect())
    }
}

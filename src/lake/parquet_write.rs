//! Encoding a DataFrame into a Parquet file: Polars' own writer, but with each column's
//! encoding chosen from its values and its pages compressed on every core.
//!
//! Polars' `ParquetWriter` gives every integer and timestamp column dictionary encoding,
//! falling back to plain values when the dictionary grows too big. That suits counts and
//! window starts, but not the columns that only climb: a line number or an event time is
//! different on every row, so it is stored plain, eight bytes a row, and zstd makes little of
//! a counter (1.03 MB for a million HDFS line numbers). Stored as deltas
//! (`DELTA_BINARY_PACKED`, a standard Parquet encoding every reader knows) the same column
//! takes 5 KB, and the event times of silver shrink by a third. So a column of integers or
//! times that rises almost everywhere is written as deltas; every other column keeps the
//! encoding Polars would give it.
//!
//! Polars compresses a row group's pages one after another on the calling thread, which made
//! zstd the serial tail of a stage's last part. Here each column of a row group is encoded and
//! compressed on rayon's pool, then written in column order: the file is the same whatever
//! the number of threads.

use std::io::Write;

use anyhow::{Context, Result};
use polars::prelude::*;
use polars_core::frame::chunk_df_for_writing;
use polars_parquet::write::{
    CompressedPage, CompressionOptions, DynIter, DynStreamingIterator, Encoding, FileWriter,
    ParquetType, StatisticsOptions, Version, WriteOptions, array_to_columns, compress,
    fallible_streaming_iterator, get_dtype_encoding,
};
use rayon::prelude::*;

use super::parquet_dictionary::{StringPages, string_pages};
use polars_arrow::array::Array;

/// Rows per row group: Polars' default (512²), which readers and statistics are used to.
const ROW_GROUP_ROWS: usize = 512 * 512;

/// A column rises "almost everywhere" when at most one step in this many goes down: a line
/// number restarts once per input file, and event times step back now and then where
/// threads interleave; neither spoils the deltas.
const DESCENTS_TOLERATED: usize = 100;

/// Write `df` to `out` as a Parquet file of the lake.
pub fn write_frame<W: Write>(df: &mut DataFrame, out: W) -> Result<()> {
    let options = write_options()?;
    let df = chunk_df_for_writing(df, ROW_GROUP_ROWS)?;
    let schema = utc_times(df.schema().to_arrow(CompatLevel::newest()));
    let encodings: Vec<Vec<Encoding>> = df
        .columns()
        .iter()
        .zip(schema.iter_values())
        .map(|(column, field)| column_encoding(column, &field.dtype))
        .collect();
    let mut writer = FileWriter::try_new(out, schema, options)?;
    let fields = writer.parquet_schema().fields().to_vec();
    for batch in df.iter_chunks(CompatLevel::newest(), false) {
        if batch.is_empty() {
            continue;
        }
        let rows = batch.len() as u64;
        let columns: Vec<Vec<CompressedPage>> = batch
            .columns()
            .par_iter()
            .zip(fields.par_iter())
            .zip(encodings.par_iter())
            .map(|((array, field), encoding)| encode_column(array, field, encoding, options))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect();
        write_row_group(&mut writer, rows, &columns)?;
    }
    writer.end(None)?;
    Ok(())
}

/// `schema` with its times marked as UTC. Every time in the lake is UTC (a line's time is
/// turned into UTC when it is parsed, in the zone `[parse] timezone` names), but the frames
/// hold them without a zone, and Polars, built without its time-zone support, cannot attach
/// one. Written without a zone, a Parquet timestamp says "local time, zone unknown"
/// (`isAdjustedToUTC = false`): DuckDB read `ts` as `TIMESTAMP` and pyarrow as a naive time,
/// so a query comparing it with `now()` or joining it to a zoned time was off by the
/// analyst's offset. Marked here, in the one place lake files are encoded, every table says
/// what its times are; [`crate::lake::read_parquet`] and the lake's scans take the mark off
/// again, so the stages keep working on plain UTC times, and parts written before it read the
/// same.
pub(super) fn utc_times(schema: ArrowSchema) -> ArrowSchema {
    schema
        .into_iter()
        .map(|(name, mut field)| {
            if let ArrowDataType::Timestamp(unit, None) = field.dtype {
                field.dtype = ArrowDataType::Timestamp(unit, Some("UTC".into()));
            }
            (name, field)
        })
        .collect()
}

/// Append one row group of `rows` rows, each column's pages ready (encoded and compressed).
pub(super) fn write_row_group<W: Write>(
    writer: &mut FileWriter<W>,
    rows: u64,
    columns: &[Vec<CompressedPage>],
) -> Result<()> {
    let group = DynIter::new(columns.iter().map(|pages| {
        Ok(DynStreamingIterator::new(
            fallible_streaming_iterator::convert(pages.iter().map(Ok)),
        ))
    }));
    writer.write(rows, group)?;
    Ok(())
}

/// How the lake's files are written: zstd level 1, statistics, version 1 pages. Level 1
/// rather than zstd's default 3: on a million HDFS lines the lake came out no bigger (0.338
/// bytes per raw byte against 0.341) and `run` 0.1–0.2 s faster, since every layer's strings
/// go through the compressor once and deltas and dictionaries have already taken out what the
/// higher level would find.
pub(super) fn write_options() -> Result<WriteOptions> {
    Ok(WriteOptions {
        statistics: StatisticsOptions::default(),
        compression: CompressionOptions::Zstd(Some(polars_parquet::write::ZstdLevel::try_new(1)?)),
        version: Version::V1,
        data_page_size: None,
    })
}

/// The encoding of `column` (of Arrow type `dtype`): deltas for a climbing column, else
/// Polars' choice (dictionaries where they pay).
pub(super) fn column_encoding(column: &Column, dtype: &ArrowDataType) -> Vec<Encoding> {
    if rises_almost_everywhere(column) {
        vec![Encoding::DeltaBinaryPacked]
    } else {
        get_dtype_encoding(dtype)
    }
}

/// One column of a row group, encoded and compressed: its pages, per Parquet leaf column. A
/// string column is grouped here, in one pass, rather than by Polars (see
/// [`super::parquet_dictionary`]).
pub(super) fn encode_column(
    array: &ArrayRef,
    field: &ParquetType,
    encoding: &[Encoding],
    mut options: WriteOptions,
) -> Result<Vec<Vec<CompressedPage>>> {
    let dictionary;
    let (array, encoding): (&dyn Array, &[Encoding]) = match encoding {
        [Encoding::RleDictionary] => match string_pages(array.as_ref()) {
            Some(StringPages::Dictionary(d)) => {
                dictionary = d;
                (&dictionary, encoding)
            }
            Some(StringPages::Plain) => {
                // Text that is nearly all different (messages, values, entity keys): no
                // minimum and maximum, which nothing filters on and which compared every
                // value with the extremes so far.
                options.statistics.min_value = false;
                options.statistics.max_value = false;
                (array.as_ref(), &[Encoding::Plain])
            }
            None => (array.as_ref(), encoding),
        },
        _ => (array.as_ref(), encoding),
    };
    array_to_columns(array, field.clone(), options, encoding)?
        .into_iter()
        .map(|pages| {
            pages
                .map(|page| Ok(compress(page?, Vec::new(), options.compression)?))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()
        .context("encoding a Parquet column")
}

/// Whether `column` holds integers or times that climb from row to row with few steps down
/// (see [`DESCENTS_TOLERATED`]); columns of fewer than two rows, or with nulls, are left to
/// the default encoding.
fn rises_almost_everywhere(column: &Column) -> bool {
    let dtype = column.dtype();
    if !(dtype.is_integer() || dtype.is_temporal()) || column.len() < 2 || column.has_nulls() {
        return false;
    }
    let Ok(values) = column
        .as_materialized_series()
        .to_physical_repr()
        .cast(&DataType::Int64)
    else {
        return false;
    };
    let Ok(values) = values.i64() else {
        return false;
    };
    let mut descents = 0usize;
    let mut previous: Option<i64> = None;
    for value in values.into_no_null_iter() {
        if previous.is_some_and(|p| value < p) {
            descents += 1;
        }
        previous = Some(value);
    }
    descents * DESCENTS_TOLERATED <= column.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::read_parquet;

    fn written(df: &mut DataFrame) -> (DataFrame, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_frame(df, std::fs::File::create(&path).unwrap()).unwrap();
        let reader =
            parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&path).unwrap())
                .unwrap();
        use parquet::file::reader::FileReader as _;
        let group = reader.metadata().row_group(0);
        let encodings = (0..group.num_columns())
            .map(|i| format!("{:?}", group.column(i).encodings().collect::<Vec<_>>()))
            .collect();
        (read_parquet(&path).unwrap(), encodings)
    }

    #[test]
    fn climbing_columns_are_deltas_and_read_back_the_same() {
        let n = 10_000i64;
        let mut df = df!(
            "line_no" => (1..=n as u64).collect::<Vec<_>>(),
            "count" => (0..n).map(|i| (i * 7919) % 13).collect::<Vec<_>>(),
            "shuffled" => (0..n).map(|i| (i * 7919) % n).collect::<Vec<_>>(),
            "message" => (0..n).map(|i| format!("line {i}")).collect::<Vec<_>>(),
        )
        .unwrap();
        let ts = (Column::new(
            "ts".into(),
            (0..n)
                .map(|i| 1_700_000_000_000 + i * 3 - (i % 150 == 0) as i64 * 5)
                .collect::<Vec<_>>(),
        ))
        .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
        .unwrap();
        df.with_column(ts).unwrap();
        let (back, encodings) = written(&mut df.clone());
        assert!(back.equals(&df), "{back:?}");
        // line_no and ts climb (ts steps back once in 150 rows); count and shuffled do not.
        assert!(
            encodings[0].contains("DELTA_BINARY_PACKED"),
            "{encodings:?}"
        );
        assert!(
            encodings[4].contains("DELTA_BINARY_PACKED"),
            "{encodings:?}"
        );
        for other in [1, 2, 3] {
            assert!(!encodings[other].contains("DELTA"), "{encodings:?}");
        }
    }

    #[test]
    fn many_chunks_and_several_row_groups_round_trip() {
        let piece = |from: i64| {
            df!("n" => (from..from + 200_000).collect::<Vec<_>>(), "s" => vec!["x"; 200_000])
                .unwrap()
        };
        let mut df = piece(0);
        df.vstack_mut(&piece(200_000)).unwrap();
        df.vstack_mut(&piece(400_000)).unwrap();
        let (back, _) = written(&mut df.clone());
        assert!(back.equals(&df));
    }

    #[test]
    fn times_are_marked_utc_on_disk_and_read_back_plain_beside_older_parts() {
        let times = |from: i64| {
            let ts = Column::new("ts".into(), vec![from, from + 1_000])
                .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
                .unwrap();
            DataFrame::new_infer_height(vec![ts]).unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.parquet");
        write_frame(&mut times(2_000), std::fs::File::create(&new).unwrap()).unwrap();
        // On disk: a UTC-adjusted timestamp, which is what readers outside loglake look at.
        let reader =
            parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&new).unwrap())
                .unwrap();
        use parquet::file::reader::FileReader as _;
        let logical = reader.metadata().file_metadata().schema_descr().column(0);
        let logical = format!("{:?}", logical.logical_type_ref());
        assert!(logical.contains("is_adjusted_to_u_t_c: true"), "{logical}");
        // A part written before times were marked (Polars' own writer, no zone), first in
        // the scan so it sets the scan's type; then the marked one. Both read as plain times.
        let old = dir.path().join("old.parquet");
        ParquetWriter::new(std::fs::File::create(&old).unwrap())
            .finish(&mut times(0))
            .unwrap();
        let plain = DataType::Datetime(TimeUnit::Milliseconds, None);
        let back = read_parquet(&new).unwrap();
        assert_eq!(back.column("ts").unwrap().dtype(), &plain);
        assert!(back.equals(&times(2_000)));
        for order in [[&old, &new], [&new, &old]] {
            let files: Vec<_> = order.iter().map(|p| p.to_path_buf()).collect();
            let both = crate::lake::Lake::scan_files(&files)
                .unwrap()
                .collect()
                .unwrap();
            assert_eq!(both.column("ts").unwrap().dtype(), &plain);
            assert_eq!(both.height(), 4);
        }
    }
}

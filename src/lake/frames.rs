//! Whole frames in and out of single Parquet files, the rows a stage keeps of a window, and
//! string columns built for writing.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use polars::prelude::*;

/// Write a DataFrame as one Parquet file of the lake (encoded as `parquet_write` explains).
pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<()> {
    let file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    super::parquet_write::write_frame(df, std::io::BufWriter::new(file))
        .map_err(|e| explain_write_error(e, path))
}

/// A string column of few distinct values (a batch's files or services, a score table's
/// detectors), each value stored once and gathered for its rows. Polars stores a string of
/// more than 12 bytes out of line, so a copy a row was 49 MB for a million HDFS lines' files
/// and services; and rows that share a copy are grouped by their view when the column is
/// written ([`super::parquet_dictionary`]), not by hashing each row's text again.
pub fn repeated_strings<'a>(
    name: &str,
    values: impl IntoIterator<Item = Option<&'a str>>,
) -> Result<Column> {
    // Values remembered for a later row, at most: past that, only a repeat of the previous
    // row shares its copy, so memory stays bounded for a column of many values.
    const REMEMBERED: usize = 4096;
    let mut distinct: Vec<&str> = Vec::new();
    let mut seen: rustc_hash::FxHashMap<&str, IdxSize> = Default::default();
    let mut previous: Option<(&str, IdxSize)> = None;
    let index: IdxCa = values
        .into_iter()
        .map(|v| {
            let v = v?;
            if let Some((p, i)) = previous
                && p == v
            {
                return Some(i);
            }
            let i = seen.get(v).copied().unwrap_or_else(|| {
                distinct.push(v);
                let i = (distinct.len() - 1) as IdxSize;
                if seen.len() < REMEMBERED {
                    seen.insert(v, i);
                }
                i
            });
            previous = Some((v, i));
            Some(i)
        })
        .collect();
    gathered(name, distinct, &index)
}

/// The column `name` whose row `r` is `distinct[index[r]]` (null where the index is): each
/// value stored once, its rows sharing its copy. An index past `distinct` is an error.
pub fn gathered<'a>(
    name: &str,
    distinct: impl IntoIterator<Item = &'a str>,
    index: &IdxCa,
) -> Result<Column> {
    let distinct: StringChunked = distinct.into_iter().collect();
    let values = distinct.len();
    let column = distinct
        .take(index)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("a row's value of {name} is not among its {values} values"))?;
    Ok(column.with_name(name.into()).into_column())
}

/// A failed write, said plainly: which file, and for a full disk what to do (the drivers'
/// own text was "External: No space left on device (os error 28)", twice, and no path).
pub fn explain_write_error(err: anyhow::Error, path: &Path) -> anyhow::Error {
    let full = err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(28))
            || e.to_string().contains("os error 28")
    });
    if full {
        err.context(format!(
            "the disk holding {} is full: free space (or move the lake) and run the stage again; nothing partial was committed",
            path.display()
        ))
    } else {
        err.context(format!("writing {}", path.display()))
    }
}

/// The rows of `df` where `mask` is true, owning their text. A filtered string column still
/// points into the buffers of the frame it came from, so rows kept from each window read
/// would keep every window's text alive (05-detect's sample lines held 200 MB of a 10 M-line
/// day that way); the few rows kept get buffers of their own.
pub fn keep_rows(df: &DataFrame, mask: &BooleanChunked) -> Result<DataFrame> {
    let kept = df.filter(mask)?;
    let columns = kept
        .columns()
        .iter()
        .map(|c| -> Result<Column> {
            Ok(match c.dtype() {
                DataType::String => {
                    let values: Vec<Option<&str>> = c.str()?.iter().collect();
                    Column::new(c.name().clone(), values)
                }
                _ => c.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(DataFrame::new_infer_height(columns)?)
}

/// Read one Parquet file eagerly, its times as the stages hold them (see
/// [`scan_lake_files`]). One file mixes no kinds of part, so it is read as written and its
/// zoned times cast after: its footer is read once, not once more for a schema. It is read
/// by Polars' eager reader, not a lazy scan: a micro-batch reads dozens of small state and
/// part files, and a scan starts the streaming engine's executor for each (5–10 % of
/// 03-gold's CPU on a micro-batch).
pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut df = ParquetReader::new(file)
        .finish()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("reading {}", path.display()))?;
    let zoned: Vec<(PlSmallStr, TimeUnit)> = df
        .schema()
        .as_ref()
        .iter()
        .filter_map(|(name, dtype)| match dtype {
            DataType::Datetime(unit, Some(_)) => Some((name.clone(), *unit)),
            _ => None,
        })
        .collect();
    for (name, unit) in zoned {
        let plain = df.column(&name)?.cast(&DataType::Datetime(unit, None))?;
        df.with_column(plain)?;
    }
    Ok(df)
}

/// Lake files read as one lazy frame, in the order given, with their times as the stages
/// hold them: UTC, without a zone. Lake files mark their times as UTC (see
/// `parquet_write::utc_times`); files written before that did not, and Polars, built without
/// time-zone support, can neither compare a zoned time with a plain one nor turn a plain
/// file's column into a zoned one. So the scan is given the first file's schema with the
/// zones taken off: every file's times are read into plain columns (the same milliseconds
/// since the epoch), whichever kind of file comes first. With `allow_missing_columns`, a
/// column missing from an older file reads as null.
pub fn scan_lake_files(files: &[PathBuf], allow_missing_columns: bool) -> Result<LazyFrame> {
    let path = |p: &PathBuf| PlRefPath::new(p.to_string_lossy().to_string());
    let Some(first) = files.first() else {
        bail!("no lake files to read");
    };
    let mut schema = LazyFrame::scan_parquet(path(first), Default::default())?
        .collect_schema()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("reading the schema of {}", first.display()))?
        .as_ref()
        .clone();
    for dtype in schema.iter_values_mut() {
        if let DataType::Datetime(unit, Some(_)) = dtype {
            *dtype = DataType::Datetime(unit.to_owned(), None);
        }
    }
    let args = ScanArgsParquet {
        allow_missing_columns,
        schema: Some(Arc::new(schema)),
        ..Default::default()
    };
    Ok(LazyFrame::scan_parquet_files(
        files.iter().map(path).collect(),
        args,
    )?)
}

/// Frames read or built piece by piece, as one frame of a single chunk (by column name: a
/// piece may lack a column an older partition did not have). No pieces: an empty frame.
pub fn concat_rows(frames: Vec<DataFrame>) -> Result<DataFrame> {
    if frames.is_empty() {
        return Ok(DataFrame::default());
    }
    let lazy: Vec<LazyFrame> = frames.into_iter().map(IntoLazy::lazy).collect();
    let mut all = concat(
        lazy,
        UnionArgs {
            diagonal: true,
            ..Default::default()
        },
    )?
    .collect()?;
    all.rechunk_mut();
    Ok(all)
}

/// Call `each(i, read(i))` for `i` in `0..n`, in order, reading item `i + 1` on a thread of
/// its own while `each` works on item `i`: for a stage whose reading (decoding, and what it
/// computes per row as it reads) is as long as its work on what it read, each on one core.
/// Memory: one item more.
pub fn each_prefetched<T: Send>(
    n: usize,
    read: impl Fn(usize) -> Result<T> + Sync,
    each: &mut dyn FnMut(usize, T) -> Result<()>,
) -> Result<()> {
    each_read_ahead(n, 1, read, each)
}

/// [`each_prefetched`] with up to `depth` items being read at once, each on a thread of its
/// own: for a stage whose reading takes longer than its work on what it read, so that one
/// reader alone would leave a core idle. Items still reach `each` in order. Memory: `depth`
/// items more.
pub fn each_read_ahead<T: Send>(
    n: usize,
    depth: usize,
    read: impl Fn(usize) -> Result<T> + Sync,
    each: &mut dyn FnMut(usize, T) -> Result<()>,
) -> Result<()> {
    let read = &read;
    let depth = depth.max(1);
    std::thread::scope(|s| {
        let mut reading = std::collections::VecDeque::with_capacity(depth);
        let mut next = 0;
        // Start reads until `depth` are under way (or none is left to start).
        let mut fill = |reading: &mut std::collections::VecDeque<_>| {
            while next < n && reading.len() < depth {
                let k = next;
                reading.push_back(s.spawn(move || read(k)));
                next += 1;
            }
        };
        fill(&mut reading);
        for i in 0..n {
            let item = reading
                .pop_front()
                .expect("each item is read before it is used")
                .join()
                .map_err(|_| anyhow::anyhow!("the thread reading item {i} panicked"))??;
            // The next read starts before this item's work.
            fill(&mut reading);
            each(i, item)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_strings_hold_each_value_once_and_read_like_the_values() {
        let long = "/var/log/a service's file of more than twelve bytes";
        let values = [
            Some(long),
            Some(long),
            None,
            Some("short"),
            Some(long),
            Some("another long enough value"),
            Some("short"),
        ];
        let column = repeated_strings("s", values).unwrap();
        assert_eq!(column.name().as_str(), "s");
        let plain = Column::new("s".into(), values.to_vec());
        assert!(column.equals_missing(&plain), "{column:?}");
        // The long values are stored once each, not once a row.
        let chunks = column.str().unwrap().downcast_iter().collect::<Vec<_>>();
        let stored: usize = chunks.iter().map(|a| a.total_buffer_len()).sum();
        assert_eq!(stored, long.len() + "another long enough value".len());
    }

    #[test]
    fn repeated_strings_of_many_values_still_read_like_the_values() {
        // More values than are remembered, each coming back once after all the others.
        let values: Vec<String> = (0..5000)
            .chain(0..5000)
            .map(|i| format!("a value of more than twelve bytes, number {i}"))
            .collect();
        let values: Vec<Option<&str>> = values.iter().map(|v| Some(v.as_str())).collect();
        let column = repeated_strings("s", values.iter().copied()).unwrap();
        assert!(column.equals_missing(&Column::new("s".into(), values)));
    }

    #[test]
    fn prefetched_items_come_in_order_and_errors_stop_the_walk() {
        let mut seen = Vec::new();
        each_prefetched(5, |i| Ok(i * 10), &mut |i, v| {
            seen.push((i, v));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(0, 0), (1, 10), (2, 20), (3, 30), (4, 40)]);

        let mut used = 0;
        let err = each_prefetched(
            4,
            |i| {
                if i == 2 {
                    anyhow::bail!("item 2 is unreadable")
                }
                Ok(i)
            },
            &mut |_, _| {
                used += 1;
                Ok(())
            },
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "item 2 is unreadable");
        assert_eq!(used, 2);
        each_prefetched(0, |_| -> Result<()> { unreachable!() }, &mut |_, _| Ok(())).unwrap();

        // Several readers at once: items still come in order, however long each read takes.
        let mut seen = Vec::new();
        each_read_ahead(
            7,
            3,
            |i| {
                std::thread::sleep(std::time::Duration::from_millis(((7 - i) * 3) as u64));
                Ok(i)
            },
            &mut |i, v| {
                seen.push((i, v));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, (0..7).map(|i| (i, i)).collect::<Vec<_>>());
    }

    #[test]
    fn a_full_disk_is_named_with_what_to_do() {
        let io = std::io::Error::from_raw_os_error(28);
        let err = explain_write_error(anyhow::Error::from(io), Path::new("/lake/bronze/x.parquet"));
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with("the disk holding /lake/bronze/x.parquet is full"),
            "{msg}"
        );
        let other = explain_write_error(anyhow::anyhow!("boom"), Path::new("/l/y"));
        assert_eq!(format!("{other:#}"), "writing /l/y: boom");
    }
}

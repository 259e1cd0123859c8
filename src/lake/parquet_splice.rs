//! A lake Parquet file written again with one column replaced, every other column's pages
//! copied as they are — still encoded and compressed.
//!
//! 02-silver parses a large batch in windows before it knows the batch's templates, so each
//! window's events wait on disk with a template *index* in place of the template columns. It
//! used to spill them plain and, once the templates were mined, read every column back, name
//! the templates and encode and compress the whole frame again: on a million HDFS lines that
//! was 170 MB of messages and parameters written, read, decoded and compressed a second time,
//! about a third of the stage. Now the window is written once as a lake file would be
//! (`write_frame`), and naming its templates encodes only the two new columns: the
//! messages' pages go from the waiting file to the partition byte for byte. The result is the
//! file [`super::parquet_write::write_frame`] would have written for the named frame (same
//! row groups, pages, encodings and statistics), since the copied pages are the ones it wrote
//! and the new columns go through the same encoder.

use std::io::{Cursor, Write};
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use polars::prelude::*;
use polars_parquet::parquet::read::{get_page_iterator, read_metadata};
use polars_parquet::read::infer_schema;
use polars_parquet::write::{CompressedPage, FileWriter};

use super::parquet_write::{
    column_encoding, encode_column, utc_times, write_options, write_row_group,
};

/// Write to `out` the lake file `from` (written by `write_frame`) with its column
/// `replaced` swapped, in its place, for the columns `with` makes of it — whole-file columns,
/// as many rows as `from` has. The file is read once: the replaced column is decoded from the
/// same bytes the other columns' pages are copied from.
pub fn replace_column<W: Write>(
    from: &Path,
    replaced: &str,
    with: impl FnOnce(&Column) -> Result<Vec<Column>>,
    out: W,
) -> Result<()> {
    let bytes: polars_buffer::Buffer<u8> = std::fs::read(from)
        .with_context(|| format!("reading {}", from.display()))?
        .into();
    let metadata = read_metadata(&mut Cursor::new(bytes.as_slice()))?;
    let schema = infer_schema(&metadata)?;
    if !schema.contains(replaced) {
        bail!("{} has no column {replaced}", from.display());
    }
    let old = ParquetReader::new(Cursor::new(bytes.as_slice()))
        .with_columns(Some(vec![replaced.to_string()]))
        .finish()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("reading {replaced} of {}", from.display()))?;
    let with = with(old.column(replaced)?)?;
    let rows: usize = metadata.row_groups.iter().map(|g| g.num_rows()).sum();
    if let Some(c) = with.iter().find(|c| c.len() != rows) {
        bail!(
            "{} has {rows} rows but its new column {} has {}",
            from.display(),
            c.name(),
            c.len()
        );
    }
    let options = write_options()?;
    let mut fields = Vec::new();
    // Per field of the new file: the replacement column it comes from, if any.
    let mut source: Vec<Option<&Column>> = Vec::new();
    for field in schema.iter_values() {
        if field.name == replaced {
            for c in &with {
                fields.push(ArrowField::new(
                    c.name().clone(),
                    c.dtype().to_arrow(CompatLevel::newest()),
                    true,
                ));
                source.push(Some(c));
            }
        } else {
            fields.push(field.clone());
            source.push(None);
        }
    }
    let encodings: Vec<Vec<_>> = fields
        .iter()
        .zip(&source)
        .map(|(f, c)| c.map(|c| column_encoding(c, &f.dtype)))
        .map(Option::unwrap_or_default)
        .collect();
    let schema: ArrowSchema = fields.into_iter().map(|f| (f.name.clone(), f)).collect();
    let schema = utc_times(schema);
    let mut writer = FileWriter::try_new(out, schema, options)?;
    let leaves = writer.parquet_schema().fields().to_vec();
    let mut offset = 0usize;
    for group in &metadata.row_groups {
        let n = group.num_rows();
        let mut columns: Vec<Vec<CompressedPage>> = Vec::with_capacity(leaves.len());
        for ((leaf, c), encoding) in leaves.iter().zip(&source).zip(&encodings) {
            match c {
                Some(c) => {
                    let array = c
                        .as_materialized_series()
                        .slice(offset as i64, n)
                        .rechunk()
                        .to_arrow(0, CompatLevel::newest());
                    columns.extend(encode_column(&array, leaf, encoding, options)?);
                }
                None => {
                    let name = leaf.name();
                    let mut chunks = group.columns_under_root_iter(name).into_iter().flatten();
                    let (Some(chunk), None) = (chunks.next(), chunks.next()) else {
                        bail!("{}: column {name} is not one flat column", from.display());
                    };
                    let pages = get_page_iterator(
                        chunk,
                        Cursor::new(bytes.clone()),
                        Vec::new(),
                        usize::MAX,
                    )?;
                    let mut copied = Vec::new();
                    for page in pages {
                        let mut page = page?;
                        // Read back, a page does not know its rows; in a flat column each
                        // value is one row.
                        if let CompressedPage::Data(data) = &mut page {
                            data.num_rows = Some(data.num_values());
                        }
                        copied.push(page);
                    }
                    columns.push(copied);
                }
            }
        }
        write_row_group(&mut writer, n as u64, &columns)?;
        offset += n;
    }
    writer.end(None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::read_parquet;

    fn file_bytes(df: &mut DataFrame, path: &Path) -> Vec<u8> {
        let file = std::fs::File::create(path).unwrap();
        super::super::parquet_write::write_frame(df, file).unwrap();
        std::fs::read(path).unwrap()
    }

    /// The spliced file is the one written from the whole frame, byte for byte, over several
    /// row groups, and reads back the same.
    #[test]
    fn replacing_a_column_writes_what_the_whole_frame_would() {
        let n = 600_000usize;
        let index: Vec<u32> = (0..n).map(|i| (i % 7) as u32).collect();
        let message: Vec<String> = (0..n)
            .map(|i| format!("message {}", i * 31 % 9973))
            .collect();
        let line_no: Vec<u64> = (1..=n as u64).collect();
        let named = |index: &[u32]| {
            let ids: Vec<String> = index.iter().map(|i| format!("id{i}")).collect();
            let texts: Vec<String> = index.iter().map(|i| format!("template <*> {i}")).collect();
            vec![
                Column::new("template_id".into(), ids),
                Column::new("template".into(), texts),
            ]
        };
        let dir = tempfile::tempdir().unwrap();
        let mut waiting = df!(
            "line_no" => &line_no,
            "template_index" => &index,
            "message" => &message,
        )
        .unwrap();
        file_bytes(&mut waiting, &dir.path().join("waiting.parquet"));
        let mut columns = vec![Column::new("line_no".into(), &line_no)];
        columns.extend(named(&index));
        columns.push(Column::new("message".into(), &message));
        let mut whole = DataFrame::new_infer_height(columns).unwrap();
        let expected = file_bytes(&mut whole, &dir.path().join("whole.parquet"));

        let spliced = dir.path().join("spliced.parquet");
        replace_column(
            &dir.path().join("waiting.parquet"),
            "template_index",
            |old| {
                let old: Vec<u32> = old.u32()?.into_no_null_iter().collect();
                Ok(named(&old))
            },
            std::fs::File::create(&spliced).unwrap(),
        )
        .unwrap();
        assert_eq!(std::fs::read(&spliced).unwrap(), expected);
        assert!(read_parquet(&spliced).unwrap().equals(&whole));

        let short = replace_column(
            &dir.path().join("waiting.parquet"),
            "template_index",
            |_| Ok(named(&index[..10])),
            std::io::sink(),
        )
        .unwrap_err();
        assert!(short.to_string().contains("has 600000 rows"), "{short}");
        let missing = replace_column(
            &dir.path().join("waiting.parquet"),
            "nothing",
            |_| Ok(named(&index)),
            std::io::sink(),
        )
        .unwrap_err();
        assert!(
            missing.to_string().contains("no column nothing"),
            "{missing}"
        );
    }
}

//! `01-bronze`: raw files (plain or gzip; a file or a folder) → `bronze/lines`, lossless.
//!
//! Each input file becomes one Parquet part, `part-<sha256 prefix>.parquet`, in the partition
//! of the batch date. A row is one line exactly as it was (a trailing `\r` included), with its
//! provenance: file path, byte offset and line number (in the decompressed stream for gzip),
//! ingest time and the file's SHA-256. Lines that are not valid UTF-8 keep their exact bytes in
//! `raw` (and a lossy `line`), so nothing is lost before silver decides what to do with them.
//!
//! A file whose checksum is already in the source's bronze is skipped, whatever its name: a
//! re-run, or the same file delivered twice, adds nothing.
//!
//! arrow-rs writes bronze, not Polars: lines stream from the file into fixed-size record
//! batches and out to Parquet row groups, so memory stays bounded by the batch size however
//! large the file is.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use arrow::array::{
    ArrayRef, BinaryBuilder, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::Utc;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};

use super::Context;
use crate::lake::{Layer, tables};
use crate::stages::RunOutcome;

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("line", DataType::Utf8, false),
        Field::new("raw", DataType::Binary, true),
        Field::new("file", DataType::Utf8, false),
        Field::new("byte_offset", DataType::UInt64, false),
        Field::new("line_no", DataType::UInt64, false),
        Field::new(
            "ingest_time",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("file_sha256", DataType::Utf8, false),
        // Why the rest of the file could not be read (a truncated or corrupt .gz): set on
        // one last row holding whatever was read of its line, which silver quarantines
        // with this reason. Null on every other row.
        Field::new("read_error", DataType::Utf8, true),
    ]))
}

/// The input files: files as given, folders walked recursively (hidden entries skipped),
/// sorted so that ingestion order is stable.
pub fn list_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("reading folder {}", dir.display()))?
        {
            let path = entry?.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.is_file() {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, &mut files)?;
        } else if input.is_file() {
            files.push(input.clone());
        } else {
            bail!("input {} does not exist", input.display());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn open_lines(path: &Path) -> Result<Box<dyn BufRead>> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic)?;
    let file = File::open(path)?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::read::MultiGzDecoder::new(file),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
    }
}

struct BatchBuilder {
    line: StringBuilder,
    raw: BinaryBuilder,
    byte_offset: UInt64Builder,
    line_no: UInt64Builder,
    read_error: StringBuilder,
    rows: usize,
}

impl BatchBuilder {
    fn new() -> Self {
        Self {
            line: StringBuilder::new(),
            raw: BinaryBuilder::new(),
            byte_offset: UInt64Builder::new(),
            line_no: UInt64Builder::new(),
            read_error: StringBuilder::new(),
            rows: 0,
        }
    }

    fn push(&mut self, bytes: &[u8], offset: u64, line_no: u64, read_error: Option<&str>) {
        self.read_error.append_option(read_error);
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                self.line.append_value(s);
                self.raw.append_null();
            }
            Err(_) => {
                self.line.append_value(String::from_utf8_lossy(bytes));
                self.raw.append_value(bytes);
            }
        }
        self.byte_offset.append_value(offset);
        self.line_no.append_value(line_no);
        self.rows += 1;
    }

    fn finish(
        &mut self,
        schema: &SchemaRef,
        file: &str,
        ingest_ms: i64,
        sha: &str,
    ) -> Result<RecordBatch> {
        let n = self.rows;
        self.rows = 0;
        let mut files = StringBuilder::with_capacity(n, n * file.len());
        let mut shas = StringBuilder::with_capacity(n, n * sha.len());
        let mut ingest = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
        for _ in 0..n {
            files.append_value(file);
            shas.append_value(sha);
            ingest.append_value(ingest_ms);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.line.finish()),
            Arc::new(self.raw.finish()),
            Arc::new(files.finish()),
            Arc::new(self.byte_offset.finish()),
            Arc::new(self.line_no.finish()),
            Arc::new(ingest.finish()),
            Arc::new(shas.finish()),
            Arc::new(self.read_error.finish()),
        ];
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

/// Stream one file's lines into a Parquet file at `out`; returns the line count.
pub fn write_bronze_file(input: &Path, out: &Path, sha: &str, batch_rows: usize) -> Result<u64> {
    let schema = schema();
    // Line numbers and byte offsets climb steadily: delta-encoded they take a few bits a row
    // (plain, zstd found little to squeeze out of them: 6.4 of bronze's 21 MB on a million
    // HDFS lines).
    let climbing = |name: &str| parquet::schema::types::ColumnPath::from(name);
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(batch_rows.max(1024)))
        .set_column_dictionary_enabled(climbing("line_no"), false)
        .set_column_encoding(climbing("line_no"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(climbing("byte_offset"), false)
        .set_column_encoding(climbing("byte_offset"), Encoding::DELTA_BINARY_PACKED)
        .build();
    let mut writer = ArrowWriter::try_new(File::create(out)?, schema.clone(), Some(props))?;
    let mut reader = open_lines(input)?;
    let file_name = input.to_string_lossy().to_string();
    let ingest_ms = Utc::now().timestamp_millis();
    let mut batch = BatchBuilder::new();
    let mut buf = Vec::with_capacity(1024);
    let (mut offset, mut line_no) = (0u64, 0u64);
    loop {
        buf.clear();
        let n = match reader.read_until(b'\n', &mut buf) {
            Ok(n) => n,
            Err(e) => {
                // Keep every line read so far; what was read of the broken line goes to one
                // last row carrying the reason, which silver quarantines.
                let reason = format!(
                    "{} unreadable after line {line_no} (truncated or corrupt file?): {e}",
                    input.display()
                );
                tracing::warn!(file = %input.display(), after_line = line_no, error = %e, "input cut short; the lines before it are ingested and the rest is quarantined");
                line_no += 1;
                batch.push(&buf, offset, line_no, Some(&reason));
                break;
            }
        };
        if n == 0 {
            break;
        }
        line_no += 1;
        let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
        batch.push(body, offset, line_no, None);
        offset += n as u64;
        if batch.rows >= batch_rows {
            writer.write(&batch.finish(&schema, &file_name, ingest_ms, sha)?)?;
        }
    }
    if batch.rows > 0 || line_no == 0 {
        writer.write(&batch.finish(&schema, &file_name, ingest_ms, sha)?)?;
    }
    writer.close()?;
    Ok(line_no)
}

pub fn run(ctx: &Context) -> Result<RunOutcome> {
    let [date] = ctx.dates[..] else {
        bail!("01-bronze ingests into one batch date: give --date, not a range");
    };
    if ctx.options.inputs.is_empty() {
        bail!("01-bronze needs --input <file or folder>");
    }
    let files = list_inputs(&ctx.options.inputs)?;
    if files.is_empty() {
        return Ok(RunOutcome::nothing_to_do(format!(
            "no files under {:?} (no logs arrived for {date}?)",
            ctx.options.inputs
        )));
    }
    // Checksums already in this source's bronze, from part names (no data read).
    let mut known = std::collections::HashSet::new();
    for d in ctx
        .lake
        .partition_dates(Layer::Bronze, tables::LINES, &ctx.source)?
    {
        for part in ctx
            .lake
            .part_files(Layer::Bronze, tables::LINES, &ctx.source, d)?
        {
            if let Some(stem) = part
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.strip_prefix("part-"))
            {
                known.insert(stem.to_string());
            }
        }
    }
    let total = files.len() as u64;
    let (mut ingested, mut skipped, mut lines) = (0usize, 0usize, 0u64);
    for (i, file) in files.iter().enumerate() {
        ctx.progress
            .step(format!("file {}/{total}: {}", i + 1, file.display()));
        let sha = sha256_file(file)?;
        let part_key = sha[..32].to_string();
        if known.contains(&part_key) {
            tracing::info!(file = %file.display(), "already ingested (same checksum); skipped");
            skipped += 1;
            continue;
        }
        let mut n = 0;
        ctx.lake.commit_part_file(
            Layer::Bronze,
            tables::LINES,
            &ctx.source,
            date,
            &format!("part-{part_key}.parquet"),
            |staged| {
                n = write_bronze_file(file, staged, &sha, ctx.settings.lake.bronze_batch_rows)?;
                Ok(())
            },
        )?;
        known.insert(part_key);
        tracing::info!(file = %file.display(), lines = n, "ingested");
        ingested += 1;
        lines += n;
    }
    if ingested == 0 {
        return Ok(RunOutcome::nothing_to_do(format!(
            "all {skipped} file(s) already ingested (same checksums)"
        )));
    }
    Ok(RunOutcome {
        rows_in: lines,
        rows_out: lines,
        rows_quarantined: 0,
        message: format!(
            "{ingested} file(s) ingested ({lines} lines), {skipped} already ingested and skipped, into {date}"
        ),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn keeps_lines_verbatim_with_provenance() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("a.log");
        std::fs::write(&input, b"first\r\nsecond \xff bytes\n\nlast no newline").unwrap();
        let out = dir.path().join("a.parquet");
        let n = write_bronze_file(&input, &out, "abc", 2).unwrap();
        assert_eq!(n, 4);
        let df = crate::lake::read_parquet(&out).unwrap();
        let lines: Vec<_> = df
            .column("line")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|s| s.unwrap().to_string())
            .collect();
        assert_eq!(
            lines,
            vec!["first\r", "second \u{fffd} bytes", "", "last no newline"]
        );
        let raw = df.column("raw").unwrap().binary().unwrap();
        assert_eq!(raw.get(1), Some(&b"second \xff bytes"[..]));
        assert_eq!(raw.get(0), None);
        let offsets: Vec<_> = df
            .column("byte_offset")
            .unwrap()
            .u64()
            .unwrap()
            .no_null_iter()
            .collect();
        assert_eq!(offsets, vec![0, 7, 22, 23]);
    }

    #[test]
    fn reads_gzip_and_reports_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("a.log.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for i in 0..1000 {
            writeln!(enc, "line {i}").unwrap();
        }
        let bytes = enc.finish().unwrap();
        std::fs::write(&gz, &bytes).unwrap();
        let n = write_bronze_file(&gz, &dir.path().join("a.parquet"), "x", 100).unwrap();
        assert_eq!(n, 1000);

        // A truncated file: the lines before the cut are kept, and one last row carries
        // what was read of the broken line with the reason.
        let cut = dir.path().join("cut.log.gz");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let out = dir.path().join("b.parquet");
        let n = write_bronze_file(&cut, &out, "x", 100).unwrap();
        assert!(n > 10 && n < 1000, "{n}");
        use polars::prelude::{ParquetReader, SerReader};
        let df = ParquetReader::new(std::fs::File::open(&out).unwrap())
            .finish()
            .unwrap();
        assert_eq!(df.height() as u64, n);
        let errors = df.column("read_error").unwrap().str().unwrap();
        assert_eq!(errors.null_count(), df.height() - 1);
        assert!(
            errors
                .get(df.height() - 1)
                .unwrap()
                .contains("truncated or corrupt")
        );
        let lines = df.column("line").unwrap().str().unwrap();
        assert_eq!(lines.get(0), Some("line 0"));
        assert_eq!(
            lines.get(df.height() - 2),
            Some(format!("line {}", n - 2).as_str())
        );
    }
}

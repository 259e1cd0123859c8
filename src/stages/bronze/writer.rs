//! Writing one segment of a file — the lines from where bronze stopped last time to the last
//! complete line — as one Parquet part.
//!
//! arrow-rs writes bronze, not Polars: lines stream from the file into fixed-size record
//! batches, so memory stays bounded by the batch size however large the file is.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel, sync_channel};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use arrow::array::{
    ArrayRef, BinaryBuilder, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
    new_null_array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::Utc;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;

use super::segments::{SEGMENT_KEY, SEGMENTS_KEY, Segment};

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
        // A Kafka message's key and timestamp (`01-bronze --kafka`); null for a file's lines.
        // For a message, `file` is `kafka://<topic>/<partition>`, `byte_offset` its offset in
        // the partition, `line_no` that offset + 1 and `file_sha256` the checksum naming its
        // part (see [`super::kafka`]).
        Field::new("message_key", DataType::Binary, true),
        Field::new(
            "message_time",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
    ]))
}

/// The file's lines as a stream (decompressed when it is gzip or zstd, recognised by their
/// first bytes, whatever the name), and whether it was compressed. bzip2 and xz are refused
/// with what to do, rather than ingested as binary lines.
pub fn open_lines(path: &Path) -> Result<(Box<dyn BufRead>, bool)> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut magic = [0u8; 6];
    let mut n = 0;
    while n < magic.len() {
        match file.read(&mut magic[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let magic = &magic[..n];
    let file = File::open(path)?;
    let refuse = |kind: &str, tool: &str| {
        anyhow::bail!(
            "{} is {kind}-compressed, which 01-bronze does not read: decompress it ({tool} -d) or recompress it with gzip or zstd",
            path.display()
        )
    };
    if magic.starts_with(&[0x1f, 0x8b]) {
        Ok((
            Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::read::MultiGzDecoder::new(file),
            )),
            true,
        ))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = zstd::stream::read::Decoder::new(file)
            .with_context(|| format!("opening the zstd stream of {}", path.display()))?;
        Ok((Box::new(BufReader::with_capacity(1 << 20, decoder)), true))
    } else if magic.starts_with(b"BZh") {
        refuse("bzip2", "bunzip2")
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        refuse("xz", "xz")
    } else {
        Ok((Box::new(BufReader::with_capacity(1 << 20, file)), false))
    }
}

/// `path`'s (decompressed) stream from byte `start` on: a plain file is sought there; a
/// compressed stream can only be read through to it.
pub fn open_lines_at(path: &Path, start: u64) -> Result<Box<dyn BufRead>> {
    let (mut stream, compressed) = open_lines(path)?;
    if start == 0 {
        return Ok(stream);
    }
    if !compressed {
        use std::io::{Seek, SeekFrom};
        let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        file.seek(SeekFrom::Start(start))
            .with_context(|| format!("seeking to byte {start} of {}", path.display()))?;
        return Ok(Box::new(BufReader::with_capacity(1 << 20, file)));
    }
    std::io::copy(&mut (&mut stream).take(start), &mut std::io::sink())
        .with_context(|| format!("skipping the part of {} ingested before", path.display()))?;
    Ok(stream)
}

/// The rows of one record batch as they are read.
pub struct BatchBuilder {
    line: StringBuilder,
    raw: BinaryBuilder,
    byte_offset: UInt64Builder,
    line_no: UInt64Builder,
    read_error: StringBuilder,
    /// Kafka messages' partitions, keys and timestamps; `None` for a file's lines, whose
    /// batches get all-null columns without a row-by-row append.
    message: Option<Messages>,
    pub rows: usize,
}

impl BatchBuilder {
    /// Builders sized for `rows` lines of `line_bytes` bytes in all. A builder that starts
    /// empty doubles its buffer as lines arrive, copying them each time into memory the kernel
    /// must fault in afresh: on a million HDFS lines that was a tenth of 01-bronze's CPU.
    pub fn with_capacity(rows: usize, line_bytes: usize) -> Self {
        Self {
            line: StringBuilder::with_capacity(rows, line_bytes),
            raw: BinaryBuilder::new(),
            byte_offset: UInt64Builder::with_capacity(rows),
            line_no: UInt64Builder::with_capacity(rows),
            read_error: StringBuilder::new(),
            message: None,
            rows: 0,
        }
    }

    /// Builders for Kafka messages: each row also has its partition (as `file`), a key (or
    /// null) and a timestamp.
    pub fn for_messages(rows: usize, line_bytes: usize) -> Self {
        let mut builder = Self::with_capacity(rows, line_bytes);
        builder.message = Some(Messages {
            file: StringBuilder::new(),
            key: BinaryBuilder::new(),
            time: TimestampMillisecondBuilder::with_capacity(rows).with_timezone("UTC"),
        });
        builder
    }

    /// A message's partition, key and timestamp, for the row pushed next (see
    /// [`Self::for_messages`]).
    pub fn push_message(&mut self, file: &str, key: Option<&[u8]>, time_ms: i64) {
        if let Some(m) = &mut self.message {
            m.file.append_value(file);
            m.key.append_option(key);
            m.time.append_value(time_ms);
        }
    }

    pub fn push(&mut self, bytes: &[u8], offset: u64, line_no: u64, read_error: Option<&str>) {
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

    pub fn finish(&mut self, schema: &SchemaRef, same: &mut SameOnEveryRow) -> Result<RecordBatch> {
        let n = self.rows;
        // The next batch is sized like this one, with a little room for longer lines.
        let line_bytes = self.line.values_slice().len();
        let next = if self.message.is_some() {
            Self::for_messages(n, line_bytes + line_bytes / 16)
        } else {
            Self::with_capacity(n, line_bytes + line_bytes / 16)
        };
        let mut this = std::mem::replace(self, next);
        let [mut file, ingest_time, sha] = same.columns(n);
        let (message_key, message_time): (ArrayRef, ArrayRef) = match &mut this.message {
            Some(m) => {
                file = Arc::new(m.file.finish());
                (Arc::new(m.key.finish()), Arc::new(m.time.finish()))
            }
            None => {
                let null = |name: &str| {
                    let field = schema
                        .field_with_name(name)
                        .expect("bronze has this column");
                    new_null_array(field.data_type(), n)
                };
                (null("message_key"), null("message_time"))
            }
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(this.line.finish()),
            Arc::new(this.raw.finish()),
            file,
            Arc::new(this.byte_offset.finish()),
            Arc::new(this.line_no.finish()),
            ingest_time,
            sha,
            Arc::new(this.read_error.finish()),
            message_key,
            message_time,
        ];
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

/// What a Kafka message's row has beyond a line's.
struct Messages {
    file: StringBuilder,
    key: BinaryBuilder,
    time: TimestampMillisecondBuilder,
}

/// The columns every row of a segment shares — its file, ingest time and checksum — built
/// once for the longest batch and sliced for each (a slice shares the values): built again
/// for every batch they were 85 MB of copies on a million HDFS lines, most of it a 64-byte
/// checksum.
pub struct SameOnEveryRow {
    file: String,
    ingest_ms: i64,
    sha: String,
    built: [ArrayRef; 3],
}

impl SameOnEveryRow {
    pub fn new(file: String, ingest_ms: i64, sha: String) -> Self {
        let built = Self::build(&file, ingest_ms, &sha, 0);
        Self {
            file,
            ingest_ms,
            sha,
            built,
        }
    }

    fn build(file: &str, ingest_ms: i64, sha: &str, n: usize) -> [ArrayRef; 3] {
        let mut files = StringBuilder::with_capacity(n, n * file.len());
        let mut shas = StringBuilder::with_capacity(n, n * sha.len());
        let mut ingest = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
        for _ in 0..n {
            files.append_value(file);
            shas.append_value(sha);
            ingest.append_value(ingest_ms);
        }
        [
            Arc::new(files.finish()),
            Arc::new(ingest.finish()),
            Arc::new(shas.finish()),
        ]
    }

    /// The file, ingest time and checksum columns of a batch of `n` rows.
    fn columns(&mut self, n: usize) -> [ArrayRef; 3] {
        if self.built[0].len() < n {
            self.built = Self::build(&self.file, self.ingest_ms, &self.sha, n);
        }
        self.built.clone().map(|column| column.slice(0, n))
    }
}

/// Stream the lines of `segment` — bytes `start..end` of its file's (decompressed) stream,
/// as [`super::segments::plan`] measured them — into a Parquet file at `out`, with the segment
/// in the footer. Reading stops at `end` even if the file has grown since it was planned: what
/// lies beyond is the next run's segment.
///
/// With `until_error` (the plan met a read error, a truncated `.gz`), reading goes on to
/// that error instead, so that what was read of the broken line is kept with its reason.
pub fn write_segment(
    input: &Path,
    out: &Path,
    segment: &Segment,
    until_error: bool,
    batch_rows: usize,
) -> Result<u64> {
    write_part(out, batch_rows, |send| {
        let (lines, written) =
            read_segment(input, segment, until_error, batch_rows, &schema(), send)?;
        let record = KeyValue::new(SEGMENT_KEY.to_string(), serde_json::to_string(&written)?);
        Ok((lines, record))
    })
}

/// Write one bronze part at `out` holding the segments of several small files, in order, their
/// rows gathered into batches of `batch_rows` (a row group per file would make a footer of
/// thousands of row groups); the footer records every segment as written (`SEGMENTS_KEY`).
/// Returns each segment's line count.
pub fn write_segments(
    inputs: &[(&Path, &Segment)],
    out: &Path,
    batch_rows: usize,
) -> Result<Vec<u64>> {
    let schema = schema();
    write_part(out, batch_rows, |send| {
        let (mut pending, mut rows) = (Vec::new(), 0usize);
        let (mut lines, mut written) = (Vec::new(), Vec::new());
        for (input, segment) in inputs {
            let (n, as_written) =
                read_segment(input, segment, false, batch_rows, &schema, &mut |batch| {
                    rows += batch.num_rows();
                    pending.push(batch);
                    if rows >= batch_rows {
                        send(arrow::compute::concat_batches(&schema, &pending)?)?;
                        (pending, rows) = (Vec::new(), 0);
                    }
                    Ok(())
                })?;
            lines.push(n);
            written.push(as_written);
        }
        if !pending.is_empty() {
            send(arrow::compute::concat_batches(&schema, &pending)?)?;
        }
        let record = KeyValue::new(SEGMENTS_KEY.to_string(), serde_json::to_string(&written)?);
        Ok((lines, record))
    })
}

/// Write one bronze part at `out` from the record batches `fill` hands to the function it is
/// given, with the footer record `fill` returns beside its result (what the part holds, for
/// the next run to pick up after it).
pub fn write_part<T>(
    out: &Path,
    batch_rows: usize,
    fill: impl FnOnce(&mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<(T, KeyValue)>,
) -> Result<T> {
    let schema = schema();
    // Line numbers and byte offsets climb steadily: delta-encoded they take a few bits a row
    // (plain, zstd found little to squeeze out of them: 6.4 of bronze's 21 MB on a million
    // HDFS lines). Lines are nearly all different: a dictionary of each row group's first
    // megabyte of them was built and given up (without one the part is 1 % smaller, too).
    let column = |name: &str| parquet::schema::types::ColumnPath::from(name);
    let props = WriterProperties::builder()
        // Level 1, as the other layers (see `lake::parquet_write::write_options`).
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(batch_rows.max(1024)))
        .set_column_dictionary_enabled(column("line_no"), false)
        .set_column_encoding(column("line_no"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(column("byte_offset"), false)
        .set_column_encoding(column("byte_offset"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(column("line"), false)
        // No minimum and maximum line: nothing filters on them, and finding them compared
        // every line with the extremes so far (01-bronze's user time 0.39 -> 0.37 s on a
        // million HDFS lines).
        .set_column_statistics_enabled(column("line"), EnabledStatistics::None)
        .build();
    let (file, groups) = ArrowWriter::try_new(File::create(out)?, schema.clone(), Some(props))?
        .into_serialized_writer()?;
    // Each batch is one row group, encoded and compressed (zstd: most of bronze's time) on
    // one of `encoders` threads while the next batches are read; row groups are appended to
    // the file in order as they come. One encoder left a core idle: reading a batch is
    // quicker than compressing it.
    let encoders = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
    let (jobs, incoming) = sync_channel::<Job>(0);
    let incoming = Arc::new(Mutex::new(incoming));
    // Each batch's result, in file order; at most `encoders` queued, so memory holds a few
    // batches however fast the reader is.
    let (order, results) = sync_channel::<Receiver<Result<Vec<ArrowColumnChunk>>>>(encoders);
    std::thread::scope(|s| {
        for _ in 0..encoders {
            let incoming = Arc::clone(&incoming);
            let (groups, schema) = (&groups, &schema);
            s.spawn(move || {
                loop {
                    // The reader has finished (or stopped) when the channel closes.
                    let job = match incoming.lock() {
                        Ok(jobs) => jobs.recv(),
                        Err(_) => break,
                    };
                    let Ok((index, batch, done)) = job else { break };
                    // A dropped receiver means the appender stopped: nothing to do but end.
                    let _ = done.send(encode_row_group(groups, index, &batch, schema));
                }
            });
        }
        let appender = s.spawn(move || -> Result<SerializedFileWriter<File>> {
            let mut file = file;
            for result in results {
                let chunks = result
                    .recv()
                    .map_err(|_| anyhow::anyhow!("a thread encoding bronze stopped"))??;
                let mut group = file.next_row_group()?;
                for chunk in chunks {
                    chunk.append_to_row_group(&mut group)?;
                }
                group.close()?;
            }
            Ok(file)
        });
        let mut index = 0;
        let filled = fill(&mut |batch| {
            let (done, result) = channel();
            // A send fails when the appender stopped: its error is the one to report, at
            // the join.
            if order.send(result).is_err() || jobs.send((index, batch, done)).is_err() {
                anyhow::bail!("the Parquet writer stopped");
            }
            index += 1;
            Ok(())
        });
        drop((jobs, order));
        let mut file = appender
            .join()
            .map_err(|_| anyhow::anyhow!("the thread writing {} panicked", out.display()))??;
        let (out, record) = filled?;
        file.append_key_value_metadata(record);
        file.close()?;
        Ok(out)
    })
}

/// A batch to encode as row group `index`, and where its column chunks go.
type Job = (usize, RecordBatch, Sender<Result<Vec<ArrowColumnChunk>>>);

/// Encode and compress `batch` as row group `index`.
fn encode_row_group(
    groups: &ArrowRowGroupWriterFactory,
    index: usize,
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> Result<Vec<ArrowColumnChunk>> {
    let mut writers = groups.create_column_writers(index)?;
    // One writer per leaf column: bronze's columns are all flat, a leaf each.
    for ((writer, field), column) in writers.iter_mut().zip(schema.fields()).zip(batch.columns()) {
        for leaf in compute_leaves(field, column)? {
            writer.write(&leaf)?;
        }
    }
    Ok(writers
        .into_iter()
        .map(|w| w.close())
        .collect::<Result<Vec<_>, _>>()?)
}

/// Read the lines of `segment` into record batches of `batch_rows` rows, handed to `send`;
/// returns how many lines were read and the segment as written (its end where reading
/// stopped).
fn read_segment(
    input: &Path,
    segment: &Segment,
    until_error: bool,
    batch_rows: usize,
    schema: &SchemaRef,
    send: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<(u64, Segment)> {
    let stream = open_lines_at(input, segment.start)?;
    let limit = if until_error {
        u64::MAX
    } else {
        segment.end - segment.start
    };
    let mut reader = stream.take(limit);
    // The name the segment was planned under: the path, or `stdin:…` for standard input.
    let mut same = SameOnEveryRow::new(
        segment.file.clone(),
        Utc::now().timestamp_millis(),
        segment.prefix_sha.clone(),
    );
    // The first batch sized from the segment's average line, as the probe counted lines.
    let lines = segment.end_line.saturating_sub(segment.start_line).max(1);
    let average = (segment.end - segment.start) / lines;
    let first_bytes = (average as usize).saturating_mul(batch_rows);
    let mut batch = BatchBuilder::with_capacity(
        batch_rows.min(lines as usize),
        first_bytes.min((segment.end - segment.start) as usize),
    );
    let mut buf = Vec::with_capacity(1024);
    let (mut offset, mut line_no) = (segment.start, segment.start_line);
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
                tracing::warn!(file = %crate::lake::shown(input), after_line = line_no, error = %e, "input cut short; the lines before it are ingested and the rest is quarantined");
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
            send(batch.finish(schema, &mut same)?)?;
        }
    }
    // The file ended before the bytes planned: it shrank (truncated, rewritten) while it was
    // read, and the last line read may be torn. Nothing of this segment is committed; the next
    // run sees the file as it is then.
    if !until_error && offset < segment.end {
        anyhow::bail!(
            "{} shrank while 01-bronze read it ({} of {} bytes were there): nothing of it was committed; run 01-bronze again once it is written",
            input.display(),
            offset,
            segment.end
        );
    }
    if batch.rows > 0 || line_no == segment.start_line {
        send(batch.finish(schema, &mut same)?)?;
    }
    let lines = line_no - segment.start_line;
    let mut written = segment.clone();
    if offset != segment.end {
        // Read to an error: the checksum state was planned for another end.
        written.resume = None;
    }
    written.end = offset;
    written.end_line = line_no;
    Ok((lines, written))
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::super::segments::{Ingested, Plan, plan};
    use super::*;

    /// A file cut short between the plan and the read (logrotate's copytruncate, a rewrite)
    /// commits nothing, rather than a torn last line.
    #[test]
    fn a_file_that_shrinks_while_read_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("app.log");
        let text: String = (0..1000)
            .map(|i| format!("2026-11-21T10:00:00.000Z INFO api: request {i} served\n"))
            .collect();
        std::fs::write(&input, &text).unwrap();
        let Plan::Ingest {
            segment,
            until_error,
            ..
        } = plan(
            &input,
            "app.log",
            &Ingested::default(),
            std::time::Duration::ZERO,
        )
        .unwrap()
        else {
            panic!("a new file is ingested");
        };
        assert_eq!(segment.end, text.len() as u64);
        // Cut mid-line, as a copy-truncate caught halfway would leave it.
        std::fs::write(&input, &text.as_bytes()[..text.len() / 2 + 7]).unwrap();
        let out = dir.path().join("part.parquet");
        let err = write_segment(&input, &out, &segment, until_error, 256).unwrap_err();
        assert!(
            format!("{err:#}").contains("shrank while 01-bronze read it"),
            "{err:#}"
        );
        // The whole file, untouched, still reads.
        std::fs::write(&input, &text).unwrap();
        let out = dir.path().join("whole.parquet");
        assert_eq!(
            write_segment(&input, &out, &segment, false, 256).unwrap(),
            1000
        );
    }
}

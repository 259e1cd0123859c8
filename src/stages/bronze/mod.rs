//! `01-bronze`: raw files (plain or gzip; a file or a folder) → `bronze/lines`, lossless.
//!
//! Each input file becomes one Parquet part, `part-<sha256 prefix>.parquet`, in the partition
//! of the batch date. A row is one line exactly as it was (a trailing `\r` included), with its
//! provenance: file path, byte offset and line number (in the decompressed stream for gzip),
//! ingest time and the file's SHA-256. Lines that are not valid UTF-8 keep their exact bytes in
//! `raw` (and a lossy `line`), so nothing is lost before silver decides what to do with them.
//!
//! Files are ingested in segments ([`segments`]): a file that grew since the last run is
//! ingested from where bronze stopped, a rotated or re-delivered file whose content is in
//! bronze already is skipped whatever its name (compressed or not), and a truncated or
//! rewritten file is ingested again from its start with a warning. Each line lands once,
//! whatever the schedule.

mod gather;
mod kafka;
mod objects;
mod resume;
mod segments;
mod writer;

pub use writer::schema;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use super::Context;
use crate::lake::{Layer, tables};
use crate::stages::RunOutcome;
use segments::{Ingested, Plan};

/// Input entries that could not be read: (path, why).
pub type Rejected = Vec<(String, String)>;

/// The input files: files as given, folders walked recursively (hidden entries skipped,
/// symbolic links followed within the folder), sorted so that ingestion order is stable;
/// and the entries not read (a link loop, a dangling link, a link out of the folder, an
/// unreadable folder) with why.
///
/// A link in a folder that points out of it is named, not read: `/var/log/README` links to
/// systemd's documentation, which is no log. A link given as an input is followed.
pub fn list_inputs(inputs: &[PathBuf]) -> Result<(Vec<PathBuf>, Rejected)> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for input in expand_patterns(inputs)? {
        let input = &input;
        if !input.exists() {
            bail!(
                "input {} does not exist (no logs arrived yet, or a typo in --input?)",
                input.display()
            );
        }
        let root = input.canonicalize().unwrap_or_else(|_| input.clone());
        let walk = walkdir::WalkDir::new(input)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
        for entry in walk {
            match entry {
                Ok(e)
                    if e.file_type().is_file()
                        && e.depth() > 0
                        && e.path_is_symlink()
                        && !within(&root, e.path()) =>
                {
                    skipped.push((
                        e.path().display().to_string(),
                        format!(
                            "a symbolic link out of {} (to {}): name it as an input to read it",
                            input.display(),
                            std::fs::canonicalize(e.path())
                                .map(|t| t.display().to_string())
                                .unwrap_or_default()
                        ),
                    ));
                }
                Ok(e) if e.file_type().is_file() => files.push(e.into_path()),
                Ok(e) if e.file_type().is_dir() => {}
                // A device, a FIFO or a socket (or a link to one, /dev/zero): reading it would
                // never end or block; it is named, not read.
                Ok(e) => skipped.push((
                    e.path().display().to_string(),
                    "not a regular file (a device, a FIFO or a socket): logs are read from files"
                        .to_string(),
                )),
                Err(e) => {
                    let at = e
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| input.display().to_string());
                    let why = if e.loop_ancestor().is_some() {
                        "a symbolic link loop".to_string()
                    } else {
                        match e.io_error() {
                            Some(io) if io.kind() == std::io::ErrorKind::NotFound => {
                                "a dangling symbolic link".to_string()
                            }
                            Some(io) => io.to_string(),
                            None => e.to_string(),
                        }
                    };
                    skipped.push((at, why));
                }
            }
        }
    }
    files.sort();
    files.dedup();
    Ok((files, skipped))
}

/// Whether `path` (a link) resolves to somewhere under `root` (canonical).
fn within(root: &Path, path: &Path) -> bool {
    std::fs::canonicalize(path).is_ok_and(|target| target.starts_with(root))
}

/// Standard input, spooled to a file in the lake's staging area for as long as the stage runs.
struct Spool {
    _scratch: crate::lake::Scratch,
    path: PathBuf,
    /// `stdin:<first 16 hex digits of the content's SHA-256>`.
    name: String,
}

impl Spool {
    fn read_stdin(ctx: &Context) -> Result<Spool> {
        use sha2::Digest as _;
        use std::io::{Read as _, Write as _};
        let scratch = ctx.lake.scratch("stdin")?;
        let path = scratch.path("stdin.log");
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        let mut hash = sha2::Sha256::new();
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = stdin.read(&mut buf).context("reading standard input")?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            out.write_all(&buf[..n])
                .with_context(|| format!("spooling standard input to {}", path.display()))?;
        }
        out.flush()?;
        Ok(Spool {
            _scratch: scratch,
            path,
            name: format!("stdin:{}", writer::hex(&hash.finalize()[..8])),
        })
    }
}

/// `inputs` with each glob pattern (`*`, `?`, `[…]` in a path that does not exist as written)
/// replaced by the paths it matches, in name order. Shells expand an unquoted pattern
/// themselves; a quoted one — from a crontab, an Airflow template, a config — arrives here. A
/// pattern that matches nothing is an error, like a missing path.
fn expand_patterns(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        let text = input.to_string_lossy();
        let pattern = text.contains(['*', '?', '[']) && !input.exists();
        if !pattern {
            out.push(input.clone());
            continue;
        }
        let mut matched: Vec<PathBuf> = glob::glob(&text)
            .with_context(|| format!("--input {text} is not a valid pattern"))?
            .filter_map(|m| m.ok())
            .collect();
        if matched.is_empty() {
            bail!(
                "input pattern {text} matches nothing (no logs arrived yet, or a typo in --input?)"
            );
        }
        matched.sort();
        out.extend(matched);
    }
    Ok(out)
}

pub fn run(ctx: &Context) -> Result<RunOutcome> {
    let [date] = ctx.dates[..] else {
        bail!("01-bronze ingests into one batch date: give --date, not a range");
    };
    let topics = &ctx.options.kafka_topics;
    if ctx.options.inputs.is_empty() && topics.is_empty() {
        bail!("01-bronze needs --input <file or folder> or --kafka <topic>");
    }
    let mut files = Files::default();
    if !ctx.options.inputs.is_empty() {
        ingest_files(ctx, date, &mut files)?;
    }
    let mut consumed = kafka::Consumed::default();
    if !topics.is_empty() {
        let brokers = ctx
            .resolved
            .kafka_brokers
            .clone()
            .expect("a command with --kafka resolves its brokers");
        // Under the source's lease on a bucket: two batch dates' runs reading one topic at
        // once would both start from the same committed offsets.
        consumed = ctx
            .with_source_lease(|| kafka::ingest(ctx, date, topics, &brokers, kafka_ranges(ctx)?))?;
        files.rejected.extend(consumed.lost.iter().cloned());
    }
    record_rejected(ctx, date, &files.rejected)?;
    let unreadable = files.unreadable;
    if unreadable > 0
        && files.ingested == 0
        && files.skipped == 0
        && files.empty == 0
        && topics.is_empty()
    {
        bail!(
            "none of the {unreadable} input file(s) could be read (see the warnings above): check their permissions"
        );
    }
    let mut said = Vec::new();
    if !ctx.options.inputs.is_empty() {
        said.push(if files.found == 0 {
            format!(
                "no files under {:?} (no logs arrived for {date}?)",
                ctx.options.inputs
            )
        } else if files.ingested == 0 {
            format!(
                "nothing new: {} file(s) already in bronze{}",
                files.skipped,
                empty_note(files.empty)
            )
        } else {
            format!(
                "{} file(s) or new parts of files ingested ({} lines), {} already in bronze{}",
                files.ingested,
                files.lines,
                files.skipped,
                empty_note(files.empty)
            )
        });
    }
    if !topics.is_empty() {
        said.push(format!(
            "{} Kafka message(s) from {} partition(s) of {}, {} partition(s) with nothing new",
            consumed.messages,
            consumed.partitions,
            topics.join(", "),
            consumed.up_to_date,
        ));
        if !consumed.lost.is_empty() {
            said.push(format!(
                "{} partition(s) lost messages upstream or were recreated, {} message(s) known lost before they were read (see the warnings and quarantine/inputs)",
                consumed.lost.len(),
                consumed.lost_messages
            ));
        }
    }
    let (said, note) = (said.join("; "), unreadable_note(unreadable));
    let rows = files.lines + consumed.messages;
    if files.ingested == 0 && consumed.partitions == 0 {
        return Ok(RunOutcome::nothing_to_do(format!("{said}{note}")));
    }
    Ok(RunOutcome {
        rows_in: rows,
        rows_out: rows,
        rows_quarantined: 0,
        message: format!("{said}, into {date}{note}"),
        ..Default::default()
    })
}

/// What 01-bronze made of its input files.
#[derive(Default)]
struct Files {
    /// Files found under the inputs.
    found: usize,
    ingested: usize,
    skipped: usize,
    /// Empty files: nothing to ingest, and not "already in bronze".
    empty: usize,
    /// Files and folder entries that could not be read.
    unreadable: usize,
    lines: u64,
    /// What could not be read (or was lost upstream), for `quarantine/inputs`.
    rejected: Rejected,
}

fn empty_note(empty: usize) -> String {
    match empty {
        0 => String::new(),
        n => format!(", {n} empty"),
    }
}

fn ingest_files(ctx: &Context, date: chrono::NaiveDate, tally: &mut Files) -> Result<()> {
    // `--input -`: standard input, spooled to the lake's staging area and ingested as a file
    // named by its content, `stdin:<sha>` (piping the same text again finds it in bronze).
    let stdin = if ctx.options.inputs.iter().any(|i| i.as_os_str() == "-") {
        Some(Spool::read_stdin(ctx)?)
    } else {
        None
    };
    // `--input s3://…`: fetched into the staging area too, ingested under their URLs.
    let fetched = objects::fetch(ctx, &ctx.options.inputs)?;
    let mut inputs: Vec<PathBuf> = ctx
        .options
        .inputs
        .iter()
        .filter(|i| i.as_os_str() != "-" && !objects::is_url(i))
        .cloned()
        .collect();
    inputs.extend(stdin.as_ref().map(|s| s.path.clone()));
    inputs.extend(fetched.names.keys().cloned());
    let (files, rejected) = list_inputs(&inputs)?;
    for (entry, why) in &rejected {
        tracing::warn!(entry = %crate::lake::printable(entry), "input entry skipped: {why}");
    }
    tally.unreadable = rejected.len();
    tally.rejected = rejected;
    tally.found = files.len();
    if files.is_empty() {
        return Ok(());
    }
    let mut known = ingested_of(ctx)?;
    let mut gathered = gather::Gathered::default();
    let total = files.len() as u64;
    for (i, file) in files.iter().enumerate() {
        ctx.progress.step(format!(
            "file {}/{total}: {}",
            i + 1,
            crate::lake::shown(file)
        ));
        let mut wait =
            std::time::Duration::from_secs(ctx.settings.lake.unfinished_line_wait_seconds);
        let name = match (&stdin, fetched.names.get(file)) {
            // Standard input has ended, and an object is whole: the last line is complete,
            // newline or not.
            (Some(spool), _) if file == &spool.path => {
                wait = std::time::Duration::ZERO;
                spool.name.clone()
            }
            (_, Some(url)) => {
                wait = std::time::Duration::ZERO;
                url.clone()
            }
            _ => file.to_string_lossy().into_owned(),
        };
        let plan = match super::timed("01-bronze: file read and checksummed", || {
            segments::plan(file, &name, &known, wait)
        }) {
            Ok(plan) => plan,
            Err(e) => {
                // One unreadable file does not stop the others; it is counted and named.
                let why = format!("{e:#}");
                tracing::warn!(file = %crate::lake::shown(file), error = %crate::lake::printable(&why), "input not readable; skipped (fix it and run 01-bronze again: nothing of it was ingested)");
                tally.rejected.push((file.display().to_string(), why));
                tally.unreadable += 1;
                continue;
            }
        };
        let (segment, until_error) = match plan {
            Plan::Skip { why } => {
                tracing::info!(file = %crate::lake::shown(file), "{why}; skipped");
                tally.skipped += 1;
                continue;
            }
            Plan::Empty => {
                tracing::info!(file = %crate::lake::shown(file), "empty; skipped");
                tally.empty += 1;
                continue;
            }
            Plan::Ingest {
                segment,
                rewritten,
                until_error,
                held_back,
            } => {
                if rewritten {
                    tracing::warn!(file = %crate::lake::shown(file), "this file was ingested before with other content (truncated or rewritten?): ingesting it again from its start");
                }
                if held_back {
                    tracing::info!(file = %crate::lake::shown(file), "its last line has no newline yet (still being written?): left for a later run");
                }
                (segment, until_error)
            }
        };
        // Known at once, so that a later input of the same content (a rotated copy given in
        // the same run) is recognised before this one's part is written.
        known
            .part_names
            .insert(segment.prefix_sha[..32].to_string());
        known.add(segment.clone());
        if !until_error && gather::is_small(&segment) {
            gathered.add(ctx, date, tally, file, segment)?;
        } else {
            // In file order: what waits goes first.
            gathered.commit(ctx, date, tally)?;
            tally.lines += gather::commit_one(ctx, date, file, &segment, until_error)?;
            tally.ingested += 1;
        }
    }
    gathered.commit(ctx, date, tally)?;
    Ok(())
}

fn unreadable_note(unreadable: usize) -> String {
    if unreadable == 0 {
        String::new()
    } else {
        format!(
            "; {unreadable} file(s) or folder entries could not be read and were skipped (see the warnings)"
        )
    }
}

/// Record the input entries 01-bronze could not read in `quarantine/inputs` (path, reason),
/// beside the lines silver could not parse: one part per distinct set, so an hourly run that
/// meets the same broken file again does not record it again.
fn record_rejected(
    ctx: &Context,
    date: chrono::NaiveDate,
    rejected: &[(String, String)],
) -> Result<()> {
    if rejected.is_empty() {
        return Ok(());
    }
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (path, why) in rejected {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(why.as_bytes());
        hasher.update([0]);
    }
    let name = format!("part-{}.parquet", &writer::hex(&hasher.finalize())[..32]);
    let mut frame = polars::prelude::DataFrame::new_infer_height(vec![
        polars::prelude::Column::new(
            "path".into(),
            rejected.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        ),
        polars::prelude::Column::new(
            "reason".into(),
            rejected.iter().map(|(_, w)| w.as_str()).collect::<Vec<_>>(),
        ),
    ])?;
    ctx.lake.commit_part_file(
        Layer::Quarantine,
        tables::INPUTS,
        &ctx.source,
        date,
        &name,
        |staged| crate::lake::write_parquet(&mut frame, staged),
    )?;
    Ok(())
}

/// What bronze holds of this source: each part's segment (from its footer) and its name; a
/// part that gathers small files records each file's segment, each known by its own checksum
/// as a part of one file is by its name.
fn ingested_of(ctx: &Context) -> Result<Ingested> {
    let mut known = Ingested::default();
    let keys = [segments::SEGMENT_KEY, segments::SEGMENTS_KEY];
    for (d, name, mut records) in footer_records(ctx, &keys)? {
        let unreadable = |e: serde_json::Error| {
            anyhow::anyhow!("the segment record of bronze part {name} of {d} is unreadable: {e}")
        };
        if let Some(stem) = name
            .strip_suffix(".parquet")
            .and_then(|s| s.strip_prefix("part-"))
        {
            known.part_names.insert(stem.to_string());
        }
        if let Some(text) = records[0].take() {
            known.add(serde_json::from_str(&text).map_err(unreadable)?);
        }
        if let Some(text) = records[1].take() {
            let gathered: Vec<segments::Segment> =
                serde_json::from_str(&text).map_err(unreadable)?;
            for segment in gathered {
                known
                    .part_names
                    .insert(segment.prefix_sha[..32].to_string());
                known.add(segment);
            }
        }
    }
    Ok(known)
}

/// The Kafka offset ranges bronze holds of this source, from its parts' footers.
fn kafka_ranges(ctx: &Context) -> Result<Vec<kafka::offsets::Range>> {
    let mut ranges = Vec::new();
    for (d, name, mut records) in footer_records(ctx, &[kafka::offsets::RANGE_KEY])? {
        if let Some(text) = records[0].take() {
            let held: Vec<kafka::offsets::Range> = serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "the Kafka offset record of bronze part {name} of {d} is unreadable: {e}"
                )
            })?;
            ranges.extend(held);
        }
    }
    Ok(ranges)
}

/// A bronze part's date, file name and footer records (see [`footer_records`]).
type FooterRecords = (chrono::NaiveDate, String, Vec<Option<String>>);

/// Every bronze part of this source, by date, with its footer record of each of `keys` (in
/// order) where it has one.
/// Footer values only: a lake on object storage answers from its manifests, without fetching
/// every earlier day's lines.
fn footer_records(ctx: &Context, keys: &[&str]) -> Result<Vec<FooterRecords>> {
    let mut records = Vec::new();
    for d in ctx
        .lake
        .partition_dates(Layer::Bronze, tables::LINES, &ctx.source)?
    {
        for (name, value) in
            ctx.lake
                .footer_values(Layer::Bronze, tables::LINES, &ctx.source, d, keys)?
        {
            records.push((d, name, value));
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::Path;

    /// A whole new file through planning and writing, as one segment; its line count.
    fn write_bronze_file(input: &Path, out: &Path, batch_rows: usize) -> Result<u64> {
        let Plan::Ingest {
            segment,
            until_error,
            ..
        } = segments::plan(
            input,
            &input.to_string_lossy(),
            &Ingested::default(),
            std::time::Duration::ZERO,
        )?
        else {
            panic!("a new file is ingested");
        };
        writer::write_segment(input, out, &segment, until_error, batch_rows)
    }

    #[test]
    fn keeps_lines_verbatim_with_provenance() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("a.log");
        std::fs::write(&input, b"first\r\nsecond \xff bytes\n\nlast no newline").unwrap();
        let out = dir.path().join("a.parquet");
        let n = write_bronze_file(&input, &out, 2).unwrap();
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
        let n = write_bronze_file(&gz, &dir.path().join("a.parquet"), 100).unwrap();
        assert_eq!(n, 1000);

        // A truncated file: the lines before the cut are kept, and one last row carries
        // what was read of the broken line with the reason.
        let cut = dir.path().join("cut.log.gz");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let out = dir.path().join("b.parquet");
        let n = write_bronze_file(&cut, &out, 100).unwrap();
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

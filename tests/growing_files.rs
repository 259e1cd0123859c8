//! A log that grows, is rotated, compressed or rewritten between runs: bronze holds each line
//! exactly once, whatever the schedule.

mod common;

use std::io::Write;
use std::path::Path;

use chrono::NaiveDate;
use loglake::lake::{Lake, Layer, tables};
use polars::prelude::*;

const DATE: &str = "2026-11-21";

fn line(n: usize) -> String {
    format!(
        "2026-11-21 10:{:02}:{:02} INFO api: request {n} served in {} ms\n",
        (n / 60) % 60,
        n % 60,
        n % 97
    )
}

fn append(path: &Path, from: usize, to: usize) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for n in from..to {
        f.write_all(line(n).as_bytes()).unwrap();
    }
}

/// The loglake binary's 01-bronze on `input` (a path, or - for standard input), with `flags`
/// before the command.
fn bronze_command(lake: &Path, input: &str, flags: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_loglake"));
    command
        .args([
            "--lake",
            lake.to_str().unwrap(),
            "--source",
            "app",
            "--date",
            DATE,
        ])
        .args(flags)
        .args(["01-bronze", "--input", input]);
    command
}

/// [`bronze_command`] on the file or folder `input`, run.
fn bronze(lake: &Path, input: &Path, flags: &[&str]) -> std::process::Output {
    bronze_command(lake, input.to_str().unwrap(), flags)
        .output()
        .unwrap()
}

/// Run 01-bronze on `input`; returns whether it ingested something.
fn ingest(lake: &Path, input: &Path) -> bool {
    let out = bronze(lake, input, &["--skip-exit-code", "99"]);
    let code = out.status.code().unwrap();
    assert!(
        code == 0 || code == 99,
        "01-bronze failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    code == 0
}

/// The line numbers of `rows`' lines from files whose name ends with `suffix`, in order.
fn line_numbers(rows: &DataFrame, suffix: &str) -> Vec<u64> {
    rows.clone()
        .lazy()
        .filter(col("file").str().ends_with(lit(suffix)))
        .collect()
        .unwrap()
        .column("line_no")
        .unwrap()
        .u64()
        .unwrap()
        .into_no_null_iter()
        .collect()
}

/// Bronze's (file, line_no, line) rows, sorted.
fn rows(lake: &Path) -> DataFrame {
    let d = NaiveDate::parse_from_str(DATE, "%Y-%m-%d").unwrap();
    Lake::new(lake)
        .scan(Layer::Bronze, tables::LINES, "app", &[d])
        .unwrap()
        .unwrap()
        .select([col("file"), col("line_no"), col("byte_offset"), col("line")])
        .sort(["file", "line_no"], Default::default())
        .collect()
        .unwrap()
}

fn lines_of(df: &DataFrame) -> Vec<String> {
    df.column("line")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|l| l.unwrap().to_string())
        .collect()
}

#[test]
fn each_line_lands_once_through_growth_rotation_and_rewrite() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("app.log");
    common::loglake(&["--lake", lake.to_str().unwrap(), "--date", DATE, "00-init"]).unwrap();

    // First run, then the file grows: only the new lines are added, numbered on.
    append(&log, 0, 1_000);
    assert!(ingest(&lake, &logs));
    append(&log, 1_000, 1_500);
    assert!(ingest(&lake, &logs));
    let df = rows(&lake);
    assert_eq!(df.height(), 1_500);
    assert_eq!(line_numbers(&df, ""), (1..=1_500).collect::<Vec<u64>>());
    let size_1000 = (0..1_000).map(|n| line(n).len() as u64).sum::<u64>();
    let offset_1001 = df
        .column("byte_offset")
        .unwrap()
        .u64()
        .unwrap()
        .get(1_000)
        .unwrap();
    assert_eq!(offset_1001, size_1000);

    // Nothing new: a re-run adds nothing.
    assert!(!ingest(&lake, &logs));

    // A line still being written waits; once finished it lands whole.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(b"2026-11-21 11:00:00 INFO api: half a li")
        .unwrap();
    drop(f);
    assert!(!ingest(&lake, &logs));
    assert_eq!(rows(&lake).height(), 1_500);
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(b"ne, now finished\n").unwrap();
    drop(f);
    append(&log, 1_500, 1_502);
    assert!(ingest(&lake, &logs));
    let all = lines_of(&rows(&lake));
    assert_eq!(all.len(), 1_503);
    assert!(all.contains(&"2026-11-21 11:00:00 INFO api: half a line, now finished".to_string()));

    // Rotation: renamed and compressed, a new file started. Only the new file's lines land.
    let rotated = logs.join("app.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let gz = logs.join("app.log.1.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&std::fs::read(&rotated).unwrap()).unwrap();
    enc.finish().unwrap();
    std::fs::remove_file(&rotated).unwrap();
    append(&log, 5_000, 5_100);
    assert!(ingest(&lake, &logs));
    assert_eq!(rows(&lake).height(), 1_603);

    // The rotated file had grown before it was compressed: its tail lands, numbered on.
    let mut content = Vec::new();
    {
        use std::io::Read;
        flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap())
            .read_to_end(&mut content)
            .unwrap();
    }
    for n in 1_502..1_510 {
        content.extend_from_slice(line(n).as_bytes());
    }
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&content).unwrap();
    enc.finish().unwrap();
    assert!(ingest(&lake, &logs));
    let df = rows(&lake);
    assert_eq!(df.height(), 1_611);
    let gz_numbers = line_numbers(&df, ".gz");
    assert_eq!(gz_numbers, (1_504..=1_511).collect::<Vec<u64>>());

    // Truncated and rewritten: ingested again from its start.
    std::fs::remove_file(&log).unwrap();
    append(&log, 9_000, 9_010);
    assert!(ingest(&lake, &logs));
    assert_eq!(rows(&lake).height(), 1_621);
    assert!(!ingest(&lake, &logs));
}

/// Folders are walked with links followed: a link loop and a dangling link are reported and
/// skipped, zstd input is read like gzip, and bzip2/xz are refused by their first bytes —
/// each counted, the rest ingested.
#[test]
fn odd_inputs_are_read_or_reported_never_dropped_silently() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(logs.join("sub")).unwrap();
    append(&logs.join("plain.log"), 0, 10);
    let mut zst = Vec::new();
    for n in 10..30 {
        zst.extend_from_slice(line(n).as_bytes());
    }
    std::fs::write(
        logs.join("rotated.log.zst"),
        zstd::encode_all(&zst[..], 3).unwrap(),
    )
    .unwrap();
    std::fs::write(logs.join("old.log.bz2"), b"BZh91AY&SY fake bzip2").unwrap();
    std::fs::write(logs.join("old.log.xz"), b"\xfd7zXZ\x00 fake xz").unwrap();
    std::os::unix::fs::symlink(&logs, logs.join("sub").join("loop")).unwrap();
    std::os::unix::fs::symlink(logs.join("gone.log"), logs.join("dangling.log")).unwrap();
    // A link to a device that never ends: named, never read.
    std::os::unix::fs::symlink("/dev/zero", logs.join("zeros.log")).unwrap();
    // A link out of the folder (as /var/log/README links to documentation): named, not read.
    let elsewhere = tmp.path().join("README.logs");
    std::fs::write(&elsewhere, line(99)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, logs.join("README")).unwrap();
    common::loglake(&["--lake", lake.to_str().unwrap(), "--date", DATE, "00-init"]).unwrap();

    let out = bronze(&lake, &logs, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(rows(&lake).height(), 30, "plain and zstd lines: {stdout}");
    assert!(
        stdout.contains("6 file(s) or folder entries could not be read"),
        "{stdout}"
    );
    // Each is recorded in quarantine/inputs with its reason; a second run adds no copy.
    let out = bronze(&lake, &logs, &[]);
    assert!(out.status.success());
    let d = NaiveDate::parse_from_str(DATE, "%Y-%m-%d").unwrap();
    let recorded = Lake::new(&lake)
        .scan(Layer::Quarantine, tables::INPUTS, "app", &[d])
        .unwrap()
        .expect("quarantine/inputs")
        .collect()
        .unwrap();
    assert_eq!(recorded.height(), 6, "{recorded:?}");
    let reasons: Vec<String> = recorded
        .column("reason")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|r| r.unwrap().to_string())
        .collect();
    for expected in [
        "bzip2-compressed",
        "xz-compressed",
        "symbolic link loop",
        "dangling symbolic link",
        "not a regular file",
        "symbolic link out of",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "{expected}: {reasons:?}"
        );
    }
}

#[test]
fn a_quoted_pattern_ingests_the_files_it_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    for (k, name) in ["a.log", "b.log", "notes.txt"].iter().enumerate() {
        std::fs::write(
            logs.join(name),
            format!("{}{}", line(2 * k), line(2 * k + 1)),
        )
        .unwrap();
    }
    let lake = tmp.path().join("lake");
    common::loglake(&["--lake", lake.to_str().unwrap(), "--date", DATE, "00-init"]).unwrap();
    // As cron or Airflow pass it: one argument, not expanded by a shell.
    assert!(ingest(&lake, &logs.join("*.log")));
    let df = rows(&lake);
    let files: Vec<String> = df
        .column("file")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|f| {
            Path::new(f.unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(files, ["a.log", "a.log", "b.log", "b.log"]);
    // A pattern that matches nothing is an error that says so.
    let out = bronze(&lake, &logs.join("*.gz"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("matches nothing"));
}

#[test]
fn standard_input_is_ingested_once_under_a_name_of_its_content() {
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    common::loglake(&["--lake", lake.to_str().unwrap(), "--date", DATE, "00-init"]).unwrap();
    let piped = |text: &str| {
        let mut child = bronze_command(&lake, "-", &["--skip-exit-code", "99"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    // The last line has no newline: the stream has ended, so it is complete.
    let text = format!("{}{}last line", line(1), line(2));
    let out = piped(&text);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let df = rows(&lake);
    assert_eq!(df.height(), 3);
    let files: Vec<&str> = df
        .column("file")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|f| f.unwrap())
        .collect();
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("stdin:") && f.len() == 22),
        "{files:?}"
    );
    // The same text again: already in bronze, nothing to do.
    let again = piped(&text);
    assert_eq!(
        again.status.code(),
        Some(99),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(rows(&lake).height(), 3);
    // Nothing is left in staging.
    assert_eq!(std::fs::read_dir(lake.join("_staging")).unwrap().count(), 0);
}

/// Many small files go into few parts, each line once; a re-run finds them all, and one that
/// grew is read from where it stopped, as a file of its own part would be.
#[test]
fn many_small_files_are_gathered_into_few_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    for f in 0..400 {
        append(&logs.join(format!("f{f:03}.log")), f * 10, f * 10 + 10);
    }
    common::loglake(&["--lake", lake.to_str().unwrap(), "--date", DATE, "00-init"]).unwrap();
    assert!(ingest(&lake, &logs));
    let d = NaiveDate::parse_from_str(DATE, "%Y-%m-%d").unwrap();
    let parts = Lake::new(&lake)
        .part_files(Layer::Bronze, tables::LINES, "app", d)
        .unwrap()
        .len();
    assert!(parts <= 4, "400 files of 10 lines in {parts} parts");
    let all = rows(&lake);
    assert_eq!(all.height(), 4000);
    assert!(!ingest(&lake, &logs), "a re-run found something new");

    append(&logs.join("f123.log"), 4000, 4005);
    assert!(ingest(&lake, &logs));
    let grown = rows(&lake);
    assert_eq!(grown.height(), 4005, "only the 5 new lines");
    assert_eq!(
        line_numbers(&grown, "f123.log"),
        (1..=15).collect::<Vec<_>>()
    );
}

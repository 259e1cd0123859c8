//! What several integration tests share: generated logs with labels, and running loglake on them.
// Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

pub mod server;

use std::io::{BufRead as _, Read as _, Write as _};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use loglake::generate::{GenerateOptions, generate};

/// Generate `days` days of source `shop` from `start` (YYYY-MM-DD) under `dir/raw`: logs in
/// `raw/logs/shop-<date>.log`, labels in `raw/labels.jsonl`. Returns `dir/raw`.
pub fn generated(dir: &Path, start: &str, days: u32, lines_per_day: u64, seed: u64) -> PathBuf {
    let raw = dir.join("raw");
    generate(&GenerateOptions {
        out_dir: raw.clone(),
        source: "shop".into(),
        start: NaiveDate::parse_from_str(start, "%Y-%m-%d").unwrap(),
        days,
        lines_per_day,
        seed,
    })
    .unwrap();
    raw
}

/// `loglake ARGS` in this process (what `main` runs, minus the exit code).
pub fn loglake(args: &[&str]) -> anyhow::Result<()> {
    use clap::Parser as _;
    let mut argv = vec!["loglake"];
    argv.extend_from_slice(args);
    loglake::cli::run(loglake::cli::Cli::try_parse_from(argv)?).map(|_| ())
}

/// The environment that configures `source` as the generator's logs (its format, sessions
/// keyed by `req=`), as an operator's `[sources.<name>]` would: every stage reads it, so
/// commands need no per-stage `--format` / `--session-key`.
pub fn generator_source(source: &str) -> [(String, &'static str); 2] {
    let key = |setting: &str| format!("LOGLAKE__SOURCES__{}__{setting}", source.to_uppercase());
    [
        (key("FORMAT"), "generator"),
        (key("SESSION_KEY"), r"req=(\S+)"),
    ]
}

/// The `loglake` binary on lake `lake` for source `shop` (generator format, `req=`
/// sessions), batch `date`, with `args`.
pub fn shop(lake: &Path, date: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_loglake"))
        .args(["--lake", lake.to_str().unwrap(), "--source", "shop"])
        .args(["--date", date])
        .args(args)
        .envs(generator_source("shop"))
        .output()
        .unwrap()
}

/// [`shop`], panicking with its stderr unless it succeeds.
pub fn shop_ok(lake: &Path, date: &str, args: &[&str]) -> std::process::Output {
    let out = shop(lake, date, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `out`, after checking the command succeeded (else panicking with its stderr).
pub fn succeeded(out: std::process::Output) -> std::process::Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The standard output of a command that succeeded (see [`succeeded`]).
pub fn stdout_ok(out: std::process::Output) -> String {
    String::from_utf8(succeeded(out).stdout).expect("loglake writes UTF-8")
}

/// Run every stage up to `last_stage` for each of `days` (YYYY-MM-DD), in order, each on its
/// own generated file `raw/logs/shop-<day>.log`.
pub fn run_each_day(lake: &Path, raw: &Path, days: &[&str], last_stage: &str) {
    for day in days {
        let logs = raw.join("logs").join(format!("shop-{day}.log"));
        shop_ok(
            lake,
            day,
            &["run", "--to", last_stage, "--input", logs.to_str().unwrap()],
        );
    }
}

/// Every request a [`recorder`] got: path and JSON body.
pub type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>;

/// An HTTP server on a loopback port that answers 200 to everything and keeps what it got.
pub fn recorder() -> (u16, Received) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Received = std::sync::Arc::default();
    let keep = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() || line.is_empty() {
                continue;
            }
            let path = line.split(' ').nth(1).unwrap_or_default().to_string();
            let mut length = 0;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            keep.lock().unwrap().push((
                path,
                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            ));
            let mut stream = stream;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, got)
}

/// The anomalies of `days` (YYYY-MM-DD) of `source`, read from the lake at `url` (a folder or
/// `s3://…`) as a new reader would, without the columns that name the run that found them or
/// any in `without`, sorted by every column: two lakes found the same anomalies when these are
/// equal.
pub fn lake_anomalies(
    url: &str,
    source: &str,
    days: &[&str],
    without: &[&str],
) -> polars::prelude::DataFrame {
    use loglake::lake::location::LakeLocation;
    use loglake::lake::{Lake, Layer, tables};
    let lake = Lake::open(&LakeLocation::parse(url).unwrap()).unwrap();
    let dates: Vec<NaiveDate> = days.iter().map(|d| d.parse().unwrap()).collect();
    let found = lake
        .scan(Layer::Detections, tables::ANOMALIES, source, &dates)
        .unwrap()
        .expect("anomalies were committed")
        .collect()
        .unwrap()
        .drop_many(["run_id", "detected_at"])
        .drop_many(without.iter().copied());
    sorted_by_every_column(found)
}

/// `df`'s rows sorted by all its columns, in order: a table compared as a set of rows.
pub fn sorted_by_every_column(df: polars::prelude::DataFrame) -> polars::prelude::DataFrame {
    let by: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    df.sort(by, Default::default()).unwrap()
}

/// A generated day of `lines` lines (source `shop`, starting `day`) split into `n` files of
/// consecutive lines under `dir`: the shards a scheduler would fan the day out over.
pub fn shard_files(dir: &Path, day: &str, lines: u64, n: usize) -> Vec<PathBuf> {
    let raw = generated(dir, day, 1, lines, 21);
    let text = std::fs::read_to_string(raw.join("logs").join(format!("shop-{day}.log"))).unwrap();
    let all: Vec<&str> = text.lines().collect();
    all.chunks(all.len().div_ceil(n))
        .enumerate()
        .map(|(i, chunk)| {
            let path = dir.join(format!("shard-{i}.log"));
            std::fs::write(&path, chunk.join("\n") + "\n").unwrap();
            path
        })
        .collect()
}

/// The real log data beside the checkout (`../shared/data`): `None`, with a note, in a clone
/// that has nothing beside it; CI always has it, so there its absence fails the test.
pub fn shared_data() -> Option<PathBuf> {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if data.is_dir() {
        return Some(data);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: CI runs with ../shared beside the clone",
        data.display()
    );
    eprintln!(
        "{} is not there: skipping the checks on the larger real samples (the carried ones in tests/data still run)",
        data.display()
    );
    None
}

/// Where two frames first differ (column, row, both values), for a failing comparison's
/// message.
pub fn first_difference(a: &polars::prelude::DataFrame, b: &polars::prelude::DataFrame) -> String {
    if a.height() != b.height() || a.width() != b.width() {
        return format!("shapes {:?} and {:?}", a.shape(), b.shape());
    }
    for c in a.get_column_names() {
        let (x, y) = match (a.column(c), b.column(c)) {
            (Ok(x), Ok(y)) => (x, y),
            _ => return format!("column {c} is missing from one"),
        };
        for i in 0..x.len() {
            let (u, v) = (x.get(i).ok(), y.get(i).ok());
            if u != v {
                return format!("first difference: column {c}, row {i}: {u:?} and {v:?}");
            }
        }
    }
    "no difference found".into()
}

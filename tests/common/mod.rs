//! What several integration tests share: generated logs with labels, and running loglake on them.
// Each test binary compiles this module and uses only some of it.
#![allow(dead_code)]

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

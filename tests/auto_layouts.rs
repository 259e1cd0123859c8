//! `--format auto` on logs no preset describes: Debian's dpkg, update-alternatives and apt
//! history logs (lines shaped like those a Debian machine writes under /var/log). The
//! generic layout reads them; every line ends in an event, in an event's continuation, or in
//! quarantine with its reason.

use std::path::Path;

use chrono::NaiveDate;
use loglake::lake::{Lake, Layer, tables};
use polars::prelude::*;

mod common;

/// Run the pipeline on `log` with `--format auto` up to 02-silver; silver's events and
/// quarantine. (A few dozen lines are too few for 04-train, which says so.)
fn run_auto(dir: &Path, name: &str, log: &str) -> (DataFrame, DataFrame) {
    let input = dir.join(name);
    std::fs::write(&input, log).unwrap();
    let lake_dir = dir.join(format!("lake-{name}"));
    to_silver(&lake_dir, "debian", &input).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    (
        table(&lake_dir, "debian", Layer::Silver, tables::EVENTS),
        table(&lake_dir, "debian", Layer::Quarantine, tables::UNPARSED),
    )
}

/// `run --to 02-silver --format auto` of `input` for `source` on 2025-06-24.
fn to_silver(lake_dir: &Path, source: &str, input: &Path) -> anyhow::Result<()> {
    common::loglake(&[
        "--lake",
        lake_dir.to_str().unwrap(),
        "--source",
        source,
        "--date",
        "2025-06-24",
        "run",
        "--to",
        "02-silver",
        "--input",
        input.to_str().unwrap(),
        "--format",
        "auto",
    ])
}

/// `source`'s `table` of 2025-06-24 in the lake at `lake_dir`.
fn table(lake_dir: &Path, source: &str, layer: Layer, table: &str) -> DataFrame {
    let d = [NaiveDate::from_ymd_opt(2025, 6, 24).unwrap()];
    Lake::new(lake_dir)
        .scan(layer, table, source, &d)
        .unwrap()
        .unwrap()
        .collect()
        .unwrap()
}

fn strings(df: &DataFrame, column: &str) -> Vec<String> {
    df.column(column)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect()
}

#[test]
fn logs_without_a_preset_parse_with_the_generic_layout() {
    let tmp = tempfile::tempdir().unwrap();

    let mut dpkg = String::new();
    for i in 0..40 {
        let s = i % 60;
        dpkg.push_str(&format!(
            "2025-06-24 14:36:{s:02} startup archives unpack\n\
             2025-06-24 14:36:{s:02} upgrade libsystemd0:amd64 252.36-1~deb12u{i} 252.38-1~deb12u{i}\n\
             2025-06-24 14:36:{s:02} status half-configured libc-bin:amd64 2.36-9+deb12u{i}\n"
        ));
    }
    let (events, quarantined) = run_auto(tmp.path(), "dpkg.log", &dpkg);
    assert_eq!(events.height(), 120);
    assert_eq!(quarantined.height(), 0);
    let messages = strings(&events, "message");
    assert_eq!(
        messages[1],
        "upgrade libsystemd0:amd64 252.36-1~deb12u0 252.38-1~deb12u0"
    );
    let ts = events
        .column("ts")
        .unwrap()
        .as_materialized_series()
        .clone();
    assert_eq!(ts.null_count(), 0);

    let alternatives = (0..30)
        .map(|i| {
            format!(
                "update-alternatives 2025-06-24 14:37:{:02}: link group pager{i} updated to point to /usr/bin/less\n",
                i % 60
            )
        })
        .collect::<String>();
    let (events, quarantined) = run_auto(tmp.path(), "alternatives.log", &alternatives);
    assert_eq!((events.height(), quarantined.height()), (30, 0));
    assert_eq!(strings(&events, "service")[0], "update-alternatives");
    assert!(strings(&events, "message")[0].starts_with("link group pager0 updated"));

    // apt's history: a record per run, its details on the lines after Start-Date, a blank
    // line between records.
    let mut history = String::new();
    for i in 0..10 {
        history.push_str(&format!(
            "\nStart-Date: 2025-06-24  15:{i:02}:01\n\
             Commandline: apt-get -qqy install pkg{i}\n\
             Install: pkg{i}:amd64 (1.{i}-1)\n\
             End-Date: 2025-06-24  15:{i:02}:09\n"
        ));
    }
    let (events, quarantined) = run_auto(tmp.path(), "history.log", &history);
    assert_eq!(
        events.height(),
        20,
        "a Start-Date and an End-Date event per record"
    );
    let starts: Vec<String> = strings(&events, "message")
        .into_iter()
        .filter(|m| m.contains("Commandline"))
        .collect();
    assert_eq!(starts.len(), 10);
    assert!(starts[3].contains("Install: pkg3:amd64"), "{}", starts[3]);
    assert_eq!(
        strings(&quarantined, "reason"),
        vec!["empty line"; 10],
        "the blank lines between records, counted"
    );
}

/// `--input` a folder of logs in several formats, one of which no format reads: each file is
/// read in the format detected on its own first lines; the odd file's lines are quarantined
/// with why, and the run goes on. A later run reads the files' new lines in the formats
/// recorded for them.
#[test]
fn each_file_of_a_folder_is_read_in_its_own_format() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("log");
    std::fs::create_dir_all(&logs).unwrap();
    let dpkg = |from: usize, to: usize| -> String {
        (from..to)
            .map(|i| {
                format!(
                    "2025-06-24 14:36:{:02} status installed libc-bin:amd64 2.36-9+deb12u{i}\n",
                    i % 60
                )
            })
            .collect()
    };
    std::fs::write(logs.join("dpkg.log"), dpkg(0, 40)).unwrap();
    let auth: String = (0..25)
        .map(|i| {
            format!(
                "Jun 24 14:38:{:02} host sshd[{}]: Accepted publickey for admin from 10.0.0.{i} port 22 ssh2\n",
                i % 60,
                100 + i
            )
        })
        .collect();
    std::fs::write(logs.join("auth.log"), auth).unwrap();
    let term: String = (0..15)
        .map(|i| format!("Unpacking libfoo{i}:amd64 (1.{i}-1) over (1.{i}-0) ...\n"))
        .collect();
    std::fs::write(logs.join("term.log"), term).unwrap();

    let lake_dir = tmp.path().join("lake");
    let run = || to_silver(&lake_dir, "host", &logs).unwrap_or_else(|e| panic!("{e:#}"));
    run();
    let read = |layer, name| table(&lake_dir, "host", layer, name);
    let events = read(Layer::Silver, tables::EVENTS);
    let by_file = |df: &DataFrame, name: &str| -> Vec<usize> {
        strings(df, "file")
            .iter()
            .enumerate()
            .filter(|(_, f)| f.ends_with(name))
            .map(|(i, _)| i)
            .collect()
    };
    assert_eq!(by_file(&events, "dpkg.log").len(), 40);
    assert_eq!(by_file(&events, "auth.log").len(), 25);
    assert!(by_file(&events, "term.log").is_empty());
    let services = strings(&events, "service");
    let messages = strings(&events, "message");
    let first_auth = by_file(&events, "auth.log")[0];
    assert_eq!(services[first_auth], "sshd", "auth.log read as syslog");
    assert!(messages[first_auth].starts_with("Accepted publickey for admin"));
    let first_dpkg = by_file(&events, "dpkg.log")[0];
    assert!(
        messages[first_dpkg].starts_with("status installed libc-bin:amd64"),
        "dpkg.log read in its own layout: {}",
        messages[first_dpkg]
    );
    let quarantined = read(Layer::Quarantine, tables::UNPARSED);
    let term_rows = by_file(&quarantined, "term.log");
    assert_eq!((quarantined.height(), term_rows.len()), (15, 15));
    assert!(
        strings(&quarantined, "reason")[term_rows[0]].contains("no preset reads"),
        "{:?}",
        strings(&quarantined, "reason")
    );

    // New lines of dpkg.log, read as its first were.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(logs.join("dpkg.log"))
        .unwrap();
    std::io::Write::write_all(&mut file, dpkg(40, 50).as_bytes()).unwrap();
    drop(file);
    run();
    let events = read(Layer::Silver, tables::EVENTS);
    assert_eq!(by_file(&events, "dpkg.log").len(), 50);
    let messages = strings(&events, "message");
    let last_dpkg = *by_file(&events, "dpkg.log").last().unwrap();
    assert!(messages[last_dpkg].starts_with("status installed libc-bin:amd64 2.36-9+deb12u49"));
}

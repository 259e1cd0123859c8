//! A batch larger than `[parse] window_lines` is parsed a window at a time, its templates mined
//! after the last window: silver must be exactly what parsing the whole batch at once gives — events, templates, quarantine — with
//! stack traces that straddle a window boundary joined to their event, and a continuation line
//! before any event quarantined; and training, which reads events a window at a time, must
//! fit the same models.

mod common;

use std::fmt::Write as _;

use chrono::NaiveDate;
use loglake::lake::{Lake, Layer, tables};
use polars::prelude::*;

const DATE: &str = "2026-11-21";

fn silver(lake: &std::path::Path, table: &str, layer: Layer) -> DataFrame {
    let d = [NaiveDate::parse_from_str(DATE, "%Y-%m-%d").unwrap()];
    Lake::new(lake)
        .scan(layer, table, "app", &d)
        .unwrap()
        .unwrap()
        .collect()
        .unwrap()
}

#[test]
fn windows_write_the_same_silver_as_one_pass() {
    let tmp = tempfile::tempdir().unwrap();
    // 50,000 lines, so that 16,384-line windows split the batch in four; a stack trace
    // starts right at each window boundary (and runs on into it), one line is no log line at
    // all, and the file opens with a continuation line that has no event before it.
    let mut log = String::from("\tat com.example.Orphan.run(Orphan.java:1)\n");
    let mut n = 1;
    while n < 50_000 {
        let boundary = n > 16_000 && (n + 2) % 16_384 < 4;
        if boundary {
            log.push_str("\tat com.example.Worker.run(Worker.java:42)\n");
        } else if n == 30_000 {
            log.push_str("garbage that no format reads\n");
        } else if n % 7 == 0 {
            writeln!(
                log,
                "2026-11-21 10:{:02}:{:02} ERROR api: request {n} failed after {} ms",
                (n / 60) % 60,
                n % 60,
                n % 997
            )
            .unwrap();
        } else {
            writeln!(
                log,
                "2026-11-21 10:{:02}:{:02} INFO db: stored block blk_{n} size {}",
                (n / 60) % 60,
                n % 60,
                n * 3
            )
            .unwrap();
        }
        n += 1;
    }
    let input = tmp.path().join("app.log");
    std::fs::write(&input, log).unwrap();
    let config = tmp.path().join("windows.toml");
    std::fs::write(&config, "[parse]\nwindow_lines = 16384\n").unwrap();

    let format = "<Date> <Time> <Level> <Component>: <Content>";
    let run = |lake: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "--lake",
            lake.to_str().unwrap(),
            "--source",
            "app",
            "--date",
            DATE,
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "run",
            "--to",
            "04-train",
            "--input",
            input.to_str().unwrap(),
            "--format",
            format,
        ]);
        common::loglake(&args).unwrap();
    };
    let (whole, windowed) = (tmp.path().join("whole"), tmp.path().join("windowed"));
    run(&whole, &[]);
    run(&windowed, &["--config", config.to_str().unwrap()]);

    let events = silver(&whole, tables::EVENTS, Layer::Silver);
    assert!(events.height() > 40_000);
    assert!(events.equals_missing(&silver(&windowed, tables::EVENTS, Layer::Silver)));
    assert!(
        silver(&whole, tables::TEMPLATES, Layer::Silver).equals_missing(&silver(
            &windowed,
            tables::TEMPLATES,
            Layer::Silver
        ))
    );
    let bad = silver(&whole, tables::UNPARSED, Layer::Quarantine);
    assert_eq!(
        bad.height(),
        2,
        "the orphan continuation and the garbage line"
    );
    assert!(bad.equals_missing(&silver(&windowed, tables::UNPARSED, Layer::Quarantine)));
    // The stack traces at the boundaries were joined to the event before them.
    let joined = events
        .column("line_count")
        .unwrap()
        .u32()
        .unwrap()
        .iter()
        .filter(|c| *c == Some(5))
        .count();
    assert_eq!(
        joined, 3,
        "one event per inner window boundary carries its 4-line trace"
    );
    // Training reads events a window at a time too: the same models, to the byte (a model's
    // version hashes its content).
    let versions = |lake: &std::path::Path| {
        let mut v: Vec<String> = Vec::new();
        for detector in ["rare_template", "severity", "param_range"] {
            let dir = lake.join("models/app/event").join(detector);
            if let Ok(entries) = std::fs::read_dir(dir) {
                v.extend(entries.map(|e| e.unwrap().file_name().to_string_lossy().to_string()));
            }
        }
        v.sort();
        v
    };
    assert!(!versions(&whole).is_empty());
    assert_eq!(versions(&whole), versions(&windowed));
    // More than one part: the windowed batch was written window by window.
    let parts = std::fs::read_dir(windowed.join("silver/events/source=app/date=2026-11-21"))
        .unwrap()
        .count();
    assert!(parts >= 4, "{parts} part files");
}

//! A day in shards: 01-bronze and 02-silver once per input shard (`--shard`), into the day's
//! `shard=<name>` sub-partitions; 03-gold onwards read the day whole.
//!
//! Asserts what a scheduler fanning a day out relies on: the shards' order does not change
//! what is found, every line of every shard is read once, re-running the day whole replaces
//! its shards (no line counted twice), and the stages that read a day whole refuse `--shard`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use loglake::lake::{Lake, Layer, tables};

const DAY: &str = "2026-11-18";

fn loglake(lake: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loglake"))
        .args([
            "--lake",
            lake.to_str().unwrap(),
            "--source",
            "shop",
            "--date",
            DAY,
        ])
        .args(args)
        .envs(common::generator_source("shop"))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    common::stdout_ok(out)
}

fn rows(lake: &Path, layer: Layer, table: &str) -> u64 {
    Lake::new(lake)
        .table_rows(layer, table, "shop", &[DAY.parse().unwrap()])
        .unwrap()
}

/// 01-bronze and 02-silver of each shard in `order`, then the rest of the day whole.
fn run_in_shards(lake: &Path, files: &[std::path::PathBuf], order: &[usize]) {
    ok(loglake(lake, &["00-init"]));
    for &i in order {
        let shard = format!("s{i}");
        ok(loglake(
            lake,
            &[
                "01-bronze",
                "--shard",
                &shard,
                "--input",
                files[i].to_str().unwrap(),
            ],
        ));
        ok(loglake(lake, &["02-silver", "--shard", &shard]));
    }
    ok(loglake(lake, &["run", "--from", "03-gold"]));
}

#[test]
fn a_day_in_shards_is_read_whole_and_the_same_in_any_order() {
    let tmp = tempfile::tempdir().unwrap();
    let files = common::shard_files(tmp.path(), DAY, 30_000, 3);
    let lines: u64 = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count() as u64)
        .sum();
    let forward = tmp.path().join("forward");
    let backward = tmp.path().join("backward");
    run_in_shards(&forward, &files, &[0, 1, 2]);
    run_in_shards(&backward, &files, &[2, 0, 1]);

    for lake in [&forward, &backward] {
        assert_eq!(rows(lake, Layer::Bronze, tables::LINES), lines);
        let parsed = rows(lake, Layer::Silver, tables::EVENTS)
            + rows(lake, Layer::Quarantine, tables::UNPARSED);
        assert_eq!(parsed, lines, "every shard's lines are read once");
        let shards = std::fs::read_dir(lake.join(format!("silver/events/source=shop/date={DAY}")))
            .unwrap()
            .count();
        assert_eq!(shards, 3, "one sub-partition per shard");
    }
    let found = common::lake_anomalies(forward.to_str().unwrap(), "shop", &[DAY], &[]);
    assert!(found.height() > 5, "the generator's anomalies are found");
    assert!(
        found.equals_missing(&common::lake_anomalies(
            backward.to_str().unwrap(),
            "shop",
            &[DAY],
            &[]
        )),
        "the shards' order changes nothing"
    );

    // The day re-parsed whole: its shards are replaced, not added to.
    ok(loglake(&forward, &["02-silver"]));
    let parsed = rows(&forward, Layer::Silver, tables::EVENTS)
        + rows(&forward, Layer::Quarantine, tables::UNPARSED);
    assert_eq!(parsed, lines);
    let day = forward.join(format!("silver/events/source=shop/date={DAY}"));
    assert!(
        std::fs::read_dir(&day).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("shard=")),
        "no shard folder is left beside the whole day"
    );
    // And in a shard again: the whole day's files go, the shard's come.
    ok(loglake(&forward, &["02-silver", "--shard", "s0"]));
    let first_shard = std::fs::read_to_string(&files[0]).unwrap().lines().count() as u64;
    assert_eq!(
        rows(&forward, Layer::Silver, tables::EVENTS)
            + rows(&forward, Layer::Quarantine, tables::UNPARSED),
        first_shard,
        "the whole day's files went when a shard came back"
    );
}

#[test]
fn stages_that_read_a_day_whole_refuse_a_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let gold = loglake(&lake, &["03-gold", "--shard", "a"]);
    assert_eq!(gold.status.code(), Some(2), "a usage error");
    let run = loglake(&lake, &["run", "--shard", "a", "--input", "/nonexistent"]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("--to 02-silver"), "{stderr}");
    let bad = loglake(
        &lake,
        &["01-bronze", "--shard", "../x", "--input", "/nonexistent"],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("shard name"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

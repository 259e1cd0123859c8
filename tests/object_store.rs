//! The lake on object storage, against a real S3-compatible server (and the same kills on a
//! local lake, whose commits go through the same interface): `TEST_S3_LAKE`
//! (`s3://bucket`, a bucket that exists) with the standard `AWS_*` variables pointing at the
//! server, and `TEST_DATABASE_URL` for the PostgreSQL server the writers share. CI starts both
//! and sets them; then these tests must pass, and without them they say so and skip.
//!
//! Asserts what a user moving a lake to a bucket relies on: the same anomalies as on a local
//! disk, re-runs that replace partitions without leaving anything readers see, `vacuum`
//! removing what replaced and killed writes left, and a writer killed with `kill -9` at any
//! point leaving every committed partition whole.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use loglake::lake::location::LakeLocation;
use loglake::lake::{Lake, Layer, tables};

const DAYS: [&str; 2] = ["2026-11-18", "2026-11-19"];

/// The bucket URL and the database URL, or `None` (with a note) when CI did not provide them.
fn services() -> Option<(String, String)> {
    match (
        std::env::var("TEST_S3_LAKE"),
        std::env::var("TEST_DATABASE_URL"),
    ) {
        (Ok(lake), Ok(db)) => Some((lake.trim_end_matches('/').to_string(), db)),
        (Ok(_), Err(_)) => {
            panic!("TEST_S3_LAKE is set but TEST_DATABASE_URL is not: an S3 lake needs PostgreSQL")
        }
        _ => {
            eprintln!("TEST_S3_LAKE is not set: skipping the object-storage lake (CI sets it)");
            None
        }
    }
}

/// A prefix of the bucket no other test run uses.
fn fresh_prefix(bucket: &str, what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{bucket}/{what}-{}-{nanos}", std::process::id())
}

/// `loglake` on `lake` for `source` (the generator's format) and batch `date`.
fn loglake(lake: &str, db: Option<&str>, source: &str, date: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loglake"));
    cmd.args(["--lake", lake, "--source", source, "--date", date])
        .args(args)
        .envs(common::generator_source(source))
        .env("RUST_LOG", "warn");
    if let Some(url) = db {
        cmd.env("LOGLAKE__DATABASE__URL", url);
    }
    cmd
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every day's input, run through every stage, one day after the other.
fn run_days(lake: &str, db: Option<&str>, source: &str, raw: &Path) {
    for day in DAYS {
        let input = raw.join("logs").join(format!("shop-{day}.log"));
        let out = loglake(lake, db, source, day, &["run", "--input"])
            .arg(&input)
            .output()
            .unwrap();
        ok(out, &format!("run {day} on {lake}"));
    }
}

/// Every partition a reader of the lake at `url` finds is whole: on object storage, every
/// committed manifest names files that are all there, each a complete Parquet file.
fn every_partition_is_whole(url: &str) -> usize {
    let lake = Lake::open(&LakeLocation::parse(url).unwrap()).unwrap();
    let mut checked = 0;
    for layer in Layer::ALL {
        for table in lake.tables(layer).unwrap() {
            for source in lake.sources(layer, &table).unwrap() {
                for date in lake.partition_dates(layer, &table, &source).unwrap() {
                    // Fetching checks each named file exists; reading checks each is whole.
                    let files = lake.part_files(layer, &table, &source, date).unwrap();
                    Lake::row_count(&files).unwrap_or_else(|e| {
                        panic!("{table} {source} {date}: a committed file is not whole: {e:#}")
                    });
                    checked += 1;
                }
            }
        }
    }
    checked
}

#[test]
fn a_lake_on_object_storage_finds_what_a_local_lake_finds() {
    let Some((bucket, db)) = services() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), DAYS[0], 2, 20_000, 11);
    let source = format!("s3{}", std::process::id());
    let local = tmp.path().join("lake");
    run_days(local.to_str().unwrap(), None, &source, &raw);
    let remote = fresh_prefix(&bucket, "same");
    run_days(&remote, Some(&db), &source, &raw);

    let expected = common::lake_anomalies(local.to_str().unwrap(), &source, &DAYS, &[]);
    assert!(
        Lake::open(&LakeLocation::parse(&remote).unwrap())
            .unwrap()
            .is_remote()
    );
    let found = common::lake_anomalies(&remote, &source, &DAYS, &[]);
    assert!(
        expected.height() > 10,
        "the generator's anomalies are found"
    );
    assert!(
        found.equals_missing(&expected),
        "S3 lake: {} anomalies, local lake: {}",
        found.height(),
        expected.height()
    );
    assert!(every_partition_is_whole(&remote) >= 10);

    // `status` counts the bucket's rows from its manifests: the local lake's counts.
    let rows = |lake: &str, db: Option<&str>| -> Vec<(String, u64)> {
        let out = ok(
            loglake(lake, db, &source, DAYS[1], &["status", "--output", "json"])
                .output()
                .unwrap(),
            "status",
        );
        let status: serde_json::Value = serde_json::from_str(&out).unwrap();
        let mut rows: Vec<(String, u64)> = status["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["table"].as_str().unwrap().to_string(),
                    t["rows"].as_u64().unwrap(),
                )
            })
            .collect();
        rows.sort();
        rows
    };
    let on_disk = rows(local.to_str().unwrap(), None);
    assert!(on_disk.len() >= 10, "{on_disk:?}");
    assert_eq!(rows(&remote, Some(&db)), on_disk);

    // A re-run replaces the day's partitions: readers see the new manifests only, the files
    // they replaced are left for vacuum, and vacuum removes them without touching the rest.
    // (A re-run with nothing new rewrites nothing: this one changes a setting gold records
    // among its inputs that changes no feature, so that gold and detect write again.)
    let input = raw.join("logs").join(format!("shop-{}.log", DAYS[1]));
    ok(
        loglake(&remote, Some(&db), &source, DAYS[1], &["run", "--input"])
            .arg(&input)
            .env("LOGLAKE__GOLD__SESSION_BUCKET_EVENTS", "100001")
            .output()
            .unwrap(),
        "re-run",
    );
    assert!(common::lake_anomalies(&remote, &source, &DAYS, &[]).equals_missing(&expected));
    let vacuum = |yes: bool| {
        let mut args = vec![
            "vacuum",
            "--keep-days",
            "36500",
            "--unreferenced-after-hours",
            "0",
        ];
        if yes {
            args.push("--yes");
        }
        ok(
            loglake(&remote, Some(&db), &source, DAYS[1], &args)
                .output()
                .unwrap(),
            "vacuum",
        )
    };
    let listed = vacuum(false);
    let unreferenced = listed
        .lines()
        .filter(|l| l.contains("unreferenced "))
        .count();
    assert!(
        unreferenced >= 5,
        "the re-run's replaced files are listed: {listed}"
    );
    vacuum(true);
    let after = vacuum(false);
    assert!(after.contains(" 0 unreferenced file(s)"), "{after}");
    assert!(common::lake_anomalies(&remote, &source, &DAYS, &[]).equals_missing(&expected));
    assert!(every_partition_is_whole(&remote) >= 10);
}

#[test]
fn a_writer_killed_as_it_commits_leaves_every_bucket_partition_whole() {
    let Some((bucket, db)) = services() else {
        return;
    };
    let remote = fresh_prefix(&bucket, "kill");
    let source = format!("kill{}", std::process::id());
    killed_at_each_commit(&remote, Some(&db), &source);
    // Each kill between a partition's uploads and its manifest left files no manifest names,
    // as did each re-run's replaced partitions; vacuum removes them, and nothing readers see.
    let expected = common::lake_anomalies(&remote, &source, &DAYS[..1], &[]);
    let out = loglake(
        &remote,
        Some(&db),
        &source,
        DAYS[0],
        &[
            "vacuum",
            "--keep-days",
            "36500",
            "--unreferenced-after-hours",
            "0",
            "--yes",
        ],
    )
    .output()
    .unwrap();
    let vacuumed = ok(out, "vacuum");
    let removed = vacuumed
        .lines()
        .filter(|l| l.contains("unreferenced "))
        .count();
    assert!(removed > 0, "{vacuumed}");
    every_partition_is_whole(&remote);
    assert!(common::lake_anomalies(&remote, &source, &DAYS[..1], &[]).equals_missing(&expected));
}

/// The same kills on a local lake, whose commits are renames: one interface, one test.
#[test]
fn a_writer_killed_as_it_commits_leaves_every_local_partition_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("lake");
    killed_at_each_commit(local.to_str().unwrap(), None, "shop");
}

/// Run one generated day through every stage on `lake`, then kill a re-run right as it
/// commits its k-th partition, for several k, checking after each kill that every partition
/// a reader finds is whole and that the anomalies are the last committed ones; then a re-run
/// restores everything.
fn killed_at_each_commit(lake: &str, db: Option<&str>, source: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), DAYS[0], 1, 60_000, 5);
    let input = raw.join("logs").join(format!("shop-{}.log", DAYS[0]));
    let run = || {
        let mut cmd = loglake(lake, db, source, DAYS[0], &["run", "--input"]);
        cmd.arg(&input);
        cmd
    };
    ok(run().output().unwrap(), "first run");
    let expected = common::lake_anomalies(lake, source, &DAYS[..1], &[]);
    let remote = lake.contains("://");

    // The debug log says when a partition is complete and its commit starts: on object
    // storage, its files uploaded and its manifest not yet written; on a local disk, its
    // files staged and not yet renamed into place.
    // A re-run with nothing new rebuilds nothing: each of these runs changes a setting gold
    // records among its inputs but that changes no feature (how many keyed events it
    // aggregates at once), so that gold and detect write their partitions again.
    let rebuilding = |k: usize| {
        let mut cmd = run();
        cmd.env(
            "LOGLAKE__GOLD__SESSION_BUCKET_EVENTS",
            (100_000 + k).to_string(),
        );
        cmd
    };
    let commits = {
        let out = rebuilding(0)
            .env("RUST_LOG", "loglake=debug")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains("committing the"))
            .count()
    };
    assert!(commits >= 4, "a re-run commits {commits} partitions");
    for k in 1..=commits.min(8) {
        let mut child = rebuilding(k)
            .env("RUST_LOG", "loglake=debug")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let log = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut seen = 0;
        for line in std::io::BufRead::lines(log) {
            if line.unwrap().contains("committing the") {
                seen += 1;
                if seen == k {
                    // SIGKILL: no destructor, no clean-up, as after an OOM kill.
                    let _ = child.kill();
                    break;
                }
            }
        }
        let _ = child.wait();
        assert_eq!(seen, k, "a run commits at least {k} partitions");
        every_partition_is_whole(lake);
        // A local partition being replaced is absent for the instant between its two
        // renames (never partial); a bucket's is replaced by one PUT.
        let date: chrono::NaiveDate = DAYS[0].parse().unwrap();
        let present = !Lake::open(&LakeLocation::parse(lake).unwrap())
            .unwrap()
            .part_files(Layer::Detections, tables::ANOMALIES, source, date)
            .unwrap()
            .is_empty();
        if remote || present {
            let found = common::lake_anomalies(lake, source, &DAYS[..1], &[]);
            assert!(
                found.equals_missing(&expected),
                "killed at commit {k}: readers see the last committed anomalies, whole; {}",
                common::first_difference(&found, &expected)
            );
        }
    }
    ok(run().output().unwrap(), "run after the kills");
    assert!(common::lake_anomalies(lake, source, &DAYS[..1], &[]).equals_missing(&expected));
}

/// Shards of one day on a bucket, 01-bronze and 02-silver of each at the same time in
/// separate processes (as Airflow workers run them), find what they find one after the other;
/// the leases keep apart only what the shards share.
#[test]
fn shards_written_at_once_find_what_shards_written_in_turn_find() {
    let Some((bucket, db)) = services() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let day = DAYS[0];
    let files = common::shard_files(tmp.path(), day, 60_000, 2);
    let stage = |lake: &str, source: &str, args: &[&str], shard: usize| {
        let mut cmd = loglake(lake, Some(&db), source, day, args);
        cmd.args(["--shard", &format!("s{shard}")]);
        if args[0] == "01-bronze" {
            cmd.arg("--input").arg(&files[shard]);
        }
        cmd
    };
    let whole = |lake: &str, source: &str, args: &[&str]| {
        ok(
            loglake(lake, Some(&db), source, day, args)
                .output()
                .unwrap(),
            &format!("{args:?}"),
        )
    };

    let in_turn = fresh_prefix(&bucket, "turn");
    let turn_source = format!("turn{}", std::process::id());
    whole(&in_turn, &turn_source, &["00-init"]);
    for args in [["01-bronze"], ["02-silver"]] {
        for shard in 0..2 {
            ok(
                stage(&in_turn, &turn_source, &args, shard)
                    .output()
                    .unwrap(),
                "in turn",
            );
        }
    }
    whole(&in_turn, &turn_source, &["run", "--from", "03-gold"]);

    let at_once = fresh_prefix(&bucket, "once");
    let once_source = format!("once{}", std::process::id());
    whole(&at_once, &once_source, &["00-init"]);
    for args in [["01-bronze"], ["02-silver"]] {
        let children: Vec<std::process::Child> = (0..2)
            .map(|shard| {
                stage(&at_once, &once_source, &args, shard)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            ok(child.wait_with_output().unwrap(), "at once");
        }
    }
    whole(&at_once, &once_source, &["run", "--from", "03-gold"]);

    // The two processes of each stage did run at the same time (their pipeline_runs rows).
    let database = loglake::db::Database::connect(&db, &tmp.path().join("unused.db"), 1).unwrap();
    for stage in ["01-bronze", "02-silver"] {
        let overlapping = database
            .query_strings(&format!(
                "SELECT count(*) FROM pipeline_runs a JOIN pipeline_runs b ON a.id < b.id \
                 WHERE a.source = '{once_source}' AND b.source = '{once_source}' \
                 AND a.stage = '{stage}' AND b.stage = '{stage}' \
                 AND a.started_at < b.finished_at AND b.started_at < a.finished_at"
            ))
            .unwrap();
        assert_eq!(
            overlapping[0][0], "1",
            "{stage} of the two shards overlapped in time"
        );
    }
    database.close();

    // Sources differ (one database holds both), and with them the ids derived from them.
    let without_source = |url: &str, source: &str| {
        // The model's version is a hash of the model, which names its source, and the
        // details name the source's partitions.
        common::lake_anomalies(
            url,
            source,
            &[day],
            &[
                "source",
                "anomaly_id",
                "incident_id",
                "model_version",
                "details",
            ],
        )
    };
    let expected = without_source(&in_turn, &turn_source);
    assert!(expected.height() > 5, "the generator's anomalies are found");
    let found = without_source(&at_once, &once_source);
    assert!(found.equals_missing(&expected));
}

/// `--input s3://bucket/prefix`: the objects under it are ingested under their URLs, every
/// line once; given again, they are found in bronze; a prefix with nothing under it fails.
#[test]
fn logs_in_a_bucket_are_ingested_once_under_their_urls() {
    let Some((bucket, _)) = services() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), DAYS[0], 1, 20_000, 3);
    let log = raw.join("logs").join(format!("shop-{}.log", DAYS[0]));
    let text = std::fs::read(&log).unwrap();
    let lines = text.iter().filter(|&&b| b == b'\n').count() as u64;
    let inputs = fresh_prefix(&bucket, "inputs");
    let remote = open_remote(&inputs);
    let half = text.len() / 2
        + text[text.len() / 2..]
            .iter()
            .position(|&b| b == b'\n')
            .unwrap()
        + 1;
    remote.put("web-1/a.log", text[..half].to_vec()).unwrap();
    remote.put("web-1/b.log", text[half..].to_vec()).unwrap();
    remote
        .put("web-1/.hidden", b"not a log\n".to_vec())
        .unwrap();

    let lake = tmp.path().join("lake");
    let url = format!("{inputs}/web-1");
    let bronze = |url: &str| {
        loglake(
            lake.to_str().unwrap(),
            None,
            "shop",
            DAYS[0],
            &["run", "--to", "01-bronze", "--input", url],
        )
        .output()
        .unwrap()
    };
    let first = ok(bronze(&url), "ingest from the bucket");
    assert!(first.contains("2 file(s)"), "{first}");
    let rows = Lake::new(&lake)
        .table_rows(
            Layer::Bronze,
            tables::LINES,
            "shop",
            &[DAYS[0].parse().unwrap()],
        )
        .unwrap();
    assert_eq!(rows, lines, "every line of both objects, once");
    let files = Lake::new(&lake)
        .scan(
            Layer::Bronze,
            tables::LINES,
            "shop",
            &[DAYS[0].parse().unwrap()],
        )
        .unwrap()
        .unwrap()
        .select([polars::prelude::col("file")])
        .unique(None, polars::prelude::UniqueKeepStrategy::Any)
        .collect()
        .unwrap();
    let mut names: Vec<String> = files
        .column("file")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .map(str::to_string)
        .collect();
    names.sort();
    assert_eq!(names, [format!("{url}/a.log"), format!("{url}/b.log")]);
    let again = ok(bronze(&url), "the same objects again");
    assert!(again.contains("nothing new"), "{again}");

    let missing = bronze(&format!("{inputs}/no-such-prefix"));
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("names no object"), "{stderr}");
}

/// A file larger than one upload part goes up in parts and comes back byte for byte.
#[test]
fn a_large_file_goes_up_in_parts_and_comes_back_whole() {
    let Some((bucket, _)) = services() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.bin");
    // 40 MiB of varied bytes: more than two 16 MiB parts.
    let bytes: Vec<u8> = (0..40u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&big, &bytes).unwrap();
    let remote = open_remote(&fresh_prefix(&bucket, "parts"));
    remote
        .upload(&[(big.as_path(), "big.bin".to_string())])
        .unwrap();
    let back = tmp.path().join("back.bin");
    remote
        .download(&[("big.bin".to_string(), back.clone())])
        .unwrap();
    assert!(
        std::fs::read(&back).unwrap() == bytes,
        "the same bytes came back"
    );
}

/// A bucket that does not exist is one line that says so and what to do, not the server's XML.
#[test]
fn a_missing_bucket_is_one_clear_line() {
    let Some((_, db)) = services() else {
        return;
    };
    let lake = format!("s3://loglake-no-such-bucket-{}/lake", std::process::id());
    let out = loglake(&lake, Some(&db), "shop", DAYS[0], &["00-init"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("the bucket does not exist (create it"),
        "{stderr}"
    );
    // A plain-HTTP endpoint without AWS_ALLOW_HTTP: what to set, not "builder error".
    let out = loglake(&lake, Some(&db), "shop", DAYS[0], &["00-init"])
        .env_remove("AWS_ALLOW_HTTP")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("AWS_ALLOW_HTTP=true"), "{stderr}");
}

/// 01-bronze appends to a bucket day without fetching the day's earlier parts; the next stage
/// still reads the day whole.
#[test]
fn a_day_appended_to_by_two_processes_is_read_whole() {
    let Some((bucket, db)) = services() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let files = common::shard_files(tmp.path(), DAYS[0], 10_000, 2);
    let lake = fresh_prefix(&bucket, "append");
    let lines: u64 = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().lines().count() as u64)
        .sum();
    let run = |args: &[&str]| {
        ok(
            loglake(&lake, Some(&db), "shop", DAYS[0], args)
                .output()
                .unwrap(),
            "append",
        )
    };
    run(&[
        "run",
        "--to",
        "01-bronze",
        "--input",
        files[0].to_str().unwrap(),
    ]);
    run(&[
        "run",
        "--from",
        "01-bronze",
        "--to",
        "02-silver",
        "--input",
        files[1].to_str().unwrap(),
    ]);
    let lake = Lake::open(&LakeLocation::parse(&lake).unwrap()).unwrap();
    let day: chrono::NaiveDate = DAYS[0].parse().unwrap();
    let parsed = lake
        .table_rows(Layer::Silver, tables::EVENTS, "shop", &[day])
        .unwrap()
        + lake
            .table_rows(Layer::Quarantine, tables::UNPARSED, "shop", &[day])
            .unwrap();
    assert_eq!(parsed, lines, "02-silver read both processes' parts");
}

/// A writer killed with `kill -9` never removes its working copy; the next writer to open a
/// lake on object storage does, and leaves those of writers still running.
#[test]
fn dead_writers_working_copies_are_removed() {
    let Some((bucket, _db)) = services() else {
        return;
    };
    let mut finished = Command::new("true").spawn().unwrap();
    finished.wait().unwrap();
    let copy_of = |pid: u32| std::env::temp_dir().join(format!("loglake-work-{pid}-test"));
    let (dead, alive) = (copy_of(finished.id()), copy_of(std::process::id()));
    for copy in [&dead, &alive] {
        std::fs::create_dir_all(copy.join("bronze")).unwrap();
    }
    let _lake = Lake::open(&LakeLocation::parse(&fresh_prefix(&bucket, "sweep")).unwrap()).unwrap();
    assert!(!dead.exists(), "{} is left", dead.display());
    assert!(alive.exists(), "a running writer's working copy went");
    std::fs::remove_dir_all(&alive).unwrap();
}

/// The bucket prefix at `url`, opened as the lake's object-store client opens it.
fn open_remote(url: &str) -> loglake::lake::remote::Remote {
    let location = loglake::lake::location::S3Url::of(url)
        .expect("an s3:// URL")
        .unwrap();
    loglake::lake::remote::Remote::open(&location).unwrap()
}

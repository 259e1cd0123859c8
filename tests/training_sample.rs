//! Session detectors train on at most `[train] max_sessions` sessions: beyond it, on a fixed
//! sample whose template counts follow its sessions, and to which sessions marked normal are
//! added.

mod common;

use std::collections::{BTreeSet, HashSet};

use chrono::NaiveDate;
use loglake::detectors::session_sample::session_training;
use loglake::lake::Lake;

#[test]
fn a_capped_training_range_is_a_fixed_sample_of_whole_sessions() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), "2026-11-16", 2, 20_000, 3);
    let lake_dir = tmp.path().join("lake");
    common::run_each_day(&lake_dir, &raw, &["2026-11-16", "2026-11-17"], "03-gold");
    let lake = Lake::new(&lake_dir);
    let dates = [
        NaiveDate::from_ymd_opt(2026, 11, 16).unwrap(),
        NaiveDate::from_ymd_opt(2026, 11, 17).unwrap(),
    ];
    let none = BTreeSet::new();
    let all = session_training(&lake, "shop", &dates, 16_384, usize::MAX, &none)
        .unwrap()
        .unwrap();
    let n = all.sessions.height();
    assert!(n > 2_000, "{n} sessions");

    let k = n / 4;
    let sample = session_training(&lake, "shop", &dates, 4_096, k, &none)
        .unwrap()
        .unwrap();
    assert_eq!(
        sample.sessions.height(),
        k,
        "exactly k sessions (no hash ties)"
    );
    assert_eq!(sample.frame.height(), k);
    assert_eq!(
        sample.sessions.get_column_names(),
        all.sessions.get_column_names()
    );
    // The vocabulary is ranked over every session, so the features do not change.
    assert_eq!(sample.vocabulary, all.vocabulary);
    // The same sample whatever the window size, in date and key order.
    let again = session_training(&lake, "shop", &dates, 16_384, k, &none)
        .unwrap()
        .unwrap();
    assert!(again.frame.equals_missing(&sample.frame));
    // Each sampled session has the template counts it had in the whole range.
    let keys = |df: &polars::prelude::DataFrame| -> Vec<String> {
        df.column("session_key")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|k| k.unwrap().to_string())
            .collect()
    };
    let sampled: HashSet<String> = keys(&sample.sessions).into_iter().collect();
    let all_keys = keys(&all.frame);
    let picked: Vec<usize> = (0..all_keys.len())
        .filter(|&i| sampled.contains(&all_keys[i]))
        .collect();
    assert_eq!(picked.len(), k);
    let idx = polars::prelude::IdxCa::from_vec(
        "i".into(),
        picked
            .iter()
            .map(|&i| i as polars::prelude::IdxSize)
            .collect(),
    );
    let expected = all.frame.take(&idx).unwrap();
    assert!(
        expected.equals_missing(&sample.frame),
        "sampled rows differ from the same sessions in the whole range"
    );
    // Sessions operators marked normal join the sample, so the detectors can learn them.
    let left_out: Vec<&str> = all_keys
        .iter()
        .filter(|k| !sampled.contains(*k))
        .take(3)
        .map(String::as_str)
        .collect();
    let marked: BTreeSet<&str> = left_out.iter().copied().collect();
    let with_marked = session_training(&lake, "shop", &dates, 4_096, k, &marked)
        .unwrap()
        .unwrap();
    let with_keys: HashSet<String> = keys(&with_marked.sessions).into_iter().collect();
    assert_eq!(with_keys.len(), k + 3);
    assert!(left_out.iter().all(|k| with_keys.contains(*k)));
    assert!(sampled.is_subset(&with_keys));
}

#[test]
fn how_gold_buckets_sessions_does_not_change_what_is_learnt() {
    // `[gold] session_bucket_events` bounds gold's memory by splitting a day's sessions into
    // buckets by key hash; the sessions the detectors learn from, and their order, must not
    // follow it (k-means' seeding is order-sensitive: a million HDFS lines gave 419 clustering
    // anomalies in two buckets, 377 in one).
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), "2026-11-16", 1, 20_000, 5);
    let logs = raw.join("logs").join("shop-2026-11-16.log");
    let bucketed = tmp.path().join("bucketed.toml");
    std::fs::write(&bucketed, "[gold]\nsession_bucket_events = 3000\n").unwrap();
    let build = |lake: &std::path::Path, config: Option<&std::path::Path>| {
        let mut args: Vec<&str> = Vec::new();
        if let Some(c) = config {
            args.extend(["--config", c.to_str().unwrap()]);
        }
        args.extend(["run", "--to", "03-gold", "--input", logs.to_str().unwrap()]);
        common::shop_ok(lake, "2026-11-16", &args);
    };
    let (one, many) = (tmp.path().join("one"), tmp.path().join("many"));
    build(&one, None);
    build(&many, Some(&bucketed));
    let date = NaiveDate::from_ymd_opt(2026, 11, 16).unwrap();
    let parts = |dir: &std::path::Path| {
        Lake::new(dir)
            .part_files(
                loglake::lake::Layer::Gold,
                loglake::lake::tables::SESSION_FEATURES,
                "shop",
                date,
            )
            .unwrap()
            .len()
    };
    assert_eq!(parts(&one), 1);
    assert!(parts(&many) > 2, "{} parts", parts(&many));

    let none = BTreeSet::new();
    let learnt = |dir: &std::path::Path, max_sessions: usize| {
        session_training(&Lake::new(dir), "shop", &[date], 4_096, max_sessions, &none)
            .unwrap()
            .unwrap()
    };
    // Every session, and a capped sample of them.
    for max_sessions in [usize::MAX, 500] {
        let (a, b) = (learnt(&one, max_sessions), learnt(&many, max_sessions));
        assert!(a.frame.height() >= 500, "{} sessions", a.frame.height());
        assert_eq!(a.vocabulary, b.vocabulary);
        assert!(
            a.sessions.equals_missing(&b.sessions),
            "sessions differ with max_sessions {max_sessions}"
        );
        assert!(
            a.frame.equals_missing(&b.frame),
            "features differ with max_sessions {max_sessions}"
        );
    }
}

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
    // The same sample whatever the window size, in the order the range holds the sessions.
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

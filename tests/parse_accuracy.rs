//! Template accuracy on real logs with ground truth: loghub grouping accuracy on the eight
//! loghub 2k samples with the default configuration (only the format differs), and the HDFS
//! session data's true event ids, from `../shared/data` when it is beside the checkout; and on
//! the 300-line samples the repository carries (`tests/data/loghub`), always.

mod common;

use std::path::PathBuf;

use chrono::NaiveDate;
use loglake::config::ParseSettings;
use loglake::parse::ParserConfig;
use loglake::parse::accuracy::{evaluate_parser, read_truth};

fn accuracy(format: &str, log: PathBuf, truth: PathBuf) -> f64 {
    let settings = ParserConfig::new(ParseSettings {
        format: format.into(),
        ..Default::default()
    })
    .unwrap();
    let truth = read_truth(&truth).unwrap();
    let date = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    evaluate_parser(&settings, date, &log, &truth)
        .unwrap()
        .accuracy
}

/// The samples the repository carries, held to the same bar as the full ones.
#[test]
fn carried_samples_are_grouped_as_the_full_ones_are() {
    let carried = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/loghub");
    for (set, preset) in [("HDFS", "hdfs"), ("Linux", "syslog")] {
        let dir = carried.join(set);
        let a = accuracy(
            preset,
            dir.join(format!("{set}_300.log")),
            dir.join(format!("{set}_300.log_structured.csv")),
        );
        println!("{set:<10} {a:.4} (300 lines)");
        assert!(a >= 0.95, "{set}: {a:.4}");
    }
}

#[test]
fn loghub_grouping_accuracy_and_hdfs_events() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let sets = [
        ("HDFS", "hdfs"),
        ("Apache", "apache-error"),
        ("OpenSSH", "openssh"),
        ("Linux", "syslog"),
        ("Spark", "spark"),
        ("Zookeeper", "zookeeper"),
        ("HealthApp", "healthapp"),
        ("Mac", "mac"),
    ];
    let mut sum = 0.0;
    for (set, preset) in sets {
        let dir = data.join("loghub-2k").join(set);
        let a = accuracy(
            preset,
            dir.join(format!("{set}_2k.log")),
            dir.join(format!("{set}_2k.log_structured.csv")),
        );
        println!("{set:<10} {a:.4}");
        assert!(a >= 0.95, "{set}: {a:.4}");
        sum += a;
    }
    let mean = sum / sets.len() as f64;
    println!("mean       {mean:.4}");
    assert!(mean >= 0.98, "mean grouping accuracy {mean:.4}");

    let hdfs = data.join("hdfs-sessions-dev");
    let a = accuracy("hdfs", hdfs.join("HDFS.log"), hdfs.join("event_ids.txt"));
    println!("HDFS-dev   {a:.4}");
    assert!(a >= 0.99, "HDFS events: {a:.4}");
}

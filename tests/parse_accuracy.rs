//! Template accuracy on real logs with ground truth (../shared/data): loghub grouping accuracy
//! on the eight loghub 2k samples with the default configuration (only the format differs),
//! and the HDFS session data's true event ids.

use std::path::PathBuf;

use chrono::NaiveDate;
use loglake::config::ParseSettings;
use loglake::parse::ParserConfig;
use loglake::parse::accuracy::{evaluate_parser, read_truth};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

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

#[test]
fn loghub_grouping_accuracy_and_hdfs_events() {
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
        let dir = data().join("loghub-2k").join(set);
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

    let hdfs = data().join("hdfs-sessions-dev");
    let a = accuracy("hdfs", hdfs.join("HDFS.log"), hdfs.join("event_ids.txt"));
    println!("HDFS-dev   {a:.4}");
    assert!(a >= 0.99, "HDFS events: {a:.4}");
}

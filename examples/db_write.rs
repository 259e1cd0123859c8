//! How long 05-detect's database writes take for a batch of N anomalies: a first write, a
//! re-run that updates every row, and a re-run whose anomalies are all new (every earlier row
//! stale, deleted). `scripts/bench_db.sh` runs it on SQLite and PostgreSQL.
//!
//! Usage: `cargo run --release --example db_write -- N [DATABASE_URL]` (no URL: a SQLite file
//! in a temporary folder). Prints `first`, `update` and `replace` seconds.

use std::error::Error;
use std::time::Instant;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use loglake::db::Database;
use loglake::records::AnomalyRow;

fn rows(n: usize, generation: &str) -> Vec<AnomalyRow> {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
    (0..n)
        .map(|i| {
            let start = t0 + Duration::seconds(i as i64);
            AnomalyRow {
                provisional: false,
                vote: false,
                anomaly_id: format!("{generation}-{i:08}"),
                run_id: "bench".into(),
                detected_at: t0,
                source: "bench".into(),
                batch_date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
                granularity: "session".into(),
                entity_key: format!("blk_{i}"),
                window_start: start,
                window_end: start + Duration::minutes(5),
                detector: "zscore".into(),
                score: 7.0 + (i % 13) as f64,
                threshold: 5.0,
                severity: "high".into(),
                reason: format!("count of template {} is {} vs baseline 2±1", i % 40, i % 17),
                // About the size of a real row's details (1.3 KB on the HDFS benchmark).
                details: format!(
                    "{{\"service\":\"svc{}\",\"top_features\":[{}]}}",
                    i % 7,
                    ["{\"feature\":\"tc_0123456789abcdef\",\"observed\":3.0,\"baseline\":1.0,\"spread\":0.5,\"z\":4.0}"; 12].join(",")
                ),
                model_version: "v1".into(),
                incident_id: None,
                service: format!("svc{}", i % 7),
                kind: "session|zscore".into(),
            }
        })
        .collect()
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .ok_or("usage: db_write N [DATABASE_URL]")?
        .parse()?;
    let url = args.next().unwrap_or_default();
    let dir = tempfile::tempdir()?;
    let db = Database::connect(&url, &dir.path().join("bench.db"), 1)?;
    db.migrate()?;
    let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    // A clean slate on a shared server.
    db.replace_detections("bench", date, &[], &[])?;
    let first = rows(n, "a");
    let t = Instant::now();
    db.replace_detections("bench", date, &first, &[])?;
    println!("first   {:.3}", t.elapsed().as_secs_f64());
    let t = Instant::now();
    db.replace_detections("bench", date, &first, &[])?;
    println!("update  {:.3}", t.elapsed().as_secs_f64());
    let second = rows(n, "b");
    let t = Instant::now();
    db.replace_detections("bench", date, &second, &[])?;
    println!("replace {:.3}", t.elapsed().as_secs_f64());
    let left = db.query_i64("SELECT COUNT(*) FROM anomalies WHERE source = 'bench'")?;
    assert_eq!(
        left as usize, n,
        "the replaced batch holds exactly the new rows"
    );
    db.replace_detections("bench", date, &[], &[])?;
    Ok(())
}

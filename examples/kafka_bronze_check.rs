//! Check that a bronze day holds each Kafka message exactly once, for
//! `scripts/kafka_kill_trials.sh`: the rows of the day's bronze partition, their distinct
//! (partition, offset) pairs and, per partition, that the offsets run without a gap from the
//! first to the last. Prints the counts; exits non-zero unless rows = distinct = EXPECTED and
//! no offset is missing. With EXPECTED `-`, prints the rows (0 with no partition) and exits 0.
//!
//! `cargo run --release --example kafka_bronze_check -- LAKE SOURCE DATE EXPECTED`

use loglake::lake::{Lake, Layer, tables};
use polars::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [lake, source, date, expected] = &args[..] else {
        return Err("usage: kafka_bronze_check LAKE SOURCE DATE EXPECTED".into());
    };
    let scan = Lake::open(&loglake::lake::location::LakeLocation::parse(lake)?)?.scan_partition(
        Layer::Bronze,
        tables::LINES,
        source,
        date.parse()?,
    )?;
    if expected == "-" {
        let rows = match scan {
            Some(scan) => scan.select([len()]).collect()?.column("len")?.u32()?.get(0),
            None => None,
        };
        println!("{}", rows.unwrap_or(0));
        return Ok(());
    }
    let expected: u64 = expected.parse()?;
    let rows = scan
        .ok_or("no bronze partition for that day")?
        .select([col("file"), col("byte_offset")])
        .collect()?;
    let distinct = rows.unique_stable(None, UniqueKeepStrategy::Any, None)?;
    // Per partition: offsets first..=last, every one present once.
    let spans = distinct
        .clone()
        .lazy()
        .group_by([col("file")])
        .agg([
            col("byte_offset").min().alias("first"),
            col("byte_offset").max().alias("last"),
            col("byte_offset").count().alias("n"),
        ])
        .collect()?;
    let (first, last, n) = (
        spans.column("first")?.u64()?,
        spans.column("last")?.u64()?,
        spans.column("n")?.u32()?,
    );
    let gaps: u64 = (0..spans.height())
        .map(|i| {
            let span = last.get(i).unwrap_or(0) - first.get(i).unwrap_or(0) + 1;
            span - u64::from(n.get(i).unwrap_or(0))
        })
        .sum();
    let (total, unique) = (rows.height() as u64, distinct.height() as u64);
    println!(
        "rows {total}, distinct messages {unique}, partitions {}, offsets missing inside them {gaps}, expected {expected}",
        spans.height()
    );
    if total == expected && unique == expected && gaps == 0 {
        Ok(())
    } else {
        Err("bronze does not hold each message exactly once".into())
    }
}

//! Hostile input through 01-bronze and 02-silver: invalid UTF-8, NUL bytes, a 10 MB line, CRLF
//! line ends, an empty file, lines in no known format, a stack trace. Nothing crashes, every
//! bad line is quarantined with its reason, and every bronze line is accounted for: bronze
//! rows = lines inside silver events (`line_count`) + quarantined rows.

mod common;

use std::io::Write;

use loglake::lake::{Lake, Layer, tables};

use common::loglake;

#[test]
fn bad_lines_are_quarantined_with_reasons_and_every_line_is_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    let good = |i: usize| {
        format!(
            "2026-11-21T10:00:{:02}.000Z INFO api: request {i} ok",
            i % 60
        )
    };

    let mut f = std::fs::File::create(raw.join("mixed.log")).unwrap();
    for i in 0..50 {
        writeln!(f, "{}", good(i)).unwrap();
    }
    f.write_all(b"2026-11-21T10:01:00.000Z INFO api: bad \xff\xfe bytes\n")
        .unwrap();
    f.write_all(b"2026-11-21T10:01:01.000Z INFO api: nul \0 inside\n")
        .unwrap();
    writeln!(
        f,
        "2026-11-21T10:01:02.000Z INFO api: huge {}",
        "x".repeat(10 << 20)
    )
    .unwrap();
    f.write_all(b"2026-11-21T10:01:03.000Z INFO api: windows line end\r\n")
        .unwrap();
    writeln!(f, "this line is in no known format").unwrap();
    writeln!(f, "2026-11-21T99:99:99.000Z INFO api: impossible time").unwrap();
    writeln!(f, "2026-11-21T10:01:04.000Z ERROR api: request failed").unwrap();
    writeln!(f, "java.lang.IllegalStateException: boom").unwrap();
    writeln!(f, "\tat com.example.Api.handle(Api.java:42)").unwrap();
    drop(f);
    std::fs::File::create(raw.join("empty.log")).unwrap();
    // A .gz cut off halfway: the lines before the cut are ingested, the rest quarantined.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..2000 {
        writeln!(
            gz,
            "2026-11-21T11:{:02}:{:02}.000Z INFO gz: compressed line {i}",
            i / 60 % 60,
            i % 60
        )
        .unwrap();
    }
    let gz = gz.finish().unwrap();
    std::fs::write(raw.join("cut.log.gz"), &gz[..gz.len() / 2]).unwrap();

    let lake_dir = dir.path().join("lake");
    let lake_arg = lake_dir.to_str().unwrap();
    let base = [
        "--lake",
        lake_arg,
        "--source",
        "bad",
        "--date",
        "2026-11-21",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let args = with(&["run", "--to", "02-silver", "--format", "generator"]);
    let args = [args, vec!["--input".into(), raw.to_str().unwrap().into()]].concat();
    loglake(&args.iter().map(String::as_str).collect::<Vec<_>>()).expect("bronze and silver run");

    let lake = Lake::new(&lake_dir);
    let d = [chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()];
    let bronze = lake
        .table_rows(Layer::Bronze, tables::LINES, "bad", &d)
        .unwrap();
    let from_gz = bronze - 59;
    assert!(
        from_gz > 2 && from_gz < 2000,
        "50 good + 9 others, the empty file adds none, the cut .gz some: {bronze}"
    );
    let events = lake
        .scan(Layer::Silver, tables::EVENTS, "bad", &d)
        .unwrap()
        .unwrap()
        .collect()
        .unwrap();
    let lines_in_events: u64 = events
        .column("line_count")
        .unwrap()
        .as_materialized_series()
        .sum()
        .unwrap();
    let quarantine = lake
        .scan(Layer::Quarantine, tables::UNPARSED, "bad", &d)
        .unwrap()
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(bronze, lines_in_events + quarantine.height() as u64);

    let reasons: Vec<String> = quarantine
        .column("reason")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|r| r.unwrap_or_default().to_string())
        .collect();
    for expected in [
        "invalid UTF-8",
        "NUL",
        "does not match format",
        "unparseable timestamp",
        "truncated or corrupt",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "no {expected:?} in {reasons:?}"
        );
    }
    assert_eq!(quarantine.height(), 5, "{reasons:?}");

    // The 10 MB line and the CRLF line are events; the stack trace joined its event.
    let messages: Vec<&str> = events
        .column("message")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert!(messages.iter().any(|m| m.len() > 10 << 20));
    assert!(messages.contains(&"windows line end"));
    let failed = messages
        .iter()
        .position(|m| m.starts_with("request failed"))
        .unwrap();
    assert!(messages[failed].ends_with("at com.example.Api.handle(Api.java:42)"));
    let counts = events.column("line_count").unwrap().u32().unwrap();
    assert_eq!(counts.get(failed), Some(3));

    // The template store has every template with its count.
    let store = loglake::lake::read_parquet(
        &lake_dir.join("silver/template_store/source=bad/store.parquet"),
    )
    .unwrap();
    let total: u64 = store
        .column("count")
        .unwrap()
        .as_materialized_series()
        .sum()
        .unwrap();
    assert_eq!(total, events.height() as u64);
}

/// A gzip file corrupt in its middle decodes to garbage before its checksum fails: none of it
/// reaches bronze; it is quarantined whole, with why, and the other inputs are ingested.
#[test]
fn a_corrupt_gzip_is_quarantined_whole() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    let mut good = String::new();
    for i in 0..100 {
        good.push_str(&format!(
            "2026-11-21T10:00:{:02}.000Z INFO api: request {i} ok\n",
            i % 60
        ));
    }
    std::fs::write(raw.join("good.log"), &good).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..20_000 {
        writeln!(
            gz,
            "2026-11-21T11:00:00.000Z INFO gz: compressed line {i} of many"
        )
        .unwrap();
    }
    let mut gz = gz.finish().unwrap();
    let middle = gz.len() / 2;
    for b in &mut gz[middle..middle + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(raw.join("broken.log.gz"), &gz).unwrap();

    let lake_dir = dir.path().join("lake");
    let lake_arg = lake_dir.to_str().unwrap();
    let raw_arg = raw.to_str().unwrap();
    loglake(&[
        "--lake",
        lake_arg,
        "--source",
        "bad",
        "--date",
        "2026-11-21",
        "run",
        "--to",
        "01-bronze",
        "--input",
        raw_arg,
    ])
    .expect("the good file is ingested");
    let lake = Lake::new(&lake_dir);
    let d = [chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()];
    assert_eq!(
        lake.table_rows(Layer::Bronze, tables::LINES, "bad", &d)
            .unwrap(),
        100,
        "only the good file's lines"
    );
    let rejected = lake
        .scan(Layer::Quarantine, tables::INPUTS, "bad", &d)
        .unwrap()
        .expect("quarantine/inputs")
        .collect()
        .unwrap();
    let reasons = format!("{:?}", rejected.column("reason").unwrap());
    assert_eq!(rejected.height(), 1, "{reasons}");
    assert!(reasons.contains("corrupt"), "{reasons}");
}

/// An empty file, and a file of nothing but NUL bytes, are nothing to do: the batch does not
/// fail, and the NUL line is quarantined with its reason.
#[test]
fn empty_and_nul_inputs_do_not_fail_the_batch() {
    for (name, bytes, quarantined) in [
        ("empty.log", Vec::new(), 0usize),
        ("zeros.log", [vec![0u8; 5000], b"\n".to_vec()].concat(), 1),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::create_dir_all(&raw).unwrap();
        std::fs::write(raw.join(name), &bytes).unwrap();
        let lake_dir = dir.path().join("lake");
        loglake(&[
            "--lake",
            lake_dir.to_str().unwrap(),
            "--date",
            "2026-11-21",
            "run",
            "--input",
            raw.to_str().unwrap(),
        ])
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let lake = Lake::new(&lake_dir);
        let d = [chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()];
        let unparsed = lake
            .table_rows(Layer::Quarantine, tables::UNPARSED, "default", &d)
            .unwrap();
        assert_eq!(unparsed as usize, quarantined, "{name}");
    }
}

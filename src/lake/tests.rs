use super::*;

/// A lake in a temporary folder (dropped with it), and the batch date the tests write.
fn empty_lake() -> (tempfile::TempDir, Lake, NaiveDate) {
    let tmp = tempfile::tempdir().unwrap();
    let lake = Lake::new(tmp.path());
    lake.ensure_layout().unwrap();
    (tmp, lake, NaiveDate::from_ymd_opt(2026, 11, 20).unwrap())
}

#[test]
fn commit_replaces_a_partition_whole() {
    let (tmp, lake, date) = empty_lake();
    let first = df!("x" => [1i64, 2, 3]).unwrap();
    lake.commit_partition(Layer::Silver, "t", "s", date, &first)
        .unwrap();
    let second = df!("x" => [7i64]).unwrap();
    lake.commit_partition(Layer::Silver, "t", "s", date, &second)
        .unwrap();

    let files = lake.part_files(Layer::Silver, "t", "s", date).unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(Lake::row_count(&files).unwrap(), 1);
    let back = lake
        .scan(Layer::Silver, "t", "s", &[date])
        .unwrap()
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(back.column("x").unwrap().i64().unwrap().get(0), Some(7));
    assert_eq!(
        back.column("date").unwrap().str().unwrap().get(0),
        Some("2026-11-20")
    );
    // Nothing is left behind in staging.
    assert_eq!(
        fs::read_dir(tmp.path().join("_staging")).unwrap().count(),
        0
    );
    assert_eq!(
        lake.partition_dates(Layer::Silver, "t", "s").unwrap(),
        vec![date]
    );
}

#[test]
fn windows_stay_inside_parts_and_cover_the_partition_in_order() {
    let (_tmp, lake, date) = empty_lake();
    let mut out = lake.stage_partition(Layer::Silver, "t").unwrap();
    let mut next = 0i64;
    for rows in [5i64, 3, 7] {
        let mut part = df!("x" => (next..next + rows).collect::<Vec<_>>()).unwrap();
        out.write(&mut part).unwrap();
        next += rows;
    }
    out.commit("s", date).unwrap();
    let ranges = lake.row_ranges(Layer::Silver, "t", ("s", date), 4).unwrap();
    assert_eq!(ranges, [(0, 4), (4, 1), (5, 3), (8, 4), (12, 3)]);
    let mut seen = Vec::new();
    lake.read_windows(
        Layer::Silver,
        "t",
        ("s", date),
        RowWindows {
            rows: 4,
            columns: &["x"],
        },
        &mut |df| {
            seen.push(
                df.column("x")?
                    .i64()?
                    .into_no_null_iter()
                    .collect::<Vec<_>>(),
            );
            Ok(())
        },
    )
    .unwrap();
    let lengths: Vec<usize> = seen.iter().map(Vec::len).collect();
    assert_eq!(lengths, [4, 1, 3, 4, 3]);
    assert_eq!(seen.concat(), (0..15).collect::<Vec<i64>>());
}

#[test]
fn names_with_control_characters_are_shown_escaped() {
    assert_eq!(printable("app.log"), "app.log");
    assert_eq!(
        printable("a\nlevel=ERROR forged\u{1b}[31m.log"),
        "a\\nlevel=ERROR forged\\u{1b}[31m.log"
    );
    assert!(!shown(Path::new("x\ry.log")).contains('\r'));
    assert!(is_folder_name("web-1_a") && !is_folder_name("..") && !is_folder_name("a/b"));
}

#[test]
fn small_neighbouring_ranges_are_read_together() {
    // Three small parts that follow on, a large one, and one after a gap.
    let ranges = vec![(0, 10), (10, 5), (15, 5), (20, 100), (130, 3)];
    assert_eq!(
        coalesce_ranges(ranges.clone(), 30),
        [(0, 20), (20, 100), (130, 3)]
    );
    assert_eq!(
        coalesce_ranges(ranges.clone(), 12),
        [(0, 10), (10, 10), (20, 100), (130, 3)]
    );
    assert_eq!(coalesce_ranges(ranges, 1000), [(0, 120), (130, 3)]);
}

#[test]
fn rows_are_read_from_the_parts_they_lie_in() {
    let (_tmp, lake, date) = empty_lake();
    let mut staged = lake.stage_partition(Layer::Silver, "events").unwrap();
    for part in 0..4i64 {
        let mut df = df!("n" => (part * 10..part * 10 + 10).collect::<Vec<i64>>()).unwrap();
        staged.write(&mut df).unwrap();
    }
    staged.commit("app", date).unwrap();
    let read = |start: usize, rows: usize| -> Vec<i64> {
        let windows = RowWindows {
            rows,
            columns: &["n"],
        };
        let df = lake
            .read_rows(Layer::Silver, "events", ("app", date), start, &windows)
            .unwrap();
        df.column("n")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect()
    };
    assert_eq!(read(8, 5), [8, 9, 10, 11, 12]);
    assert_eq!(read(25, 20), (25..40).collect::<Vec<_>>());
    assert_eq!(read(0, 3), [0, 1, 2]);
    assert!(read(40, 5).is_empty(), "past the last row");
}

#[test]
fn compaction_joins_small_parts_to_their_neighbours_only() {
    let (_tmp, lake, date) = empty_lake();
    // A day of runs: each a full part (10 rows, the slice) and its last event (1 row).
    let mut staged = lake.stage_partition(Layer::Silver, "events").unwrap();
    let mut n = 0i64;
    for _ in 0..4 {
        for rows in [10, 1] {
            let mut df = df!("n" => (n..n + rows).collect::<Vec<i64>>()).unwrap();
            staged.write(&mut df).unwrap();
            n += rows;
        }
    }
    staged.commit("app", date).unwrap();
    let files = lake
        .part_files(Layer::Silver, "events", "app", date)
        .unwrap();
    assert_eq!(Lake::small_parts(&files, 10).unwrap(), 4);
    let rewritten = lake
        .compact_parts((Layer::Silver, "events"), ("app", date), &files, 10, Ok)
        .unwrap();
    // Each full part took in the row after it: 4 parts of 11, every row in order.
    assert_eq!(rewritten, 44);
    let files = lake
        .part_files(Layer::Silver, "events", "app", date)
        .unwrap();
    assert_eq!(files.len(), 4);
    assert_eq!(Lake::small_parts(&files, 10).unwrap(), 0);
    let all = Lake::scan_files(&files).unwrap().collect().unwrap();
    let got: Vec<i64> = all
        .column("n")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(got, (0..44).collect::<Vec<_>>());
    // Compacted again, nothing is written: every part is carried over.
    let rewritten = lake
        .compact_parts((Layer::Silver, "events"), ("app", date), &files, 10, Ok)
        .unwrap();
    assert_eq!(rewritten, 0);
}

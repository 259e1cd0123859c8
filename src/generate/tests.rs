use super::*;

#[test]
fn never_seen_messages_stay_distinct_templates_over_two_months() {
    let dir = tempfile::tempdir().unwrap();
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let out = generate(&GenerateOptions {
        out_dir: dir.path().to_path_buf(),
        source: "shop".into(),
        start,
        days: 60,
        lines_per_day: 500,
        seed: 3,
    })
    .unwrap();
    let labels = read_labels(&out.labels_path).unwrap();
    let lines: Vec<String> = labels
        .iter()
        .filter(|l| l.kind == "never_seen")
        .map(|l| {
            let file = dir.path().join("logs").join(l.file.as_deref().unwrap());
            let text = fs::read_to_string(file).unwrap();
            text.lines()
                .nth(l.line.unwrap() as usize - 1)
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(lines.len(), 120);
    // Mined together, as one training range would see them, every message is its own
    // template: none is seen twice.
    let config = crate::parse::ParserConfig::new(crate::parse::ParseSettings {
        format: "generator".into(),
        ..Default::default()
    })
    .unwrap();
    let parser = crate::parse::Parser::new(&config, start).unwrap();
    let input: Vec<Result<&str, String>> = lines.iter().map(|l| Ok(l.as_str())).collect();
    let batch = parser.parse_batch(&input);
    let mut templates = std::collections::HashSet::new();
    for p in &batch.parsed {
        let crate::parse::Parsed::Event(e) = p else {
            panic!("{p:?}")
        };
        assert!(
            templates.insert(e.template),
            "template seen twice: {}",
            batch.templates[e.template].1
        );
    }
}

#[test]
fn seeded_output_is_reproducible_and_labelled() {
    let dir = tempfile::tempdir().unwrap();
    let opts = GenerateOptions {
        out_dir: dir.path().join("a"),
        source: "shop".into(),
        start: NaiveDate::from_ymd_opt(2026, 11, 16).unwrap(),
        days: 2,
        lines_per_day: 20_000,
        seed: 5,
    };
    let a = generate(&opts).unwrap();
    let b = generate(&GenerateOptions {
        out_dir: dir.path().join("b"),
        ..opts.clone()
    })
    .unwrap();
    assert_eq!(
        fs::read(&a.files[0]).unwrap(),
        fs::read(&b.files[0]).unwrap()
    );
    assert!(a.lines > 30_000 && a.lines < 50_000, "{} lines", a.lines);

    let labels = read_labels(&a.labels_path).unwrap();
    // Per day: 2 window, 6 session, 2 never-seen, 1 injected out-of-range value and the
    // completion lines of the 3 latency outliers.
    assert_eq!(labels.len(), 2 * 14);
    // Event labels point at the very line that holds the never-seen message.
    let text = fs::read_to_string(&a.files[0]).unwrap();
    let all: Vec<&str> = text.lines().collect();
    for l in labels
        .iter()
        .filter(|l| l.kind == "never_seen" && l.file.as_deref() == Some("shop-2026-11-16.log"))
    {
        let line = all[l.line.unwrap() as usize - 1];
        assert!(line.contains(" ERROR "), "{line}");
        assert!(
            NEVER_SEEN
                .iter()
                .any(|t| line.contains(t.split('{').next().unwrap())),
            "{line}"
        );
    }
    // Out-of-range labels point at a line whose value is far beyond its usual one: the
    // injected one, and each latency outlier's completion (15 s or more).
    let slow: Vec<&str> = labels
        .iter()
        .filter(|l| l.kind == "latency_outlier" && l.file.as_deref() == Some("shop-2026-11-16.log"))
        .map(|l| l.session_key.as_deref().unwrap())
        .collect();
    let mut completions = 0;
    for l in labels
        .iter()
        .filter(|l| l.kind == "out_of_range" && l.file.as_deref() == Some("shop-2026-11-16.log"))
    {
        let line = all[l.line.unwrap() as usize - 1];
        let number_after = |key: &str| -> u64 {
            let rest = &line[line.find(key).unwrap() + key.len()..];
            rest.split([' ', '=']).next().unwrap().parse().unwrap()
        };
        if line.contains("request completed") {
            completions += 1;
            assert!(
                slow.iter().any(|k| line.contains(&format!("req={k} "))),
                "{line}"
            );
            assert!(number_after("duration_ms=") >= 15_000, "{line}");
        } else if line.contains("health check ok") {
            assert!(number_after("latency_ms=") >= 5_000, "{line}");
        } else {
            assert!(number_after("gc pause ") >= 20_000, "{line}");
        }
    }
    assert_eq!(completions, 3);
    // Session labels name a request that exists in the file.
    for l in labels
        .iter()
        .filter(|l| l.granularity == "session" && l.file.as_deref() == Some("shop-2026-11-16.log"))
    {
        let key = l.session_key.as_ref().unwrap();
        assert!(text.contains(&format!("req={key} ")), "{key}");
    }
    // Lines are in time order.
    let stamps: Vec<&str> = all.iter().map(|l| &l[..24]).collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
}

//! `06-report --html` on two generated days: the page is self-contained, holds a timeline per
//! service, the per-detector and template charts, the new templates of day two and the
//! incidents table; a day's report against a two-day labels file judges that day's labels;
//! and headless Chromium renders it (a screenshot with the charts' colours
//! in it, a DOM with every chart).
//!
//! Chromium is required when `LOGLAKE_REQUIRE_CHROMIUM` is set (CI installs it and sets it);
//! otherwise the browser half is skipped with a note when no Chromium is installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::NaiveDate;
use loglake::lake::{Lake, Layer, tables};
use polars::prelude::*;

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// Chromium flags for a headless run on a machine without network or display.
fn headless(browser: &Path, profile: &Path) -> Command {
    let mut c = Command::new(browser);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

#[test]
fn the_html_report_is_self_contained_and_renders_its_charts_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), "2026-11-18", 2, 20_000, 5);
    let lake = tmp.path().join("lake");
    common::run_each_day(&lake, &raw, &["2026-11-18", "2026-11-19"], "05-detect");
    common::shop_ok(&lake, "2026-11-19", &["06-report", "--html"]);
    let page_path = lake.join("reports/2026-11-19/index.html");
    let page = std::fs::read_to_string(&page_path).unwrap();
    assert_eq!(
        page,
        std::fs::read_to_string(lake.join("reports/2026-11-19/shop.html")).unwrap()
    );

    // Self-contained: nothing to fetch.
    for needle in ["<script", "<link", "<img", "<iframe", "url(", "@import"] {
        assert!(!page.contains(needle), "page contains {needle}");
    }
    let without_ns = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!without_ns.contains("http://") && !without_ns.contains("https://"));

    // One timeline per service of the batch, each with its lines; anomaly markers somewhere.
    let lake_api = Lake::new(&lake);
    let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    let services = lake_api
        .scan(
            Layer::Gold,
            tables::WINDOW_FEATURES,
            "shop",
            &[day("2026-11-19")],
        )
        .unwrap()
        .unwrap()
        .select([col("service").n_unique().cast(DataType::UInt64)])
        .collect()
        .unwrap()
        .column("service")
        .unwrap()
        .u64()
        .unwrap()
        .get(0)
        .unwrap() as usize;
    assert!(services >= 3);
    assert_eq!(
        page.matches("class=\"chart chart-volume\"").count(),
        services
    );
    assert_eq!(page.matches("<path class=\"series\"").count(), 2 * services);
    assert!(page.matches("<circle class=\"anomaly\"").count() >= 3);
    assert_eq!(page.matches("class=\"chart chart-detectors\"").count(), 1);
    assert_eq!(page.matches("class=\"chart chart-templates\"").count(), 1);
    assert!(page.matches("<rect class=\"bar\"").count() >= 10);

    // Incidents: the table has every incident of the batch (fewer than the page's cap here).
    let db = loglake::db::Database::connect("", &lake.join("loglake.db"), 1).unwrap();
    let incidents = db
        .query_i64(
            "SELECT COUNT(*) FROM incidents WHERE source = 'shop' AND batch_date = '2026-11-19'",
        )
        .unwrap() as usize;
    assert!(incidents > 0 && incidents < 100);
    let table = &page[page
        .find("<table class=\"incidents\">")
        .expect("incidents table")..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_eq!(table.matches("<tr id=").count(), incidents);
    // Day two's new templates are listed; day one (the first batch) lists none.
    let new_rows = page
        .find("<table class=\"new-templates\">")
        .map(|i| {
            page[i..]
                .split("</table>")
                .next()
                .unwrap()
                .matches("<tr><td>")
                .count()
        })
        .unwrap_or(0);
    common::shop_ok(&lake, "2026-11-18", &["06-report", "--html"]);
    let day_one = std::fs::read_to_string(lake.join("reports/2026-11-18/index.html")).unwrap();
    assert!(day_one.contains("first batch"));

    // A day's report against the labels of both days judges that day's labels only (the
    // generator labels 14 things a day): the other day's are not misses.
    let labels = raw.join("labels.jsonl");
    let report = common::shop_ok(
        &lake,
        "2026-11-19",
        &["06-report", "--labels", labels.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&report.stdout);
    assert!(
        stdout.contains("(14 of the file's 28 labels fall in the time this batch scored)"),
        "{stdout}"
    );
    assert!(stdout.contains("of 14 labels found"), "{stdout}");
    assert!(
        stdout.contains("type never_seen         (event) ensemble found 2/2"),
        "{stdout}"
    );
    let templates_of = |d: &str| -> std::collections::HashSet<String> {
        let df = lake_api
            .scan(Layer::Silver, tables::TEMPLATES, "shop", &[day(d)])
            .unwrap()
            .unwrap()
            .select([col("template_id")])
            .collect()
            .unwrap();
        df.column("template_id")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|v| v.unwrap().to_string())
            .collect()
    };
    let truly_new = templates_of("2026-11-19")
        .difference(&templates_of("2026-11-18"))
        .count();
    // The generator injects never-seen messages, so day two has templates day one lacked.
    assert!(truly_new > 0);
    assert_eq!(new_rows, truly_new.min(40));

    // The browser half.
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("LOGLAKE_REQUIRE_CHROMIUM").is_none(),
            "LOGLAKE_REQUIRE_CHROMIUM is set but no chromium is on PATH"
        );
        eprintln!("no chromium on PATH: skipping the rendering check (CI installs it)");
        return;
    };
    let url = format!("file://{}", page_path.display());
    let dom = headless(&browser, &tmp.path().join("profile-dom"))
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    assert!(dom.status.success());
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(
        dom.matches("<svg").count(),
        services + 2,
        "charts in the rendered DOM"
    );
    assert!(dom.contains("<table class=\"incidents\">"));

    let shot = tmp.path().join("report.png");
    let status = headless(&browser, &tmp.path().join("profile-shot"))
        .arg("--window-size=1100,1600")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(status.status.success() && shot.is_file(), "no screenshot");
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1100, 1600));
    let channels = info.color_type.samples();
    assert!(channels >= 3);
    let (mut ink, mut red, mut blue) = (0usize, 0usize, 0usize);
    for px in buf[..info.buffer_size()].chunks(channels) {
        let (r, g, b) = (px[0] as i32, px[1] as i32, px[2] as i32);
        if r + g + b < 690 {
            ink += 1; // anything but white/near-white background
        }
        if r > 180 && g < 90 && b < 90 {
            red += 1; // anomaly markers, detector bars
        }
        if b > 180 && r < 90 && g < 160 {
            blue += 1; // event lines, template bars
        }
    }
    let total = (info.width * info.height) as usize;
    assert!(
        ink * 100 > total * 3,
        "screenshot is nearly blank: {ink} of {total} pixels drawn"
    );
    assert!(red > 200, "anomaly markers not rendered: {red} red pixels");
    assert!(blue > 1000, "event lines not rendered: {blue} blue pixels");
}

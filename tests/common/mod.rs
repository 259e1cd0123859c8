//! What several integration tests share: generated logs with labels.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use loglake::generate::{GenerateOptions, generate};

/// Generate `days` days of source `shop` from `start` (YYYY-MM-DD) under `dir/raw`: logs in
/// `raw/logs/shop-<date>.log`, labels in `raw/labels.jsonl`. Returns `dir/raw`.
pub fn generated(dir: &Path, start: &str, days: u32, lines_per_day: u64, seed: u64) -> PathBuf {
    let raw = dir.join("raw");
    generate(&GenerateOptions {
        out_dir: raw.clone(),
        source: "shop".into(),
        start: NaiveDate::parse_from_str(start, "%Y-%m-%d").unwrap(),
        days,
        lines_per_day,
        seed,
    })
    .unwrap();
    raw
}

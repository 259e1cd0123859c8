//! `loglake config show`: the settings a command would run with, each with where it came from.
//!
//! Layers hide each other silently — a `LOGLAKE__…` variable left in a crontab beats the file
//! an operator just edited — so the merged value of every key is printed beside its origin:
//! a flag, a variable, the config file, or the built-in default. The database URL's password
//! is redacted.

use std::path::Path;

use anyhow::Result;

use super::file::ConfigFrom;
use super::{Overrides, Settings};

/// One setting: its key (`gold.window_minutes`), merged value, and origin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shown {
    pub key: String,
    pub value: String,
    pub origin: String,
}

/// Every setting of `settings`, loaded from `from` with `overrides`, with its origin.
pub fn show(settings: &Settings, from: &ConfigFrom, overrides: &Overrides) -> Result<Vec<Shown>> {
    let file = match from.path() {
        Some(p) => Some(
            config::Config::builder()
                .add_source(config::File::from(p.to_path_buf()))
                .build()?,
        ),
        None => None,
    };
    let mut flat = Vec::new();
    flatten("", &serde_json::to_value(settings)?, &mut flat);
    Ok(flat
        .into_iter()
        .map(|(key, value)| {
            let origin = origin(&key, file.as_ref(), from.path(), overrides);
            let value = match (key.as_str(), &settings.database.url) {
                ("database.url", url) if !url.is_empty() => {
                    serde_json::Value::from(crate::secrets::redact_url(url)).to_string()
                }
                _ => value,
            };
            Shown { key, value, origin }
        })
        .collect())
}

/// Where the value of `key` came from (the highest layer that sets it).
fn origin(
    key: &str,
    file: Option<&config::Config>,
    path: Option<&Path>,
    overrides: &Overrides,
) -> String {
    let flag = match key {
        "lake.path" => overrides.lake.is_some().then_some("--lake"),
        "database.url" => overrides.database_url.is_some().then_some("--database-url"),
        "run.on_locked" => overrides.on_locked.is_some().then_some("--on-locked"),
        "run.skip_exit_code" => overrides
            .skip_exit_code
            .is_some()
            .then_some("--skip-exit-code"),
        _ => None,
    };
    if let Some(flag) = flag {
        return format!("flag {flag}");
    }
    let variable = format!("LOGLAKE__{}", key.to_ascii_uppercase().replace('.', "__"));
    if std::env::var_os(&variable).is_some() {
        return format!("environment {variable}");
    }
    if key == "database.url" && std::env::var_os("DATABASE_URL").is_some() {
        return "environment DATABASE_URL".into();
    }
    if let (Some(file), Some(path)) = (file, path)
        && file.get::<config::Value>(key).is_ok()
    {
        return format!("file {}", path.display());
    }
    "default".into()
}

/// `value`'s leaves as (`a.b.c`, JSON text) pairs, in key order; lists are leaves.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        leaf => out.push((prefix.to_string(), leaf.to_string())),
    }
}

/// The settings as text: `key = value   # origin`, aligned.
pub fn render(from: &ConfigFrom, shown: &[Shown]) -> String {
    let mut out = format!("# config file: {}\n", from.describe());
    let width = shown
        .iter()
        .map(|s| s.key.len() + s.value.len() + 3)
        .max()
        .unwrap_or(0)
        .min(72);
    for s in shown {
        // TOML has no null: an unset optional key is shown commented out.
        let line = if s.value == "null" {
            format!("# {} = (not set)", s.key)
        } else {
            format!("{} = {}", s.key, s.value)
        };
        out.push_str(&format!("{line:<width$}  # {}\n", s.origin));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_says_where_it_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loglake.toml");
        std::fs::write(
            &path,
            "[gold]\nwindow_minutes = 15\n[database]\nurl = \"postgres://app:hunter2secret@db/loglake\"\n",
        )
        .unwrap();
        let from = ConfigFrom::Flag(path.clone());
        let overrides = Overrides {
            lake: Some("elsewhere".into()),
            ..Default::default()
        };
        let settings = Settings::load_from(&from, &overrides).unwrap();
        let shown = show(&settings, &from, &overrides).unwrap();
        let find = |key: &str| shown.iter().find(|s| s.key == key).unwrap().clone();
        assert_eq!(find("gold.window_minutes").value, "15");
        assert!(find("gold.window_minutes").origin.starts_with("file "));
        assert_eq!(find("lake.path").origin, "flag --lake");
        assert_eq!(find("train.lookback_days").origin, "default");
        // Detector sections are flattened to their keys.
        assert!(shown.iter().any(|s| s.key.starts_with("detectors.zscore.")));
        let url = find("database.url");
        assert!(!url.value.contains("hunter2secret"), "{url:?}");
        assert!(!render(&from, &shown).contains("hunter2secret"));
    }
}

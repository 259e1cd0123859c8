//! How findings are worded: feature names as a person would say them, values in their own
//! units, the most deviating features of a row as evidence. Shared by every detector so that
//! reasons read alike whichever detector wrote them.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::baseline::FeatureBaseline;
use crate::features;

/// How many deviating features an anomaly's details list.
pub const TOP_FEATURES: usize = 5;

/// One feature's evidence: how far it deviates (for ranking), the evidence object for
/// `details.top_features`, and the sentence a reason quotes.
#[derive(Debug, Clone)]
pub struct Ranked {
    pub deviation: f64,
    pub evidence: serde_json::Value,
    pub text: String,
}

pub fn fmt_hm(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_default()
}

pub fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 && v.abs() < 1e15 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.2}")
    }
}

/// A template as a reason names it: its text in quotes, or `template <id>` if the model does
/// not know it.
pub fn template_name(templates: &BTreeMap<String, String>, id: &str) -> String {
    templates
        .get(id)
        .map(|t| format!("'{t}'"))
        .unwrap_or_else(|| format!("template {id}"))
}

/// A feature's name as a person would say it.
pub fn feature_label(feature: &str, templates: &BTreeMap<String, String>) -> String {
    let template = |id: &str| template_name(templates, id);
    match feature {
        "n_events" => "event volume".into(),
        "n_error" => "ERROR count".into(),
        "n_warn" => "WARN count".into(),
        "n_info" => "INFO count".into(),
        "n_debug" => "DEBUG count".into(),
        "distinct_templates" | "n_distinct_templates" => "distinct templates".into(),
        "duration_log" => "duration".into(),
        "warn_rate" => "WARN rate".into(),
        "error_rate" => "ERROR rate".into(),
        f => {
            if let Some(id) = f.strip_prefix("tpl_") {
                format!("count of {}", template(id))
            } else if let Some(id) = f.strip_prefix(features::TEMPLATE_COUNT_PREFIX) {
                format!("occurrences of {}", template(id))
            } else {
                f.to_string()
            }
        }
    }
}

/// Observed and baseline values in the feature's own unit (durations back from log scale).
pub fn display_value(feature: &str, v: f64) -> String {
    if feature == "duration_log" {
        let ms = v.exp_m1();
        if ms >= 1000.0 {
            format!("{:.1} s", ms / 1000.0)
        } else {
            format!("{ms:.0} ms")
        }
    } else {
        fmt_num(v)
    }
}

/// Features of one row ranked by |z| against `baselines`, as evidence objects.
pub fn top_features(
    row: &[f64],
    features: &[String],
    baselines: &[FeatureBaseline],
    templates: &BTreeMap<String, String>,
) -> Vec<Ranked> {
    let mut ranked: Vec<(usize, f64)> = row
        .iter()
        .zip(baselines)
        .enumerate()
        .map(|(j, (v, b))| (j, b.z(*v)))
        .filter(|(_, z)| z.is_finite() && *z != 0.0)
        .collect();
    ranked.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
    ranked
        .into_iter()
        .take(TOP_FEATURES)
        .map(|(j, z)| {
            let f = &features[j];
            let b = &baselines[j];
            let label = feature_label(f, templates);
            let spread = if f == "duration_log" {
                String::new()
            } else {
                format!("±{}", fmt_num(b.scale))
            };
            let text = format!(
                "{label} {} vs baseline {}{spread} (z={z:.1})",
                display_value(f, row[j]),
                display_value(f, b.center)
            );
            let evidence = json!({
                "feature": f, "label": label, "observed": row[j],
                "baseline": b.center, "spread": b.scale, "z": (z * 100.0).round() / 100.0,
            });
            Ranked {
                deviation: z,
                evidence,
                text,
            }
        })
        .collect()
}

/// "99th", "1st", "99.5th": a percentile as people write it.
pub fn ordinal(p: f64) -> String {
    let n = format!("{}", (p * 10.0).round() / 10.0);
    let suffix = if n.contains('.') {
        "th"
    } else {
        match (p.round() as i64 % 100, p.round() as i64 % 10) {
            (11..=13, _) => "th",
            (_, 1) => "st",
            (_, 2) => "nd",
            (_, 3) => "rd",
            _ => "th",
        }
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_numbers_read_as_people_write_them() {
        assert_eq!(ordinal(99.9), "99.9th");
        assert_eq!(ordinal(99.0), "99th");
        assert_eq!(ordinal(0.1), "0.1th");
        assert_eq!(ordinal(1.0), "1st");
        assert_eq!(ordinal(12.0), "12th");
        assert_eq!(fmt_num(3.0), "3");
        assert_eq!(fmt_num(2.345), "2.35");
        assert_eq!(display_value("duration_log", (1500.0f64).ln_1p()), "1.5 s");
        assert_eq!(fmt_hm(3_600_000 + 5 * 60_000), "01:05");
    }

    #[test]
    fn the_most_deviating_features_come_first_with_their_baseline() {
        let features = vec!["n_events".to_string(), "tpl_7".to_string()];
        let baselines = vec![
            FeatureBaseline {
                center: 100.0,
                scale: 10.0,
                stabilized: None,
            },
            FeatureBaseline {
                center: 1.0,
                scale: 1.0,
                stabilized: None,
            },
        ];
        let templates = BTreeMap::from([("7".to_string(), "disk <*> full".to_string())]);
        let top = top_features(&[130.0, 21.0], &features, &baselines, &templates);
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].evidence["feature"], "tpl_7");
        assert!(
            top[0]
                .text
                .starts_with("count of 'disk <*> full' 21 vs baseline 1")
        );
        assert_eq!(top[1].evidence["label"], "event volume");
        // A feature at its baseline is no evidence.
        assert_eq!(
            top_features(&[100.0, 1.0], &features, &baselines, &templates).len(),
            0
        );
    }
}

//! The value-range detector in the pipeline: lines whose numeric values (durations, sizes,
//! counts in the text) lie far outside the range that message usually reports.

use anyhow::{Context as _, Result};
use linfa::ParamGuard;
use polars::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    LineRanges, ParamRangeError, ParamRangeParams, ParamRanges, ValueRange, numeric_value, unit_of,
};
use crate::detectors::contract::{Detector, Granularity, Scored, Trained};
use crate::detectors::explain::{fmt_num, ordinal};
use crate::detectors::saved_model::SavedModel;
use crate::detectors::scoring::ScoringInput;
use crate::detectors::settings::{Common, Params, SettingError, guarded};
use crate::detectors::training::TrainingData;
use crate::features;

pub struct ParamRangeDetector;

/// `[detectors.param_range]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParamRangeSettings {
    /// Upper quantile of a value's usual range (the lower one is 1 − quantile); a position
    /// needs 1 / (1 − quantile) training values.
    pub quantile: f64,
    /// How far past the range, in tail widths (median → quantile), raises an anomaly.
    pub threshold: f64,
    /// The narrowest tail width, as a factor around the median: a value that barely moved in
    /// training is out of range beyond this factor per tail width of `threshold`.
    pub min_factor: f64,
}

impl Default for ParamRangeSettings {
    fn default() -> Self {
        let p = ParamRangeParams::default().0;
        Self {
            quantile: p.quantile,
            threshold: p.threshold,
            min_factor: p.min_factor,
        }
    }
}

impl ParamRangeSettings {
    fn params(&self) -> ParamRangeParams {
        ParamRanges::params()
            .quantile(self.quantile)
            .threshold(self.threshold)
            .min_factor(self.min_factor)
    }
}

impl Params for ParamRangeSettings {
    fn default_common() -> Common {
        Common {
            enabled: true,
            granularities: vec![Granularity::Event],
            weight: 1.0,
            view: "values".into(),
        }
    }

    fn check(&self) -> Result<(), SettingError> {
        guarded(self.params().check(), |e| match e {
            ParamRangeError::Quantile(_) => "quantile",
            ParamRangeError::MinFactor(_) => "min_factor",
            _ => "threshold",
        })
    }
}

impl Detector for ParamRangeDetector {
    type Settings = ParamRangeSettings;
    const NAME: &'static str = "param_range";
    const SUPPORTS: &'static [Granularity] = &[Granularity::Event];

    /// Per template and value position, the usual range of its numeric values.
    fn train(
        &self,
        s: &ParamRangeSettings,
        granularity: Granularity,
        data: &TrainingData<'_>,
    ) -> Result<Trained> {
        (data.step)(format!("training {granularity}/{}", Self::NAME));
        let params = s.params();
        let mut sampler = params.sampler()?;
        let mut lines = 0u64;
        // A window of events at a time: the sampler keeps a bounded sample, so a month of
        // values is never in memory at once.
        data.event_windows(&["service", "template_id", "params"], |date, df| {
            let mut values = Vec::new();
            let services = df.column("service")?.str()?;
            let ids = df.column("template_id")?.str()?;
            let arrays = df.column("params")?.cast(&DataType::String)?;
            for ((service, id), json) in services.iter().zip(ids.iter()).zip(arrays.str()?.iter()) {
                let (Some(id), Some(json)) = (id, json) else {
                    continue;
                };
                if json == "[]" {
                    continue;
                }
                features::json_strings_into(json, &mut values)
                    .with_context(|| format!("reading the values of an event of {date}"))?;
                sampler.add(
                    service.unwrap_or_default(),
                    id,
                    values.iter().map(|v| v.as_ref()),
                );
                lines += 1;
            }
            Ok(())
        })?;
        let mut model = match params.fit(sampler) {
            Ok(m) => m,
            Err(ParamRangeError::TooFewValues { .. }) => {
                return Ok(Trained::TooLittleData(
                    "param_range: no value position has enough numeric training values yet".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        // A value operators marked normal is usual from now on: its ranges take it in.
        for e in data.normal_evidence("value") {
            if let (Some(template), Some(position), Some(x)) = (
                e["template_id"].as_str(),
                e["position"].as_u64(),
                e["observed"].as_f64(),
            ) {
                model.accept(template, position as usize, x);
            }
        }
        let m = data.event_model(Self::NAME, &["params"], lines, model.threshold(), &model)?;
        Ok(Trained::Model(Box::new(m)))
    }

    fn score<'m>(
        &self,
        model: &'m SavedModel,
        input: &ScoringInput<'_>,
        out: &mut Scored<'m>,
    ) -> Result<()> {
        let ranges: ParamRanges = model.fitted()?;
        let Some(ev) = input.events else {
            return Ok(());
        };
        // Lines of one service and template share their ranges: look them up once.
        let mut line_ranges: FxHashMap<(&str, &str), Option<LineRanges>> = FxHashMap::default();
        let mut values = Vec::new();
        for i in 0..ev.len() {
            let (service, id, json) = (ev.services[i], ev.ids[i], ev.params[i]);
            // Only lines with a judged value are read, and only values beyond their range get
            // a score row (06-report counts the rest as 0).
            if json.len() <= 2 {
                continue;
            }
            let Some(judged) = *line_ranges
                .entry((service, id))
                .or_insert_with(|| ranges.for_line(service, id))
            else {
                continue;
            };
            features::json_strings_into(json, &mut values)
                .with_context(|| format!("reading the values of event {}", ev.keys[i]))?;
            // The value furthest out speaks for the line.
            let mut worst: Option<(f64, usize, f64, &ValueRange, bool)> = None;
            for (position, raw) in values.iter().enumerate() {
                let Some((range, own)) = judged.at(position) else {
                    continue;
                };
                let Some(x) = numeric_value(raw) else {
                    continue;
                };
                let score = ranges.score(range, x);
                if worst.is_none_or(|w| score > w.0) {
                    worst = Some((score, position, x, range, own));
                }
            }
            let Some((score, position, x, range, own)) = worst else {
                continue;
            };
            if score <= 0.0 {
                continue;
            }
            out.scores.push(ev.score(i, model, score));
            if !Self::CROSSING.crosses(score, ranges.threshold()) {
                continue;
            }
            let template = ev.template(i);
            let raw = values[position].as_ref();
            let unit = unit_of(raw);
            let (side, bound, pct) = if x > range.high {
                ("above", range.high, ranges.quantile())
            } else {
                ("below", range.low, 1.0 - ranges.quantile())
            };
            let of = if own {
                format!("{service}'s")
            } else {
                "all services'".to_string()
            };
            out.findings.push(ev.finding(
                i,
                model,
                score,
                format!(
                    "{} {raw} in '{template}' {side} its {} percentile {}{unit} (median {}{unit}) of {of} {} training values",
                    value_name(template, position, values.len()),
                    ordinal(pct * 100.0),
                    fmt_num(bound),
                    fmt_num(range.median),
                    range.values
                ),
                json!({"feature": "value", "position": position, "value": raw, "observed": x, "unit": unit.trim(), "baseline": range.median, "low": range.low, "high": range.high, "quantile": ranges.quantile(), "training_values": range.values, "per_service": own, "template_id": id, "template": template, "tail_widths": (score * 100.0).round() / 100.0}),
            ));
        }
        Ok(())
    }
}

/// What a reason calls value `position` of a template with `n_values` values: the key of a
/// `key=<NUM>` token, else the word before a lone placeholder (`pause <DURATION>`), else
/// "value N". Silver's values are the masked ones, so placeholders and values line up only
/// when the template has exactly `n_values` placeholders; otherwise the position is named.
fn value_name(template: &str, position: usize, n_values: usize) -> String {
    let is_placeholder = |t: &str| t.contains('<') && t.contains('>');
    let tokens: Vec<&str> = template.split_whitespace().collect();
    let holders: Vec<usize> = (0..tokens.len())
        .filter(|&k| is_placeholder(tokens[k]))
        .collect();
    let fallback = format!("value {}", position + 1);
    if holders.len() != n_values {
        return fallback;
    }
    let k = holders[position];
    let token = tokens[k];
    let before = &token[..token.find('<').unwrap_or(0)];
    if let Some(key) = before.strip_suffix(['=', ':'])
        && !key.is_empty()
    {
        return key.to_string();
    }
    if before.is_empty()
        && k > 0
        && !is_placeholder(tokens[k - 1])
        && tokens[k - 1].chars().any(char::is_alphabetic)
    {
        return tokens[k - 1].trim_end_matches([':', '=', ',']).to_string();
    }
    fallback
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_named_by_their_key_or_the_word_before() {
        let completed = "request completed req=<*> status=<NUM> duration_ms=<NUM>";
        assert_eq!(value_name(completed, 2, 3), "duration_ms");
        assert_eq!(value_name(completed, 1, 3), "status");
        let gc = "gc pause <DURATION> heap_used=<NUM>";
        assert_eq!(value_name(gc, 0, 2), "pause");
        assert_eq!(value_name(gc, 1, 2), "heap_used");
        // Placeholders and values do not line up (Drain added a wildcard): named by position.
        assert_eq!(value_name("took <*> <NUM> ms", 0, 1), "value 1");
    }
}

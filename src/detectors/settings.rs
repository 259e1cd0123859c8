//! Detector settings: each detector's `[detectors.<name>]` section is its own serde
//! parameter struct (in its folder), plus four keys every detector has — `enabled`,
//! `granularities`, the ensemble `weight` and `view`. `config.rs` keeps the sections as
//! raw values ([`DetectorsConfig`]) so that adding a detector never touches it; they are read
//! and checked here, all of them when settings load, so a bad value stops the command before
//! anything is written and the error names its key:
//! `detectors.zscore.threshold must be positive, got -1`.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, anyhow, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::contract::Granularity;
use super::ensemble::{EnsembleParams, EnsembleValidParams, NAME as ENSEMBLE};

/// The keys every detector's section has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Common {
    pub enabled: bool,
    /// The granularities it runs on (a subset of those it supports).
    pub granularities: Vec<Granularity>,
    /// Weight of its calibrated score (score ÷ its threshold) in the ensemble.
    pub weight: f64,
    /// The evidence it reads. Of flags from detectors of one view only the strongest counts
    /// in the ensemble: detectors reading the same evidence are one witness.
    pub view: String,
}

impl Common {
    pub fn runs_on(&self, granularity: Granularity) -> bool {
        self.enabled && self.granularities.contains(&granularity)
    }
}

/// A setting that is out of range: `key` within the section, and what is wrong.
#[derive(Debug)]
pub struct SettingError {
    pub key: &'static str,
    pub message: String,
}

impl SettingError {
    pub fn new(key: &'static str, message: impl Into<String>) -> Self {
        Self {
            key,
            message: message.into(),
        }
    }
}

/// A detector's own parameters: the rest of its section. Implementations derive
/// `Deserialize` with `#[serde(default, deny_unknown_fields)]`. Where an algorithm's checked
/// parameters are exactly what a user sets (sequence, invariants, rare_template, severity),
/// they are the section itself; where they hold more — flags derived from the training data
/// (z-score, percentile), sampling internals (param_range, clustering), a typed contamination
/// (isolation forest) — the detector has a settings struct that builds them.
pub trait Params: Serialize + DeserializeOwned + Default + Clone {
    /// Its defaults for the keys every detector has.
    fn default_common() -> Common;
    /// Range checks (usually its algorithm's `ParamGuard::check`), naming the key at fault.
    fn check(&self) -> Result<(), SettingError>;
}

/// Read `[detectors.<name>]` into its common part and its parameters, with defaults for
/// missing keys, refusing unknown keys and out-of-range values.
pub fn read<P: Params>(name: &str, supports: &[Granularity], raw: &Value) -> Result<(Common, P)> {
    let mut map = match raw {
        Value::Null => Map::new(),
        Value::Object(m) => m.clone(),
        other => bail!("[detectors.{name}] must be a table, got {other}"),
    };
    let mut common = P::default_common();
    let key = |k: &str| format!("detectors.{name}.{k}");
    if let Some(v) = map.remove("enabled") {
        common.enabled = serde_json::from_value(v).with_context(|| key("enabled"))?;
    }
    if let Some(v) = map.remove("granularities") {
        common.granularities = serde_json::from_value(v).with_context(|| {
            format!(
                "{} must be a list of {}",
                key("granularities"),
                names(supports)
            )
        })?;
    }
    if let Some(v) = map.remove("weight") {
        common.weight = serde_json::from_value(v).with_context(|| key("weight"))?;
    }
    if let Some(v) = map.remove("view") {
        common.view = text(v).with_context(|| key("view"))?;
    }
    if let Some(g) = common.granularities.iter().find(|g| !supports.contains(g)) {
        bail!(
            "{} may name only {}, got {g}",
            key("granularities"),
            names(supports)
        );
    }
    if !common.weight.is_finite() || common.weight < 0.0 {
        bail!(
            "{} must be a number >= 0, got {}",
            key("weight"),
            common.weight
        );
    }
    if common.view.trim().is_empty() {
        bail!("{} must not be empty", key("view"));
    }
    let params: P = serde_json::from_value(Value::Object(map))
        .map_err(|e| anyhow!("[detectors.{name}]: {e}"))?;
    params
        .check()
        .map_err(|e| anyhow!("{} {}", key(e.key), e.message))?;
    Ok((common, params))
}

/// A section with every key, defaults filled in: what a saved model records.
pub fn resolved<P: Params>(common: &Common, params: &P) -> Result<Value> {
    let mut v = serde_json::to_value(params)?;
    let map = v.as_object_mut().expect("parameters serialise as a table");
    map.insert("enabled".into(), Value::Bool(common.enabled));
    map.insert(
        "granularities".into(),
        serde_json::to_value(&common.granularities)?,
    );
    map.insert("weight".into(), serde_json::to_value(common.weight)?);
    map.insert("view".into(), Value::String(common.view.clone()));
    Ok(v)
}

fn names(supports: &[Granularity]) -> String {
    let n: Vec<&str> = supports.iter().map(|g| g.as_str()).collect();
    n.join(", ")
}

/// `[detectors.ensemble]`: whether the ensemble runs, and the weight of a detector whose
/// section sets none (weights and views are in each detector's own section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnsembleSettings {
    pub enabled: bool,
    pub default_weight: f64,
}

impl Default for EnsembleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            default_weight: 1.0,
        }
    }
}

/// Every `[detectors.*]` section as written (file, then environment), unread until checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DetectorsConfig(pub BTreeMap<String, Value>);

impl Default for DetectorsConfig {
    fn default() -> Self {
        let mut sections: BTreeMap<String, Value> = super::DETECTORS
            .iter()
            .map(|d| (d.name().to_string(), d.default_settings()))
            .collect();
        sections.insert(
            ENSEMBLE.into(),
            serde_json::to_value(EnsembleSettings::default()).expect("serialises"),
        );
        Self(sections)
    }
}

impl DetectorsConfig {
    /// A detector's section as written (an empty table when absent: every key defaults).
    pub fn section(&self, name: &str) -> &Value {
        static EMPTY: Value = Value::Null;
        self.0.get(name).unwrap_or(&EMPTY)
    }

    /// Check every section: known names, known keys, values in range.
    pub fn check(&self) -> Result<()> {
        for name in self.0.keys() {
            if name != ENSEMBLE && super::find(name).is_none() {
                bail!(
                    "unknown detector section [detectors.{name}]: known are {}, {ENSEMBLE}",
                    super::names().join(", ")
                );
            }
        }
        for d in super::DETECTORS {
            d.check_settings(self.section(d.name()))?;
        }
        self.ensemble()?;
        Ok(())
    }

    /// A detector's common keys (enabled, granularities, weight, view).
    pub fn common(&self, name: &str) -> Result<Common> {
        let d = super::find(name).ok_or_else(|| anyhow!("unknown detector {name:?}"))?;
        d.check_settings(self.section(name))
    }

    /// Whether the ensemble runs, and its checked parameters: each detector's weight and
    /// view from its own section.
    pub fn ensemble(&self) -> Result<(bool, EnsembleValidParams)> {
        let raw = self.section(ENSEMBLE);
        let s: EnsembleSettings = match raw {
            Value::Null => EnsembleSettings::default(),
            v => serde_json::from_value(v.clone()).map_err(|e| {
                let moved = if e.to_string().contains("`weights`") || e.to_string().contains("`views`") {
                    " (weights and views are set in each detector's section now: [detectors.zscore] weight = 0.5, view = \"counts\")"
                } else {
                    ""
                };
                anyhow!("[detectors.{ENSEMBLE}]: {e}{moved}")
            })?,
        };
        let mut params = EnsembleParams::default().default_weight(s.default_weight);
        for d in super::DETECTORS {
            let c = d.check_settings(self.section(d.name()))?;
            params = params.weight(d.name(), c.weight).view(d.name(), &c.view);
        }
        let params =
            linfa::ParamGuard::check(params).map_err(|e| anyhow!("detectors.{ENSEMBLE}: {e}"))?;
        Ok((s.enabled, params))
    }

    /// Every section with every key, defaults filled in (unknown sections dropped): what
    /// `config/loglake.toml` documents and a saved model records.
    pub fn resolved(&self) -> Result<BTreeMap<String, Value>> {
        let mut out = BTreeMap::new();
        for d in super::DETECTORS {
            out.insert(
                d.name().to_string(),
                d.resolved_settings(self.section(d.name()))?,
            );
        }
        let (enabled, params) = self.ensemble()?;
        out.insert(
            ENSEMBLE.into(),
            serde_json::json!({"enabled": enabled, "default_weight": params.default_weight}),
        );
        Ok(out)
    }
}

/// A detector's `ParamGuard` verdict as a [`SettingError`]: `key` says which setting the
/// error is about, and the message keeps the guard's "must be …, got …".
pub fn guarded<T, E: std::fmt::Display>(
    checked: Result<T, E>,
    key: impl FnOnce(&E) -> &'static str,
) -> Result<(), SettingError> {
    match checked {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            let message = text
                .find("must")
                .map_or(text.as_str(), |at| &text[at..])
                .to_string();
            Err(SettingError::new(key(&e), message))
        }
    }
}

/// A text setting that an environment variable may have given as a number or a boolean
/// (`LOGLAKE__DETECTORS__ISOLATION_FOREST__CONTAMINATION=0.01` arrives as the number 0.01).
pub fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected text, got {other}"
        ))),
    }
}

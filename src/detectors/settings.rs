//! Detector settings: each detector's `[detectors.<name>]` section is its own serde
//! parameter struct (in its folder), plus four keys every detector has — `enabled`,
//! `granularities`, the ensemble `weight` and `view`. Settings hold them as
//! [`DetectorsConfig`], which reads and checks every section once, as the settings are
//! deserialised, into its typed [`Section`]: adding a detector never touches the config
//! module, nothing downstream parses a section again, and a bad value stops the command before
//! anything is written with its key named:
//! `detectors.zscore.threshold: z-score threshold must be positive, got -1`.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

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
pub trait Params: Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static {
    /// Its defaults for the keys every detector has.
    fn default_common() -> Common;
    /// Range checks (usually its algorithm's `ParamGuard::check`), naming the key at fault.
    fn check(&self) -> Result<(), SettingError>;
}

/// One detector's section, read and checked once: the keys every detector has, its own
/// typed parameters (behind `Any`, so that one list holds every detector's) and the section
/// with every default filled in, as a saved model records it.
#[derive(Clone)]
pub struct Section {
    pub common: Common,
    params: Arc<dyn Any + Send + Sync>,
    resolved: Value,
}

impl Section {
    /// Its parameters, as the detector that read it declares them.
    pub fn params<P: 'static>(&self) -> &P {
        self.params
            .downcast_ref()
            .expect("a section is read by the detector whose parameters it holds")
    }

    /// Every key with its value, defaults filled in.
    pub fn resolved(&self) -> &Value {
        &self.resolved
    }
}

impl std::fmt::Debug for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.resolved.fmt(f)
    }
}

/// Read `[detectors.<name>]` into its common part and its parameters, with defaults for
/// missing keys, refusing unknown keys and out-of-range values.
pub fn read<P: Params>(name: &str, supports: &[Granularity], raw: &Value) -> Result<Section> {
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
        .map_err(|e| anyhow!("{}: {}", key(e.key), e.message))?;
    let resolved = resolved(&common, &params)?;
    Ok(Section {
        common,
        params: Arc::new(params),
        resolved,
    })
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
    /// Where weights and views were set before each detector's section took them: read only
    /// to say where they went.
    #[serde(default, skip_serializing)]
    weights: Option<Value>,
    #[serde(default, skip_serializing)]
    views: Option<Value>,
}

impl Default for EnsembleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            default_weight: 1.0,
            weights: None,
            views: None,
        }
    }
}

/// Every `[detectors.*]` section, read and checked once when the settings are deserialised:
/// each registered detector's typed [`Section`] (defaults where none is written) and the
/// ensemble's checked parameters. Serialises as every section with every key.
#[derive(Debug, Clone)]
pub struct DetectorsConfig {
    /// As written (file, then environment): which sections and keys a user set.
    written: BTreeMap<String, Value>,
    /// Every registered detector's section, by name.
    sections: BTreeMap<&'static str, Section>,
    ensemble_enabled: bool,
    ensemble: EnsembleValidParams,
}

impl Default for DetectorsConfig {
    fn default() -> Self {
        Self::read(BTreeMap::new()).expect("every detector's defaults pass its checks")
    }
}

impl TryFrom<BTreeMap<String, Value>> for DetectorsConfig {
    type Error = anyhow::Error;

    fn try_from(written: BTreeMap<String, Value>) -> Result<Self> {
        Self::read(written)
    }
}

impl From<DetectorsConfig> for BTreeMap<String, Value> {
    fn from(config: DetectorsConfig) -> Self {
        config.resolved()
    }
}

impl Serialize for DetectorsConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.resolved().serialize(s)
    }
}

impl<'de> Deserialize<'de> for DetectorsConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let written = BTreeMap::<String, Value>::deserialize(d)?;
        // `{:#}`: the error's whole chain, which names the key at fault.
        Self::read(written).map_err(|e| serde::de::Error::custom(format!("{e:#}")))
    }
}

/// Detectors behind a cargo feature this binary was built without. Their sections are
/// accepted, so that the shipped config (which documents them) serves every build, but they
/// may not be enabled. Each with the feature that builds it.
pub(crate) const NOT_BUILT: &[(&str, &str)] = if cfg!(feature = "lstm") {
    &[]
} else {
    &[("lstm", "lstm"), ("lstm_autoencoder", "lstm")]
};

impl DetectorsConfig {
    /// Read and check every section: known names, known keys, values in range.
    fn read(written: BTreeMap<String, Value>) -> Result<Self> {
        static EMPTY: Value = Value::Null;
        for (name, section) in &written {
            if let Some((_, feature)) = NOT_BUILT.iter().find(|(n, _)| n == name) {
                if section.get("enabled") == Some(&Value::Bool(true)) {
                    bail!(
                        "[detectors.{name}] is enabled, but this loglake was built without it: \
                         build it with `cargo build --release --features {feature}`, or set enabled = false"
                    );
                }
                continue;
            }
            if name != ENSEMBLE && super::find(name).is_none() {
                bail!(
                    "unknown detector section [detectors.{name}]: known are {}, {ENSEMBLE}",
                    super::names().join(", ")
                );
            }
        }
        let mut sections = BTreeMap::new();
        for d in super::DETECTORS {
            let raw = written.get(d.name()).unwrap_or(&EMPTY);
            sections.insert(d.name(), d.read_section(raw)?);
        }
        let s: EnsembleSettings = match written.get(ENSEMBLE) {
            None | Some(Value::Null) => EnsembleSettings::default(),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| anyhow!("[detectors.{ENSEMBLE}]: {e}"))?,
        };
        if s.weights.is_some() || s.views.is_some() {
            bail!(
                "[detectors.{ENSEMBLE}]: weights and views are set in each detector's section now: [detectors.zscore] weight = 0.5, view = \"counts\""
            );
        }
        let mut params = EnsembleParams::default().default_weight(s.default_weight);
        for (name, section) in &sections {
            params = params
                .weight(name, section.common.weight)
                .view(name, &section.common.view);
        }
        let ensemble =
            linfa::ParamGuard::check(params).map_err(|e| anyhow!("detectors.{ENSEMBLE}: {e}"))?;
        Ok(Self {
            written,
            sections,
            ensemble_enabled: s.enabled,
            ensemble,
        })
    }

    /// A registered detector's section.
    pub fn section(&self, name: &str) -> &Section {
        self.sections
            .get(name)
            .unwrap_or_else(|| panic!("{name} is a registered detector"))
    }

    /// A detector's common keys (enabled, granularities, weight, view).
    pub fn common(&self, name: &str) -> &Common {
        &self.section(name).common
    }

    /// Whether the ensemble runs, and its checked parameters: each detector's weight and
    /// view from its own section.
    pub fn ensemble(&self) -> (bool, &EnsembleValidParams) {
        (self.ensemble_enabled, &self.ensemble)
    }

    /// The sections as written, before defaults (which keys a file sets).
    pub fn written(&self) -> &BTreeMap<String, Value> {
        &self.written
    }

    /// Every section with every key, defaults filled in: what `config/loglake.toml`
    /// documents and a saved model records.
    pub fn resolved(&self) -> BTreeMap<String, Value> {
        let mut out: BTreeMap<String, Value> = self
            .sections
            .iter()
            .map(|(name, s)| (name.to_string(), s.resolved.clone()))
            .collect();
        out.insert(
            ENSEMBLE.into(),
            serde_json::json!({"enabled": self.ensemble_enabled, "default_weight": self.ensemble.default_weight}),
        );
        out
    }
}

/// A detector's `ParamGuard` verdict as a [`SettingError`]: `key` says which setting the
/// error is about (picked by the error's variant), and the message is the guard's own.
pub fn guarded<T, E: std::fmt::Display>(
    checked: Result<T, E>,
    key: impl FnOnce(&E) -> &'static str,
) -> Result<(), SettingError> {
    checked
        .map(|_| ())
        .map_err(|e| SettingError::new(key(&e), e.to_string()))
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

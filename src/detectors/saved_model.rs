//! Saved models: what `04-train` writes under `lake/models/` and `05-detect` reads back.
//!
//! A model file holds the fitted detector (as its own detector serialises it: this type
//! does not know the detectors' model types, so adding one does not touch it), the checked
//! settings it was trained with, and everything needed to use and explain it: the
//! feature names in matrix order, the training range and row count, per-feature baselines
//! for explanations, and the text of the templates its features refer to. The version is
//! `<train_to>-<hash of the content>`: training again on the same data gives the same version
//! (the lake does not change), and any change in data or parameters gives a new one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::baseline::FeatureBaseline;
use super::contract::Granularity;
use crate::lake::Lake;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedModel {
    pub model_version: String,
    pub source: String,
    pub granularity: Granularity,
    pub detector: String,
    pub created_at: DateTime<Utc>,
    pub train_from: NaiveDate,
    pub train_to: NaiveDate,
    pub train_rows: u64,
    pub features: Vec<String>,
    /// Session template vocabulary (session models).
    pub vocabulary: Vec<String>,
    pub threshold: f64,
    /// Robust (median, 1.4826·MAD) baseline of each feature over the training rows, used to
    /// say which features made a row anomalous.
    pub explain: Vec<FeatureBaseline>,
    /// Template id → text for templates named by features.
    pub templates: BTreeMap<String, String>,
    /// The detector's `[detectors.<name>]` section as checked, defaults filled in.
    pub params: serde_json::Value,
    /// The fitted model, as its detector serialises it (see [`SavedModel::fitted`]).
    pub model: serde_json::Value,
}

impl SavedModel {
    /// The fitted model as its detector's type.
    pub fn fitted<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(&self.model).with_context(|| {
            format!(
                "model {} of {}/{} does not hold a {} model (retrain with 04-train)",
                self.model_version, self.granularity, self.detector, self.detector
            )
        })
    }

    /// Fill in `model_version` from the content (everything but the version and the time).
    pub fn seal(&mut self) -> Result<()> {
        let mut probe = self.clone();
        probe.model_version = String::new();
        probe.created_at = DateTime::<Utc>::UNIX_EPOCH;
        let digest = Sha256::digest(serde_json::to_vec(&probe)?);
        let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        self.model_version = format!("{}-{hash}", self.train_to.format("%Y%m%d"));
        Ok(())
    }

    /// The folder of a detector's model versions: a new version is a new folder in it.
    pub fn dir(lake: &Lake, source: &str, granularity: Granularity, detector: &str) -> PathBuf {
        lake.models_dir()
            .join(source)
            .join(granularity.as_str())
            .join(detector)
    }

    /// Save under `models/<source>/<granularity>/<detector>/<version>/model.json`; a version
    /// that already exists is left as it is. Returns the path.
    pub fn save(&self, lake: &Lake) -> Result<PathBuf> {
        let dir = Self::dir(lake, &self.source, self.granularity, &self.detector)
            .join(&self.model_version);
        let path = dir.join("model.json");
        if path.exists() {
            return Ok(path);
        }
        let json = serde_json::to_vec(self)?;
        lake.commit_file(&dir, "model.json", &json)?;
        Ok(path)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading model {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "model {} is not valid (retrain with 04-train)",
                path.display()
            )
        })
    }

    /// The latest training end date of any of `source`'s models trained on data up to `date`.
    ///
    /// Read from folder names alone (versions start with the training end date), so deciding
    /// whether to retrain loads no model.
    pub fn latest_train_to(
        lake: &Lake,
        source: &str,
        date: NaiveDate,
    ) -> Result<Option<NaiveDate>> {
        let mut latest = None;
        let root = lake.models_dir().join(source);
        lake.fetch_tree(&root)?;
        let dirs = crate::lake::subdirectories;
        for granularity in dirs(&root) {
            for detector in dirs(&granularity) {
                for version in dirs(&detector) {
                    let name = version.file_name().unwrap_or_default().to_string_lossy();
                    let trained_to = name
                        .get(..8)
                        .and_then(|d| NaiveDate::parse_from_str(d, "%Y%m%d").ok());
                    if let Some(d) = trained_to.filter(|d| *d <= date)
                        && version.join("model.json").is_file()
                    {
                        latest = latest.max(Some(d));
                    }
                }
            }
        }
        Ok(latest)
    }

    /// The newest model (by training end, then creation time) trained on data up to `date`.
    /// The latest model, trained on data up to `date`, of every detector that judges
    /// `granularity`, in registry order.
    pub fn latest_each(
        lake: &Lake,
        source: &str,
        granularity: Granularity,
        date: NaiveDate,
    ) -> Result<Vec<Self>> {
        let mut models = Vec::new();
        for d in super::DETECTORS {
            if d.supports().contains(&granularity)
                && let Some(m) = Self::latest(lake, source, granularity, d.name(), date)?
            {
                models.push(m);
            }
        }
        Ok(models)
    }

    /// The model versions of `source` (every source: `None`) whose file does not read, for
    /// `status` and the service's health: each is skipped by [`SavedModel::latest`], which
    /// uses the newest readable one, but someone should remove or replace it.
    pub fn unreadable(lake: &Lake, source: Option<&str>) -> Vec<PathBuf> {
        let sources = match source {
            Some(s) => vec![lake.models_dir().join(s)],
            None => crate::lake::subdirectories(&lake.models_dir()),
        };
        let mut bad = Vec::new();
        for granularity in sources.iter().flat_map(|s| crate::lake::subdirectories(s)) {
            for detector in crate::lake::subdirectories(&granularity) {
                for version in crate::lake::subdirectories(&detector) {
                    let path = version.join("model.json");
                    if path.is_file() && Self::load(&path).is_err() {
                        bad.push(path);
                    }
                }
            }
        }
        bad
    }

    pub fn latest(
        lake: &Lake,
        source: &str,
        granularity: Granularity,
        detector: &str,
        date: NaiveDate,
    ) -> Result<Option<Self>> {
        let dir = Self::dir(lake, source, granularity, detector);
        lake.fetch_tree(&dir)?;
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(None);
        };
        let mut best: Option<SavedModel> = None;
        for entry in entries {
            let path = entry?.path().join("model.json");
            if !path.is_file() {
                continue;
            }
            // One damaged version (a disk error, a hand edit) must not stop every run and the
            // service: it is skipped, loudly, and the newest readable one is used.
            let m = match Self::load(&path) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(
                        path = %path.display(),
                        "skipping a model version that does not read ({e:#}); remove it, or run 04-train again"
                    );
                    continue;
                }
            };
            if m.train_to > date {
                continue;
            }
            let newer = match &best {
                None => true,
                Some(b) => {
                    (m.train_to, m.created_at, &m.model_version)
                        > (b.train_to, b.created_at, &b.model_version)
                }
            };
            if newer {
                best = Some(m);
            }
        }
        Ok(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::rare_template::{RareTemplate, TemplateCounts};

    fn model(train_to: NaiveDate, count: u64) -> SavedModel {
        let counts: TemplateCounts = [("t".to_string(), count)].into();
        let rare = RareTemplate::params().min_events(1).fit(&counts).unwrap();
        SavedModel {
            model_version: String::new(),
            source: "s".into(),
            granularity: Granularity::Event,
            detector: "rare_template".into(),
            created_at: Utc::now(),
            train_from: train_to,
            train_to,
            train_rows: count,
            features: vec!["template_id".into()],
            vocabulary: vec![],
            threshold: rare.threshold(),
            explain: vec![],
            templates: BTreeMap::new(),
            params: serde_json::Value::Null,
            model: serde_json::to_value(rare).unwrap(),
        }
    }

    #[test]
    fn versions_follow_content_and_latest_respects_the_batch_date() {
        let d1 = NaiveDate::from_ymd_opt(2026, 11, 19).unwrap();
        let d2 = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let (mut a, mut a_again, mut b) = (model(d1, 10), model(d1, 10), model(d2, 20));
        a.seal().unwrap();
        a_again.seal().unwrap();
        b.seal().unwrap();
        assert_eq!(
            a.model_version, a_again.model_version,
            "same content, same version"
        );
        assert!(a.model_version.starts_with("20261119-"));
        assert_ne!(a.model_version, b.model_version);

        let tmp = tempfile::tempdir().unwrap();
        let lake = Lake::new(tmp.path());
        lake.ensure_layout().unwrap();
        a.save(&lake).unwrap();
        b.save(&lake).unwrap();
        let on_d1 = SavedModel::latest(&lake, "s", Granularity::Event, "rare_template", d1)
            .unwrap()
            .unwrap();
        assert_eq!(
            on_d1.model_version, a.model_version,
            "a model trained on later data is not used for an earlier batch"
        );
        let on_d2 = SavedModel::latest(&lake, "s", Granularity::Event, "rare_template", d2)
            .unwrap()
            .unwrap();
        assert_eq!(on_d2, b);

        // A damaged older version is skipped; the newest readable one is still found.
        let damaged =
            SavedModel::dir(&lake, "s", Granularity::Event, "rare_template").join("20200101-x");
        std::fs::create_dir_all(&damaged).unwrap();
        std::fs::write(damaged.join("model.json"), b"{ not json").unwrap();
        let still = SavedModel::latest(&lake, "s", Granularity::Event, "rare_template", d2)
            .unwrap()
            .unwrap();
        assert_eq!(still, b);
        assert_eq!(
            SavedModel::unreadable(&lake, Some("s")),
            vec![damaged.join("model.json")]
        );
        assert_eq!(SavedModel::unreadable(&lake, None).len(), 1);
    }
}

//! How a [`Lake`] on object storage keeps its working copy and the bucket in step (see
//! [`super::remote`] for why there is a working copy at all).
//!
//! The working copy is a private temporary folder, one per process, removed when the process
//! is done with the lake. What it holds was either fetched from a committed manifest or
//! written by this process and then published, so it never needs to be checked again: each
//! process reads every partition as of the first time it looked (a snapshot), and its own
//! commits. Nothing is shared between processes except through the bucket.
//!
//! The local side keeps the same layout and the same rename commits as a local lake; the
//! methods here add the bucket's side to them, and are called by [`Lake`]'s own methods
//! only when the lake is remote, so every stage goes through one interface either way.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};

use super::location::LakeLocation;
use super::remote::{MANIFEST, Manifest, ManifestFile, Object, Remote, object_name, unique_token};
use super::{Lake, Layer};

/// The bucket behind a remote lake, and what of it is in the working copy.
#[derive(Debug)]
pub(super) struct Mirror {
    pub(super) remote: Remote,
    /// Partitions whose files are in the working copy, by key: as fetched or as committed;
    /// held while one is fetched.
    partitions: Mutex<HashMap<String, Manifest>>,
    /// Single objects (models, reports, the template store) in the working copy, by key;
    /// held while they are fetched, so that threads asking for overlapping folders at once
    /// (04-train's detectors) fetch each object once.
    objects: Mutex<HashSet<String>>,
    /// The shards of each day this process has asked about, by the day's key (a listing of
    /// the bucket, kept like the partitions' manifests: a day's windows ask again and again).
    shards: Mutex<HashMap<String, Vec<String>>>,
    /// The working copy, removed with the mirror.
    work: PathBuf,
}

impl Mirror {
    /// Publish `manifest` as the partition at `key` (one PUT: the commit), and remember it as
    /// what the working copy holds.
    fn commit(&self, key: String, manifest: Manifest) -> Result<()> {
        self.remote.commit_manifest(&key, &manifest)?;
        self.partitions
            .lock()
            .expect("not poisoned")
            .insert(key, manifest);
        Ok(())
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.work);
    }
}

impl Lake {
    /// The lake at `location`: a local folder, or a bucket with a private working copy under
    /// the system's temporary folder. Commands open it through their workspace.
    pub fn open(location: &LakeLocation) -> Result<Lake> {
        let url = match location {
            LakeLocation::Local(folder) => return Ok(Lake::new(folder)),
            LakeLocation::S3(url) => url,
        };
        let remote = Remote::open(url)?;
        remove_dead_working_copies();
        let work = std::env::temp_dir().join(format!(
            "{WORK_PREFIX}{}-{}",
            std::process::id(),
            unique_token()
        ));
        fs::create_dir_all(&work)
            .with_context(|| format!("creating the working copy {}", work.display()))?;
        Ok(Lake {
            root: work.clone(),
            mirror: Some(Arc::new(Mirror {
                remote,
                partitions: Mutex::default(),
                objects: Mutex::default(),
                shards: Mutex::default(),
                work,
            })),
            shard: None,
        })
    }

    /// Whether the lake lives on object storage.
    pub fn is_remote(&self) -> bool {
        self.mirror.is_some()
    }

    /// Where the lake is, for messages and records: its URL or its folder.
    pub fn location(&self) -> String {
        match &self.mirror {
            Some(m) => m.remote.url().to_string(),
            None => self.root.display().to_string(),
        }
    }

    /// Refuse a lake on object storage without a database URL: the embedded SQLite file would
    /// live in the process's working copy and vanish with it.
    pub fn check_database(&self, url: &str) -> Result<()> {
        if self.is_remote() && url.trim().is_empty() {
            bail!(
                "a lake on object storage ({}) keeps no database file: set [database] url (LOGLAKE__DATABASE__URL) to the PostgreSQL server its writers share",
                self.location()
            );
        }
        Ok(())
    }

    /// Where the reports are, as a URL for links (alerts): `file://…/reports` or
    /// `s3://bucket/prefix/reports`.
    pub fn reports_location(&self) -> String {
        match &self.mirror {
            Some(m) => format!("{}/reports", m.remote.url()),
            None => format!("file://{}", self.reports_dir().display()),
        }
    }

    /// Whether `00-init` has made this a lake.
    pub fn is_initialised(&self) -> Result<bool> {
        match &self.mirror {
            Some(m) => m.remote.is_lake(),
            None => Ok(self.root.join(Layer::Bronze.dir_name()).is_dir()),
        }
    }

    /// `path` (inside the working copy) as a key relative to the lake's prefix.
    fn key_of(&self, path: &Path) -> Result<String> {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            bail!("{} is not inside the lake", path.display());
        };
        Ok(rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"))
    }

    /// The committed manifest of the partition in `dir`, as this process first saw it or last
    /// committed it.
    pub(super) fn remote_manifest(&self, m: &Mirror, dir: &Path) -> Result<Option<Manifest>> {
        let key = self.key_of(dir)?;
        if let Some(known) = m.partitions.lock().expect("not poisoned").get(&key) {
            return Ok(Some(known.clone()));
        }
        m.remote.manifest(&key)
    }

    /// Make the working copy of the partition in `dir` hold exactly its committed files.
    pub(super) fn fetch_partition(&self, m: &Mirror, dir: &Path) -> Result<()> {
        let key = self.key_of(dir)?;
        // Held while fetching: the windows a stage reads at once ask for the same partition
        // from several threads, and it is fetched once.
        let mut known = m.partitions.lock().expect("not poisoned");
        if known.contains_key(&key) {
            return Ok(());
        }
        // The partition's own files only: a whole day's folder also holds its shards' folders.
        for stale in super::parquet_files(dir)? {
            fs::remove_file(&stale)?;
        }
        // A partition with no manifest is remembered as empty, like any other snapshot.
        let manifest = m
            .remote
            .manifest(&key)?
            .unwrap_or_else(|| Manifest::of(Vec::new()));
        let wanted: Vec<(String, PathBuf)> = manifest
            .files
            .iter()
            .map(|f| (format!("{key}/{}", f.object), dir.join(&f.name)))
            .collect();
        m.remote.download(&wanted)?;
        known.insert(key, manifest);
        Ok(())
    }

    /// Upload the files staged for the partition in `target` under names of their own, then
    /// publish them by its manifest: the commit. The working copy is renamed into place
    /// after, by the caller, as for a local lake.
    pub(super) fn publish_partition(
        &self,
        m: &Mirror,
        staging: &Path,
        target: &Path,
    ) -> Result<()> {
        let key = self.key_of(target)?;
        let files = super::parquet_files(staging)?;
        let token = unique_token();
        let mut entries = Vec::with_capacity(files.len());
        for path in &files {
            entries.push(entry_for(path, &token)?);
        }
        let uploads: Vec<(&Path, String)> = files
            .iter()
            .zip(&entries)
            .map(|(p, e)| (p.as_path(), format!("{key}/{}", e.object)))
            .collect();
        m.remote.upload(&uploads)?;
        tracing::debug!(partition = %key, files = uploads.len(), "uploaded; committing the manifest");
        m.commit(key, Manifest::of(entries))?;
        self.note_shard(m, target)
    }

    /// After a commit to `partition`: a shard's day, if this process has listed its shards,
    /// lists this one too.
    fn note_shard(&self, m: &Mirror, partition: &Path) -> Result<()> {
        let (Some(shard), Some(day)) = (&self.shard, partition.parent()) else {
            return Ok(());
        };
        let day = self.key_of(day)?;
        if let Some(known) = m.shards.lock().expect("not poisoned").get_mut(&day)
            && !known.iter().any(|s| **s == **shard)
        {
            known.push(shard.to_string());
            known.sort();
        }
        Ok(())
    }

    /// Add (or replace) one file of the partition in `dir`: uploaded, then a manifest with it
    /// added to the committed ones. The caller holds the partition's lease, so no other
    /// writer changes the manifest in between. The partition's earlier files are not
    /// fetched (01-bronze appends to a day it does not read); the working copy then counts as
    /// holding the partition only if it held the earlier files too, and a later read fetches
    /// it whole otherwise.
    pub(super) fn publish_part_file(
        &self,
        m: &Mirror,
        dir: &Path,
        staged: &Path,
        name: &str,
    ) -> Result<()> {
        let key = self.key_of(dir)?;
        let held = m
            .partitions
            .lock()
            .expect("not poisoned")
            .contains_key(&key);
        let entry = entry_for(staged, &unique_token())?;
        debug_assert_eq!(entry.name, name);
        m.remote
            .upload(&[(staged, format!("{key}/{}", entry.object))])?;
        tracing::debug!(partition = %key, file = name, "uploaded; committing the manifest");
        let mut files = self
            .remote_manifest(m, dir)?
            .map(|manifest| manifest.files)
            .unwrap_or_default();
        let complete = held || files.is_empty();
        files.retain(|f| f.name != name);
        files.push(entry);
        files.sort_by(|a, b| a.name.cmp(&b.name));
        if complete {
            m.commit(key, Manifest::of(files))?;
        } else {
            m.remote.commit_manifest(&key, &Manifest::of(files))?;
        }
        self.note_shard(m, dir)
    }

    /// Publish one file of the working copy (a model, a report page, the template store) as
    /// the object at its key: one PUT, which replaces the old object at once.
    pub(super) fn publish_file(&self, m: &Mirror, path: &Path) -> Result<()> {
        let key = self.key_of(path)?;
        m.remote.upload(&[(path, key.clone())])?;
        m.objects.lock().expect("not poisoned").insert(key);
        Ok(())
    }

    /// Fetch every object under `dir` (models, reports, a source's template store) that the
    /// working copy does not hold yet. A no-op for a local lake.
    pub fn fetch_tree(&self, dir: &Path) -> Result<()> {
        let Some(m) = &self.mirror else {
            return Ok(());
        };
        let prefix = self.key_of(dir)?;
        let mut held = m.objects.lock().expect("not poisoned");
        let wanted: Vec<(String, PathBuf)> = m
            .remote
            .list(&prefix)?
            .into_iter()
            .filter(|o| !held.contains(&o.key))
            .map(|o| {
                let local = self.root.join(&o.key);
                (o.key, local)
            })
            .collect();
        m.remote.download(&wanted)?;
        held.extend(wanted.into_iter().map(|(k, _)| k));
        Ok(())
    }

    /// Take the partition in `dir` out of the bucket: its manifest goes, so readers no longer
    /// see it; its files are left to `vacuum` (a reader elsewhere may still be reading them).
    /// Any other object under `dir` (a model version, a report) is removed.
    pub(super) fn unpublish(&self, m: &Mirror, dir: &Path) -> Result<()> {
        let key = self.key_of(dir)?;
        let objects = m.remote.list(&key)?;
        let is_partition = objects.iter().any(|o| o.key == format!("{key}/{MANIFEST}"));
        let doomed: Vec<String> = objects
            .into_iter()
            .map(|o| o.key)
            .filter(|k| !is_partition || k.ends_with(MANIFEST))
            .collect();
        m.remote.delete(&doomed)?;
        m.partitions.lock().expect("not poisoned").remove(&key);
        m.objects
            .lock()
            .expect("not poisoned")
            .retain(|k| !k.starts_with(&format!("{key}/")));
        Ok(())
    }

    /// After the day in `day` is committed whole: its shards' manifests go, so readers no
    /// longer count their lines twice.
    pub(super) fn retire_shards(&self, m: &Mirror, day: &Path) -> Result<()> {
        let key = self.key_of(day)?;
        let shard_manifests: Vec<String> = m
            .remote
            .list(&key)?
            .into_iter()
            .map(|o| o.key)
            .filter(|k| k.starts_with(&format!("{key}/shard=")) && k.ends_with(MANIFEST))
            .collect();
        m.remote.delete(&shard_manifests)?;
        m.partitions
            .lock()
            .expect("not poisoned")
            .retain(|k, _| !k.starts_with(&format!("{key}/shard=")));
        m.shards
            .lock()
            .expect("not poisoned")
            .insert(key, Vec::new());
        Ok(())
    }

    /// The shards the day in `dir` was written in, by name: listed from the bucket the first
    /// time this process asks.
    pub(super) fn remote_shards(&self, m: &Mirror, dir: &Path) -> Result<Vec<String>> {
        let key = self.key_of(dir)?;
        if let Some(known) = m.shards.lock().expect("not poisoned").get(&key) {
            return Ok(known.clone());
        }
        let found = self.remote_folders(m, dir, "shard=")?;
        m.shards
            .lock()
            .expect("not poisoned")
            .insert(key, found.clone());
        Ok(found)
    }

    /// The committed files of one partition (a day, with its shards), from the manifests.
    fn committed_files(
        &self,
        m: &Mirror,
        layer: Layer,
        table: &str,
        source: &str,
        date: chrono::NaiveDate,
    ) -> Result<Vec<ManifestFile>> {
        let mut files = Vec::new();
        for dir in self.partition_dirs(layer, table, source, date)? {
            files.extend(
                self.remote_manifest(m, &dir)?
                    .into_iter()
                    .flat_map(|m| m.files),
            );
        }
        Ok(files)
    }

    /// After a shard of the day in `day` is committed: the day's own manifest (from when it
    /// was written whole) goes.
    pub(super) fn unpublish_day_files(&self, m: &Mirror, day: &Path) -> Result<()> {
        let key = self.key_of(day)?;
        m.remote.delete(&[format!("{key}/{MANIFEST}")])?;
        m.partitions.lock().expect("not poisoned").remove(&key);
        Ok(())
    }

    /// The names of the folders in the bucket under `dir` that start with `prefix`, prefix
    /// removed, sorted.
    pub(super) fn remote_folders(
        &self,
        m: &Mirror,
        dir: &Path,
        prefix: &str,
    ) -> Result<Vec<String>> {
        Ok(m.remote
            .folders(&self.key_of(dir)?)?
            .into_iter()
            .filter_map(|name| {
                let rest = name.strip_prefix(prefix)?;
                (!rest.starts_with('_')).then(|| rest.to_string())
            })
            .collect())
    }

    /// The `date=` folders under `dir` in the bucket that hold a committed manifest.
    pub(super) fn remote_dates(&self, m: &Mirror, dir: &Path) -> Result<Vec<chrono::NaiveDate>> {
        let key = self.key_of(dir)?;
        let mut dates: Vec<chrono::NaiveDate> = m
            .remote
            .list(&key)?
            .iter()
            .filter_map(|o| {
                // `date=<d>/_manifest.json`, or a shard's `date=<d>/shard=<s>/_manifest.json`.
                let rest = o.key.strip_prefix(&format!("{key}/date="))?;
                rest.strip_suffix(MANIFEST)?;
                chrono::NaiveDate::parse_from_str(rest.get(..10)?, "%Y-%m-%d").ok()
            })
            .collect();
        dates.sort();
        dates.dedup();
        Ok(dates)
    }

    /// The value of footer `key` of each file of a partition, by file name, in read order:
    /// from the files' footers, or for a remote lake from the manifest, without fetching the
    /// files (01-bronze reads what every earlier batch ingested this way).
    pub fn footer_values(
        &self,
        layer: Layer,
        table: &str,
        source: &str,
        date: chrono::NaiveDate,
        keys: &[&str],
    ) -> Result<Vec<(String, Vec<Option<String>>)>> {
        if let Some(m) = &self.mirror {
            return Ok(self
                .committed_files(m, layer, table, source, date)?
                .into_iter()
                .map(|f| {
                    let values = keys.iter().map(|k| f.footer.get(*k).cloned()).collect();
                    (f.name, values)
                })
                .collect());
        }
        self.part_files(layer, table, source, date)?
            .into_iter()
            .map(|path| {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Ok((name, Lake::footer_value(&path, keys)?))
            })
            .collect()
    }

    /// Rows and bytes of one partition (a day, with its shards): for a lake on object
    /// storage from its manifests, so that `loglake status` fetches no data.
    pub fn partition_size(
        &self,
        layer: Layer,
        table: &str,
        source: &str,
        date: chrono::NaiveDate,
    ) -> Result<(u64, u64)> {
        let Some(m) = &self.mirror else {
            let files = self.part_files(layer, table, source, date)?;
            let bytes = files.iter().map(|f| super::tree_bytes(f)).sum();
            return Ok((Lake::row_count(&files)?, bytes));
        };
        let files = self.committed_files(m, layer, table, source, date)?;
        Ok((
            files.iter().map(|f| f.rows).sum(),
            files.iter().map(|f| f.bytes).sum(),
        ))
    }

    /// Bytes stored for `path` (a partition, a model version, a report folder).
    pub fn stored_bytes(&self, path: &Path) -> Result<u64> {
        match &self.mirror {
            None => Ok(super::tree_bytes(path)),
            Some(m) => Ok(m
                .remote
                .list(&self.key_of(path)?)?
                .iter()
                .map(|o| o.bytes)
                .sum()),
        }
    }

    /// Files in the bucket's partitions that no committed manifest names and that were
    /// written more than `grace` ago: what writers killed mid-upload, and replaced partitions,
    /// leave behind. Younger ones may belong to a write still in progress. None for a local
    /// lake, whose commits leave nothing behind.
    pub fn orphans(&self, grace: chrono::Duration) -> Result<Vec<Object>> {
        let Some(m) = &self.mirror else {
            return Ok(Vec::new());
        };
        let cutoff: DateTime<Utc> = Utc::now() - grace;
        let mut orphans = Vec::new();
        for layer in Layer::ALL {
            let objects = m.remote.list(layer.dir_name())?;
            let mut named: HashSet<String> = HashSet::new();
            for o in objects.iter().filter(|o| o.key.ends_with(MANIFEST)) {
                let dir = o.key.trim_end_matches(MANIFEST).trim_end_matches('/');
                if let Some(manifest) = m.remote.manifest(dir)? {
                    named.extend(manifest.files.iter().map(|f| format!("{dir}/{}", f.object)));
                }
            }
            orphans.extend(objects.into_iter().filter(|o| {
                o.key.contains("/date=")
                    && !o.key.ends_with(MANIFEST)
                    && !named.contains(&o.key)
                    && o.modified < cutoff
            }));
        }
        Ok(orphans)
    }

    /// Remove objects found by [`Lake::orphans`].
    pub fn remove_orphans(&self, orphans: &[Object]) -> Result<()> {
        if let Some(m) = &self.mirror {
            let keys: Vec<String> = orphans.iter().map(|o| o.key.clone()).collect();
            m.remote.delete(&keys)?;
        }
        Ok(())
    }

    /// Mark the bucket's prefix as a lake (`00-init`).
    pub(super) fn mark_remote(&self) -> Result<()> {
        match &self.mirror {
            Some(m) => m.remote.mark_lake(),
            None => Ok(()),
        }
    }
}

/// How a working copy's folder in the temporary folder starts; the writer's pid follows.
const WORK_PREFIX: &str = "loglake-work-";

/// Remove the working copies of writers that are no longer running: one killed (`kill -9`,
/// the OOM killer) never ran its clean-up, and each left a day's partitions behind. A folder
/// is its writer's while a process of its pid runs (a pid reused by another program keeps it,
/// which is safe); where `/proc` cannot tell, nothing is removed.
fn remove_dead_working_copies() {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(WORK_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            tracing::debug!(folder = %entry.path().display(), "removing a dead writer's working copy");
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The manifest entry for a staged file stored under a name unique to this write, with the
/// footer values readers may ask for without fetching it.
fn entry_for(path: &Path, token: &str) -> Result<ManifestFile> {
    use parquet::file::reader::FileReader as _;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let bytes = file.metadata()?.len();
    let reader = parquet::file::reader::SerializedFileReader::new(file)
        .with_context(|| format!("reading the Parquet footer of {}", path.display()))?;
    // Arrow's schema is in every footer and large; the values loglake itself writes are small.
    let footer: BTreeMap<String, String> = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .filter(|kv| !kv.key.starts_with("ARROW:"))
        .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?)))
        .filter(|(_, v)| v.len() <= 64 * 1024)
        .collect();
    Ok(ManifestFile {
        object: object_name(&name, token),
        name,
        bytes,
        rows: reader.metadata().file_metadata().num_rows() as u64,
        footer,
    })
}

//! A lake on object storage (`s3://bucket/prefix`): the bucket is the lake, and a private
//! local folder is the working copy every stage reads and writes through.
//!
//! Why a working copy rather than reading and writing the bucket directly: every stage reads
//! and writes Parquet through local files (Polars' scans, the streaming bronze writer, the
//! column splice of 02-silver), and what makes them fast and bounded in memory is exactly that
//! they are local files. So the lake fetches the committed files a stage asks for into the
//! working copy, and publishes what the stage commits from it. A `run` that writes silver and
//! then reads it in gold reads its own local copy; nothing is fetched twice.
//!
//! Object stores have no rename, so a partition cannot be swapped into place. Instead:
//! - every file is uploaded under a name no other write uses (`part-00000.<token>.parquet`),
//!   so an upload never overwrites a file a reader may be reading;
//! - the partition is published by its manifest, `_manifest.json`, uploaded last. One PUT is
//!   atomic: readers see the old manifest or the new one, never a partition half written;
//! - readers list and read only what committed manifests name. A writer killed mid-upload
//!   leaves files that no manifest names; `loglake vacuum` removes them once they are older
//!   than any write could still be running.
//!
//! Connection settings are the standard AWS variables (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP` for a local endpoint), read by
//! `object_store` itself, so whatever works for the AWS CLI works here.

use std::path::Path as LocalPath;
use std::sync::Arc;

use super::location::S3Url;
use anyhow::{Context as _, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use serde::{Deserialize, Serialize};

/// The commit record of one partition.
pub const MANIFEST: &str = "_manifest.json";
/// Marks a bucket prefix as a loglake lake (`00-init` writes it).
const MARKER: &str = "_loglake.json";
/// Files fetched or uploaded at once: enough to keep a link busy, few enough not to be
/// throttled by a store.
const CONCURRENCY: usize = 8;
/// Files larger than this are uploaded in parts of this size, a few at a time, so that an
/// upload holds a few parts in memory, not the file (bronze's part of a large log).
const PART_BYTES: usize = 16 << 20;

/// One file of a committed partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// The name readers see (`part-00000.parquet`), in the order they read.
    pub name: String,
    /// The object it is stored as, in the partition's prefix (unique to the write).
    pub object: String,
    pub bytes: u64,
    /// Rows, from the file's footer: `loglake status` counts a bucket's rows from its
    /// manifests, without fetching the lake.
    #[serde(default)]
    pub rows: u64,
    /// Footer values a reader may need without fetching the file (bronze's segment record).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub footer: std::collections::BTreeMap<String, String>,
}

/// A partition's commit record: the files that make it, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: Vec<ManifestFile>,
    pub committed_at: DateTime<Utc>,
}

impl Manifest {
    /// A partition of `files`, committed now.
    pub fn of(files: Vec<ManifestFile>) -> Self {
        Manifest {
            files,
            committed_at: Utc::now(),
        }
    }
}

/// An object store holding a lake under a prefix; every call blocks.
pub struct Remote {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).finish()
    }
}

/// An object in the lake: its key relative to the lake's prefix, size and age.
#[derive(Debug, Clone)]
pub struct Object {
    pub key: String,
    pub bytes: u64,
    pub modified: DateTime<Utc>,
}

impl Remote {
    /// The store behind `url` (`s3://bucket` or `s3://bucket/prefix`).
    pub fn open(location: &S3Url) -> Result<Self> {
        let url = location.to_string();
        let (bucket, prefix) = (&location.bucket, &location.prefix);
        // object_store refuses a plain-HTTP endpoint unless told to allow it, and says only
        // "builder error": say what to set.
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .or_else(|_| std::env::var("AWS_ENDPOINT"))
            .unwrap_or_default();
        let allow_http =
            std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if endpoint.trim().starts_with("http://") && !allow_http {
            bail!(
                "{url}: the endpoint {endpoint} is plain HTTP; set AWS_ALLOW_HTTP=true to use it (a local S3 server), or give an https:// endpoint"
            );
        }
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .with_context(|| {
                format!(
                    "setting up {url} (set AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, and AWS_ENDPOINT_URL with AWS_ALLOW_HTTP=true for a local server)"
                )
            })?;
        let prefix = Key::parse(prefix.as_str())
            .with_context(|| format!("{url}: the prefix is not a valid object path"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the object store's runtime")?;
        Ok(Remote {
            url,
            store: Arc::new(store),
            prefix,
            runtime,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, rel: &str) -> Result<Key> {
        let full = match (self.prefix.as_ref(), rel) {
            ("", rel) => rel.to_string(),
            (prefix, "") => prefix.to_string(),
            (prefix, rel) => format!("{prefix}/{rel}"),
        };
        Key::parse(full.trim_matches('/'))
            .map_err(|e| anyhow!("{rel}: not a valid object key: {e}"))
    }

    /// `key` relative to the lake's prefix.
    fn relative(&self, key: &Key) -> String {
        let full = key.as_ref();
        match self.prefix.as_ref() {
            "" => full.to_string(),
            p => full
                .strip_prefix(p)
                .unwrap_or(full)
                .trim_start_matches('/')
                .to_string(),
        }
    }

    /// One line that says what failed and what to check: an S3 error's code and message
    /// rather than the XML body the server sent.
    fn explain(&self, what: &str, rel: &str, e: object_store::Error) -> anyhow::Error {
        let text = e.to_string();
        let between = |open: &str, close: &str| {
            let start = text.find(open)? + open.len();
            Some(text[start..].split(close).next()?.to_string())
        };
        let (why, hint) = match (
            between("<Code>", "</Code>"),
            between("<Message>", "</Message>"),
        ) {
            (Some(code), _) if code == "NoSuchBucket" => (
                format!("{code}: the bucket does not exist"),
                "create it, or fix the s3:// URL",
            ),
            (Some(code), message) => (
                format!("{code}: {}", message.unwrap_or_default()),
                "check the credentials and the bucket's permissions",
            ),
            (None, _) => (
                text.split_whitespace().collect::<Vec<_>>().join(" "),
                "is the object store reachable, and are AWS_ENDPOINT_URL and the credentials right?",
            ),
        };
        let at = if rel.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{rel}", self.url)
        };
        anyhow!("{what} {at}: {why} ({hint})")
    }

    /// The object at `rel`, or `None` when there is none.
    pub fn get(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        let key = self.key(rel)?;
        self.runtime.block_on(async {
            match self.store.get(&key).await {
                Ok(found) => match found.bytes().await {
                    Ok(bytes) => Ok(Some(bytes.to_vec())),
                    Err(e) => Err(self.explain("reading", rel, e)),
                },
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.explain("reading", rel, e)),
            }
        })
    }

    /// Store `bytes` at `rel`, replacing any object there, in one step.
    pub fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        let key = self.key(rel)?;
        self.runtime
            .block_on(self.store.put(&key, PutPayload::from(bytes)))
            .map(|_| ())
            .map_err(|e| self.explain("writing", rel, e))
    }

    /// Upload local files, `(local path, rel)` each, several at a time.
    pub fn upload(&self, files: &[(&LocalPath, String)]) -> Result<()> {
        self.runtime.block_on(async {
            futures::stream::iter(files.iter().map(|(path, rel)| async move {
                let key = self.key(rel)?;
                let size = tokio::fs::metadata(path)
                    .await
                    .with_context(|| format!("reading {}", path.display()))?
                    .len();
                if size <= PART_BYTES as u64 {
                    let bytes = tokio::fs::read(path)
                        .await
                        .with_context(|| format!("reading {}", path.display()))?;
                    self.store
                        .put(&key, PutPayload::from(bytes))
                        .await
                        .map_err(|e| self.explain("uploading", rel, e))?;
                } else {
                    self.upload_in_parts(path, &key, rel).await?;
                }
                Ok::<_, anyhow::Error>(())
            }))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
        })
    }

    /// A multipart upload of a large file: parts are read and sent a few at a time. The object
    /// appears whole when the upload completes, or not at all.
    async fn upload_in_parts(&self, path: &LocalPath, key: &Key, rel: &str) -> Result<()> {
        use tokio::io::AsyncReadExt as _;
        let upload = self
            .store
            .put_multipart(key)
            .await
            .map_err(|e| self.explain("uploading", rel, e))?;
        let mut parts = object_store::WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("reading {}", path.display()))?;
        let mut buf = vec![0u8; PART_BYTES];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            parts
                .wait_for_capacity(4)
                .await
                .map_err(|e| self.explain("uploading", rel, e))?;
            parts.write(&buf[..n]);
        }
        parts
            .finish()
            .await
            .map_err(|e| self.explain("uploading", rel, e))?;
        Ok(())
    }

    /// Download objects, `(rel, local path)` each, several at a time, each streamed to disk;
    /// each file is written beside its target and renamed, so a killed fetch leaves no
    /// truncated file under the final name.
    pub fn download(&self, files: &[(String, std::path::PathBuf)]) -> Result<()> {
        self.runtime.block_on(async {
            futures::stream::iter(files.iter().map(|(rel, path)| async move {
                use tokio::io::AsyncWriteExt as _;
                let key = self.key(rel)?;
                let mut chunks = self
                    .store
                    .get(&key)
                    .await
                    .map_err(|e| self.explain("fetching", rel, e))?
                    .into_stream();
                if let Some(dir) = path.parent() {
                    tokio::fs::create_dir_all(dir).await?;
                }
                let mut tmp = path.as_os_str().to_owned();
                tmp.push(format!(".fetching-{}", unique_token()));
                let mut out = tokio::fs::File::create(&tmp)
                    .await
                    .with_context(|| format!("writing {}", path.display()))?;
                while let Some(chunk) = chunks.next().await {
                    let chunk = chunk.map_err(|e| self.explain("fetching", rel, e))?;
                    out.write_all(&chunk)
                        .await
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                out.flush().await?;
                drop(out);
                tokio::fs::rename(&tmp, path)
                    .await
                    .with_context(|| format!("putting the fetched {} in place", path.display()))?;
                Ok::<_, anyhow::Error>(())
            }))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
        })
    }

    /// Every object under `rel` (a folder-like prefix, without trailing `/`), at any depth.
    pub fn list(&self, rel: &str) -> Result<Vec<Object>> {
        let key = self.key(rel)?;
        let metas: Vec<object_store::ObjectMeta> = self
            .runtime
            .block_on(self.store.list(Some(&key)).try_collect())
            .map_err(|e| self.explain("listing", rel, e))?;
        let mut objects: Vec<Object> = metas
            .into_iter()
            .map(|m| Object {
                key: self.relative(&m.location),
                bytes: m.size,
                modified: m.last_modified,
            })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// The objects an input URL names: every object under its prefix, or the one object it
    /// is; keys relative to the URL. An input that names nothing is an error, like a missing
    /// input file.
    pub fn input_objects(&self) -> Result<Vec<Object>> {
        let under = self.list("")?;
        if !under.is_empty() {
            return Ok(under);
        }
        let key = self.key("")?;
        match self.runtime.block_on(self.store.head(&key)) {
            Ok(meta) => Ok(vec![Object {
                key: String::new(),
                bytes: meta.size,
                modified: meta.last_modified,
            }]),
            Err(object_store::Error::NotFound { .. }) => bail!(
                "input {} names no object (no logs arrived yet, or a typo in --input?)",
                self.url
            ),
            Err(e) => Err(self.explain("reading", "", e)),
        }
    }

    /// The names of the "folders" directly under `rel`, sorted.
    pub fn folders(&self, rel: &str) -> Result<Vec<String>> {
        let key = self.key(rel)?;
        let listing = self
            .runtime
            .block_on(self.store.list_with_delimiter(Some(&key)))
            .map_err(|e| self.explain("listing", rel, e))?;
        let mut names: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Remove the objects `rels`; one already gone is not an error.
    pub fn delete(&self, rels: &[String]) -> Result<()> {
        self.runtime.block_on(async {
            futures::stream::iter(rels.iter().map(|rel| async move {
                let key = self.key(rel)?;
                match self.store.delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(self.explain("removing", rel, e)),
                }
            }))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
        })
    }

    /// The committed manifest of the partition at `rel`, if it has one.
    pub fn manifest(&self, rel: &str) -> Result<Option<Manifest>> {
        let path = format!("{rel}/{MANIFEST}");
        match self.get(&path)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                anyhow!(
                    "{}/{path} is not a loglake manifest ({e}): remove it, then re-run the stage that writes this partition",
                    self.url
                )
            }),
        }
    }

    /// Publish `manifest` as the partition at `rel`: one PUT, the commit.
    pub fn commit_manifest(&self, rel: &str, manifest: &Manifest) -> Result<()> {
        let json = serde_json::to_vec_pretty(manifest)?;
        self.put(&format!("{rel}/{MANIFEST}"), json)
    }

    /// Whether `00-init` has made this prefix a lake.
    pub fn is_lake(&self) -> Result<bool> {
        Ok(self.get(MARKER)?.is_some())
    }

    /// Mark this prefix as a lake (idempotent).
    pub fn mark_lake(&self) -> Result<()> {
        if self.is_lake()? {
            return Ok(());
        }
        let marker = serde_json::json!({ "created_at": Utc::now(), "layout": 1 });
        self.put(MARKER, serde_json::to_vec_pretty(&marker)?)
    }
}

/// A name no other write uses, on this machine or another: the time and 64 random bits.
pub fn unique_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}-{:016x}", rand::random::<u64>())
}

/// `name` (`part-00000.parquet`) as the object it is stored as for one write
/// (`part-00000.<token>.parquet`).
pub fn object_name(name: &str, token: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{token}.{ext}"),
        None => format!("{name}.{token}"),
    }
}

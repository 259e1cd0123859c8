//! `--input s3://bucket/prefix`: logs in object storage (a prefix's objects, or one object),
//! fetched into the lake's staging area for as long as 01-bronze runs, and ingested like files
//! under their URLs — so a re-run, or the same objects given again, finds them in bronze.
//!
//! The same AWS variables as a lake on object storage configure the store (see
//! [`crate::lake::remote`]).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Result;

use crate::lake::Scratch;
use crate::lake::location::S3Url;
use crate::lake::remote::Remote;
use crate::stages::Context;

/// Whether an `--input` is an object-store URL rather than a path.
pub fn is_url(input: &std::path::Path) -> bool {
    S3Url::of(&input.to_string_lossy()).is_some()
}

/// Objects fetched for this stage: each local copy and the URL it is ingested as.
pub struct Fetched {
    _scratch: Option<Scratch>,
    pub names: HashMap<PathBuf, String>,
}

/// Fetch every object the URLs in `inputs` name (others are left to the caller).
pub fn fetch(ctx: &Context, inputs: &[PathBuf]) -> Result<Fetched> {
    // Each URL as given (less a trailing slash): the name its objects are ingested under.
    let urls: Vec<(String, S3Url)> = inputs
        .iter()
        .filter_map(|i| {
            let text = i.to_string_lossy();
            let name = text.trim_end_matches('/').to_string();
            S3Url::of(&text).map(|parsed| parsed.map(|u| (name, u)))
        })
        .collect::<Result<_>>()?;
    let mut fetched = Fetched {
        _scratch: None,
        names: HashMap::new(),
    };
    if urls.is_empty() {
        return Ok(fetched);
    }
    let scratch = ctx.lake.scratch("inputs")?;
    for (url, location) in &urls {
        let remote = Remote::open(location)?;
        let downloads: Vec<(String, PathBuf)> = remote
            .input_objects()?
            .into_iter()
            // Hidden objects, like hidden files in a folder, are not logs.
            .filter(|o| {
                !o.key
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .starts_with('.')
            })
            .map(|o| {
                let name = if o.key.is_empty() {
                    url.clone()
                } else {
                    format!("{url}/{}", o.key)
                };
                // Numbered, so that two objects of one name in different prefixes do not
                // meet; the object's name last, so that `.gz` still says what the bytes are.
                let base = name.rsplit('/').next().unwrap_or("object");
                let local = scratch.path(&format!("{:06}-{base}", fetched.names.len()));
                fetched.names.insert(local.clone(), name);
                (o.key, local)
            })
            .collect();
        remote.download(&downloads)?;
        tracing::info!(input = %url, objects = downloads.len(), "fetched from object storage");
    }
    fetched._scratch = Some(scratch);
    Ok(fetched)
}

//! Where a lake is, read once from `--lake`, `LOGLAKE__LAKE__PATH` or `[lake] path`: a local
//! folder, or a bucket and prefix on S3-compatible object storage.
//!
//! Whether a setting names a URL or a path was once guessed in three places, three ways
//! (`contains("://")` twice, `starts_with("s3://")` once); [`is_url`] is now the one test, and
//! [`LakeLocation`] the one reading of a lake's location, done when the settings are
//! deserialised, so a lake URL of a scheme loglake cannot write to is refused before anything
//! runs.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// Whether a setting's text is a URL (`scheme://…`) rather than a file path: URLs are not
/// made relative to a config file's folder, and name object storage rather than a folder.
pub fn is_url(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// An object on S3-compatible storage, or the prefix of many: `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    /// Without leading or trailing slashes; empty for the bucket's root.
    pub prefix: String,
}

impl S3Url {
    /// `text` as an S3 URL; `None` when it is not one (a path, or another scheme).
    pub fn of(text: &str) -> Option<Result<S3Url>> {
        let rest = text.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Some(Err(anyhow::anyhow!(
                "{text} names no bucket: write it as s3://bucket/prefix"
            )));
        }
        Some(Ok(S3Url {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        }))
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix.as_str() {
            "" => write!(f, "s3://{}", self.bucket),
            prefix => write!(f, "s3://{}/{prefix}", self.bucket),
        }
    }
}

/// Where a lake lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeLocation {
    /// A folder on this machine (relative paths are relative to the working directory, or to
    /// the config file's folder when written there).
    Local(PathBuf),
    /// A bucket and prefix; each process works in a private copy (see [`super::remote`]).
    S3(S3Url),
}

impl LakeLocation {
    /// Read a location: `s3://bucket/prefix`, or a path; another URL scheme is refused.
    pub fn parse(text: &str) -> Result<Self> {
        if let Some(url) = S3Url::of(text) {
            return Ok(LakeLocation::S3(url?));
        }
        if is_url(text) {
            bail!(
                "{text} is not a lake loglake can open: give a folder, or s3://bucket/prefix for object storage"
            );
        }
        Ok(LakeLocation::Local(PathBuf::from(text)))
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, LakeLocation::S3(_))
    }

    /// The folder of a local lake.
    pub fn local(&self) -> Option<&Path> {
        match self {
            LakeLocation::Local(path) => Some(path),
            LakeLocation::S3(_) => None,
        }
    }
}

impl Default for LakeLocation {
    fn default() -> Self {
        LakeLocation::Local(PathBuf::from("lake"))
    }
}

impl fmt::Display for LakeLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LakeLocation::Local(path) => write!(f, "{}", path.display()),
            LakeLocation::S3(url) => url.fmt(f),
        }
    }
}

impl serde::Serialize for LakeLocation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for LakeLocation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        LakeLocation::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_is_a_folder_or_a_bucket() {
        assert_eq!(
            LakeLocation::parse("data/lake").unwrap(),
            LakeLocation::Local(PathBuf::from("data/lake"))
        );
        let s3 = LakeLocation::parse("s3://logs/lake/prod/").unwrap();
        assert_eq!(
            s3,
            LakeLocation::S3(S3Url {
                bucket: "logs".into(),
                prefix: "lake/prod".into()
            })
        );
        assert_eq!(s3.to_string(), "s3://logs/lake/prod");
        assert!(s3.is_remote());
        let err = LakeLocation::parse("gs://logs/lake").unwrap_err();
        assert!(err.to_string().contains("s3://bucket/prefix"), "{err}");
        assert!(LakeLocation::parse("s3:///lake").is_err());
        // A colon in a folder name is not a scheme.
        assert!(!is_url("/var/lib/a://b"));
        assert!(is_url("postgres://db/loglake"));
    }
}

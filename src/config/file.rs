//! Which config file a command reads, and the paths inside it.
//!
//! A stage run by cron starts in `$HOME`, not in the project folder, so "`config/loglake.toml`
//! in the working directory" alone silently fell back to the defaults there, and the lake
//! landed in `~/lake`. The file is therefore looked for in this order: `--config`, then
//! `$LOGLAKE_CONFIG` (both must exist), then `config/loglake.toml` in the working directory,
//! then the system-wide `/etc/loglake/loglake.toml`; none of them: the built-in defaults. And a
//! relative path written *in a file* (`[lake] path = "lake"`) means relative to that file's
//! folder, wherever the command runs from; paths given by flags or `LOGLAKE__…` variables stay
//! relative to the working directory, as a shell user expects.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// The environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "LOGLAKE_CONFIG";
/// The config file in the working directory.
pub const LOCAL_CONFIG: &str = "config/loglake.toml";
/// The system-wide config file.
pub const SYSTEM_CONFIG: &str = "/etc/loglake/loglake.toml";

/// Where a command's settings file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFrom {
    Flag(PathBuf),
    Env(PathBuf),
    Local(PathBuf),
    System(PathBuf),
    /// No file: the built-in defaults.
    Defaults,
}

impl ConfigFrom {
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigFrom::Flag(p)
            | ConfigFrom::Env(p)
            | ConfigFrom::Local(p)
            | ConfigFrom::System(p) => Some(p),
            ConfigFrom::Defaults => None,
        }
    }

    /// How the file was chosen, for the log and `config show`.
    pub fn describe(&self) -> String {
        match self {
            ConfigFrom::Flag(p) => format!("{} (--config)", p.display()),
            ConfigFrom::Env(p) => format!("{} (${CONFIG_ENV})", p.display()),
            ConfigFrom::Local(p) => format!("{} (in the working directory)", p.display()),
            ConfigFrom::System(p) => format!("{} (system-wide)", p.display()),
            ConfigFrom::Defaults => format!(
                "none: built-in defaults (no --config, no ${CONFIG_ENV}, no {LOCAL_CONFIG} here, no {SYSTEM_CONFIG})"
            ),
        }
    }
}

/// The config file a command reads: `flag` (`--config`), else `$LOGLAKE_CONFIG`, else
/// [`LOCAL_CONFIG`], else [`SYSTEM_CONFIG`], else none.
pub fn find(flag: Option<&Path>) -> Result<ConfigFrom> {
    let env = std::env::var_os(CONFIG_ENV).map(PathBuf::from);
    choose(
        flag,
        env.as_deref(),
        Path::new(LOCAL_CONFIG),
        Path::new(SYSTEM_CONFIG),
    )
}

/// The config file for `flag` (`--config`), `env` (`$LOGLAKE_CONFIG`), trying `local` and
/// then `system` when neither is given.
pub fn choose(
    flag: Option<&Path>,
    env: Option<&Path>,
    local: &Path,
    system: &Path,
) -> Result<ConfigFrom> {
    if let Some(p) = flag {
        if !p.is_file() {
            bail!(
                "config file {} does not exist (pass --config with an existing file, or omit it to use defaults)",
                p.display()
            );
        }
        return Ok(ConfigFrom::Flag(p.to_path_buf()));
    }
    if let Some(p) = env.filter(|p| !p.as_os_str().is_empty()) {
        if !p.is_file() {
            bail!(
                "config file {} (from ${CONFIG_ENV}) does not exist: point ${CONFIG_ENV} at an existing file, or unset it",
                p.display()
            );
        }
        return Ok(ConfigFrom::Env(p.to_path_buf()));
    }
    if local.is_file() {
        return Ok(ConfigFrom::Local(local.to_path_buf()));
    }
    if system.is_file() {
        return Ok(ConfigFrom::System(system.to_path_buf()));
    }
    Ok(ConfigFrom::Defaults)
}

/// The file's relative paths made absolute against its folder, as a TOML document to layer
/// over the file: `[lake] path`, `[run] metrics_textfile`, and a `sqlite://` database URL.
/// `values` reads a key of the file alone (`None`: not set there).
pub fn anchored_paths(file: &Path, values: impl Fn(&str) -> Option<String>) -> String {
    let folder = std::fs::canonicalize(file)
        .ok()
        .and_then(|f| f.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| file.parent().map(Path::to_path_buf).unwrap_or_default());
    let anchor = |value: &str| -> Option<String> {
        let path = Path::new(value);
        // A URL (`s3://bucket/prefix`) is not a path relative to anything.
        (!value.is_empty() && path.is_relative() && !crate::lake::location::is_url(value))
            .then(|| folder.join(path).to_string_lossy().into_owned())
    };
    let mut toml = String::new();
    let mut set = |section: &str, key: &str, value: String| {
        // A JSON string literal is a TOML basic string.
        let quoted = serde_json::to_string(&value).expect("a string serialises");
        toml.push_str(&format!("[{section}]\n{key} = {quoted}\n"));
    };
    if let Some(path) = values("lake.path").as_deref().and_then(anchor) {
        set("lake", "path", path);
    }
    if let Some(path) = values("run.metrics_textfile").as_deref().and_then(anchor) {
        set("run", "metrics_textfile", path);
    }
    let sqlite = values("database.url").and_then(|url| {
        let rest = url.strip_prefix("sqlite://")?;
        let (path, query) = rest
            .split_once('?')
            .map_or((rest, None), |(p, q)| (p, Some(q)));
        anchor(path).map(|p| match query {
            Some(q) => format!("sqlite://{p}?{q}"),
            None => format!("sqlite://{p}"),
        })
    });
    if let Some(url) = sqlite {
        set("database", "url", url);
    }
    toml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_the_flag_then_the_variable_then_local_then_system() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.toml");
        let local = dir.path().join("local.toml");
        let system = dir.path().join("system.toml");
        let missing = dir.path().join("missing.toml");
        std::fs::write(&a, "").unwrap();
        assert_eq!(
            choose(None, None, &local, &system).unwrap(),
            ConfigFrom::Defaults
        );
        std::fs::write(&system, "").unwrap();
        assert_eq!(
            choose(None, None, &local, &system).unwrap(),
            ConfigFrom::System(system.clone())
        );
        std::fs::write(&local, "").unwrap();
        assert_eq!(
            choose(None, None, &local, &system).unwrap(),
            ConfigFrom::Local(local.clone())
        );
        assert_eq!(
            choose(None, Some(&a), &local, &system).unwrap(),
            ConfigFrom::Env(a.clone())
        );
        assert_eq!(
            choose(Some(&a), Some(&missing), &local, &system).unwrap(),
            ConfigFrom::Flag(a.clone())
        );
        let err = choose(None, Some(&missing), &local, &system).unwrap_err();
        assert!(format!("{err}").contains("LOGLAKE_CONFIG"), "{err}");
        assert!(choose(Some(&missing), None, &local, &system).is_err());
    }

    #[test]
    fn relative_paths_in_a_file_are_relative_to_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("loglake.toml");
        std::fs::write(&file, "").unwrap();
        let folder = std::fs::canonicalize(dir.path()).unwrap();
        let values = |key: &str| match key {
            "lake.path" => Some("data/lake".to_string()),
            "run.metrics_textfile" => Some("/var/lib/node/loglake.prom".to_string()),
            "database.url" => Some("sqlite://state/loglake.db?mode=rwc".to_string()),
            _ => None,
        };
        let toml = anchored_paths(&file, values);
        let lake = folder.join("data/lake");
        let db = folder.join("state/loglake.db");
        assert!(
            toml.contains(&format!("path = \"{}\"", lake.display())),
            "{toml}"
        );
        assert!(
            toml.contains(&format!("url = \"sqlite://{}?mode=rwc\"", db.display())),
            "{toml}"
        );
        // Absolute paths, and URLs of servers, are left alone.
        assert!(!toml.contains("metrics_textfile"), "{toml}");
        let toml = anchored_paths(&file, |key| {
            (key == "database.url").then(|| "postgres://db/loglake".to_string())
        });
        assert!(toml.is_empty(), "{toml}");
    }
}

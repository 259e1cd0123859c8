//! Session keys: what groups events into sessions (an HDFS block id, a request id), read once
//! from the `session_key` setting.

use anyhow::Result;

/// How `session_key` names a parsed field instead of a regex over the message:
/// `field:<name>`, a format's `<Name>` or a JSON/logfmt key (dotted for nested JSON).
pub const SESSION_FIELD_PREFIX: &str = "field:";

/// The field a `session_key` setting names, if it names one.
pub fn session_field(session_key: &str) -> Option<&str> {
    session_key
        .trim()
        .strip_prefix(SESSION_FIELD_PREFIX)
        .map(str::trim)
        .filter(|f| !f.is_empty())
}

/// How sessions are keyed, read once from the `session_key` setting: a parsed field's value,
/// or a regex over the message (its first capture group when it has one, else the whole
/// match). A bad regex is an error when settings are resolved, never a silently empty key.
#[derive(Debug, Clone)]
pub enum SessionKey {
    Field(String),
    Pattern { regex: regex::Regex, group: usize },
}

impl SessionKey {
    /// `None` for an empty setting (no sessions).
    pub fn parse(setting: &str) -> Result<Option<Self>> {
        if setting.trim().is_empty() {
            return Ok(None);
        }
        if let Some(field) = session_field(setting) {
            return Ok(Some(SessionKey::Field(field.to_string())));
        }
        let regex = regex::Regex::new(setting).map_err(|e| {
            // The regex crate draws the pattern with a caret over several lines; an error
            // here is one line (cron mail, Airflow log), so only its last line is kept.
            let why = e.to_string();
            let why = why.lines().last().unwrap_or_default().trim_start_matches("error: ");
            anyhow::anyhow!(
                "invalid session key regex {setting:?}: {why} (give a regex such as 'blk_-?\\d+' or 'req=(\\S+)', or field:NAME)"
            )
        })?;
        let group = if regex.captures_len() > 1 { 1 } else { 0 };
        Ok(Some(SessionKey::Pattern { regex, group }))
    }

    /// The field it names, when sessions are keyed by a field.
    pub fn field(&self) -> Option<&str> {
        match self {
            SessionKey::Field(f) => Some(f),
            SessionKey::Pattern { .. } => None,
        }
    }
}

/// A fixed hash of a session key (not randomly seeded): 03-gold's session buckets and
/// 04-train's session sample both follow it, so a re-run puts every session where it was.
pub fn key_hash(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    key.hash(&mut h);
    h.finish()
}

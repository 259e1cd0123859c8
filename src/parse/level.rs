//! Levels: the many spellings logs use, normalised to [`LEVELS`].

/// Levels are normalised to this set; the original text is kept beside it.
pub const LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "ERROR", "FATAL"];

/// Syslog `<PRI>`: facility × 8 + severity; severities 0–7 are emerg … debug.
pub(super) fn syslog_level(pri: &str) -> &'static str {
    match pri.trim().parse::<u32>().map(|p| p % 8) {
        Ok(0..=2) => "FATAL",
        Ok(3) => "ERROR",
        Ok(4) => "WARN",
        Ok(5) => "NOTICE",
        Ok(7) => "DEBUG",
        _ => "INFO",
    }
}

/// Access logs carry no level; the status says how the request went.
pub(super) fn http_level(status: &str) -> &'static str {
    match status.as_bytes().first() {
        Some(b'5') => "ERROR",
        Some(b'4') => "WARN",
        _ => "INFO",
    }
}

/// Map the many spellings of a level onto [`LEVELS`]; unknown or missing → `INFO`.
pub fn normalize_level(raw: &str) -> &'static str {
    known_level(raw).unwrap_or("INFO")
}

/// Level spellings seen in the presets' logs → the normalised set [`LEVELS`].
const SPELLINGS: &[(&str, &str)] = &[
    ("INFO", "INFO"),
    ("I", "INFO"),
    ("INFORMATION", "INFO"),
    ("NOTICE", "NOTICE"),
    ("TRACE", "TRACE"),
    ("FINEST", "TRACE"),
    ("FINER", "TRACE"),
    ("VERBOSE", "TRACE"),
    ("V", "TRACE"),
    ("DEBUG", "DEBUG"),
    ("FINE", "DEBUG"),
    ("DBG", "DEBUG"),
    ("D", "DEBUG"),
    ("WARN", "WARN"),
    ("WARNING", "WARN"),
    ("W", "WARN"),
    ("ERROR", "ERROR"),
    ("ERR", "ERROR"),
    ("E", "ERROR"),
    ("SEVERE", "ERROR"),
    ("FAILURE", "ERROR"),
    ("FATAL", "FATAL"),
    ("CRITICAL", "FATAL"),
    ("CRIT", "FATAL"),
    ("EMERG", "FATAL"),
    ("EMERGENCY", "FATAL"),
    ("ALERT", "FATAL"),
    ("PANIC", "FATAL"),
    ("F", "FATAL"),
    ("A", "FATAL"),
];

/// The normalised level of a spelling we know (`warning` → `WARN`; Apache's `core:error` →
/// `ERROR`), or `None`.
pub fn known_level(raw: &str) -> Option<&'static str> {
    let raw = raw.trim();
    let raw = raw.rsplit_once(':').map_or(raw, |(_, l)| l);
    SPELLINGS
        .iter()
        .find(|(spelling, _)| raw.eq_ignore_ascii_case(spelling))
        .map(|(_, level)| *level)
}

//! Session keys: what groups events into sessions (an HDFS block id, a request id), read once
//! from the `session_key` setting.

use anyhow::Result;

/// How `session_key` names a parsed field instead of a regex over the message:
/// `field:<name>`, a format's `<Name>` or a JSON/logfmt key (dotted for nested JSON).
pub const SESSION_FIELD_PREFIX: &str = "field:";

/// The field a `session_key` setting names, if it names one.
fn session_field(session_key: &str) -> Option<&str> {
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
    Pattern(Box<KeyPattern>),
}

/// A session-key regex, and a faster way to the same match when every match starts with the
/// same text.
///
/// Keys are usually an id after a fixed tag (`blk_-?\d+`, `req=(\S+)`). An unanchored search
/// finds where a match ends, then scans back for where it starts; on a million HDFS messages
/// that was 13 % of 03-gold's CPU. When every match begins with a literal, each place the
/// literal occurs is a candidate start, in order, and the leftmost match is the match anchored
/// at the first candidate where one exists: the same start, and at that start the regex
/// prefers the same match anchored or not. So the literal is found with a substring search and
/// the regex only run anchored there, forward.
#[derive(Debug, Clone)]
pub struct KeyPattern {
    regex: regex::Regex,
    /// The capture group that is the key: 1 when the regex has groups, else 0 (the match).
    group: usize,
    /// The literal every match starts with, and the regex anchored (`^(?:…)`), if there is one.
    literal_start: Option<(memchr::memmem::Finder<'static>, regex::Regex)>,
}

impl KeyPattern {
    fn new(regex: regex::Regex) -> Self {
        let group = if regex.captures_len() > 1 { 1 } else { 0 };
        let literal_start = regex_syntax::parse(regex.as_str())
            .ok()
            .and_then(|hir| literal_prefix(&hir).map(<[u8]>::to_vec))
            .filter(|literal| !literal.is_empty())
            .and_then(|literal| {
                let anchored = regex::Regex::new(&format!("^(?:{})", regex.as_str())).ok()?;
                Some((memchr::memmem::Finder::new(&literal).into_owned(), anchored))
            });
        KeyPattern {
            regex,
            group,
            literal_start,
        }
    }

    /// Where [`KeyPattern::find`] keeps a match's groups between calls.
    pub fn locations(&self) -> regex::CaptureLocations {
        match &self.literal_start {
            Some((_, anchored)) => anchored.capture_locations(),
            None => self.regex.capture_locations(),
        }
    }

    /// The key in `message`, if it has one; `locations` from [`KeyPattern::locations`].
    pub fn find<'m>(
        &self,
        message: &'m str,
        locations: &mut regex::CaptureLocations,
    ) -> Option<&'m str> {
        let Some((literal, anchored)) = &self.literal_start else {
            self.regex.captures_read(locations, message)?;
            return locations.get(self.group).map(|(s, e)| &message[s..e]);
        };
        let mut from = 0;
        while let Some(at) = literal.find(&message.as_bytes()[from..]) {
            let start = from + at;
            // A literal found in valid UTF-8 starts on a character boundary.
            let candidate = &message[start..];
            if anchored.captures_read(locations, candidate).is_some() {
                return locations.get(self.group).map(|(s, e)| &candidate[s..e]);
            }
            from = start + 1;
        }
        None
    }
}

/// The literal text every match of `hir` starts with, if any.
fn literal_prefix(hir: &regex_syntax::hir::Hir) -> Option<&[u8]> {
    use regex_syntax::hir::HirKind;
    match hir.kind() {
        HirKind::Literal(literal) => Some(&literal.0),
        HirKind::Concat(parts) => parts.first().and_then(literal_prefix),
        HirKind::Capture(capture) => literal_prefix(&capture.sub),
        _ => None,
    }
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
        Ok(Some(SessionKey::Pattern(Box::new(KeyPattern::new(regex)))))
    }

    /// The field it names, when sessions are keyed by a field.
    pub fn field(&self) -> Option<&str> {
        match self {
            SessionKey::Field(f) => Some(f),
            SessionKey::Pattern(_) => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The key as a plain unanchored search finds it: what [`KeyPattern::find`] must equal.
    fn reference<'m>(pattern: &str, message: &'m str) -> Option<&'m str> {
        let regex = regex::Regex::new(pattern).unwrap();
        let group = if regex.captures_len() > 1 { 1 } else { 0 };
        regex
            .captures(message)
            .and_then(|c| c.get(group))
            .map(|m| m.as_str())
    }

    #[test]
    fn the_literal_start_finds_what_the_regex_finds() {
        let patterns = [
            r"blk_-?\d+",
            r"req=(\S+)",
            r"(blk_-?\d+)",
            r"job_\d+_\d+",
            r"id:\s*(\w+)\b",
            r"blk_\d+|req=\d+",
            r"(?i)blk_\d+",
            r"\bsession=(\d+)",
            r"é=(\d+)",
        ];
        let messages = [
            "Receiving block blk_-3680648322046422588 src: /10.250.242.70:35432",
            "blk_x blk_ blk_12 then blk_-7",
            "no key here",
            "",
            "req= req=abc req=def",
            "BLK_12 blk_34",
            "id: id:  word-1 id:x",
            "job_1_ job_1_2 job_3_4",
            "xsession=1 session=2",
            "ünï blk_5 é=7 é=",
            "ends with the tag blk_",
            "req=42",
        ];
        for pattern in patterns {
            let Some(SessionKey::Pattern(key)) = SessionKey::parse(pattern).unwrap() else {
                panic!("{pattern} is a pattern");
            };
            let mut locations = key.locations();
            for message in messages {
                assert_eq!(
                    key.find(message, &mut locations),
                    reference(pattern, message),
                    "{pattern:?} in {message:?}"
                );
            }
        }
    }

    #[test]
    fn only_patterns_that_start_with_text_take_the_literal_start() {
        let literal_start = |pattern: &str| match SessionKey::parse(pattern).unwrap() {
            Some(SessionKey::Pattern(key)) => key.literal_start.is_some(),
            _ => panic!("{pattern} is a pattern"),
        };
        assert!(literal_start(r"blk_-?\d+"));
        assert!(literal_start(r"(req=)(\S+)"));
        assert!(!literal_start(r"blk_\d+|req=\d+"));
        assert!(!literal_start(r"(?i)blk_\d+"));
        assert!(!literal_start(r"\d+"));
        assert!(!literal_start(r"^blk_\d+"));
    }
}

//! Structured lines: one JSON object per line, or logfmt `key=value` pairs.
//!
//! Such logs name their fields instead of placing them, so there is no format string: each of
//! time, level, service and message is the first present key from a configurable list of
//! candidates (`parse.timestamp_field = "ts,time,@timestamp"` …). Nested JSON keys are reached
//! with dots (`log.level`). Values may be strings or numbers (an epoch time, a numeric level).

use std::borrow::Cow;

use serde_json::Value;

/// Which keys hold the header fields, each a list of candidates tried in order.
#[derive(Debug, Clone)]
pub struct FieldMap {
    pub timestamp: Vec<String>,
    pub level: Vec<String>,
    pub service: Vec<String>,
    pub message: Vec<String>,
    /// The key whose value is the line's session key (`session_key = "field:<key>"`).
    pub session: Vec<String>,
}

impl FieldMap {
    /// From comma-separated candidate lists.
    pub fn from_lists(timestamp: &str, level: &str, service: &str, message: &str) -> Self {
        let split = |s: &str| -> Vec<String> {
            s.split(',')
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect()
        };
        Self {
            timestamp: split(timestamp),
            level: split(level),
            service: split(service),
            message: split(message),
            session: Vec::new(),
        }
    }

    /// Read the session key from `key` too.
    pub fn with_session(mut self, key: Option<&str>) -> Self {
        self.session = key.map(|k| vec![k.to_string()]).unwrap_or_default();
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Json,
    Logfmt,
}

/// A structured line's header fields, before timestamp parsing.
#[derive(Debug, Clone, PartialEq)]
pub struct StructuredFields<'a> {
    pub timestamp: Cow<'a, str>,
    pub level: Cow<'a, str>,
    pub service: Cow<'a, str>,
    pub message: Cow<'a, str>,
    pub session: Option<Cow<'a, str>>,
}

/// Read one line's fields; `Err` says why the line cannot be an event.
pub fn read<'a>(kind: Kind, map: &FieldMap, line: &'a str) -> Result<StructuredFields<'a>, String> {
    match kind {
        Kind::Json => read_json(map, line),
        Kind::Logfmt => read_logfmt(map, line),
    }
}

fn read_json<'a>(map: &FieldMap, line: &'a str) -> Result<StructuredFields<'a>, String> {
    let value: Value =
        serde_json::from_str(line.trim()).map_err(|e| format!("not a JSON object: {e}"))?;
    if !value.is_object() {
        return Err("not a JSON object".into());
    }
    let get = |keys: &[String]| -> Option<Cow<'a, str>> {
        keys.iter().find_map(|k| {
            let v = k.split('.').try_fold(&value, |v, part| v.get(part))?;
            match v {
                Value::String(s) => Some(Cow::Owned(s.clone())),
                Value::Number(n) => Some(Cow::Owned(n.to_string())),
                Value::Bool(b) => Some(Cow::Owned(b.to_string())),
                _ => None,
            }
        })
    };
    fields(map, get)
}

fn read_logfmt<'a>(map: &FieldMap, line: &'a str) -> Result<StructuredFields<'a>, String> {
    let pairs = logfmt_pairs(line)?;
    let get = |keys: &[String]| -> Option<Cow<'a, str>> {
        keys.iter().find_map(|k| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        })
    };
    fields(map, get)
}

/// The header fields, each looked up by `get` from its candidate keys.
fn fields<'a>(
    map: &FieldMap,
    get: impl Fn(&[String]) -> Option<Cow<'a, str>>,
) -> Result<StructuredFields<'a>, String> {
    let (timestamp, level, service, message) = (
        get(&map.timestamp),
        get(&map.level),
        get(&map.service),
        get(&map.message),
    );
    let Some(timestamp) = timestamp else {
        return Err(format!(
            "no time field (looked for {})",
            map.timestamp.join(", ")
        ));
    };
    let Some(message) = message else {
        return Err(format!(
            "no message field (looked for {})",
            map.message.join(", ")
        ));
    };
    Ok(StructuredFields {
        timestamp,
        level: level.unwrap_or(Cow::Borrowed("")),
        service: service.unwrap_or(Cow::Borrowed("-")),
        message,
        session: get(&map.session),
    })
}

/// `key=value key2="quoted \"value\""` → pairs. Bare keys (`flag`) get an empty value.
/// A logfmt key and its (unescaped) value.
type Pair<'a> = (Cow<'a, str>, Cow<'a, str>);

fn logfmt_pairs(line: &str) -> Result<Vec<Pair<'_>>, String> {
    let mut pairs = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &line[key_start..i];
        if i >= b.len() || b[i] != b'=' {
            pairs.push((Cow::Borrowed(key), Cow::Borrowed("")));
            continue;
        }
        i += 1;
        if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut value = String::new();
            let mut closed = false;
            let start = i;
            let mut plain = true;
            while i < b.len() {
                match b[i] {
                    b'\\' if i + 1 < b.len() => {
                        if plain {
                            value.push_str(&line[start..i]);
                            plain = false;
                        }
                        let escaped = b[i + 1];
                        value.push(match escaped {
                            b'n' => '\n',
                            b't' => '\t',
                            other => other as char,
                        });
                        i += 2;
                    }
                    b'"' => {
                        closed = true;
                        break;
                    }
                    _ => {
                        if !plain {
                            let ch = line[i..].chars().next().expect("in bounds");
                            value.push(ch);
                            i += ch.len_utf8();
                            continue;
                        }
                        i += 1;
                    }
                }
            }
            if !closed {
                return Err(format!("unterminated quoted value for key {key:?}"));
            }
            let value = if plain {
                Cow::Borrowed(&line[start..i])
            } else {
                Cow::Owned(value)
            };
            pairs.push((Cow::Borrowed(key), value));
            i += 1;
        } else {
            let start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            pairs.push((Cow::Borrowed(key), Cow::Borrowed(&line[start..i])));
        }
    }
    if pairs.is_empty() {
        return Err("no key=value pairs".into());
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> FieldMap {
        FieldMap::from_lists(
            "ts,time,@timestamp",
            "level,severity",
            "service,logger",
            "msg,message",
        )
    }

    #[test]
    fn json_lines_with_nested_and_numeric_fields() {
        let f = read(
            Kind::Json,
            &FieldMap::from_lists("ts", "log.level", "service", "message"),
            r#"{"ts":1700000000,"log":{"level":"warn"},"service":"api","message":"slow \"query\" 12 ms"}"#,
        )
        .unwrap();
        assert_eq!(f.timestamp, "1700000000");
        assert_eq!(f.level, "warn");
        assert_eq!(f.message, "slow \"query\" 12 ms");
        let err = read(Kind::Json, &map(), r#"{"msg":"no time"}"#).unwrap_err();
        assert!(err.contains("no time field"), "{err}");
        assert!(
            read(Kind::Json, &map(), "not json")
                .unwrap_err()
                .contains("not a JSON object")
        );
    }

    #[test]
    fn logfmt_pairs_with_quotes_and_escapes() {
        let f = read(
            Kind::Logfmt,
            &map(),
            r#"time=2026-11-20T10:00:00Z level=info logger=db msg="query \"users\" took 12ms" retry"#,
        )
        .unwrap();
        assert_eq!(f.timestamp, "2026-11-20T10:00:00Z");
        assert_eq!((f.level.as_ref(), f.service.as_ref()), ("info", "db"));
        assert_eq!(f.message, "query \"users\" took 12ms");
        assert!(
            read(Kind::Logfmt, &map(), r#"time=1 msg="open"#)
                .unwrap_err()
                .contains("unterminated")
        );
    }
}

//! Header formats: logparser-style format strings and the built-in presets.
//!
//! A format string names fields in angle brackets and keeps every other character literal:
//! `<Date> <Time> <Pid> <Level> <Component>: <Content>`. `\[` escapes a bracket, `(...)?` makes
//! a part optional, and a run of spaces matches any run of whitespace (real logs pad columns).
//! A field is the shortest text up to what follows it: whitespace-free when a space follows,
//! otherwise anything up to the next literal (so `\[<Time>\]` takes `Sun Dec 04 04:47:44 2005`);
//! the last field takes the rest of the line.

use anyhow::{Result, bail};
use regex::Regex;

/// Built-in presets: name → format string.
pub const PRESETS: &[(&str, &str)] = &[
    // What `loglake generate` writes: ISO 8601 UTC timestamp, level, service, free text.
    ("generator", "<Timestamp> <Level> <Component>: <Content>"),
    ("hdfs", "<Date> <Time> <Pid> <Level> <Component>: <Content>"),
];

/// A compiled header format.
#[derive(Debug, Clone)]
pub struct LineFormat {
    pub source: String,
    pub regex: Regex,
    pub fields: Vec<String>,
}

impl LineFormat {
    /// A preset name or a format string.
    pub fn from_spec(spec: &str) -> Result<Self> {
        let spec = spec.trim();
        if let Some((_, fmt)) = PRESETS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(spec))
        {
            return Self::compile(fmt);
        }
        if !spec.contains('<') {
            let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
            bail!(
                "unknown format {spec:?}: use a preset ({}) or a format string such as \"<Date> <Time> <Level> <Component>: <Content>\"",
                names.join(", ")
            );
        }
        Self::compile(spec)
    }

    pub fn compile(format: &str) -> Result<Self> {
        enum Piece {
            Literal(String),
            Field(String),
            Raw(String),
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '<' => {
                    let mut name = String::new();
                    for n in chars.by_ref() {
                        if n == '>' {
                            break;
                        }
                        name.push(n);
                    }
                    if name.is_empty()
                        || !name
                            .chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                    {
                        bail!(
                            "bad field name <{name}> in format {format:?}: use letters, digits and _"
                        );
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Field(name));
                }
                '\\' => {
                    if let Some(n) = chars.next() {
                        literal.push(n);
                    }
                }
                '(' => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Raw("(?:".into()));
                }
                ')' if chars.peek() == Some(&'?') => {
                    chars.next();
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Raw(")?".into()));
                }
                other => literal.push(other),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }

        let mut pattern = String::from("^");
        let mut fields = Vec::new();
        let last_field = pieces.iter().rposition(|p| matches!(p, Piece::Field(_)));
        for (i, piece) in pieces.iter().enumerate() {
            match piece {
                Piece::Literal(text) => {
                    let mut run_ws = false;
                    for ch in text.chars() {
                        if ch.is_whitespace() {
                            if !run_ws {
                                pattern.push_str(r"\s+");
                            }
                            run_ws = true;
                        } else {
                            run_ws = false;
                            pattern.push_str(&regex::escape(&ch.to_string()));
                        }
                    }
                }
                Piece::Raw(r) => pattern.push_str(r),
                Piece::Field(name) => {
                    if fields.contains(name) {
                        bail!("field <{name}> appears twice in format {format:?}");
                    }
                    fields.push(name.clone());
                    let next_is_space = match pieces.get(i + 1) {
                        Some(Piece::Literal(t)) => t.starts_with(char::is_whitespace),
                        _ => false,
                    };
                    let body = if Some(i) == last_field && i == pieces.len() - 1 {
                        ".*"
                    } else if next_is_space {
                        r"\S+?"
                    } else {
                        ".+?"
                    };
                    pattern.push_str(&format!("(?P<{name}>{body})"));
                }
            }
        }
        pattern.push('$');
        let regex = Regex::new(&pattern)?;
        Ok(Self {
            source: format.to_string(),
            regex,
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hdfs_preset_splits_header_fields() {
        let f = LineFormat::from_spec("hdfs").unwrap();
        let line = "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating";
        let caps = f.regex.captures(line).unwrap();
        assert_eq!(&caps["Date"], "081109");
        assert_eq!(&caps["Pid"], "148");
        assert_eq!(&caps["Component"], "dfs.DataNode$PacketResponder");
        assert!(caps["Content"].starts_with("PacketResponder 1 for block"));
    }

    #[test]
    fn escapes_and_optional_groups() {
        let f = LineFormat::compile(
            r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>",
        )
        .unwrap();
        let with = f
            .regex
            .captures("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown")
            .unwrap();
        assert_eq!(&with["Component"], "sshd(pam_unix)");
        assert_eq!(&with["PID"], "19939");
        let without = f
            .regex
            .captures("Jun 14 15:16:02 combo kernel: Linux version")
            .unwrap();
        assert_eq!(&without["Component"], "kernel");
        assert!(without.name("PID").is_none());

        let apache = LineFormat::compile(r"\[<Time>\] \[<Level>\] <Content>").unwrap();
        let caps = apache
            .regex
            .captures("[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok")
            .unwrap();
        assert_eq!(&caps["Time"], "Sun Dec 04 04:47:44 2005");
        assert_eq!(&caps["Level"], "notice");
    }

    #[test]
    fn unknown_preset_is_a_clear_error() {
        let err = LineFormat::from_spec("nosuch").unwrap_err().to_string();
        assert!(err.contains("unknown format"), "{err}");
        assert!(err.contains("generator"), "{err}");
    }
}

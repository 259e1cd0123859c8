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

/// Built-in presets: name → format string. Field names matter: the time comes from the fields
/// named in `timestamp::TIME_FIELDS`, the level from `Level` (or `Pri` for syslog, `Status`
/// for access logs), the service from `Service` or `Component`, the message from `Content`.
/// Fields a log repeats in another shape (BGL's and Thunderbird's second date) get other names
/// so only one spelling of the time is read.
pub const PRESETS: &[(&str, &str)] = &[
    // What `loglake generate` writes: ISO 8601 UTC timestamp, level, service, free text.
    ("generator", "<Timestamp> <Level> <Component>: <Content>"),
    ("hdfs", "<Date> <Time> <Pid> <Level> <Component>: <Content>"),
    (
        "hadoop",
        "<Date> <Time> <Level> \\[<Process>\\] <Component>: <Content>",
    ),
    ("spark", "<Date> <Time> <Level> <Component>: <Content>"),
    (
        "zookeeper",
        "<Date> <Time> - <Level> \\[<Node>:<Component>@<Id>\\] - <Content>",
    ),
    (
        "bgl",
        "<Label> <Timestamp> <Day_> <Node> <Time_> <NodeRepeat> RAS <Component> <Level> <Content>",
    ),
    (
        "hpc",
        "<LogId> <Node> <Component> <State> <Timestamp> <Flag> <Content>",
    ),
    (
        "thunderbird",
        "<Label> <Timestamp> <Date_> <User> <Month_> <Day_> <Time_> <Location> <Component>(\\[<Pid>\\])?: <Content>",
    ),
    // RFC 3164 syslog as files hold it (an optional <PRI> when written raw off the wire).
    (
        "syslog",
        "(\\<<Pri>\\>)?<Month> <Date> <Time> <Host> <Component>(\\[<Pid>\\])?: <Content>",
    ),
    (
        "rfc5424",
        "\\<<Pri>\\><Version> <Timestamp> <Host> <Component> <Pid> <MsgId> <Content>",
    ),
    (
        "openssh",
        "<Month> <Day> <Time> <Host> <Component>\\[<Pid>\\]: <Content>",
    ),
    ("apache-error", "\\[<Time>\\] \\[<Level>\\] <Content>"),
    (
        "access-log",
        "<Client> <Ident> <User> \\[<Timestamp>\\] \"<Content>\" <Status> <Size>( \"<Referer>\" \"<Agent>\")?",
    ),
    (
        "android",
        "<Date> <Time> <Pid> <Tid> <Level> <Component>: <Content>",
    ),
    (
        "windows-cbs",
        "<Date> <Time>, <Level> <Component> <Content>",
    ),
    ("healthapp", "<Time>|<Component>|<Pid>|<Content>"),
    (
        "mac",
        "<Month> <Date> <Time> <User> <Component>\\[<Pid>\\]( \\(<Address>\\))?: <Content>",
    ),
    (
        "openstack",
        "<Logrecord> <Date> <Time> <Pid> <Level> <Component> \\[<Address>\\] <Content>",
    ),
    ("proxifier", "\\[<Time>\\] <Component> - <Content>"),
];

/// Presets that are not format strings: one JSON object per line, and logfmt `key=value`
/// pairs. Their fields are found by name (`parse.*_field` settings).
pub const STRUCTURED_PRESETS: &[&str] = &["json", "logfmt"];

/// Aliases users reach for.
pub const PRESET_ALIASES: &[(&str, &str)] = &[
    ("linux", "syslog"),
    ("rfc3164", "syslog"),
    ("apache", "apache-error"),
    ("nginx", "access-log"),
    ("combined", "access-log"),
    ("cbs", "windows-cbs"),
    ("ssh", "openssh"),
];

/// The format string of a preset name (after aliases), if it is one.
pub fn preset(name: &str) -> Option<&'static str> {
    let name = PRESET_ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
        .map_or(name, |(_, target)| target);
    PRESETS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, f)| *f)
}

enum Piece {
    Literal(String),
    Field(String),
    Raw(String),
}

/// A compiled header format.
#[derive(Debug, Clone)]
pub struct LineFormat {
    pub source: String,
    pub regex: Regex,
    pub fields: Vec<String>,
    /// A hand-rolled matcher for formats without optional groups (most of them): it finds the
    /// same fields as the regex's lazy match, several times faster. `None`: regex only.
    scanner: Option<Vec<Token>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// One or more whitespace characters.
    Space,
    Literal(String),
    Field(usize, FieldEnd),
}

#[derive(Debug, Clone, PartialEq)]
enum FieldEnd {
    /// Up to the next whitespace (the field is followed by whitespace).
    Space,
    /// Up to the first occurrence of the literal that follows (at least one character).
    Literal(String),
    /// The rest of the line.
    Rest,
}

impl LineFormat {
    /// A preset name or a format string.
    pub fn from_spec(spec: &str) -> Result<Self> {
        let spec = spec.trim();
        if let Some(fmt) = preset(spec) {
            return Self::compile(fmt);
        }
        if !spec.contains('<') {
            let names: Vec<&str> = PRESETS
                .iter()
                .map(|(n, _)| *n)
                .chain(STRUCTURED_PRESETS.iter().copied())
                .chain(["auto"])
                .collect();
            bail!(
                "unknown format {spec:?}: use a preset ({}) or a format string such as \"<Date> <Time> <Level> <Component>: <Content>\"",
                names.join(", ")
            );
        }
        Self::compile(spec)
    }

    pub fn compile(format: &str) -> Result<Self> {
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
        let scanner = Self::scanner(&pieces_summary(&pieces));
        Ok(Self {
            source: format.to_string(),
            regex,
            fields,
            scanner,
        })
    }

    fn scanner(pieces: &Option<Vec<(bool, String)>>) -> Option<Vec<Token>> {
        let pieces = pieces.as_ref()?;
        let mut tokens = Vec::new();
        let mut field = 0usize;
        for (is_field, text) in pieces {
            if *is_field {
                tokens.push(Token::Field(field, FieldEnd::Rest));
                field += 1;
                continue;
            }
            let mut run = String::new();
            let mut in_space = false;
            for ch in text.chars() {
                if ch.is_whitespace() {
                    if !run.is_empty() {
                        tokens.push(Token::Literal(std::mem::take(&mut run)));
                    }
                    if !in_space {
                        tokens.push(Token::Space);
                    }
                    in_space = true;
                } else {
                    in_space = false;
                    run.push(ch);
                }
            }
            if !run.is_empty() {
                tokens.push(Token::Literal(run));
            }
        }
        for i in 0..tokens.len() {
            if !matches!(tokens[i], Token::Field(..)) {
                continue;
            }
            let end = match tokens.get(i + 1) {
                Some(Token::Space) => FieldEnd::Space,
                Some(Token::Literal(l)) => FieldEnd::Literal(l.clone()),
                Some(Token::Field(..)) => return None,
                None => FieldEnd::Rest,
            };
            if let Token::Field(_, e) = &mut tokens[i] {
                *e = end;
            }
        }
        Some(tokens)
    }

    /// The fields of `line` in `fields` order (`None` for an optional field that is absent),
    /// or `None` when the line does not match.
    pub fn split<'a>(&self, line: &'a str) -> Option<Fields<'a>> {
        if let Some(tokens) = &self.scanner
            && let Some(found) = scan(tokens, line, self.fields.len())
        {
            return Some(found);
        }
        let caps = self.regex.captures(line)?;
        Some(
            self.fields
                .iter()
                .map(|f| caps.name(f).map(|m| m.as_str()))
                .collect(),
        )
    }
}

/// A line's fields, on the stack for formats of up to 12 fields (all the presets).
pub type Fields<'a> = smallvec::SmallVec<[Option<&'a str>; 12]>;

/// Pieces reduced to (is_field, literal text) when the format has no optional groups.
fn pieces_summary(pieces: &[Piece]) -> Option<Vec<(bool, String)>> {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Literal(t) => Some((false, t.clone())),
            Piece::Field(_) => Some((true, String::new())),
            Piece::Raw(_) => None,
        })
        .collect()
}

/// Match `line` against the scanner tokens: each field is the shortest text its terminator
/// allows, exactly what the regex's lazy groups choose when the rest of the line then matches.
fn scan<'a>(tokens: &[Token], line: &'a str, n_fields: usize) -> Option<Fields<'a>> {
    let mut out: Fields<'a> = smallvec::smallvec![None; n_fields];
    let mut pos = 0usize;
    for token in tokens {
        let rest = &line[pos..];
        match token {
            Token::Space => {
                let n = rest
                    .find(|c: char| !c.is_whitespace())
                    .unwrap_or(rest.len());
                if n == 0 {
                    return None;
                }
                pos += n;
            }
            Token::Literal(l) => {
                if !rest.starts_with(l.as_str()) {
                    return None;
                }
                pos += l.len();
            }
            Token::Field(i, end) => {
                let len = match end {
                    FieldEnd::Rest => rest.len(),
                    FieldEnd::Space => rest.find(char::is_whitespace).unwrap_or(rest.len()),
                    FieldEnd::Literal(l) => {
                        let first = rest.chars().next()?.len_utf8();
                        first + rest[first..].find(l.as_str())?
                    }
                };
                if len == 0 && *end != FieldEnd::Rest {
                    return None;
                }
                out[*i] = Some(&rest[..len]);
                pos += len;
            }
        }
    }
    (pos == line.len()).then_some(out)
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
    fn scanner_and_regex_agree() {
        // The fast scanner must split exactly like the regex it stands in for.
        let lines = [
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_3 terminating",
            "081109 203615 148 INFO dfs.DataNode$PacketResponder:  extra: colons: here",
            "2026-11-20T10:00:00.000Z INFO checkout: request started req=r1",
            "2026-11-20T10:00:00.000Z INFO   checkout:",
            "no match",
            "081109 203615 148 INFO nocolon here",
        ];
        for fmt in [
            "<Date> <Time> <Pid> <Level> <Component>: <Content>",
            "<Timestamp> <Level> <Component>: <Content>",
        ] {
            let fast = LineFormat::compile(fmt).unwrap();
            assert!(fast.scanner.is_some());
            let reference = LineFormat {
                scanner: None,
                ..fast.clone()
            };
            for line in lines {
                assert_eq!(fast.split(line), reference.split(line), "{fmt} on {line:?}");
            }
        }
    }

    #[test]
    fn unknown_preset_is_a_clear_error() {
        let err = LineFormat::from_spec("nosuch").unwrap_err().to_string();
        assert!(err.contains("unknown format"), "{err}");
        assert!(err.contains("generator"), "{err}");
    }
}

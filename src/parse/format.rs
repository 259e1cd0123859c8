//! Header formats: logparser-style format strings and the built-in presets.
//!
//! A format string names fields in angle brackets and keeps every other character literal:
//! `<Date> <Time> <Pid> <Level> <Component>: <Content>`. `\[` escapes a bracket, `(...)?` makes
//! a part optional, and a run of spaces matches any run of whitespace (real logs pad columns).
//!
//! The semantics are logparser's, the convention loghub publishes its formats in, so a format
//! string copied from there reads the lines it read there: the line, stripped of surrounding
//! whitespace, must match as a whole; each field is `.*?` — the *shortest* text, spaces
//! included and possibly empty, that lets the rest of the line match — and a run of spaces is
//! a greedy `\s+`. So in `<Date> <Time> <Program> - <Content>` the program may hold spaces as
//! long as ` - ` follows it, and in `\[<Time>\]` the time runs to the first `]` that lets the
//! line match. The regex below is that definition; the scanner is a faster way to the same
//! answer (the tests hold them to agreeing line for line).

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
    // rsyslog's high-precision file format (RFC 3339 times; Debian 13's default).
    (
        "syslog-iso",
        "<Timestamp> <Host> <Component>(\\[<Pid>\\])?: <Content>",
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
    // Kubernetes container logs (CRI): RFC 3339 time, stream, `F` for a full line or `P` for
    // the first parts of one the runtime split (joined back onto the event, no newline).
    ("cri", "<Timestamp> <Stream> <Logtag> <Content>"),
];

/// Presets that are not format strings: one JSON object per line, and logfmt `key=value`
/// pairs. Their fields are found by name: `parse.*_field` settings for `json` and `logfmt`,
/// fixed keys for journald's JSON export and Docker's json-file logs.
pub const STRUCTURED_PRESETS: &[&str] = &["json", "logfmt", "journald", "docker"];

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
    /// One or more whitespace characters, as many as the rest of the line allows (`\s+`).
    Space,
    Literal(String),
    /// Field number `n`: the shortest text that lets the rest match (`.*?`).
    Field(usize),
}

/// Matching steps the scanner takes on one line before it hands the line to the regex.
/// A line that matches costs one step per token; only a line that fails (or has many
/// near-misses) backtracks, and the regex engine, linear in the line, is better at that
/// (auto-detection tries every preset on 2,000 lines, most of which fail: 256 steps made it
/// take 0.1 s longer than 64 on a million HDFS lines).
const SCAN_BUDGET: usize = 64;

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
                    // Lazy, as logparser writes it; a last field before `$` takes the rest
                    // whichever way it is written, and `.*` says so.
                    let body = if Some(i) == last_field && i == pieces.len() - 1 {
                        ".*"
                    } else {
                        ".*?"
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
                tokens.push(Token::Field(field));
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
        Some(tokens)
    }

    /// The fields of `line` in `fields` order (`None` for an optional field that is absent),
    /// or `None` when the line does not match.
    /// The line is stripped of surrounding whitespace first, as logparser does.
    pub fn split<'a>(&self, line: &'a str) -> Option<Fields<'a>> {
        let line = line.trim();
        if let Some(tokens) = &self.scanner {
            let mut out: Fields<'a> = smallvec::smallvec![None; self.fields.len()];
            let mut budget = SCAN_BUDGET;
            match scan(tokens, line, 0, &mut out, &mut budget) {
                Some(true) => return Some(out),
                Some(false) => return None,
                None => {} // out of budget: the regex decides
            }
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

/// Match `line[pos..]` against `tokens`, exploring in the regex's order of preference — a
/// field's shortest text first, the longest run of whitespace first — so the first way that
/// matches is the one the regex reports. `Some(false)`: no way matches; `None`: the budget of
/// steps ran out before an answer.
fn scan<'a>(
    tokens: &[Token],
    line: &'a str,
    pos: usize,
    out: &mut Fields<'a>,
    budget: &mut usize,
) -> Option<bool> {
    *budget = budget.checked_sub(1)?;
    let rest = &line[pos..];
    let Some((token, after)) = tokens.split_first() else {
        return Some(rest.is_empty());
    };
    match token {
        Token::Literal(l) => {
            if !rest.starts_with(l.as_str()) {
                return Some(false);
            }
            scan(after, line, pos + l.len(), out, budget)
        }
        Token::Space => {
            let run: usize = rest
                .chars()
                .take_while(|c| c.is_whitespace())
                .map(char::len_utf8)
                .sum();
            // Where each whitespace character of the run ends, the longest run tried first.
            for (i, c) in rest[..run].char_indices().rev() {
                if scan(after, line, pos + i + c.len_utf8(), out, budget)? {
                    return Some(true);
                }
            }
            Some(false)
        }
        Token::Field(i) => {
            if after.is_empty() {
                out[*i] = Some(rest);
                return Some(true);
            }
            // Only ends where the next token can start are worth trying, shortest first.
            let mut from = pos;
            loop {
                let found = match &after[0] {
                    Token::Space => find_whitespace(&line[from..]),
                    Token::Literal(l) => find_literal(&line[from..], l),
                    Token::Field(_) => Some(0),
                };
                let Some(offset) = found else {
                    return Some(false);
                };
                let end = from + offset;
                if scan(after, line, end, out, budget)? {
                    out[*i] = Some(&line[pos..end]);
                    return Some(true);
                }
                let Some(c) = line[end..].chars().next() else {
                    return Some(false);
                };
                from = end + c.len_utf8();
            }
        }
    }
}

/// Where the first whitespace character of `text` starts: `text.find(char::is_whitespace)`,
/// with ASCII bytes judged without decoding a character (most of a header is ASCII).
fn find_whitespace(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii() {
            // char::is_whitespace's ASCII members: tab, newline, vertical tab, form feed,
            // carriage return and space.
            if matches!(b, b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r' | b' ') {
                return Some(i);
            }
            i += 1;
        } else {
            let c = text[i..]
                .chars()
                .next()
                .expect("i is on a character boundary");
            if c.is_whitespace() {
                return Some(i);
            }
            i += c.len_utf8();
        }
    }
    None
}

/// Where `literal` (not empty) first occurs in `text`: `text.find(literal)`, by a byte
/// search. A match of valid UTF-8 in valid UTF-8 starts on a character boundary.
fn find_literal(text: &str, literal: &str) -> Option<usize> {
    match literal.as_bytes() {
        [b] => memchr::memchr(*b, text.as_bytes()),
        needle => memchr::memmem::find(text.as_bytes(), needle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_searches_find_what_str_find_finds() {
        let texts = [
            "",
            "abc",
            "a b",
            "a\tb",
            "\u{a0}x y",
            "é\u{2003}z",
            "x\u{85}y",
            "\x0Bv",
            "no-space-at-all",
            "ünï: code: 1",
            "a - b - c",
        ];
        for t in texts {
            assert_eq!(find_whitespace(t), t.find(char::is_whitespace), "{t:?}");
            for l in [":", " - ", "é", "code", "-", "zz"] {
                assert_eq!(find_literal(t, l), t.find(l), "{l:?} in {t:?}");
            }
        }
    }

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

    /// Formats the adversarial lines are split with: presets, loghub's formats, adjacent
    /// fields, fields between repeated literals, leading and trailing literals.
    const AGREEMENT_FORMATS: &[&str] = &[
        "<Date> <Time> <Pid> <Level> <Component>: <Content>",
        "<Timestamp> <Level> <Component>: <Content>",
        "<Date> <Time> <Program> - <Content>",
        "\\[<Time>\\] \\[<Level>\\] <Content>",
        "\\[<Time>\\] <Program> - <Content>",
        "<Date> <Time> - <Level> \\[<Node>:<Component>@<Id>\\] - <Content>",
        "<Time>|<Component>|<Pid>|<Content>",
        "<A><B> <Content>",
        "<A> <B>",
        " <A>: <B> -",
        "<A>-<B>-<C>",
    ];

    /// The scanner must split exactly like the regex it stands in for, on lines built to
    /// trip it: fields with spaces, empty fields, literals repeated later in the line, runs
    /// of mixed whitespace, non-ASCII text, and lines long enough to run out of budget.
    #[test]
    fn scanner_and_regex_agree_on_adversarial_lines() {
        use rand::{Rng, SeedableRng};
        let pieces = [
            " ",
            "  ",
            "\t",
            " \u{a0}",
            "-",
            " - ",
            ":",
            ": ",
            "[",
            "]",
            "|",
            "@",
            "081109",
            "203615",
            "INFO",
            "chrome.exe",
            "*64",
            "é",
            "proxy.example.org:5070",
            "a",
            "b c",
        ];
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(18);
        let mut lines: Vec<String> = vec![
            "2024-05-01 10:00:00 chrome.exe *64 - proxy.example.org:5070 open through proxy".into(),
            "[10.30 16:49:06] chrome.exe - proxy.cse.cuhk.edu.hk:5070 open through proxy".into(),
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating"
                .into(),
            "  081109 203615 148 INFO dfs.DataNode: padded line  ".into(),
            "INFO : empty component".into(),
            String::new(),
        ];
        for _ in 0..20_000 {
            let n = rng.gen_range(0..24);
            lines.push(
                (0..n)
                    .map(|_| pieces[rng.gen_range(0..pieces.len())])
                    .collect(),
            );
        }
        let long = "a - ".repeat(200) + "b";
        lines.push(long);
        let mut matched = 0;
        for fmt in AGREEMENT_FORMATS {
            let fast = LineFormat::compile(fmt).unwrap();
            assert!(fast.scanner.is_some(), "{fmt}");
            let reference = LineFormat {
                scanner: None,
                ..fast.clone()
            };
            for line in &lines {
                let got = fast.split(line);
                assert_eq!(got, reference.split(line), "{fmt} on {line:?}");
                matched += usize::from(got.is_some());
            }
        }
        assert!(
            matched > 10_000,
            "the lines exercise matches too: {matched}"
        );
    }

    #[test]
    fn fields_hold_spaces_when_what_follows_says_where_they_end() {
        let f = LineFormat::compile("<Date> <Time> <Program> - <Content>").unwrap();
        let fields = f
            .split("2024-05-01 10:00:00 chrome.exe *64 - proxy.example.org:5070 open through proxy")
            .unwrap();
        assert_eq!(fields[2], Some("chrome.exe *64"));
        assert_eq!(fields[3], Some("proxy.example.org:5070 open through proxy"));
    }

    #[test]
    fn unknown_preset_is_a_clear_error() {
        let err = LineFormat::from_spec("nosuch").unwrap_err().to_string();
        assert!(err.contains("unknown format"), "{err}");
        assert!(err.contains("generator"), "{err}");
    }
}

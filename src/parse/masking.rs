//! Variable masking: replace the values in a message with named placeholders before template
//! mining, and keep the values as the event's parameters.
//!
//! Masking works on whitespace tokens rather than running a list of regexes over the whole
//! line: only tokens that contain a digit can be ids, numbers, addresses or sizes, so most
//! tokens cost one byte scan, and the classification of the rest is a few cheap checks.
//! `key=value` and `key:value` tokens keep their key, so `status=200` becomes `status=<NUM>`.

/// Placeholders, most specific first in [`classify`].
pub const IP: &str = "<IP>";
pub const UUID: &str = "<UUID>";
pub const HEX: &str = "<HEX>";
pub const NUM: &str = "<NUM>";
pub const ID: &str = "<*>";

pub const DATE: &str = "<DATE>";
pub const SIZE: &str = "<SIZE>";
pub const DURATION: &str = "<DURATION>";

const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: &[&str] = &["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const SIZE_UNITS: &[&str] = &[
    "B", "KB", "MB", "GB", "TB", "PB", "KiB", "MiB", "GiB", "TiB", "kB", "bytes",
];
const DURATION_UNITS: &[&str] = &["ns", "us", "µs", "ms", "s", "sec", "secs", "min", "h"];

/// The masked message (single-spaced tokens) and the masked-out values in order.
///
/// Besides single tokens, three multi-token shapes are values: a date written out in words
/// (`Sun Jul 10 03:55:15 2005` → `<DATE>`), a number followed by its unit (`32 KB` → `<SIZE>`,
/// `45 ms` → `<DURATION>`), and a run of values of one kind (`blk_1 blk_2 blk_3`, a list
/// whose length varies) → one placeholder, so the message keeps one shape.
pub fn mask(message: &str) -> (String, Vec<String>) {
    let (masked, json) = mask_to_json(message);
    let params = serde_json::from_str(&json).expect("masking writes a JSON array of strings");
    (masked, params)
}

/// [`mask`], with the values written straight into a JSON array of strings (what silver
/// stores), without a string allocation per value.
pub fn mask_to_json(message: &str) -> (String, String) {
    let (mut masked, mut json) = (String::new(), String::new());
    mask_to_json_into(message, &mut masked, &mut json);
    (masked, json)
}

/// [`mask_to_json`] writing the masked message into `masked` and the values into `json`
/// (both cleared first), so a caller masking many lines reuses two buffers and allocates
/// nothing per line.
pub fn mask_to_json_into(message: &str, masked: &mut String, json: &mut String) {
    json.clear();
    let mut params = JsonParams {
        out: std::mem::take(json),
        ..JsonParams::default()
    };
    masked.clear();
    mask_into(message, masked, &mut params);
    *json = params.finish();
}

/// Where masking puts the values it takes out of a message.
trait Values {
    fn push(&mut self, value: &str);
    /// Join the last two values with a space (a list continuing).
    fn merge_last_two(&mut self);
    /// Values pushed so far: a token holds a value when it changes this.
    fn pushed(&self) -> usize;
}

/// A JSON array under construction: `["a","b"`, closed by [`JsonParams::finish`].
#[derive(Default)]
struct JsonParams {
    out: String,
    /// Where the last and the one-before-last values start (at their `[` or `,`).
    last_start: usize,
    prev_start: usize,
    pushed: usize,
}

impl JsonParams {
    fn escape_into(out: &mut String, value: &str) {
        // Most values need no escaping: one copy instead of a push per character.
        if !value.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
            out.push_str(value);
            return;
        }
        for c in value.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    use std::fmt::Write;
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
    }

    fn finish(mut self) -> String {
        if self.out.is_empty() {
            self.out.push('[');
        }
        self.out.push(']');
        self.out
    }
}

impl Values for JsonParams {
    fn push(&mut self, value: &str) {
        self.pushed += 1;
        self.prev_start = self.last_start;
        self.last_start = self.out.len();
        self.out.push(if self.out.is_empty() { '[' } else { ',' });
        self.out.push('"');
        Self::escape_into(&mut self.out, value);
        self.out.push('"');
    }
    fn merge_last_two(&mut self) {
        if self.last_start == 0 {
            return;
        }
        // `…,"prev","last"` → `…,"prev last"`
        let last = self.out[self.last_start + 2..self.out.len() - 1].to_string();
        self.out.truncate(self.last_start - 1);
        self.out.push(' ');
        self.out.push_str(&last);
        self.out.push('"');
        self.last_start = self.prev_start;
    }
    fn pushed(&self) -> usize {
        self.pushed
    }
}

fn mask_into(message: &str, masked: &mut String, params: &mut impl Values) {
    let tokens: smallvec::SmallVec<[&str; 48]> = message.split_ascii_whitespace().collect();
    // Where the previous masked token starts, if it holds a value.
    let mut last_value: Option<usize> = None;
    let mut i = 0;
    while i < tokens.len() {
        let start_len = masked.len();
        if !masked.is_empty() {
            masked.push(' ');
        }
        let token_start = masked.len();
        let pushed = params.pushed();
        let consumed = if let Some(n) = date_run(&tokens[i..]) {
            masked.push_str(DATE);
            params.push(&tokens[i..i + n].join(" "));
            n
        } else if let Some((placeholder, open, close)) = unit_of(&tokens[i..]) {
            masked.push_str(open);
            masked.push_str(placeholder);
            masked.push_str(close);
            let value = format!("{} {}", tokens[i], tokens[i + 1]);
            params.push(&value[open.len()..value.len() - close.len()]);
            2
        } else {
            mask_token(tokens[i], masked, params);
            1
        };
        // A value directly repeating the previous token's shape extends it (a list):
        // `<NUM> <NUM>`, `blk_<NUM> blk_<NUM>`. A token holds a value when it added one.
        let holds_value = params.pushed() != pushed;
        let this = &masked[token_start..];
        if holds_value && last_value.is_some_and(|prev| masked[prev..start_len] == *this) {
            masked.truncate(start_len);
            params.merge_last_two();
        } else {
            last_value = holds_value.then_some(token_start);
        }
        i += consumed;
    }
}

fn date_run(tokens: &[&str]) -> Option<usize> {
    // Weekday and month names are three-letter capitalised words: most tokens fail here.
    let first = tokens.first()?.as_bytes();
    if first.len() < 3 || !first[0].is_ascii_uppercase() {
        return None;
    }
    let mut i = 0;
    if tokens
        .first()
        .is_some_and(|t| WEEKDAYS.contains(&t.trim_end_matches(',')))
    {
        i += 1;
    }
    let month = tokens.get(i)?;
    if !MONTHS.contains(month) {
        return None;
    }
    let day = tokens.get(i + 1)?.trim_end_matches(',');
    if day.is_empty() || day.len() > 2 || !day.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    i += 2;
    if tokens.get(i).is_some_and(|t| is_clock(t)) {
        i += 1;
    }
    if tokens
        .get(i)
        .is_some_and(|t| t.len() == 4 && t.bytes().all(|b| b.is_ascii_digit()))
    {
        i += 1;
    }
    Some(i)
}

/// `hh:mm[:ss[.fff]]`
fn is_clock(token: &str) -> bool {
    let digits = |p: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
    };
    let mut parts = token.split(':');
    let (Some(h), Some(m)) = (parts.next(), parts.next()) else {
        return false;
    };
    let secs = parts.next();
    digits(h, 1..=2)
        && digits(m, 1..=2)
        && parts.next().is_none()
        && secs.is_none_or(|s| digits(s.split(['.', ',']).next().unwrap_or_default(), 2..=2))
}

/// `<SIZE>` or `<DURATION>` when `tokens` starts with a plain number followed by a unit word,
/// with the punctuation around the pair (`(12 KB),` → `(`, `),`) to keep.
fn unit_of<'t>(tokens: &[&'t str]) -> Option<(&'static str, &'t str, &'t str)> {
    let [number, unit_token, ..] = tokens else {
        return None;
    };
    if !number
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'(' || b == b'[')
    {
        return None;
    }
    let n = number.trim_start_matches(['(', '[']);
    let open = &number[..number.len() - n.len()];
    if n.is_empty()
        || !n.bytes().any(|b| b.is_ascii_digit())
        || !n.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return None;
    }
    let unit = unit_token.trim_end_matches([',', ')', ']', ';', '.']);
    let close = &unit_token[unit.len()..];
    let placeholder = if SIZE_UNITS.contains(&unit) {
        SIZE
    } else if DURATION_UNITS.contains(&unit) {
        DURATION
    } else {
        return None;
    };
    Some((placeholder, open, close))
}

fn mask_token(token: &str, out: &mut String, params: &mut impl Values) {
    if !token.bytes().any(|b| b.is_ascii_digit()) || is_named_unit(token) {
        out.push_str(token);
        return;
    }
    // Keep a key: `key=value`, `key:value` (but not `10.0.0.1:50010`, which is an address),
    // and a name called with a value, `deny(1)`, `com.apple.WebKit(9854)`.
    if let Some(pos) = token
        .bytes()
        .position(|b| b == b'=')
        .or_else(|| {
            token.bytes().position(|b| b == b':').filter(|&p| {
                p > 0
                    && token[..p]
                        .bytes()
                        .all(|b| b.is_ascii_alphabetic() || b == b'_')
            })
        })
        .or_else(|| {
            token.bytes().position(|b| b == b'(').filter(|&p| {
                p > 0
                    && token[..p].bytes().any(|b| b.is_ascii_alphabetic())
                    && !token[..p].bytes().any(|b| b.is_ascii_digit())
            })
        })
    {
        let (key, value) = token.split_at(pos + 1);
        out.push_str(key);
        if !value.is_empty() {
            mask_token(value, out, params);
        }
        return;
    }
    // Strip punctuation that wraps values: (x), [x], "x", trailing , ; .
    // Byte by byte: the wrappers are ASCII, so the first byte that is not one starts a
    // character and the last that is not one ends a character (a character's index plus one,
    // as `rfind` gives, fell inside `12é` and panicked).
    let start = token
        .bytes()
        .position(|b| !matches!(b, b'(' | b'[' | b'{' | b'"' | b'\'' | b'<'))
        .unwrap_or(token.len());
    let end = token
        .bytes()
        .rposition(|b| {
            !matches!(
                b,
                b')' | b']' | b'}' | b'"' | b'\'' | b',' | b';' | b'.' | b':' | b'>'
            )
        })
        .map(|i| i + 1)
        .unwrap_or(start);
    if start >= end {
        out.push_str(token);
        return;
    }
    let core = &token[start..end];
    out.push_str(&token[..start]);
    // A name with a numbered suffix (`…_block_invoke.434`, `worker-12`) keeps its name in
    // the template: the name says which event it is, the number is the value. The parameter
    // stays whole (`blk_-42`), since that is what an operator searches for.
    let (name, value) = split_numbered_name(core);
    out.push_str(name);
    out.push_str(classify(value));
    params.push(core);
    out.push_str(&token[end..]);
}

/// `name.123` / `name_123` / `name-123` / `name#123` → (`name.`, `123`) when the name has at
/// least three characters, a letter and no digit; anything else → (``, whole token).
fn split_numbered_name(core: &str) -> (&str, &str) {
    let Some(sep) = core.rfind(['.', '_', '-', '#']) else {
        return ("", core);
    };
    // `blk_-42`: the `-` is the number's sign, not the separator.
    let sep = match core[..sep].bytes().last() {
        Some(b'_' | b'.' | b'#') if core.as_bytes()[sep] == b'-' => sep - 1,
        _ => sep,
    };
    let (name, number) = (&core[..sep], &core[sep + 1..]);
    let number = number.strip_prefix('-').unwrap_or(number);
    // A path or URL ending in a number is a value as a whole.
    let is_name = name.len() >= 3
        && name.bytes().any(|b| b.is_ascii_alphabetic())
        && !name.bytes().any(|b| b.is_ascii_digit() || b == b'/');
    if is_name && !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
        core.split_at(sep + 1)
    } else {
        ("", core)
    }
}

/// A name with a one-digit suffix — `eth0`, `wl0`, `awdl0`, `IPV4`, `sda1` — names one of a
/// few devices or protocols rather than carrying a value. Masking leaves it alone and the
/// template miner decides from how many values the position takes (`parse::refine`).
fn is_named_unit(token: &str) -> bool {
    let core = token.trim_end_matches([',', ';', ':', '.', ')', ']']);
    let b = core.as_bytes();
    b.len() >= 3
        && b[b.len() - 1].is_ascii_digit()
        && b[..b.len() - 1].iter().all(|c| c.is_ascii_alphabetic())
}

/// The placeholder for a token core that contains a digit.
pub fn classify(core: &str) -> &'static str {
    if is_ip(core) {
        IP
    } else if is_uuid(core) {
        UUID
    } else if is_number(core) {
        NUM
    } else if is_hex(core) {
        HEX
    } else {
        ID
    }
}

fn is_number(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    // Allow a short unit suffix: 45ms, 12KB, 3.5s, 80%.
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(s.len());
    if digits_end == 0 || !s[..digits_end].bytes().any(|b| b.is_ascii_digit()) {
        return false;
    }
    let unit = &s[digits_end..];
    unit.len() <= 3 && unit.chars().all(|c| c.is_ascii_alphabetic() || c == '%')
}

fn is_ip(s: &str) -> bool {
    // Optional leading `/` (Java's InetSocketAddress), IPv4 with an optional :port: four
    // groups of one to three digits, then `:` and digits or nothing. Every token with a digit
    // is tried here first, so one pass over its bytes and no allocation.
    let b = s.strip_prefix('/').unwrap_or(s).as_bytes();
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut at = 0;
    for group in 0..4 {
        if group > 0 {
            if b.get(at) != Some(&b'.') {
                return false;
            }
            at += 1;
        }
        let n = digits(at);
        if !(1..=3).contains(&n) {
            return false;
        }
        at += n;
    }
    match b.get(at) {
        None => true,
        Some(b':') => {
            let port = digits(at + 1);
            port > 0 && at + 1 + port == b.len()
        }
        Some(_) => false,
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn is_hex(s: &str) -> bool {
    let body = s.strip_prefix("0x").unwrap_or(s);
    (s.starts_with("0x") && !body.is_empty() || body.len() >= 8)
        && body.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_four_groups_of_digits_with_an_optional_port() {
        for ip in [
            "10.250.19.102",
            "/10.250.19.102:54106",
            "0.0.0.0",
            "255.255.255.255:1",
        ] {
            assert!(is_ip(ip), "{ip}");
        }
        for not in [
            "",
            "/",
            "10.250.19",
            "10.250.19.102.7",
            "10.250.19.1024",
            "10..19.102",
            "10.250.19.102:",
            "10.250.19.102:80:81",
            "10.250.19.102:8x",
            "10.250.19.102/24",
            "a.b.c.d",
            "1.2.3.4é",
            "//1.2.3.4",
        ] {
            assert!(!is_ip(not), "{not}");
        }
    }

    /// A value ending in a character of more than one byte is masked whole; cutting it at a
    /// character's index plus one panicked.
    #[test]
    fn values_ending_in_wide_characters_are_masked_whole() {
        let (m, p) = mask("took 12é then 7ms (3€), x=5π.");
        assert_eq!(m, format!("took {ID} then {NUM} ({ID}), x={ID}."));
        assert_eq!(p, vec!["12é", "7ms", "3€", "5π"]);
    }

    #[test]
    fn masks_values_and_keeps_them() {
        let (m, p) = mask(
            "Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106 dest: /10.250.19.102:50010",
        );
        assert_eq!(m, "Receiving block blk_<NUM> src: <IP> dest: <IP>");
        assert_eq!(
            p,
            vec![
                "blk_-1608999687919862906",
                "/10.250.19.102:54106",
                "/10.250.19.102:50010"
            ]
        );

        let (m, p) = mask("request completed status=200 duration_ms=153 (took 3.5s)");
        assert_eq!(
            m,
            "request completed status=<NUM> duration_ms=<NUM> (took <NUM>)"
        );
        assert_eq!(p, vec!["200", "153", "3.5s"]);

        let (m, _) = mask("txn 0x7f3a charged to 123e4567-e89b-12d3-a456-426614174000 ok");
        assert_eq!(m, "txn <HEX> charged to <UUID> ok");
        let (m, p) = mask("stored (estimated size 12.5 KB, free 3 MB) in 45 ms");
        assert_eq!(
            m,
            "stored (estimated size <SIZE>, free <SIZE>) in <DURATION>"
        );
        assert_eq!(p, vec!["12.5 KB", "3 MB", "45 ms"]);
        let (m, p) = mask("connection at Sun Jul 10 03:55:15 2005 ok");
        assert_eq!(
            (m.as_str(), p[0].as_str()),
            ("connection at <DATE> ok", "Sun Jul 10 03:55:15 2005")
        );
        let (m, p) = mask("ask 10.0.0.1:50010 to delete blk_1 blk_22 blk_3");
        assert_eq!(m, "ask <IP> to delete blk_<NUM>");
        assert_eq!(p, vec!["10.0.0.1:50010", "blk_1 blk_22 blk_3"]);
        for message in [
            "ask 10.0.0.1:50010 to delete blk_1 blk_22 blk_3 and \"q\" 7 at Sun Jul 10 03:55:15 2005",
            "size 12 KB 13 KB then 1 2 3",
            "",
        ] {
            let (m1, p) = mask(message);
            let (m2, json) = mask_to_json(message);
            assert_eq!(m1, m2);
            assert_eq!(json, serde_json::to_string(&p).unwrap(), "{message}");
        }
        // Names around values stay: a call's argument, a numbered suffix; paths are values.
        let (m, p) = mask("Sandbox: com.apple.WebKit(9854) deny(1) file-read-data");
        assert_eq!(
            m,
            "Sandbox: com.apple.WebKit(<NUM>) deny(<NUM>) file-read-data"
        );
        assert_eq!(p, vec!["9854", "1"]);
        let (m, p) = mask("imp 1977 __tls_callback_write_block_invoke.434 error 22");
        assert_eq!(
            m,
            "imp <NUM> __tls_callback_write_block_invoke.<NUM> error <NUM>"
        );
        assert_eq!(p[1], "__tls_callback_write_block_invoke.434");
        let (m, _) = mask("file /mnt/data/current/blk_42 on x86_64 and v2-3");
        assert_eq!(m, "file <*> on <*> and <*>");
        let (m, p) = mask("no digits here");
        assert_eq!((m.as_str(), p.len()), ("no digits here", 0));
    }
}

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

/// The masked message (single-spaced tokens) and the masked-out values in order.
pub fn mask(message: &str) -> (String, Vec<String>) {
    let mut masked = String::with_capacity(message.len());
    let mut params = Vec::new();
    for token in message.split_ascii_whitespace() {
        if !masked.is_empty() {
            masked.push(' ');
        }
        mask_token(token, &mut masked, &mut params);
    }
    (masked, params)
}

fn mask_token(token: &str, out: &mut String, params: &mut Vec<String>) {
    if !token.bytes().any(|b| b.is_ascii_digit()) {
        out.push_str(token);
        return;
    }
    // Keep a key: `key=value`, `key:value` (but not `10.0.0.1:50010`, which is an address).
    if let Some(pos) = token.find(['=']).or_else(|| {
        token.find(':').filter(|&p| {
            p > 0
                && token[..p]
                    .bytes()
                    .all(|b| b.is_ascii_alphabetic() || b == b'_')
        })
    }) {
        let (key, value) = token.split_at(pos + 1);
        out.push_str(key);
        if !value.is_empty() {
            mask_token(value, out, params);
        }
        return;
    }
    // Strip punctuation that wraps values: (x), [x], "x", trailing , ; .
    let start = token
        .find(|c: char| !matches!(c, '(' | '[' | '{' | '"' | '\'' | '<'))
        .unwrap_or(token.len());
    let end = token
        .rfind(|c: char| {
            !matches!(
                c,
                ')' | ']' | '}' | '"' | '\'' | ',' | ';' | '.' | ':' | '>'
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
    out.push_str(classify(core));
    params.push(core.to_string());
    out.push_str(&token[end..]);
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
    // Optional leading `/` (Java's InetSocketAddress), IPv4 with an optional :port.
    let s = s.strip_prefix('/').unwrap_or(s);
    let host = match s.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !port.is_empty() => h,
        _ => s,
    };
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
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
    fn masks_values_and_keeps_them() {
        let (m, p) = mask(
            "Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106 dest: /10.250.19.102:50010",
        );
        assert_eq!(m, "Receiving block <*> src: <IP> dest: <IP>");
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
        let (m, p) = mask("no digits here");
        assert_eq!((m.as_str(), p.len()), ("no digits here", 0));
    }
}

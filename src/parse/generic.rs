//! The generic layout: what `format = "auto"` falls back to when no preset reads a log.
//!
//! Most logs nobody wrote a preset for are "a timestamp, maybe a level, maybe a component,
//! then text" (`/var/log/dpkg.log`: `2025-06-24 14:36:25 status installed libc6:amd64 2.36-9`).
//! The layout is read off the sample by position: how many leading whitespace-separated
//! tokens form a timestamp the timestamp module reads (any of its shapes, bracketed or not),
//! whether the next token is a level (`INFO`, `[warn]`, `E:`) on most lines, and whether the
//! one after is a component (`sshd[42]:`, `[main]`) on most lines. The result is an ordinary
//! format string, so it parses exactly as if it had been configured, and the log says which.

use super::known_level;
use super::timestamp::{TimeContext, TimestampParser};

/// Time-field names for a timestamp of 1..=5 tokens, joined in this order when parsed.
const TIME_NAMES: [&[&str]; 5] = [
    &["Timestamp"],
    &["Date", "Time"],
    &["Month", "Date", "Time"],
    &["Day", "Month", "Date", "Time"],
    &["Day", "Month", "Date", "Time", "Year"],
];

/// A position is a level or a component when it is one on at least this share of the lines
/// whose timestamp has the chosen shape.
const MAJORITY: f64 = 0.5;

/// How a level or component token is written around its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Wrap {
    Bare,
    Bracketed,
    Colon,
}

impl Wrap {
    fn of(token: &str) -> (Wrap, &str) {
        if let Some(inner) = token.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            (Wrap::Bracketed, inner)
        } else if let Some(inner) = token.strip_suffix(':') {
            (Wrap::Colon, inner)
        } else {
            (Wrap::Bare, token)
        }
    }

    fn around(self, field: &str) -> String {
        match self {
            Wrap::Bare => format!("<{field}>"),
            Wrap::Bracketed => format!("\\[<{field}>\\]"),
            Wrap::Colon => format!("<{field}>:"),
        }
    }
}

/// Where a line's timestamp is: after `offset` leading tokens (0, or 1 for a program name
/// written first), `len` tokens long, in brackets or not, with a colon after it or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TimeSpot {
    offset: usize,
    len: usize,
    bracketed: bool,
    colon: bool,
}

/// The format string of the generic layout that fits `sample`, or `None` when too few lines
/// start with a timestamp to call it a layout (a fifth of the non-empty lines: the rest may
/// be continuation lines).
pub fn infer_format(sample: &[&str], time: TimeContext) -> Option<String> {
    let lines: Vec<Vec<&str>> = sample
        .iter()
        .map(|l| l.split_whitespace().take(9).collect::<Vec<_>>())
        .filter(|t| !t.is_empty())
        .collect();
    let mut spots: Vec<(TimeSpot, Vec<usize>)> = Vec::new();
    let mut ts = TimestampParser::new(time);
    for (i, tokens) in lines.iter().enumerate() {
        if let Some(spot) = time_spot(tokens, &mut ts) {
            match spots.iter_mut().find(|(s, _)| *s == spot) {
                Some((_, at)) => at.push(i),
                None => spots.push((spot, vec![i])),
            }
        }
    }
    // The most common spot; ties to the earlier, then the longer timestamp.
    let (spot, at) = spots
        .into_iter()
        .max_by_key(|(s, at)| (at.len(), std::cmp::Reverse(s.offset), s.len))?;
    if at.len() * 5 < lines.len() {
        return None;
    }
    let mut format = String::new();
    if spot.offset == 1 {
        // A program name first (`update-alternatives 2025-06-24 14:36:53: …`), or a key
        // (`Start-Date: 2025-06-24  14:36:25`).
        let colons = at.iter().filter(|&&i| lines[i][0].ends_with(':')).count();
        format.push_str(if colons * 2 > at.len() {
            "<Component>: "
        } else {
            "<Component> "
        });
    }
    let names = TIME_NAMES[spot.len - 1]
        .iter()
        .map(|f| format!("<{f}>"))
        .collect::<Vec<_>>()
        .join(" ");
    if spot.bracketed {
        format.push_str(&format!("\\[{names}\\]"));
    } else {
        format.push_str(&names);
    }
    if spot.colon {
        format.push(':');
    }
    let mut next = spot.offset + spot.len;
    let majority = |count: usize| count as f64 >= MAJORITY * at.len() as f64;
    let level = most_common_wrap(&lines, &at, next, |core| known_level(core).is_some());
    if let Some((wrap, count)) = level
        && majority(count)
    {
        format.push(' ');
        format.push_str(&wrap.around("Level"));
        next += 1;
    }
    if spot.offset == 0 {
        let component = most_common_wrap(&lines, &at, next, |core| {
            !core.is_empty() && core.chars().any(|c| c.is_alphabetic())
        })
        .filter(|(wrap, _)| *wrap != Wrap::Bare);
        if let Some((wrap, count)) = component
            && majority(count)
        {
            format.push(' ');
            format.push_str(&wrap.around("Component"));
            next += 1;
        }
    }
    // Records whose first line is only a time (apt's `End-Date: …`) keep their text on the
    // lines after it: the text is optional then.
    if at.iter().any(|&i| lines[i].len() <= next) {
        format.push_str("( <Content>)?");
    } else {
        format.push_str(" <Content>");
    }
    Some(format)
}

/// Where the timestamp of a line is (the longest reading at the first offset that has one).
fn time_spot(tokens: &[&str], ts: &mut TimestampParser) -> Option<TimeSpot> {
    for offset in 0..=1 {
        let rest = tokens.get(offset..).unwrap_or_default();
        if rest.is_empty() {
            break;
        }
        let bracketed = rest[0].starts_with('[');
        for len in (1..=TIME_NAMES.len().min(rest.len())).rev() {
            let mut parts: Vec<&str> = rest[..len].to_vec();
            let mut colon = false;
            if bracketed {
                let Some(last) = parts[len - 1].strip_suffix(']') else {
                    continue;
                };
                parts[len - 1] = last;
                parts[0] = &parts[0][1..];
            } else if let Some(last) = parts[len - 1].strip_suffix(':') {
                parts[len - 1] = last;
                colon = true;
            }
            if ts.parse(&parts.join(" ")).is_some() {
                return Some(TimeSpot {
                    offset,
                    len,
                    bracketed,
                    colon,
                });
            }
        }
    }
    None
}

/// The wrapping under which the token at `position` of the lines `at` most often passes
/// `is_one`, with how many lines it passes on.
fn most_common_wrap(
    lines: &[Vec<&str>],
    at: &[usize],
    position: usize,
    is_one: impl Fn(&str) -> bool,
) -> Option<(Wrap, usize)> {
    let mut counts: Vec<(Wrap, usize)> = Vec::new();
    for &i in at {
        let Some(token) = lines[i].get(position) else {
            continue;
        };
        // The token must leave text after it: a message of one word is not a level.
        if lines[i].len() <= position + 1 {
            continue;
        }
        let (wrap, core) = Wrap::of(token);
        if !is_one(core) {
            continue;
        }
        match counts.iter_mut().find(|(w, _)| *w == wrap) {
            Some((_, c)) => *c += 1,
            None => counts.push((wrap, 1)),
        }
    }
    counts.into_iter().max_by_key(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn infer(lines: &[&str]) -> Option<String> {
        let time = TimeContext::utc(NaiveDate::from_ymd_opt(2025, 6, 24).unwrap());
        infer_format(lines, time)
    }

    #[test]
    fn reads_the_layout_off_the_lines() {
        let dpkg = [
            "2025-06-24 14:36:25 startup archives unpack",
            "2025-06-24 14:36:25 status installed libc6:amd64 2.36-9",
            "2025-06-24 14:36:26 configure libc6:amd64 2.36-9 <none>",
        ];
        assert_eq!(infer(&dpkg).as_deref(), Some("<Date> <Time> <Content>"));

        let leveled = [
            "2025-06-24T14:36:25.123Z INFO api: request served in 3 ms",
            "2025-06-24T14:36:26.001Z WARN db: slow query took 900 ms",
            "2025-06-24T14:36:27.420Z INFO api: request served in 4 ms",
        ];
        assert_eq!(
            infer(&leveled).as_deref(),
            Some("<Timestamp> <Level> <Component>: <Content>")
        );

        let bracketed = [
            "[2025-06-24 14:36:25] [error] worker 3 died",
            "[2025-06-24 14:36:26] [notice] worker 4 started",
        ];
        assert_eq!(
            infer(&bracketed).as_deref(),
            Some("\\[<Date> <Time>\\] \\[<Level>\\] <Content>")
        );

        let epoch_us = [
            "1750775785123456 kernel: usb 1-1: new device",
            "1750775786123456 sshd[42]: Accepted publickey for root",
        ];
        assert_eq!(
            infer(&epoch_us).as_deref(),
            Some("<Timestamp> <Component>: <Content>")
        );

        let alternatives = [
            "update-alternatives 2025-06-24 14:36:53: run with --quiet --install /usr/bin/pager",
            "update-alternatives 2025-06-24 14:36:53: link group pager updated",
        ];
        assert_eq!(
            infer(&alternatives).as_deref(),
            Some("<Component> <Date> <Time>: <Content>")
        );

        let apt_history = [
            "Start-Date: 2025-06-24  14:36:25",
            "Commandline: apt-get -qqy upgrade",
            "Upgrade: libc6:amd64 (2.36-9, 2.36-10)",
            "End-Date: 2025-06-24  14:36:27",
        ];
        assert_eq!(
            infer(&apt_history).as_deref(),
            Some("<Component>: <Date> <Time>( <Content>)?")
        );

        assert_eq!(infer(&["no timestamp here", "nor here"]), None);
    }
}

//! Events that span lines: stack traces and wrapped text joined onto the event before them,
//! and the parts of a line a container runtime split (CRI's `P` tag).

use super::{Event, Parsed};

/// Why a continuation line with no event before it is quarantined.
pub const NO_EVENT_BEFORE: &str = "continuation line with no event before it in the batch";

/// Append each continuation (in line order, its line already marked [`Parsed::Joined`]) to
/// the message of the last event before it, with its glue, and count it in that event's
/// `lines`. Only the lines up to the last continuation
/// are looked at, once each. Returns the continuation lines with no event before them (still
/// marked joined: the caller decides, as a window of a larger batch may have one earlier).
pub(super) fn join_continuations<'a>(
    parsed: &mut [Parsed<'a>],
    continuations: &[Continuation<'a>],
) -> Vec<usize> {
    let mut orphans = Vec::new();
    let mut last_event: Option<usize> = None;
    let mut scanned = 0;
    for c in continuations {
        let i = c.line;
        for (k, p) in parsed.iter().enumerate().take(i).skip(scanned) {
            if matches!(p, Parsed::Event(_)) {
                last_event = Some(k);
            }
        }
        scanned = i + 1;
        match last_event {
            Some(e) => {
                let Parsed::Event(event) = &mut parsed[e] else {
                    unreachable!("last_event points at an event")
                };
                join_line(event, c);
            }
            None => orphans.push(i),
        }
    }
    orphans
}

/// Append continuation `line` to `event`'s message, as it was written.
pub fn join_line(event: &mut Event<'_>, line: &Continuation<'_>) {
    let message = event.header.message.to_mut();
    message.push_str(line.glue);
    message.push_str(line.text.strip_suffix('\r').unwrap_or(line.text));
    event.lines += 1;
}

/// A line that continues the event before it: its index, the text it adds, and what goes
/// between — a newline for a stack trace's lines, nothing for the parts of a split line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Continuation<'a> {
    pub line: usize,
    pub text: &'a str,
    pub glue: &'static str,
}

/// Whether a line that is not an event header continues the event before it: indented
/// (stack frames, wrapped text), or the lines Java and Python put between frames.
pub fn is_continuation(line: &str) -> bool {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.trim().is_empty() {
        return false;
    }
    if line.starts_with([' ', '\t']) {
        return true;
    }
    const STARTS: &[&str] = &[
        "Caused by:",
        "Traceback (most recent call last)",
        "During handling",
    ];
    if STARTS.iter().any(|s| line.starts_with(s)) {
        return true;
    }
    // `java.lang.IllegalStateException: …`, `ValueError: …`: an exception's own line.
    let head = line.split([':', ' ']).next().unwrap_or_default();
    !head.is_empty()
        && head
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'$'))
        && ["Exception", "Error", "Throwable"]
            .iter()
            .any(|s| head.ends_with(s))
}

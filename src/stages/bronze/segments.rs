//! What bronze has ingested of each file, and where a file picks up.
//!
//! Logs grow between runs (hourly cron on today's file), are rotated (`app.log` renamed to
//! `app.log.1`, later compressed to `app.log.1.gz`, a new `app.log` started) and are sometimes
//! truncated or rewritten. Ingesting whole files by checksum counted every line of a growing
//! file again on each run. So bronze ingests *segments*: each bronze part holds the lines of
//! bytes `start..end` of one file's (decompressed) stream, and its Parquet footer records
//! that [`Segment`] with the SHA-256 of the stream's first `end` bytes. A file is matched by
//! content, not by name: if its first `end` bytes hash to a segment's checksum, those bytes
//! are in bronze already, whatever the file is called now or whether it is compressed.
//!
//! - Same content up to its end: nothing new (a re-run, a re-delivery, a rotated copy).
//! - A segment is a proper prefix of it: the file grew; ingest from that segment's end, line
//!   numbers continuing.
//! - No segment matches, but one came from the same path: the file was truncated or rewritten;
//!   it is ingested from its start, with a warning.
//! - Otherwise: a new file, ingested from its start.
//!
//! A plain file's last line without a newline may still be being written: while the file
//! changed recently (`[lake] unfinished_line_wait_seconds`) a segment ends after the last
//! newline and the unfinished line waits for the next run. A compressed file, or one that has
//! not changed for that long, is finished, and its last line is taken whole. Parts written before segments existed carry no
//! footer record; their names (`part-<checksum prefix>`) still stop the same file being
//! ingested twice.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::writer::{hex, open_lines};

/// Key of the segment record in a bronze part's Parquet footer.
pub const SEGMENT_KEY: &str = "loglake.bronze.segment";

/// Bytes of a file's start used to find candidate segments before hashing whole prefixes.
const HEAD: usize = 4096;

/// One ingested extent of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The file's path when this segment was ingested.
    pub file: String,
    /// Byte offsets in the decompressed stream, `start..end`.
    pub start: u64,
    pub end: u64,
    /// Lines before the segment, and through its end.
    pub start_line: u64,
    pub end_line: u64,
    /// SHA-256 of the stream's first `end` bytes (its first 32 hex digits name the part).
    pub prefix_sha: String,
    /// SHA-256 of the stream's first `min(end, 4096)` bytes.
    pub head_sha: String,
}

/// What bronze holds of a source: the segments, and the checksums that name older parts.
#[derive(Default)]
pub struct Ingested {
    pub segments: Vec<Segment>,
    pub part_names: HashSet<String>,
}

/// What to do with one input file.
pub enum Plan {
    /// Everything it holds is in bronze already (`why` says how it was recognised).
    Skip { why: String },
    /// Ingest `segment`; `rewritten` when a file of that path was ingested before with other
    /// content; `until_error` when the file cannot be read to its end (see the writer).
    Ingest {
        segment: Segment,
        rewritten: bool,
        until_error: bool,
        /// A plain file's unfinished last line was left for a later run.
        held_back: bool,
    },
}

/// One pass over `path`'s stream: its length, its last newline, the checksums of its head,
/// of every candidate prefix, of the part up to its last newline, and of the whole.
///
/// A plain file changed less than `wait` ago may still be being written: its unfinished last
/// line is left out of the segment.
pub fn plan(
    path: &Path,
    name: &str,
    ingested: &Ingested,
    wait: std::time::Duration,
) -> Result<Plan> {
    let file = name.to_string();
    let (mut stream, compressed) = open_lines(path)?;
    let settled = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age >= wait);
    let mut head = Vec::with_capacity(HEAD);
    (&mut stream)
        .take(HEAD as u64)
        .read_to_end(&mut head)
        .with_context(|| format!("reading {}", path.display()))?;
    // Candidates: segments whose head matches this file's.
    let head_sha = |len: usize| hex(&Sha256::digest(&head[..len.min(head.len())]));
    let mut candidates: Vec<&Segment> = ingested
        .segments
        .iter()
        .filter(|s| {
            (s.end as usize).min(HEAD) <= head.len()
                && s.head_sha == head_sha(s.end.min(HEAD as u64) as usize)
        })
        .collect();
    candidates.sort_by_key(|s| s.end);
    candidates.dedup_by_key(|s| (s.end, s.prefix_sha.clone()));

    let mut probe = Probe::new(candidates);
    probe.feed(&head);
    let mut read_error = false;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => probe.feed(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => {
                read_error = true;
                break;
            }
        }
    }
    let Probe {
        matched,
        hasher,
        at,
        lines,
        last_newline,
        lines_at_newline,
        hash_at_newline,
        ..
    } = probe;
    let whole = hex(&hasher.clone().finalize());
    if ingested.part_names.contains(&whole[..32]) {
        return Ok(Plan::Skip {
            why: "its content is in bronze already (same checksum)".into(),
        });
    }
    // Where this run's segment ends: the whole stream when it is complete (compressed, or
    // cut short by a read error), else after the last newline.
    let (end, end_line, prefix_sha) = if compressed || settled || read_error || last_newline == at {
        let trailing = u64::from(at > last_newline);
        (at, lines + trailing, whole)
    } else {
        (
            last_newline,
            lines_at_newline,
            hex(&hash_at_newline.finalize()),
        )
    };
    let held_back = end < at && !read_error;
    let (start, start_line) = match matched {
        Some(m) if m.end >= end => {
            return Ok(Plan::Skip {
                why: if held_back {
                    "nothing new but an unfinished last line, left for a later run".into()
                } else {
                    format!("already ingested up to byte {} (as {})", m.end, m.file)
                },
            });
        }
        Some(m) => (m.end, m.end_line),
        None => (0, 0),
    };
    let rewritten =
        matched.is_none() && ingested.segments.iter().any(|s| s.file == file) && start == 0;
    Ok(Plan::Ingest {
        segment: Segment {
            file,
            start,
            end,
            start_line,
            end_line,
            prefix_sha,
            head_sha: head_sha(end.min(HEAD as u64) as usize),
        },
        rewritten,
        until_error: read_error,
        held_back,
    })
}

/// The running state of [`plan`]'s pass over a stream.
struct Probe<'s> {
    /// Segments whose head matches, by end; `next` is the first not yet checked.
    candidates: Vec<&'s Segment>,
    next: usize,
    /// The longest candidate whose checksum matches the stream's prefix.
    matched: Option<&'s Segment>,
    hasher: Sha256,
    at: u64,
    lines: u64,
    /// After the last newline so far: its offset, the lines up to it, the checksum there.
    last_newline: u64,
    lines_at_newline: u64,
    hash_at_newline: Sha256,
}

impl<'s> Probe<'s> {
    fn new(candidates: Vec<&'s Segment>) -> Self {
        Self {
            candidates,
            next: 0,
            matched: None,
            hasher: Sha256::new(),
            at: 0,
            lines: 0,
            last_newline: 0,
            lines_at_newline: 0,
            hash_at_newline: Sha256::new(),
        }
    }

    /// The stream's next bytes. Hashing stops at each candidate's end, where the prefix's
    /// checksum is compared with the candidate's.
    fn feed(&mut self, mut rest: &[u8]) {
        while !rest.is_empty() {
            let stop = self
                .candidates
                .get(self.next)
                .map(|c| c.end.saturating_sub(self.at) as usize)
                .filter(|&k| k <= rest.len())
                .unwrap_or(rest.len());
            let (piece, after) = rest.split_at(stop);
            if let Some(i) = memchr_last(piece) {
                self.hasher.update(&piece[..=i]);
                self.lines += count_newlines(&piece[..=i]);
                self.last_newline = self.at + i as u64 + 1;
                self.lines_at_newline = self.lines;
                self.hash_at_newline = self.hasher.clone();
                self.hasher.update(&piece[i + 1..]);
            } else {
                self.hasher.update(piece);
            }
            self.at += piece.len() as u64;
            rest = after;
            while let Some(&c) = self.candidates.get(self.next).filter(|c| c.end == self.at) {
                if hex(&self.hasher.clone().finalize()) == c.prefix_sha {
                    self.matched = Some(c);
                }
                self.next += 1;
            }
        }
    }
}

fn memchr_last(bytes: &[u8]) -> Option<usize> {
    bytes.iter().rposition(|&b| b == b'\n')
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

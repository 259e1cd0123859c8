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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::resume::{Resume, grown_in_place, resume_at, serialize_state};
use super::writer::{hex, open_lines, open_lines_at};

/// Key of the segment record in a bronze part's Parquet footer.
pub const SEGMENT_KEY: &str = "loglake.bronze.segment";
/// The footer key of a part that holds several small files' segments: a JSON array of them.
pub const SEGMENTS_KEY: &str = "loglake.bronze.segments";

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
    /// Where a plain file that grows in place picks up (see [`super::resume`]); absent for
    /// compressed streams, standard input and parts written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
}

/// What bronze holds of a source: the segments, and the checksums that name older parts.
///
/// Segments are indexed by their head — its length (`min(end, 4096)`) and checksum — so a
/// file's candidates are found by hashing its own head once per distinct length bronze holds,
/// not once per segment: with one segment per file that was a checksum per pair of files,
/// and ten thousand small files took a minute to plan.
#[derive(Default)]
pub struct Ingested {
    segments: Vec<Segment>,
    pub part_names: HashSet<String>,
    by_head: HashMap<(usize, String), Vec<usize>>,
    lengths: BTreeSet<usize>,
    files: HashSet<String>,
}

impl Ingested {
    pub fn add(&mut self, segment: Segment) {
        let length = (segment.end as usize).min(HEAD);
        self.by_head
            .entry((length, segment.head_sha.clone()))
            .or_default()
            .push(self.segments.len());
        self.lengths.insert(length);
        self.files.insert(segment.file.clone());
        self.segments.push(segment);
    }

    /// The segments whose head is the start of `head` (a file's first bytes, up to 4096).
    fn candidates(&self, head: &[u8]) -> Vec<&Segment> {
        let mut hasher = Sha256::new();
        let mut fed = 0;
        let mut found = Vec::new();
        // Each length's checksum from the one before: the head is hashed once, in steps.
        for &length in self.lengths.range(..=head.len()) {
            hasher.update(&head[fed..length]);
            fed = length;
            let key = (length, hex(&hasher.clone().finalize()));
            if let Some(at) = self.by_head.get(&key) {
                found.extend(at.iter().map(|&i| &self.segments[i]));
            }
        }
        found
    }
}

/// What to do with one input file.
pub enum Plan {
    /// Everything it holds is in bronze already (`why` says how it was recognised).
    Skip { why: String },
    /// It holds nothing: counted as empty, not as "already in bronze".
    Empty,
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
    let mut candidates = ingested.candidates(&head);
    candidates.sort_by_key(|s| s.end);
    candidates.dedup_by_key(|s| (s.end, s.prefix_sha.clone()));

    let pass = pass_over(path, name, (&mut *stream, &head), candidates, compressed)?;
    let Pass {
        checksums:
            Checksums {
                matched,
                hasher,
                hash_at_newline,
                ..
            },
        lines:
            Lines {
                at,
                lines,
                last_newline,
                lines_at_newline,
            },
        read_error,
        corrupt,
    } = pass;
    // What a compressed stream decoded before failing its check cannot be trusted: nothing of
    // it is ingested, and the caller quarantines the file with the reason.
    if let (true, Some(why)) = (compressed, corrupt) {
        anyhow::bail!(
            "{} is corrupt ({why}): its compressed stream fails its check, so none of it was ingested; replace it with a good copy",
            path.display()
        );
    }
    if at == 0 {
        return Ok(Plan::Empty);
    }
    let whole = hex(&hasher.clone().finalize());
    if ingested.part_names.contains(&whole[..32]) {
        return Ok(Plan::Skip {
            why: "its content is in bronze already (same checksum)".into(),
        });
    }
    // Where this run's segment ends: the whole stream when it is complete (compressed, or
    // cut short by a read error), else after the last newline.
    let (end, end_line, prefix_sha, state) =
        if compressed || settled || read_error || last_newline == at {
            let trailing = u64::from(at > last_newline);
            (at, lines + trailing, whole, serialize_state(&hasher))
        } else {
            let state = serialize_state(&hash_at_newline);
            (
                last_newline,
                lines_at_newline,
                hex(&hash_at_newline.finalize()),
                state,
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
    let rewritten = matched.is_none() && ingested.files.contains(&file) && start == 0;
    Ok(Plan::Ingest {
        segment: Segment {
            file,
            start,
            end,
            start_line,
            end_line,
            prefix_sha,
            head_sha: head_sha(end.min(HEAD as u64) as usize),
            resume: if compressed || read_error {
                None
            } else {
                resume_at(path, end, state)
            },
        },
        rewritten,
        until_error: read_error,
        held_back,
    })
}

/// The pass [`plan`] makes over `path`: a plain file that grew in place is picked up at its
/// last segment's end; any other is read (and hashed) from its start — `stream`, whose
/// first bytes, `head`, are read already — and checked against every candidate on the way.
fn pass_over<'s>(
    path: &Path,
    name: &str,
    (stream, head): (&mut dyn Read, &[u8]),
    candidates: Vec<&'s Segment>,
    compressed: bool,
) -> Result<Pass<'s>> {
    let resumed = if compressed {
        None
    } else {
        grown_in_place(path, name, &candidates)
    };
    Ok(match resumed {
        Some((segment, hasher)) => {
            let mut rest = open_lines_at(path, segment.end)?;
            read_through(
                &mut *rest,
                Checksums::resumed(segment, hasher),
                Lines::resumed(segment),
            )
        }
        None => {
            let mut checksums = Checksums::new(candidates);
            checksums.feed(head, memchr_last(head));
            let mut lines = Lines::default();
            lines.count(head);
            read_through(stream, checksums, lines)
        }
    })
}

/// What [`plan`]'s pass over a stream found.
struct Pass<'s> {
    checksums: Checksums<'s>,
    lines: Lines,
    /// The stream could not be read to its end.
    read_error: bool,
    /// Why the stream failed its own check (not merely cut short), if it did.
    corrupt: Option<String>,
}

/// Read the rest of `stream` (what came before it is in `checksums` and `lines` already),
/// counting its lines on this thread while a thread of its own hashes it. SHA-256 took most of the pass,
/// which 01-bronze must finish before it writes: on a million HDFS lines the pass took
/// 0.12 s on one thread, 70 ms on two. Buffers go round between the two threads, so only a
/// few are ever allocated.
fn read_through<'s>(
    stream: &mut dyn Read,
    mut checksums: Checksums<'s>,
    mut lines: Lines,
) -> Pass<'s> {
    const BUFFER: usize = 1 << 20;
    // A buffer, how many of its bytes were read, and where their last newline is.
    type Chunk = (Vec<u8>, usize, Option<usize>);
    let (chunks, incoming) = std::sync::mpsc::sync_channel::<Chunk>(2);
    let (free, returned) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| {
        let hashing = s.spawn(move || {
            for (buf, n, last_newline) in incoming {
                checksums.feed(&buf[..n], last_newline);
                // The reader may have finished: a buffer it does not take back is dropped.
                let _ = free.send(buf);
            }
            checksums
        });
        let (mut read_error, mut corrupt) = (false, None);
        loop {
            let mut buf = returned.try_recv().unwrap_or_else(|_| vec![0; BUFFER]);
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let last_newline = lines.count(&buf[..n]);
                    if chunks.send((buf, n, last_newline)).is_err() {
                        break; // the hashing thread panicked: reported at the join
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // A stream that ends early (a copy cut short) is sound up to its end; one that
                // fails its own check (a corrupt block, a checksum mismatch) may already have
                // handed out garbage before the decoder noticed.
                Err(e) => {
                    read_error = true;
                    if e.kind() != std::io::ErrorKind::UnexpectedEof {
                        corrupt = Some(e.to_string());
                    }
                    break;
                }
            }
        }
        drop(chunks);
        let checksums = hashing
            .join()
            .expect("hashing a byte stream does not panic");
        Pass {
            checksums,
            lines,
            read_error,
            corrupt,
        }
    })
}

/// Lines of a stream so far, and where its last newline is.
#[derive(Default)]
struct Lines {
    at: u64,
    lines: u64,
    /// After the last newline so far: its offset, and the lines up to it.
    last_newline: u64,
    lines_at_newline: u64,
}

impl Lines {
    /// The lines through `segment`'s end, which ends a line.
    fn resumed(segment: &Segment) -> Self {
        Self {
            at: segment.end,
            lines: segment.end_line,
            last_newline: segment.end,
            lines_at_newline: segment.end_line,
        }
    }

    /// Count the stream's next bytes; returns where their last newline is, if any.
    fn count(&mut self, bytes: &[u8]) -> Option<usize> {
        let last = memchr_last(bytes);
        if let Some(i) = last {
            self.lines += count_newlines(&bytes[..=i]);
            self.last_newline = self.at + i as u64 + 1;
            self.lines_at_newline = self.lines;
        }
        self.at += bytes.len() as u64;
        last
    }
}

/// The checksums of a stream so far: of the whole, of it up to its last newline, and of each
/// candidate segment's prefix.
struct Checksums<'s> {
    /// Segments whose head matches, by end; `next` is the first not yet checked.
    candidates: Vec<&'s Segment>,
    next: usize,
    /// The longest candidate whose checksum matches the stream's prefix.
    matched: Option<&'s Segment>,
    hasher: Sha256,
    /// The checksum up to the last newline so far.
    hash_at_newline: Sha256,
    at: u64,
}

impl<'s> Checksums<'s> {
    fn new(candidates: Vec<&'s Segment>) -> Self {
        Self {
            candidates,
            next: 0,
            matched: None,
            hasher: Sha256::new(),
            hash_at_newline: Sha256::new(),
            at: 0,
        }
    }

    /// The checksums of a stream whose first bytes are `segment`'s, from the state after
    /// them: that segment is the match, and no other candidate is left.
    fn resumed(segment: &'s Segment, hasher: Sha256) -> Self {
        Self {
            candidates: Vec::new(),
            next: 0,
            matched: Some(segment),
            hash_at_newline: hasher.clone(),
            hasher,
            at: segment.end,
        }
    }

    /// The stream's next bytes, with where their last newline is. Hashing stops at each
    /// candidate's end, where the prefix's checksum is compared with the candidate's, and
    /// after the last newline, where the checksum is kept.
    fn feed(&mut self, mut rest: &[u8], last_newline: Option<usize>) {
        let keep_at = last_newline.map(|i| self.at + i as u64 + 1);
        while !rest.is_empty() {
            // A candidate ending here is checked below (an empty piece); the newline's
            // checksum is kept once, so only a point still ahead stops the piece.
            let candidate_end = self.candidates.get(self.next).map(|c| c.end);
            let keep_ahead = keep_at.filter(|&k| k > self.at);
            let mut stop = rest.len();
            for end in [candidate_end, keep_ahead].into_iter().flatten() {
                stop = stop.min(end.saturating_sub(self.at) as usize);
            }
            let (piece, after) = rest.split_at(stop);
            self.hasher.update(piece);
            self.at += piece.len() as u64;
            rest = after;
            if keep_at == Some(self.at) {
                self.hash_at_newline = self.hasher.clone();
            }
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
    memchr::memrchr(b'\n', bytes)
}

/// Counted by memchr: a plain filter over the bytes compiled to a loop of four bytes a step
/// and took 55 ms of 01-bronze's 0.33 s on a million HDFS lines.
fn count_newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes a call, so that chunk boundaries fall
    /// inside lines, on newlines and on candidates' ends.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    fn segment(text: &[u8], end: usize, prefix_of: &[u8]) -> Segment {
        Segment {
            file: "f".into(),
            start: 0,
            end: end as u64,
            start_line: 0,
            end_line: 0,
            prefix_sha: hex(&Sha256::digest(&prefix_of[..end])),
            head_sha: hex(&Sha256::digest(&text[..end.min(HEAD)])),
            resume: None,
        }
    }

    /// The index finds exactly the segments whose head starts the file, whatever their
    /// lengths, as comparing every segment's head did.
    #[test]
    fn candidates_are_the_segments_whose_head_starts_the_file() {
        let text: Vec<u8> = (0..1000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let other: Vec<u8> = text.iter().map(|b| b ^ 1).collect();
        let mut ingested = Ingested::default();
        for end in [0, 7, 100, 1000, 4096, 5000] {
            ingested.add(segment(&text, end, &text));
        }
        ingested.add(segment(&other, 100, &other));
        let ends = |head: &[u8]| {
            let mut e: Vec<u64> = ingested.candidates(head).iter().map(|s| s.end).collect();
            e.sort();
            e
        };
        assert_eq!(ends(&text[..4096]), vec![0, 7, 100, 1000, 4096, 5000]);
        // A shorter file: only the segments no longer than it.
        assert_eq!(ends(&text[..500]), vec![0, 7, 100]);
        assert_eq!(ends(&other[..4096]), vec![0, 100]);
    }

    /// However the stream arrives, the pass finds the checksums and line counts a straight
    /// reading gives: of the whole, up to the last newline, and the longest matching prefix.
    #[test]
    fn the_pass_agrees_with_a_straight_reading() {
        let mut text = Vec::new();
        for i in 0..1500 {
            text.extend_from_slice(format!("line {i} {}\n", "x".repeat(i % 17)).as_bytes());
        }
        text.extend_from_slice(b"unfinished");
        let last_newline = text.iter().rposition(|&b| b == b'\n').unwrap() + 1;
        let other: Vec<u8> = text.iter().map(|b| b ^ 1).collect();
        let matching = [0, 1, 4096, 10_000, last_newline, text.len()];
        let not_matching = segment(&text, 15_000, &other);
        for step in [1, 13, 4096, 1 << 20] {
            let head_len = 4096.min(step * 100);
            let segments: Vec<Segment> = matching
                .iter()
                .map(|&end| segment(&text, end, &text))
                .chain([not_matching.clone()])
                .collect();
            let candidates: Vec<&Segment> = {
                let mut c: Vec<&Segment> = segments.iter().collect();
                c.sort_by_key(|s| s.end);
                c
            };
            let mut rest = Trickle {
                bytes: &text[head_len..],
                step,
            };
            let head = &text[..head_len];
            let mut checksums = Checksums::new(candidates);
            checksums.feed(head, memchr_last(head));
            let mut lines = Lines::default();
            lines.count(head);
            let pass = read_through(&mut rest, checksums, lines);
            assert!(!pass.read_error);
            let Pass {
                checksums, lines, ..
            } = pass;
            assert_eq!(
                hex(&checksums.hasher.finalize()),
                hex(&Sha256::digest(&text)),
                "step {step}"
            );
            assert_eq!(
                hex(&checksums.hash_at_newline.finalize()),
                hex(&Sha256::digest(&text[..last_newline]))
            );
            assert_eq!(checksums.matched.map(|s| s.end), Some(text.len() as u64));
            assert_eq!((lines.at, lines.lines), (text.len() as u64, 1500));
            assert_eq!(
                (lines.last_newline, lines.lines_at_newline),
                (last_newline as u64, 1500)
            );
        }
    }

    fn ingest(path: &Path, ingested: &Ingested) -> (Segment, bool) {
        match plan(path, "app.log", ingested, std::time::Duration::ZERO).unwrap() {
            Plan::Ingest {
                segment, rewritten, ..
            } => (segment, rewritten),
            _ => panic!("expected lines to ingest"),
        }
    }

    fn lines(from: usize, to: usize) -> String {
        (from..to)
            .map(|i| format!("2026-12-07T10:00:00Z INFO api: request {i} served\n"))
            .collect()
    }

    fn append(path: &Path, text: &str) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    /// A file that grew in place is picked up at its segment's end without being read from
    /// its start: a byte changed in place before that end (where neither the head nor the
    /// checked tail is) goes unseen, and the new segment's checksum is the one of the bytes
    /// ingested followed by the new ones. Its checksum is still exact: the same text in a
    /// new file is recognised by content.
    #[test]
    fn a_file_that_grew_in_place_is_picked_up_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        let first = lines(0, 5000);
        std::fs::write(&path, &first).unwrap();
        let mut ingested = Ingested::default();
        let (one, _) = ingest(&path, &ingested);
        assert!(one.resume.is_some());
        assert_eq!(one.prefix_sha, hex(&Sha256::digest(first.as_bytes())));
        ingested.add(one.clone());

        let middle = first.len() as u64 / 2;
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.seek(SeekFrom::Start(middle)).unwrap();
            file.write_all(b"#").unwrap();
        }
        let more = lines(5000, 5100);
        append(&path, &more);
        let (two, rewritten) = ingest(&path, &ingested);
        assert!(!rewritten);
        assert_eq!((two.start, two.start_line), (one.end, one.end_line));
        assert_eq!(
            (two.end, two.end_line),
            ((first.len() + more.len()) as u64, 5100)
        );
        let unchanged = format!("{first}{more}");
        assert_eq!(two.prefix_sha, hex(&Sha256::digest(unchanged.as_bytes())));

        // The same text as a new file (another inode) is matched by content, read whole.
        let copy = dir.path().join("copy.log");
        std::fs::write(&copy, &unchanged).unwrap();
        ingested.add(two.clone());
        match plan(&copy, "copy.log", &ingested, std::time::Duration::ZERO).unwrap() {
            Plan::Skip { .. } => {}
            _ => panic!("the same content is in bronze already"),
        }
    }

    /// A file truncated and written again in place (the same inode, as logrotate's
    /// copytruncate leaves it) fails the check of the bytes before the old end, and is read
    /// from its start as a rewritten file.
    #[test]
    fn a_file_truncated_and_written_again_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, lines(0, 3000)).unwrap();
        let mut ingested = Ingested::default();
        let (one, _) = ingest(&path, &ingested);
        ingested.add(one.clone());
        let again = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        again.set_len(0).unwrap();
        drop(again);
        // Same head (the first 4,096 bytes), other lines after it, and longer than before.
        let mut text = lines(0, 200);
        text.push_str(&lines(100_000, 104_000));
        append(&path, &text);
        assert!(text.len() as u64 > one.end);
        let (two, rewritten) = ingest(&path, &ingested);
        assert!(rewritten);
        assert_eq!((two.start, two.start_line), (0, 0));
        assert_eq!(two.prefix_sha, hex(&Sha256::digest(text.as_bytes())));
    }
}

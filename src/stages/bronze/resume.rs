//! Picking a plain file that grew in place up where bronze stopped, without reading it
//! from its start (see [`Resume`]).

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::segments::Segment;
use super::writer::hex;

/// What lets a run pick up a plain file that grew in place at a segment's end without
/// reading (and hashing) its first `end` bytes again: the SHA-256 state after them, the
/// file's identity, and the checksum of the bytes just before `end`.
///
/// Hashing every byte of a growing file at every run made 01-bronze's cost grow with the
/// file: a day's log of a few gigabytes, picked up every five minutes, was read whole 288
/// times. Log shippers pick a file up at a stored offset once its identity and a fingerprint
/// match; this does the same, and keeps the segment's checksum exact (the state is resumed,
/// not restarted), so a rotated or copied file is still recognised by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The serialized SHA-256 state after the stream's first `end` bytes, in hex.
    pub state: String,
    /// The file's device and inode, `dev:ino`.
    pub file_id: String,
    /// SHA-256 of the (at most [`TAIL`]) bytes before `end`, which must end in a newline.
    pub tail_sha: String,
}

/// Bytes before a segment's end checked before a file is picked up there.
const TAIL: u64 = 64 * 1024;

/// The identity of the file `meta` describes (`dev:ino`), where the platform has one.
fn file_id(meta: &std::fs::Metadata) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(format!("{}:{}", meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// The bytes of `path` before `end` checked by [`Resume::tail_sha`].
fn tail_before(path: &Path, end: u64) -> Option<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    let from = end.saturating_sub(TAIL);
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut tail = vec![0; (end - from) as usize];
    file.read_exact(&mut tail).ok()?;
    Some(tail)
}

pub(super) fn serialize_state(hasher: &Sha256) -> String {
    use sha2::digest::common::hazmat::SerializableState;
    hex(&hasher.serialize())
}

fn deserialize_state(text: &str) -> Option<Sha256> {
    use sha2::digest::common::hazmat::{SerializableState, SerializedState};
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    let state = SerializedState::<Sha256>::try_from(&bytes[..]).ok()?;
    Sha256::deserialize(&state).ok()
}

/// The segment a plain file at `path` grew from in place, and the checksum state at its end,
/// when it can be picked up there: the latest of its candidates (`candidates`, whose head
/// matches the file's, by end) came from the same path and the same file (device and
/// inode), the file is at least that long, and the bytes just before the segment's end are
/// the ones ingested (their checksum matches, and they end a line). A file truncated and
/// written again (same inode), replaced, or rotated fails one of these and is read whole.
pub(super) fn grown_in_place<'s>(
    path: &Path,
    name: &str,
    candidates: &[&'s Segment],
) -> Option<(&'s Segment, Sha256)> {
    let last = *candidates.last()?;
    let resume = last.resume.as_ref()?;
    let meta = std::fs::metadata(path).ok()?;
    if last.file != name || file_id(&meta)? != resume.file_id || meta.len() < last.end {
        return None;
    }
    if tail_sha(path, last.end)? != resume.tail_sha {
        return None;
    }
    Some((last, deserialize_state(&resume.state)?))
}

/// What lets a later run pick the plain file at `path` up at `end` (see [`Resume`]): none
/// when the bytes before `end` do not end a line (the last line was taken whole).
pub(super) fn resume_at(path: &Path, end: u64, state: String) -> Option<Resume> {
    Some(Resume {
        state,
        file_id: file_id(&std::fs::metadata(path).ok()?)?,
        tail_sha: tail_sha(path, end)?,
    })
}

/// The checksum of the (at most [`TAIL`]) bytes of `path` before `end`, when they end a line.
fn tail_sha(path: &Path, end: u64) -> Option<String> {
    let tail = tail_before(path, end)?;
    (tail.last() == Some(&b'\n')).then(|| hex(&Sha256::digest(&tail)))
}

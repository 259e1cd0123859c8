//! Where each Kafka partition picks up: the ranges of offsets bronze holds, and what the
//! broker holds now.
//!
//! The offsets loglake has consumed are not kept in the broker's consumer group but in the
//! bronze parts themselves: each part's footer records the [`Range`] of offsets it holds, so
//! the part and the offsets it accounts for are committed in one step (a rename in a local
//! lake, a manifest on object storage). A run killed before that step leaves neither; the next
//! run starts from the last committed range's end and reads exactly what was not committed.
//!
//! What the broker holds can change under loglake's feet, and that is reported, never skipped
//! silently:
//! - **Retention** deleted messages loglake had not read: the partition's earliest offset is
//!   past the last range's end. Reading resumes at the earliest offset, and the count of
//!   messages lost upstream goes to `quarantine/inputs` and the run's message.
//! - **The topic was recreated** (deleted and created again, offsets restarting at 0): either
//!   its latest offset is below the last range's end, or the message at the last range's
//!   first offset is no longer the one ingested (each range keeps that message's fingerprint;
//!   the first, not the last, because a range starts where a record batch starts, and some
//!   brokers — tansu 0.6 — cannot fetch from inside a batch). The
//!   new topic is read from its earliest offset as a new *incarnation*, so its offsets never
//!   meet the old one's in bronze.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::stages::bronze::writer::hex;

/// Key of the offset ranges record (a JSON list, one range per partition) in a bronze part's
/// Parquet footer.
pub const RANGE_KEY: &str = "loglake.bronze.kafka";

/// The offsets of one partition that one bronze part holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub topic: String,
    pub partition: i32,
    /// Which life of the topic: 0, then one more each time loglake finds it recreated.
    pub incarnation: u32,
    /// Offsets `start..end`; `end` is the partition's latest offset when the batch started.
    pub start: i64,
    pub end: i64,
    /// Messages read (fewer than `end - start` where a compacted topic dropped some).
    pub messages: u64,
    /// The offset and fingerprint of the first message read: the next batch checks that it is
    /// still there, which tells a recreated topic from one that merely grew.
    pub first: Option<(i64, String)>,
}

impl Range {
    /// The checksum naming this range's part (and filling its rows' `file_sha256`): its
    /// partition, incarnation and first offset, which no other range of the source shares.
    pub fn checksum(&self) -> String {
        let mut hash = Sha256::new();
        for piece in [
            "kafka",
            &self.topic,
            &self.partition.to_string(),
            &self.incarnation.to_string(),
            &self.start.to_string(),
        ] {
            hash.update(piece.as_bytes());
            hash.update([0]);
        }
        hex(&hash.finalize())
    }

    /// What its rows name as their `file`: `kafka://<topic>/<partition>`, with the
    /// incarnation after a recreation.
    pub fn location(&self) -> String {
        location(&self.topic, self.partition, self.incarnation)
    }
}

pub fn location(topic: &str, partition: i32, incarnation: u32) -> String {
    match incarnation {
        0 => format!("kafka://{topic}/{partition}"),
        n => format!("kafka://{topic}/{partition}?incarnation={n}"),
    }
}

/// A message's fingerprint: its timestamp, key and value.
pub fn fingerprint(time_ms: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> String {
    let mut hash = Sha256::new();
    hash.update(time_ms.to_le_bytes());
    for part in [key, value] {
        match part {
            Some(bytes) => {
                hash.update((bytes.len() as u64).to_le_bytes());
                hash.update(bytes);
            }
            None => hash.update(u64::MAX.to_le_bytes()),
        }
    }
    hex(&hash.finalize()[..16])
}

/// The last range bronze holds of each partition: the latest incarnation's furthest end.
pub fn last_ranges(ranges: Vec<Range>) -> std::collections::BTreeMap<(String, i32), Range> {
    let mut last = std::collections::BTreeMap::new();
    for r in ranges {
        let key = (r.topic.clone(), r.partition);
        let newer = |old: &Range| (r.incarnation, r.end) > (old.incarnation, old.end);
        if last.get(&key).is_none_or(newer) {
            last.insert(key, r);
        }
    }
    last
}

/// Where a partition picks up this batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub from: i64,
    pub incarnation: u32,
    /// Messages deleted upstream before loglake read them, and why, when there were any.
    pub lost: Option<(i64, String)>,
}

/// What the broker holds of a partition at the batch's start.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    pub earliest: i64,
    pub latest: i64,
}

/// Whether the message at the last range's first offset is still the one ingested: `None`
/// when it could not be checked (deleted by retention, or compacted away).
pub type LastStillThere = Option<bool>;

/// Where a partition picks up, given its last committed range and what the broker holds.
pub fn start(last: Option<&Range>, held: Held, last_still_there: LastStillThere) -> Start {
    let Some(last) = last else {
        // Never read: from the first message the broker still holds.
        return Start {
            from: held.earliest,
            incarnation: 0,
            lost: None,
        };
    };
    let recreated = if held.latest < last.end {
        Some(format!(
            "its latest offset is {} but loglake had read up to {}",
            held.latest, last.end
        ))
    } else if last_still_there == Some(false) {
        let at = last
            .first
            .as_ref()
            .map_or(last.start, |(offset, _)| *offset);
        Some(format!(
            "the message at offset {at} is not the one loglake ingested there"
        ))
    } else {
        None
    };
    if let Some(why) = recreated {
        let incarnation = last.incarnation + 1;
        let lost = format!(
            "the topic was recreated ({why}): the old topic's messages after offset {} were never read{}",
            last.end - 1,
            if held.earliest > 0 {
                format!(
                    ", and the new one's first {} were deleted before this run",
                    held.earliest
                )
            } else {
                String::new()
            }
        );
        return Start {
            from: held.earliest,
            incarnation,
            lost: Some((held.earliest, lost)),
        };
    }
    if held.earliest > last.end {
        let lost = held.earliest - last.end;
        return Start {
            from: held.earliest,
            incarnation: last.incarnation,
            lost: Some((
                lost,
                format!(
                    "{lost} message(s), offsets {}..{}, were deleted by the topic's retention before loglake read them (run 01-bronze more often, or raise the topic's retention.ms)",
                    last.end,
                    held.earliest - 1
                ),
            )),
        };
    }
    Start {
        from: last.end,
        incarnation: last.incarnation,
        lost: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(incarnation: u32, start: i64, end: i64) -> Range {
        Range {
            topic: "t".into(),
            partition: 0,
            incarnation,
            start,
            end,
            messages: (end - start) as u64,
            first: Some((start, "f".into())),
        }
    }

    #[test]
    fn a_partition_picks_up_where_bronze_stopped() {
        let last = range(0, 0, 100);
        let held = Held {
            earliest: 0,
            latest: 150,
        };
        assert_eq!(
            start(Some(&last), held, Some(true)),
            Start {
                from: 100,
                incarnation: 0,
                lost: None
            }
        );
        // Nothing new: from the end, which is the latest offset.
        let s = start(
            Some(&last),
            Held {
                latest: 100,
                ..held
            },
            None,
        );
        assert_eq!((s.from, s.lost), (100, None));
        // Never read: from the earliest message still held.
        let s = start(
            None,
            Held {
                earliest: 40,
                ..held
            },
            None,
        );
        assert_eq!((s.from, s.incarnation, s.lost), (40, 0, None));
    }

    #[test]
    fn retention_losses_are_counted() {
        let last = range(0, 0, 100);
        let s = start(
            Some(&last),
            Held {
                earliest: 130,
                latest: 200,
            },
            None,
        );
        assert_eq!((s.from, s.incarnation), (130, 0));
        let (lost, why) = s.lost.unwrap();
        assert_eq!(lost, 30);
        assert!(why.contains("offsets 100..129"), "{why}");
    }

    #[test]
    fn a_recreated_topic_is_a_new_incarnation() {
        let last = range(0, 0, 100);
        // Offsets went back below what was read.
        let s = start(
            Some(&last),
            Held {
                earliest: 0,
                latest: 20,
            },
            None,
        );
        assert_eq!((s.from, s.incarnation), (0, 1));
        assert!(s.lost.unwrap().1.contains("recreated"));
        // Grew past it again, but the last message read is another one now.
        let s = start(
            Some(&last),
            Held {
                earliest: 5,
                latest: 500,
            },
            Some(false),
        );
        assert_eq!((s.from, s.incarnation), (5, 1));
        let (lost, why) = s.lost.unwrap();
        assert_eq!(lost, 5);
        assert!(why.contains("offset 0 is not the one"), "{why}");
    }

    #[test]
    fn the_last_range_is_the_latest_incarnations_furthest() {
        let last = last_ranges(vec![range(0, 0, 100), range(1, 0, 10), range(0, 100, 300)]);
        assert_eq!(last[&("t".to_string(), 0)], range(1, 0, 10));
        assert_ne!(range(0, 0, 5).checksum(), range(1, 0, 5).checksum());
        assert_eq!(range(0, 0, 5).checksum(), range(0, 0, 9).checksum());
    }
}

//! `01-bronze --kafka <topic>`: the messages of Kafka topics into bronze, each exactly once.
//!
//! loglake stays a batch pipeline: a batch reads each partition from where bronze stopped up
//! to the partition's latest offset *when the batch started*, so a run ends however busy the
//! topic is, and what arrives meanwhile is the next batch's. A topic's new messages become one
//! bronze part, committed with the [`offsets::Range`] of each partition it holds in its
//! footer: the offsets and the rows land together or not at all (see [`offsets`]).
//!
//! A row is one message: its value is the line (one trailing newline removed, as from a
//! file's line; not valid UTF-8: kept exactly in `raw`), with `message_key` and
//! `message_time` beside it, `file` naming `kafka://<topic>/<partition>` and `byte_offset` its
//! offset. A message with no value (a tombstone) is kept as an empty line with a `read_error`,
//! which 02-silver quarantines with that reason.

mod client;
pub mod offsets;

use std::collections::VecDeque;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use parquet::file::metadata::KeyValue;
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::record::RecordAndOffset;
use sha2::{Digest, Sha256};

use super::Rejected;
use super::writer::{self, BatchBuilder, SameOnEveryRow};
use crate::lake::{Layer, tables};
use crate::stages::Context;
use offsets::{Held, Range, Start};

/// Bytes asked of the broker per fetch, and its wait: a batch fetches only offsets below the
/// high watermark it read, which the broker holds already, so it need not wait for more (tansu
/// waits out the whole wait when a fetch cannot fill these bytes: at 500 ms, a million
/// messages took 1.95 s instead of 0.63 s). A megabyte per partition in flight and one queued
/// keeps memory to a few times the partitions in MiB (at 4 MiB, 421 MiB peak on a million
/// HDFS lines over four partitions; at 1 MiB, 258–280 MiB).
const FETCH_WAIT_MS: i32 = 0;
const FETCH_BYTES: i32 = 1 << 20;

/// What a batch read from Kafka.
#[derive(Debug, Default)]
pub struct Consumed {
    /// Partitions read, and those with nothing new.
    pub partitions: usize,
    pub up_to_date: usize,
    pub messages: u64,
    /// What was lost upstream, per partition, for `quarantine/inputs`: (where, why).
    pub lost: Rejected,
    pub lost_messages: i64,
}

/// Read every partition of `topics` from where bronze stopped into `date`'s partition: one
/// part per topic. `committed` is what bronze holds (every range of the source's parts).
pub fn ingest(
    ctx: &Context,
    date: NaiveDate,
    topics: &[String],
    brokers: &str,
    committed: Vec<Range>,
) -> Result<Consumed> {
    let connection = client::connect(brokers)?;
    let last = offsets::last_ranges(committed);
    let listed = client::within(
        &connection,
        || format!("listing the topics of {}", connection.brokers),
        connection.client.list_topics(),
    )?;
    let mut consumed = Consumed::default();
    for topic in topics {
        let Some(found) = listed.iter().find(|t| &t.name == topic) else {
            bail!(
                "topic {topic:?} does not exist on {} (check --kafka; names are case-sensitive)",
                connection.brokers
            );
        };
        let mut streams = Vec::new();
        for &partition in &found.partitions {
            let key = (topic.clone(), partition);
            let stream = plan_partition(&connection, &key, last.get(&key), &mut consumed)
                .with_context(|| format!("reading partition {partition} of topic {topic}"))?;
            streams.extend(stream);
        }
        if streams.is_empty() {
            continue;
        }
        consumed.partitions += (streams.iter())
            .filter(|s| s.range.start < s.range.end)
            .count();
        consumed.messages += ingest_topic(ctx, date, &connection, streams)
            .with_context(|| format!("reading topic {topic}"))?;
    }
    Ok(consumed)
}

/// Where `partition` picks up, with what was lost upstream recorded in `consumed`; `None` when
/// it holds nothing new.
fn plan_partition(
    connection: &client::Connection,
    (topic, partition): &(String, i32),
    last: Option<&Range>,
    consumed: &mut Consumed,
) -> Result<Option<Stream>> {
    let location = || format!("opening {topic}/{partition}");
    let reader = Arc::new(client::within(
        connection,
        location,
        connection
            .client
            .partition_client(topic.clone(), *partition, UnknownTopicHandling::Retry),
    )?);
    let held = client::within(connection, location, held_by(&reader))?;
    // The last range's first message, if the broker still has its offset: the same one?
    let still_there = match last.and_then(|r| r.first.clone()) {
        Some((offset, print)) if offset >= held.earliest && offset < held.latest => {
            let (records, _) = client::within(
                connection,
                || format!("fetching {topic}/{partition} at offset {offset}"),
                reader.fetch_records(offset, 1..FETCH_BYTES, FETCH_WAIT_MS),
            )?;
            records
                .iter()
                .find(|r| r.offset == offset)
                .map(|r| fingerprint_of(r) == print)
        }
        _ => None,
    };
    let Start {
        from,
        incarnation,
        lost,
    } = offsets::start(last, held, still_there);
    let range = Range {
        topic: topic.clone(),
        partition: *partition,
        incarnation,
        start: from,
        end: held.latest,
        messages: 0,
        first: None,
    };
    let reported = lost.is_some();
    if let Some((count, why)) = lost {
        tracing::warn!(partition = %range.location(), lost = count, "{why}");
        consumed.lost.push((range.location(), why));
        consumed.lost_messages += count;
    }
    if from >= held.latest {
        consumed.up_to_date += 1;
        // A loss with nothing after it still moves bronze's record on (an empty range, in a
        // part of no rows), so that the next batch does not report it again.
        if !reported {
            return Ok(None);
        }
    }
    Ok(Some(Stream {
        location: range.location(),
        next: range.start,
        range,
        reader,
        queue: VecDeque::new(),
        in_flight: None,
    }))
}

/// The partition's earliest and latest offsets now. The latest is the high watermark a fetch
/// reports as well as what ListOffsets says: tansu 0.6 answers ListOffsets with the last
/// record batch's first offset + 1, which would leave that batch's other messages for a later
/// run.
async fn held_by(reader: &PartitionClient) -> Result<Held> {
    let earliest = reader.get_offset(OffsetAt::Earliest).await?;
    let listed = reader.get_offset(OffsetAt::Latest).await?;
    let (_, high_watermark) = reader.fetch_records(earliest, 1..2, FETCH_WAIT_MS).await?;
    Ok(Held {
        earliest,
        latest: listed.max(high_watermark),
    })
}

/// Write the new messages of a topic's partitions as one bronze part, with their ranges in
/// its footer; returns the messages written.
///
/// The partitions are merged by message timestamp (then partition, then offset), not
/// appended one after the other: Kafka keeps order only within a partition, and 02-silver's
/// template miner sees lines in bronze's order. Merged, a topic whose messages are stamped as
/// their lines were written holds them in the order a file of the same lines would, and gives
/// the same templates and anomalies.
fn ingest_topic(
    ctx: &Context,
    date: NaiveDate,
    connection: &client::Connection,
    mut streams: Vec<Stream>,
) -> Result<u64> {
    // The part's checksum, from its ranges': its name, and its rows' `file_sha256`.
    let checksum = {
        let mut hash = Sha256::new();
        for s in &streams {
            hash.update(s.range.checksum().as_bytes());
        }
        writer::hex(&hash.finalize())
    };
    let name = format!("part-{}.parquet", &checksum[..32]);
    let batch_rows = ctx.settings.lake.bronze_batch_rows;
    let mut written = 0;
    ctx.lake.commit_part_file(
        Layer::Bronze,
        tables::LINES,
        &ctx.source,
        date,
        &name,
        |staged| {
            written = writer::write_part(staged, batch_rows, |send| {
                let written = merge(
                    &connection.runtime,
                    &mut streams,
                    &checksum,
                    batch_rows,
                    send,
                )?;
                let ranges: Vec<&Range> = streams.iter().map(|s| &s.range).collect();
                let record = KeyValue::new(
                    offsets::RANGE_KEY.to_string(),
                    serde_json::to_string(&ranges)?,
                );
                Ok((written, record))
            })?;
            Ok(())
        },
    )?;
    for s in &streams {
        tracing::info!(partition = %s.location, messages = s.range.messages, from = s.range.start, to = s.range.end, "ingested");
    }
    Ok(written)
}

/// One partition being read: its range, the messages fetched and not yet written, and the
/// fetch in flight.
struct Stream {
    range: Range,
    location: String,
    reader: Arc<PartitionClient>,
    /// The next offset to fetch.
    next: i64,
    queue: VecDeque<RecordAndOffset>,
    in_flight: Option<Fetch>,
}

type Fetch = tokio::task::JoinHandle<rskafka::client::error::Result<(Vec<RecordAndOffset>, i64)>>;

impl Stream {
    fn done(&self) -> bool {
        self.queue.is_empty() && self.next >= self.range.end
    }

    /// Start fetching from `next`, unless the range is read or a fetch is in flight.
    fn fetch_ahead(&mut self, runtime: &tokio::runtime::Runtime) {
        if self.in_flight.is_none() && self.next < self.range.end {
            let (reader, offset) = (Arc::clone(&self.reader), self.next);
            self.in_flight = Some(runtime.spawn(async move {
                reader
                    .fetch_records(offset, 1..FETCH_BYTES, FETCH_WAIT_MS)
                    .await
            }));
        }
    }

    /// Make sure the queue holds the next message, unless the range is read.
    fn fill(&mut self, runtime: &tokio::runtime::Runtime) -> Result<()> {
        while self.queue.is_empty() && self.next < self.range.end {
            self.fetch_ahead(runtime);
            let pending = self.in_flight.take().expect("a fetch was started");
            let answered =
                runtime.block_on(async { tokio::time::timeout(client::DEADLINE, pending).await });
            let Ok(joined) = answered else {
                bail!(
                    "the Kafka brokers did not answer within {} s while fetching {} from offset {}; nothing of this topic was committed by this run (run 01-bronze again once they are back)",
                    client::DEADLINE.as_secs(),
                    self.location,
                    self.next
                );
            };
            let (records, _) = joined
                .context("the Kafka fetch task stopped")?
                .with_context(|| {
                    format!(
                        "fetching {} from offset {} (if retention deleted it meanwhile, run 01-bronze again: it reports what was lost)",
                        self.location, self.next
                    )
                })?;
            let end = self.range.end;
            let next = self.next;
            self.queue.extend(
                records
                    .into_iter()
                    .filter(|r| r.offset >= next && r.offset < end),
            );
            let Some(after) = self.queue.back().map(|r| r.offset + 1) else {
                // Nothing at `next` though the partition holds messages up to `end`. Stepping
                // over the offset could skip a message, so the run stops and says what it met.
                bail!(
                    "the broker returned no message at offset {next} of {}, though it holds messages up to offset {} (a transactional topic's markers, which loglake cannot read past yet, or a broker that cannot fetch from inside a record batch); nothing of this topic was committed by this run",
                    self.location,
                    end - 1
                );
            };
            self.next = after;
            if self.range.first.is_none() {
                self.range.first = self.queue.front().map(|r| (r.offset, fingerprint_of(r)));
            }
        }
        // The next fetch is in flight while this thread writes what came.
        self.fetch_ahead(runtime);
        Ok(())
    }
}

/// Merge the streams' messages by (timestamp, partition, offset) into record batches handed
/// to `send`; returns how many were written.
fn merge(
    runtime: &tokio::runtime::Runtime,
    streams: &mut [Stream],
    checksum: &str,
    batch_rows: usize,
    send: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<u64> {
    let schema = writer::schema();
    // Every row's own partition goes in `file` (see `BatchBuilder::for_messages`).
    let mut same = SameOnEveryRow::new(
        String::new(),
        chrono::Utc::now().timestamp_millis(),
        checksum.to_string(),
    );
    let mut batch = BatchBuilder::for_messages(batch_rows.min(1024), 0);
    let mut written = 0u64;
    for s in streams.iter_mut() {
        s.fill(runtime)?;
    }
    // Partitions are few: a scan for the earliest head costs less than a heap's upkeep.
    let earliest = |streams: &[Stream]| {
        (streams.iter().enumerate())
            .filter_map(|(i, s)| s.queue.front().map(|r| (r.record.timestamp, i)))
            .min()
            .map(|(_, i)| i)
    };
    while let Some(i) = earliest(streams) {
        let s = &mut streams[i];
        let r = s.queue.pop_front().expect("the chosen stream has a head");
        push_message(&mut batch, &s.location, &r);
        s.range.messages += 1;
        written += 1;
        if batch.rows >= batch_rows {
            send(batch.finish(&schema, &mut same)?)?;
        }
        if s.queue.is_empty() {
            s.fill(runtime)?;
        }
    }
    debug_assert!(streams.iter().all(Stream::done));
    if batch.rows > 0 {
        send(batch.finish(&schema, &mut same)?)?;
    }
    Ok(written)
}

fn push_message(batch: &mut BatchBuilder, location: &str, r: &RecordAndOffset) {
    let offset = r.offset as u64;
    let time_ms = r.record.timestamp.timestamp_millis();
    batch.push_message(location, r.record.key.as_deref(), time_ms);
    match &r.record.value {
        Some(value) => {
            let line = value.strip_suffix(b"\n").unwrap_or(value);
            batch.push(line, offset, offset + 1, None);
        }
        None => batch.push(
            b"",
            offset,
            offset + 1,
            Some("a Kafka message with no value (a tombstone)"),
        ),
    }
}

fn fingerprint_of(r: &RecordAndOffset) -> String {
    offsets::fingerprint(
        r.record.timestamp.timestamp_millis(),
        r.record.key.as_deref(),
        r.record.value.as_deref(),
    )
}

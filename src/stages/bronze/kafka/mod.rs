//! `01-bronze --kafka <topic>`: the messages of Kafka topics into bronze, each exactly once.
//!
//! loglake stays a batch pipeline: a batch reads each partition from where bronze stopped up
//! to the partition's latest offset *when the batch started*, so a run ends however busy the
//! topic is, and what arrives meanwhile is the next batch's. Each partition's new messages
//! become one bronze part, committed with the [`offsets::Range`] it holds in its footer: the
//! offsets and the rows land together or not at all (see [`offsets`]).
//!
//! A row is one message: its value is the line (one trailing newline removed, as from a
//! file's line; not valid UTF-8: kept exactly in `raw`), with `message_key` and
//! `message_time` beside it, `file` naming `kafka://<topic>/<partition>` and `byte_offset` its
//! offset. A message with no value (a tombstone) is kept as an empty line with a `read_error`,
//! which 02-silver quarantines with that reason.

mod client;
pub mod offsets;

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use parquet::file::metadata::KeyValue;
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::record::RecordAndOffset;

use super::Rejected;
use super::writer::{self, BatchBuilder, SameOnEveryRow};
use crate::lake::{Layer, tables};
use crate::stages::Context;
use offsets::{Held, Range, Start};

/// Bytes asked of the broker per fetch: large enough that a request's round trip is small
/// beside decoding it, small enough that the one in flight and the one being written stay a
/// few MiB.
const FETCH_BYTES: i32 = 4 << 20;

/// What a batch read from Kafka.
#[derive(Debug, Default)]
pub struct Consumed {
    /// Partitions read into a part of their own, and those with nothing new.
    pub parts: usize,
    pub up_to_date: usize,
    pub messages: u64,
    /// What was lost upstream, per partition, for `quarantine/inputs`: (where, why).
    pub lost: Rejected,
    pub lost_messages: i64,
}

/// Read every partition of `topics` from where bronze stopped into `date`'s partition.
/// `committed` is what bronze holds (every range of the source's parts).
pub fn ingest(
    ctx: &Context,
    date: NaiveDate,
    topics: &[String],
    brokers: &str,
    committed: Vec<Range>,
) -> Result<Consumed> {
    let connection = client::connect(brokers)?;
    let last = offsets::last_ranges(committed);
    let listed = connection
        .runtime
        .block_on(connection.client.list_topics())
        .with_context(|| format!("listing the topics of {}", connection.brokers))?;
    let mut consumed = Consumed::default();
    for topic in topics {
        let Some(found) = listed.iter().find(|t| &t.name == topic) else {
            bail!(
                "topic {topic:?} does not exist on {} (check --kafka; names are case-sensitive)",
                connection.brokers
            );
        };
        for &partition in &found.partitions {
            let key = (topic.clone(), partition);
            let last = last.get(&key);
            ingest_partition(ctx, date, &connection, key, last, &mut consumed)
                .with_context(|| format!("reading partition {partition} of topic {topic}"))?;
        }
    }
    Ok(consumed)
}

fn ingest_partition(
    ctx: &Context,
    date: NaiveDate,
    connection: &client::Connection,
    (topic, partition): (String, i32),
    last: Option<&Range>,
    consumed: &mut Consumed,
) -> Result<()> {
    let runtime = &connection.runtime;
    let reader = Arc::new(runtime.block_on(connection.client.partition_client(
        topic.clone(),
        partition,
        UnknownTopicHandling::Retry,
    ))?);
    let held = runtime.block_on(held_by(&reader))?;
    // The last range's first message, if the broker still has its offset: the same one?
    let still_there = match last.and_then(|r| r.first.clone()) {
        Some((offset, print)) if offset >= held.earliest && offset < held.latest => {
            let (records, _) = runtime.block_on(reader.fetch_records(offset, 1..FETCH_BYTES, 0))?;
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
    let place = offsets::location(&topic, partition, incarnation);
    if let Some((count, why)) = lost {
        tracing::warn!(partition = %place, lost = count, "{why}");
        consumed.lost.push((place.clone(), why));
        consumed.lost_messages += count;
    }
    if from >= held.latest {
        consumed.up_to_date += 1;
        return Ok(());
    }
    let mut range = Range {
        topic,
        partition,
        incarnation,
        start: from,
        end: held.latest,
        messages: 0,
        first: None,
    };
    let name = format!("part-{}.parquet", &range.checksum()[..32]);
    let batch_rows = ctx.settings.lake.bronze_batch_rows;
    ctx.lake.commit_part_file(
        Layer::Bronze,
        tables::LINES,
        &ctx.source,
        date,
        &name,
        |staged| {
            let read = writer::write_part(staged, batch_rows, |send| {
                let read = read_range(runtime, &reader, &mut range, batch_rows, send)?;
                let record =
                    KeyValue::new(offsets::RANGE_KEY.to_string(), serde_json::to_string(&range)?);
                Ok((read, record))
            })?;
            tracing::info!(partition = %range.location(), messages = read, from = range.start, to = range.end, "ingested");
            Ok(())
        },
    )?;
    consumed.parts += 1;
    consumed.messages += range.messages;
    Ok(())
}

/// The partition's earliest and latest offsets now. The latest is the high watermark a fetch
/// reports as well as what ListOffsets says: tansu 0.6 answers ListOffsets with the last
/// record batch's first offset + 1, which would leave that batch's other messages for a later
/// run.
async fn held_by(reader: &PartitionClient) -> Result<Held> {
    let earliest = reader.get_offset(OffsetAt::Earliest).await?;
    let listed = reader.get_offset(OffsetAt::Latest).await?;
    let (_, high_watermark) = reader.fetch_records(earliest, 1..2, 0).await?;
    Ok(Held {
        earliest,
        latest: listed.max(high_watermark),
    })
}

/// Read `range.start..range.end` into record batches handed to `send`, filling in the
/// range's message count and first message; returns the messages read.
fn read_range(
    runtime: &tokio::runtime::Runtime,
    reader: &Arc<PartitionClient>,
    range: &mut Range,
    batch_rows: usize,
    send: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<u64> {
    let schema = writer::schema();
    let mut same = SameOnEveryRow::new(
        range.location(),
        chrono::Utc::now().timestamp_millis(),
        range.checksum(),
    );
    let mut batch = BatchBuilder::for_messages(batch_rows.min(1024), 0);
    let (mut next, end) = (range.start, range.end);
    let mut read = 0u64;
    // The next fetch is in flight while this thread turns the last one into rows.
    let fetch = |offset: i64| {
        let reader = Arc::clone(reader);
        runtime.spawn(async move { reader.fetch_records(offset, 1..FETCH_BYTES, 500).await })
    };
    let mut in_flight = Some(fetch(next));
    while let Some(pending) = in_flight.take() {
        let (records, _) = runtime
            .block_on(pending)
            .context("the Kafka fetch task stopped")?
            .with_context(|| offset_error_hint(range, next))?;
        let records: Vec<RecordAndOffset> = records
            .into_iter()
            .filter(|r| r.offset >= next && r.offset < end)
            .collect();
        let Some(after) = records.last().map(|r| r.offset + 1) else {
            // Nothing at `next` though the partition holds messages up to `end`. Stepping over
            // the offset could skip a message, so the run stops and says what it met.
            bail!(
                "the broker returned no message at offset {next} of {}, though it holds messages up to offset {} (a transactional topic's markers, which loglake cannot read past yet, or a broker that cannot fetch from inside a record batch); nothing of this partition was committed by this run",
                range.location(),
                end - 1
            );
        };
        next = after;
        if next < end {
            in_flight = Some(fetch(next));
        }
        for r in &records {
            push_message(&mut batch, r);
            read += 1;
            if batch.rows >= batch_rows {
                send(batch.finish(&schema, &mut same)?)?;
            }
        }
        if range.first.is_none() {
            range.first = records.first().map(|r| (r.offset, fingerprint_of(r)));
        }
    }
    if batch.rows > 0 {
        send(batch.finish(&schema, &mut same)?)?;
    }
    range.messages = read;
    Ok(read)
}

fn push_message(batch: &mut BatchBuilder, r: &RecordAndOffset) {
    let offset = r.offset as u64;
    let time_ms = r.record.timestamp.timestamp_millis();
    batch.push_message(r.record.key.as_deref(), time_ms);
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

fn offset_error_hint(range: &Range, offset: i64) -> String {
    format!(
        "fetching {} from offset {offset} (if retention deleted it meanwhile, run 01-bronze again: it reports what was lost)",
        range.location()
    )
}

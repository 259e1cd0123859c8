//! `01-bronze --kafka` against a real Kafka-protocol broker: `TEST_KAFKA_BROKERS`
//! (`host:port`). CI starts tansu and sets it; then these tests must pass, and without it
//! they say so and skip. Messages are produced here with the same client loglake reads with.
//!
//! Asserts what a user feeding loglake from Kafka relies on: every message lands in bronze
//! once, with its topic, partition, offset, key and timestamp; a later batch reads only what
//! arrived since; a recreated topic is reported, with what was lost, and read again as a new
//! incarnation; and a topic holding a file's lines gives the file's anomalies.
//!
//! Messages deleted by retention before they were read are counted by the same code that
//! tells a recreated topic (`offsets::start`, unit-tested there), but not here: tansu's
//! in-memory storage does not implement DeleteRecords, which such a test would need.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use loglake::lake::{Lake, Layer, tables};
use polars::prelude::*;
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;

const DAY: &str = "2026-11-21";
/// How the lines produced here start, in the format [`FORMAT`] reads.
const LINE_HEAD: &str = "2026-11-21 10:00:00 INFO app: ";
const FORMAT: &str = "<Date> <Time> <Level> <Component>: <Content>";

fn brokers() -> Option<String> {
    match std::env::var("TEST_KAFKA_BROKERS") {
        Ok(b) => Some(b),
        Err(_) => {
            eprintln!("TEST_KAFKA_BROKERS is not set: skipping the Kafka tests (CI sets it)");
            None
        }
    }
}

/// A message's key or value, if it has one.
type Bytes<'a> = Option<&'a [u8]>;

/// A topic of its own on the test broker, and a client to produce to it.
struct Topic {
    runtime: tokio::runtime::Runtime,
    client: Client,
    name: String,
    partitions: i32,
}

impl Topic {
    fn create(brokers: &str, what: &str, partitions: i32) -> Topic {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("{what}-{}-{nanos}", std::process::id());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let client = runtime
            .block_on(ClientBuilder::new(vec![brokers.to_string()]).build())
            .unwrap();
        let topic = Topic {
            runtime,
            client,
            name,
            partitions,
        };
        topic.create_again();
        topic
    }

    fn create_again(&self) {
        self.runtime
            .block_on(async {
                self.client
                    .controller_client()?
                    .create_topic(&self.name, self.partitions, 1, 5_000)
                    .await
            })
            .unwrap();
    }

    /// Deleted and created again, empty, as an operator recreating it does.
    fn recreate(&self) {
        self.delete();
        std::thread::sleep(Duration::from_millis(200));
        self.create_again();
    }

    fn delete(&self) {
        self.runtime
            .block_on(async {
                self.client
                    .controller_client()?
                    .delete_topic(&self.name, 5_000)
                    .await
            })
            .unwrap();
    }

    /// Produce `messages` (key, value) to `partition`, stamped `at` + their index in ms.
    fn produce(&self, partition: i32, messages: &[(Bytes, Bytes)], at: i64) {
        let stamped: Vec<_> = (messages.iter().enumerate())
            .map(|(i, (key, value))| (*key, *value, at + i as i64))
            .collect();
        self.produce_stamped(partition, &stamped);
    }

    /// Produce `messages` (key, value, timestamp in ms) to `partition`.
    fn produce_stamped(&self, partition: i32, messages: &[(Bytes, Bytes, i64)]) {
        let records = messages
            .iter()
            .map(|(key, value, at)| Record {
                key: key.map(<[u8]>::to_vec),
                value: value.map(<[u8]>::to_vec),
                headers: Default::default(),
                timestamp: chrono::DateTime::from_timestamp_millis(*at).unwrap(),
            })
            .collect();
        self.runtime
            .block_on(async {
                self.client
                    .partition_client(&self.name, partition, UnknownTopicHandling::Retry)
                    .await?
                    .produce(records, Compression::NoCompression)
                    .await
            })
            .unwrap();
    }

    /// `count` lines `2026-11-21 10:00:00 INFO app: <prefix> <i>` to `partition`.
    fn lines(&self, partition: i32, prefix: &str, count: usize) {
        let texts: Vec<String> = (0..count)
            .map(|i| format!("{LINE_HEAD}{prefix} {i}"))
            .collect();
        let messages: Vec<_> = texts.iter().map(|t| (None, Some(t.as_bytes()))).collect();
        self.produce(partition, &messages, 1_700_000_000_000);
    }
}

/// `loglake` on `lake` for source `app` and batch [`DAY`], with `args`.
fn command(lake: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loglake"));
    command
        .args(["--lake", lake.to_str().unwrap(), "--source", "app"])
        .args(["--date", DAY])
        .args(args)
        .env("RUST_LOG", "warn");
    command
}

/// [`command`] with `brokers` as the source's Kafka brokers (as its config would name them).
fn loglake(lake: &Path, brokers: &str, args: &[&str]) -> Output {
    command(lake, args)
        .env("LOGLAKE__SOURCES__APP__KAFKA_BROKERS", brokers)
        .output()
        .unwrap()
}

/// A lake of its own, initialised (the folder goes when the first value is dropped).
fn initialised_lake(brokers: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ok(loglake(&lake, brokers, &["00-init"]));
    (dir, lake)
}

/// `01-bronze --kafka` on `topic`, which must succeed; what it said.
fn ingest(lake: &Path, brokers: &str, topic: &Topic) -> String {
    ok(loglake(
        lake,
        brokers,
        &["01-bronze", "--kafka", &topic.name],
    ))
}

fn ok(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "loglake failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned() + &stderr
}

/// The day's bronze rows of source `app`, ordered by where they came from.
fn bronze(lake: &Path) -> DataFrame {
    Lake::new(lake)
        .scan_partition(Layer::Bronze, tables::LINES, "app", DAY.parse().unwrap())
        .unwrap()
        .expect("bronze was committed")
        .sort(["file", "byte_offset"], Default::default())
        .collect()
        .unwrap()
}

#[test]
fn each_message_lands_once_with_its_provenance() {
    let Some(brokers) = brokers() else { return };
    let (_dir, lake) = initialised_lake(&brokers);
    let topic = Topic::create(&brokers, "once", 3);
    topic.lines(0, "zero", 100);
    topic.produce(
        0,
        &[
            (
                Some(b"host-7"),
                Some(b"2026-11-21 10:00:01 INFO app: keyed line"),
            ),
            (
                None,
                Some(b"2026-11-21 10:00:02 INFO app: not utf-8 \xff here"),
            ),
            (
                None,
                Some(b"2026-11-21 10:00:03 INFO app: ends in a newline\n"),
            ),
            (Some(b"gone"), None),
        ],
        1_800_000_000_000,
    );
    topic.lines(1, "one", 50);
    let said = ingest(&lake, &brokers, &topic);
    assert!(
        said.contains("154 Kafka message(s) from 2 partition(s)"),
        "{said}"
    );
    assert!(said.contains("1 partition(s) with nothing new"), "{said}");

    let rows = bronze(&lake);
    assert_eq!(rows.height(), 154);
    let file = rows.column("file").unwrap().str().unwrap();
    let offset = rows.column("byte_offset").unwrap().u64().unwrap();
    let line_no = rows.column("line_no").unwrap().u64().unwrap();
    let line = rows.column("line").unwrap().str().unwrap();
    let p0 = format!("kafka://{}/0", topic.name);
    assert_eq!(file.get(0), Some(p0.as_str()));
    assert_eq!((offset.get(0), line_no.get(0)), (Some(0), Some(1)));
    assert_eq!(line.get(0), Some(format!("{LINE_HEAD}zero 0").as_str()));
    // The four special messages follow partition 0's hundred lines, at offsets 100..103.
    let key = rows.column("message_key").unwrap().binary().unwrap();
    let time = rows.column("message_time").unwrap().datetime().unwrap();
    assert_eq!(key.get(100), Some(&b"host-7"[..]));
    assert!(line.get(100).unwrap().ends_with(": keyed line"));
    assert_eq!(time.phys.get(100), Some(1_800_000_000_000));
    assert_eq!(key.get(101), None);
    let raw = rows.column("raw").unwrap().binary().unwrap();
    assert!(raw.get(101).unwrap().ends_with(b": not utf-8 \xff here"));
    assert!(line.get(102).unwrap().ends_with(": ends in a newline"));
    let read_error = rows.column("read_error").unwrap().str().unwrap();
    assert!(read_error.get(103).unwrap().contains("tombstone"));
    assert_eq!(read_error.null_count(), 153);
    let p1 = format!("kafka://{}/1", topic.name);
    assert_eq!(file.get(104), Some(p1.as_str()));

    // A later batch reads what arrived since, and only that.
    topic.lines(2, "two", 30);
    topic.lines(0, "zero again", 5);
    let said = ingest(&lake, &brokers, &topic);
    assert!(
        said.contains("35 Kafka message(s) from 2 partition(s)"),
        "{said}"
    );
    let rows = bronze(&lake);
    assert_eq!(rows.height(), 189);
    let unique = rows
        .select(["file", "byte_offset"])
        .unwrap()
        .unique_stable(None, UniqueKeepStrategy::Any, None)
        .unwrap();
    assert_eq!(unique.height(), 189, "a message landed twice");
    let said = ingest(&lake, &brokers, &topic);
    assert!(said.contains("nothing to do"), "{said}");

    // Silver accounts for every row: the tombstone is quarantined with its reason.
    let said = ok(loglake(&lake, &brokers, &["02-silver", "--format", FORMAT]));
    assert!(said.contains("189 lines"), "{said}");
    assert!(said.contains("1 quarantined"), "{said}");
}

#[test]
fn a_recreated_topic_is_reported_and_read_as_a_new_incarnation() {
    let Some(brokers) = brokers() else { return };
    let (_dir, lake) = initialised_lake(&brokers);
    let topic = Topic::create(&brokers, "recreated", 1);
    topic.lines(0, "first life", 10);
    ingest(&lake, &brokers, &topic);

    // Deleted and created again with fewer messages: offsets went back.
    topic.recreate();
    topic.lines(0, "second life", 4);
    let said = ingest(&lake, &brokers, &topic);
    assert!(said.contains("4 Kafka message(s)"), "{said}");
    assert!(said.contains("the topic was recreated"), "{said}");
    assert!(
        said.contains("lost messages upstream or were recreated"),
        "{said}"
    );
    let rows = bronze(&lake);
    assert_eq!(rows.height(), 14);
    let second = format!("kafka://{}/0?incarnation=1", topic.name);
    let file = rows.column("file").unwrap().str().unwrap();
    assert_eq!(
        file.iter().filter(|f| *f == Some(second.as_str())).count(),
        4
    );
    let lost = Lake::new(&lake)
        .scan_partition(
            Layer::Quarantine,
            tables::INPUTS,
            "app",
            DAY.parse().unwrap(),
        )
        .unwrap()
        .expect("the loss is recorded")
        .collect()
        .unwrap();
    let reason = lost
        .column("reason")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap();
    assert!(reason.contains("the topic was recreated"), "{reason}");

    // Recreated again, this time grown past what was read: the first message read is no
    // longer the one at its offset.
    topic.recreate();
    topic.lines(0, "third life", 6);
    let said = ingest(&lake, &brokers, &topic);
    assert!(said.contains("6 Kafka message(s)"), "{said}");
    assert!(said.contains("the topic was recreated"), "{said}");
    assert_eq!(bronze(&lake).height(), 20);

    // Recreated and still empty: reported once, by the batch that found it.
    topic.recreate();
    let said = ingest(&lake, &brokers, &topic);
    assert!(said.contains("nothing to do"), "{said}");
    assert!(said.contains("the topic was recreated"), "{said}");
    let said = ingest(&lake, &brokers, &topic);
    assert!(!said.contains("was recreated"), "reported again: {said}");
    topic.lines(0, "fourth life", 3);
    let said = ingest(&lake, &brokers, &topic);
    assert!(said.contains("3 Kafka message(s)"), "{said}");
    assert!(!said.contains("was recreated"), "reported again: {said}");
    assert_eq!(bronze(&lake).height(), 23);
    // The part of no rows that moved bronze's record on reads as nothing.
    let said = ok(loglake(&lake, &brokers, &["02-silver", "--format", FORMAT]));
    assert!(said.contains("23 lines parsed"), "{said}");
}

#[test]
fn mistakes_fail_with_what_to_do() {
    let Some(brokers) = brokers() else { return };
    let (_dir, lake) = initialised_lake(&brokers);
    let out = loglake(
        &lake,
        &brokers,
        &["01-bronze", "--kafka", "no-such-topic-here"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // No brokers configured for the source.
    let out = command(&lake, &["01-bronze", "--kafka", "logs"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--kafka-brokers"), "{stderr}");
}

/// The real HDFS sessions' lines (`../shared/data`), produced to three partitions in blocks
/// dealt round-robin, so that a block's lines are spread over partitions, and stamped in the
/// order they were written, as a shipper stamps what it reads, give the anomalies the file
/// gives. HDFS stamps its lines to the second, so many share a time and only bronze's order
/// orders them: appending the partitions one after another instead of merging them changes
/// the sessions' event sequences, and this test fails.
#[test]
fn a_topic_gives_the_anomalies_of_the_same_lines_in_a_file() {
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = common::shared_data() else {
        return;
    };
    let log = data.join("hdfs-sessions-dev/HDFS.log");
    let text = std::fs::read(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let topic = Topic::create(&brokers, "same", 3);
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    for (block, chunk) in lines.chunks(300).enumerate() {
        let stamped: Vec<_> = (chunk.iter().enumerate())
            .map(|(i, line)| {
                (
                    None,
                    Some(*line),
                    1_700_000_000_000 + (block * 300 + i) as i64,
                )
            })
            .collect();
        topic.produce_stamped((block % 3) as i32, &stamped);
    }
    let (from_file, from_topic) = (dir.path().join("file"), dir.path().join("topic"));
    let hdfs = |lake: &Path, input: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_loglake"));
        cmd.args(["--lake", lake.to_str().unwrap(), "--source", "hdfs"])
            .args(["--date", DAY, "run"])
            .args(input)
            .env("LOGLAKE__SOURCES__HDFS__FORMAT", "hdfs")
            .env("LOGLAKE__SOURCES__HDFS__SESSION_KEY", r"blk_-?\d+")
            .env("RUST_LOG", "warn");
        ok(cmd.output().unwrap())
    };
    hdfs(&from_file, &["--input", log.to_str().unwrap()]);
    let said = hdfs(
        &from_topic,
        &["--kafka", &topic.name, "--kafka-brokers", &brokers],
    );
    assert!(
        said.contains("Kafka message(s) from 3 partition(s)"),
        "{said}"
    );
    // Samples name where their lines came from (a file, or a topic's partition and offset),
    // and so does an event's key (`<file>:<line>`, `kafka://<topic>/<partition>:<offset+1>`),
    // which names its anomaly and the incident it opens: windows and sessions must match in
    // all but their incident's name, events in everything but those names.
    let found = |lake: &Path, events: bool| {
        let names: &[&str] = if events {
            &["details", "incident_id", "anomaly_id", "entity_key"]
        } else {
            &["details", "incident_id"]
        };
        let all = common::lake_anomalies(lake.to_str().unwrap(), "hdfs", &[DAY], names);
        let is_event = all
            .column("granularity")
            .unwrap()
            .str()
            .unwrap()
            .equal("event");
        // Filtering keeps lake_anomalies' order (sorted by every column left).
        all.filter(&if events { is_event } else { !is_event })
            .unwrap()
    };
    let incidents = |lake: &Path| {
        let all = common::lake_anomalies(lake.to_str().unwrap(), "hdfs", &[DAY], &[]);
        all.column("incident_id").unwrap().n_unique().unwrap()
    };
    assert_eq!(incidents(&from_file), incidents(&from_topic));
    for events in [false, true] {
        let (file_found, topic_found) = (found(&from_file, events), found(&from_topic, events));
        assert_eq!(file_found.height(), topic_found.height(), "events {events}");
        let differ: Vec<String> = file_found
            .get_column_names()
            .iter()
            .filter(|c| {
                !file_found
                    .column(c)
                    .unwrap()
                    .equals_missing(topic_found.column(c).unwrap())
            })
            .map(|c| c.to_string())
            .collect();
        assert!(
            differ.is_empty(),
            "events {events}: the anomalies differ in {differ:?}"
        );
    }
    let found = common::lake_anomalies(from_file.to_str().unwrap(), "hdfs", &[DAY], &[]);
    assert!(found.height() > 20, "{found}");
}

/// A TCP relay to a broker that goes silent — holds every connection open and forwards
/// nothing more — once `stall_after` bytes have come back through it after it is armed: a
/// broker that stops answering in the middle of a fetch (killed, partitioned away).
struct Relay {
    port: u16,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    fn start(upstream: u16, stall_after: u64) -> Relay {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let (silent, passed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let flags = (armed.clone(), silent, passed);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                for (from, to, counted) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        false,
                    ),
                    (server, client, true),
                ] {
                    let (armed, silent, passed) = flags.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let (mut from, mut to) = (from, to);
                        let mut buf = vec![0u8; 16 << 10];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            if counted && armed.load(Ordering::SeqCst) {
                                let total = passed.fetch_add(n as u64, Ordering::SeqCst);
                                if total + n as u64 > stall_after {
                                    silent.store(true, Ordering::SeqCst);
                                }
                            }
                            if silent.load(Ordering::SeqCst) {
                                continue; // read and dropped: the peer hears nothing more
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    });
                }
            }
        });
        Relay { port, armed }
    }
}

/// A broker that stops answering mid-fetch ends the batch within the documented 30 s, with
/// one line that says so, and commits nothing of the topic. It needs a broker of its own
/// (tansu from `LOGLAKE_TANSU_ROOT`, which CI sets with `TEST_KAFKA_BROKERS`) that advertises
/// the relay's address, so that every request goes through the relay.
#[test]
fn a_broker_that_stops_answering_mid_fetch_ends_the_batch_in_time() {
    let Some(_) = brokers() else { return };
    let root = std::env::var("LOGLAKE_TANSU_ROOT")
        .expect("CI sets LOGLAKE_TANSU_ROOT (the tansu build) with TEST_KAFKA_BROKERS");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let relay = Relay::start(port, 256 << 10);
    let mut broker = Command::new(Path::new(&root).join("bin/tansu"))
        .args([
            "broker",
            "--listener-url",
            &format!("tcp://127.0.0.1:{port}"),
        ])
        .args([
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{}", relay.port),
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "the test's own broker did not start");
    let through = format!("127.0.0.1:{}", relay.port);
    let (_dir, lake) = initialised_lake(&through);
    let topic = Topic::create(&through, "stall", 1);
    topic.lines(0, "stalled", 30_000);

    relay.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let started = std::time::Instant::now();
    let out = loglake(&lake, &through, &["01-bronze", "--kafka", &topic.name]);
    let took = started.elapsed();
    let _ = broker.kill();
    let _ = broker.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("did not answer within 30 s"), "{stderr}");
    assert!(took < Duration::from_secs(75), "took {took:?}: {stderr}");
    let errors = stderr
        .lines()
        .filter(|l| l.starts_with("loglake: error"))
        .count();
    assert_eq!(errors, 1, "{stderr}");
    let committed = Lake::new(&lake)
        .scan_partition(Layer::Bronze, tables::LINES, "app", DAY.parse().unwrap())
        .unwrap();
    assert!(committed.is_none(), "a part was committed");
}

//! Produce a file's lines to a Kafka topic, for the Kafka scripts in `scripts/` (a topic to
//! ingest, kill and ingest again; a topic to time): one message per line, sent in batches of
//! `--block` lines. With `--key REGEX` each line's first match is its message key and picks its
//! partition, as a shipper keying by host or request does (a key's lines stay in order);
//! without, blocks are dealt round-robin over the partitions.
//!
//! `cargo run --release --example kafka_produce -- --brokers 127.0.0.1:9092 --topic logs
//!  --partitions 4 --create [--key 'blk_-?\d+'] FILE`

use std::io::BufRead;
use std::time::Duration;

use rskafka::client::ClientBuilder;
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::record::Record;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut brokers, mut topic, mut partitions, mut create, mut block, mut file) =
        (String::new(), String::new(), 1i32, false, 1000usize, None);
    let mut key: Option<regex::bytes::Regex> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--brokers" => brokers = args.next().ok_or("--brokers needs a value")?,
            "--topic" => topic = args.next().ok_or("--topic needs a value")?,
            "--partitions" => {
                partitions = args.next().ok_or("--partitions needs a value")?.parse()?
            }
            "--block" => block = args.next().ok_or("--block needs a value")?.parse()?,
            "--create" => create = true,
            "--key" => {
                key = Some(regex::bytes::Regex::new(
                    &args.next().ok_or("--key needs a regex")?,
                )?)
            }
            other => file = Some(other.to_string()),
        }
    }
    let file = file.ok_or("give the file whose lines to produce")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client = ClientBuilder::new(vec![brokers]).build().await?;
        if create {
            client
                .controller_client()?
                .create_topic(&topic, partitions, 1, 5_000)
                .await?;
        }
        let mut writers = Vec::new();
        for p in 0..partitions {
            writers.push(
                client
                    .partition_client(topic.clone(), p, UnknownTopicHandling::Retry)
                    .await?,
            );
        }
        let reader = std::io::BufReader::new(std::fs::File::open(&file)?);
        let mut pending: Vec<Vec<Record>> = vec![Vec::new(); writers.len()];
        let mut n = 0u64;
        let stamp = chrono::Utc::now();
        for line in reader.split(b'\n') {
            let line = line?;
            let found = key
                .as_ref()
                .and_then(|k| k.find(&line))
                .map(|m| m.as_bytes().to_vec());
            // FNV-1a of the key: the same key, the same partition, on every run.
            let p = match &found {
                Some(k) => {
                    let hash = k.iter().fold(0xcbf29ce484222325u64, |h, b| {
                        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
                    });
                    (hash % writers.len() as u64) as usize
                }
                None => (n as usize / block) % writers.len(),
            };
            pending[p].push(Record {
                key: found,
                value: Some(line),
                headers: Default::default(),
                timestamp: stamp + Duration::from_millis(n),
            });
            n += 1;
            if pending[p].len() >= block {
                writers[p]
                    .produce(std::mem::take(&mut pending[p]), Compression::Zstd)
                    .await?;
            }
        }
        for (p, records) in pending.into_iter().enumerate() {
            writers[p].produce(records, Compression::Zstd).await?;
        }
        println!("produced {n} messages to {topic} over {partitions} partition(s)");
        Ok(())
    })
}

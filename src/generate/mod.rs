//! `loglake generate`: synthetic application logs with ground-truth anomaly labels.
//!
//! Five services serve requests; each request is a session (`req=<id>`) whose events follow
//! the service's flow, with realistic optional branches (payment retries, cache misses, failed
//! logins), per-step latencies, and background lines (health checks, GC pauses, the odd
//! upstream timeout). Traffic follows a daily curve (peak mid-afternoon, trough at night) and
//! a weekly one (weekends quieter).
//!
//! Each day gets injected anomalies of six kinds, written to `labels.jsonl` beside the logs:
//!
//! | kind              | granularity | what changes                                              |
//! |-------------------|-------------|-----------------------------------------------------------|
//! | `volume_spike`    | window      | one service gets 8× its request rate for 15 minutes       |
//! | `error_burst`     | window      | one service logs ~30 ERROR lines a minute for 10 minutes  |
//! | `never_seen`      | event       | two lines a day with a message the system never logs otherwise (each new for 64 days) |
//! | `out_of_range`    | event       | one line whose value is far outside what it usually reports (a health check taking seconds, a minute-long GC pause); also the completion line of each latency outlier, whose `duration_ms` is one |
//! | `broken_session`  | session     | a request stops after its first step, or loops on a step  |
//! | `latency_outlier` | session     | a request takes 15–60 s instead of a few hundred ms       |
//!
//! Output: `<out>/logs/<source>-<YYYY-MM-DD>.log` per day (format preset `generator`, session
//! key `req=(\S+)`), and `<out>/labels.jsonl` beside (not inside) the logs folder, so that
//! ingesting the folder ingests only logs. Everything is seeded: the same options give the same
//! bytes.

mod injections;

use std::fmt::Write as _;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{Datelike, NaiveDate, TimeZone, Utc, Weekday};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// The session key regex matching generated request ids.
pub const SESSION_KEY: &str = r"req=(\S+)";

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub out_dir: PathBuf,
    pub source: String,
    pub start: NaiveDate,
    pub days: u32,
    /// Approximate lines per day (before injected anomalies).
    pub lines_per_day: u64,
    pub seed: u64,
}

/// One injected anomaly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Label {
    pub kind: String,
    pub granularity: String,
    pub service: String,
    /// UTC, RFC 3339.
    pub start: String,
    pub end: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line number in `file` (event labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct GenerateSummary {
    pub files: Vec<PathBuf>,
    pub labels_path: PathBuf,
    pub lines: u64,
    pub labels: usize,
}

const SERVICES: [&str; 5] = ["checkout", "payments", "inventory", "auth", "search"];
/// Share of requests per service.
const SERVICE_WEIGHT: [f64; 5] = [0.25, 0.2, 0.25, 0.15, 0.15];
const LEVELS: [&str; 4] = ["DEBUG", "INFO", "WARN", "ERROR"];
const DEBUG: u8 = 0;
const INFO: u8 = 1;
const WARN: u8 = 2;
const ERROR: u8 = 3;
/// Average lines per request, used to turn lines/day into a request rate.
const LINES_PER_REQUEST: f64 = 4.1;

/// Failures that appear once each. Two a day, every phrase after a two-word subsystem that
/// changes each time the eight phrases have all been used, so no message repeats within 64
/// days. Two words, not one: a template miner rightly reads a single word that takes more than
/// a few values in otherwise equal messages as a parameter (`kernel: out of memory …`,
/// `jvm: out of memory …`, … are one event), and then a 14-day log says each "never seen"
/// message three or four times.
const NEVER_SEEN_SUBSYSTEMS: [&str; 16] = [
    "kernel watchdog",
    "jvm supervisor",
    "tls manager",
    "storage agent",
    "ntp monitor",
    "postgres proxy",
    "config loader",
    "executor pool",
    "raft leader",
    "dns resolver",
    "cgroup controller",
    "nfs client",
    "ldap bind",
    "kafka producer",
    "redis sentinel",
    "etcd lease",
];
const NEVER_SEEN: [&str; 8] = [
    "out of memory: killed process {n} (java) total-vm {n}kB",
    "TLS certificate for api.internal expired {n} days ago",
    "segfault at 0x{h} ip 0x{h} error 4 in libcrypto.so",
    "filesystem /data remounted read-only after I/O error on sdb{n}",
    "clock skew detected offset={n}ms against ntp pool",
    "replication slot lag exceeded limit lag_bytes={n}",
    "unexpected EOF reading config file /etc/app/override-{n}.yaml",
    "thread pool exhausted active={n} queued={n} rejected={n}",
];

struct Line {
    ts_ms: i64,
    seq: u64,
    service: u8,
    level: u8,
    text: String,
    /// Index into the labels list when this line is itself an event label.
    label: Option<usize>,
}

struct Day<'a> {
    rng: Xoshiro256PlusPlus,
    lines: Vec<Line>,
    seq: u64,
    next_req: u64,
    day_index: u32,
    labels: &'a mut Vec<Label>,
}

fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

impl Day<'_> {
    /// Label line `idx` as an event anomaly of `kind`; its line number is filled in when the
    /// day is written in time order.
    fn label_line(&mut self, idx: usize, kind: &str, file_name: &str) {
        let line = &mut self.lines[idx];
        line.label = Some(self.labels.len());
        self.labels.push(Label {
            kind: kind.into(),
            granularity: "event".into(),
            service: SERVICES[line.service as usize].into(),
            start: rfc3339(line.ts_ms),
            end: rfc3339(line.ts_ms + 1),
            session_key: None,
            file: Some(file_name.to_string()),
            line: None,
        });
    }

    fn push(&mut self, ts_ms: i64, service: usize, level: u8, text: String) -> usize {
        self.seq += 1;
        self.lines.push(Line {
            ts_ms,
            seq: self.seq,
            service: service as u8,
            level,
            text,
            label: None,
        });
        self.lines.len() - 1
    }

    fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda <= 0.0 {
            return 0;
        }
        if lambda < 30.0 {
            let l = (-lambda).exp();
            let (mut k, mut p) = (0u64, 1.0f64);
            loop {
                p *= self.rng.r#gen::<f64>();
                if p <= l {
                    return k;
                }
                k += 1;
            }
        }
        // Normal approximation for large rates (Box–Muller).
        let (u1, u2): (f64, f64) = (self.rng.r#gen::<f64>().max(1e-12), self.rng.r#gen());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        (lambda + lambda.sqrt() * z).round().max(0.0) as u64
    }

    fn ip(&mut self) -> String {
        format!(
            "10.{}.{}.{}",
            self.rng.gen_range(0..4),
            self.rng.gen_range(0..255),
            self.rng.gen_range(1..255)
        )
    }

    /// The steps of one normal request of `service`: (level, text) in order.
    fn flow(&mut self, service: usize, req: &str) -> Vec<(u8, String)> {
        let r = &mut self.rng;
        let user = r.gen_range(1000..99999);
        let mut steps = Vec::with_capacity(7);
        match service {
            0 => {
                let items = r.gen_range(1..9);
                let total = r.gen_range(500..90000) as f64 / 100.0;
                let provider = ["stripe", "adyen", "paypal"][r.gen_range(0..3)];
                steps.push((
                    INFO,
                    format!("request started req={req} method=POST path=/checkout user=u{user}"),
                ));
                steps.push((
                    INFO,
                    format!("cart loaded req={req} items={items} total={total:.2}"),
                ));
                if r.gen_bool(0.10) {
                    steps.push((
                        WARN,
                        format!(
                            "payment retry req={req} attempt={} provider={provider}",
                            r.gen_range(1..3)
                        ),
                    ));
                }
                steps.push((
                    INFO,
                    format!("payment authorized req={req} provider={provider} amount={total:.2}"),
                ));
                steps.push((
                    INFO,
                    format!(
                        "order created req={req} order_id=o{}",
                        r.gen_range(100000..999999)
                    ),
                ));
            }
            1 => {
                let amount = r.gen_range(100..50000) as f64 / 100.0;
                let currency = ["EUR", "USD", "GBP"][r.gen_range(0..3)];
                steps.push((
                    INFO,
                    format!("charge requested req={req} amount={amount:.2} currency={currency}"),
                ));
                steps.push((
                    INFO,
                    format!(
                        "fraud check passed req={req} score={:.3}",
                        r.r#gen::<f64>() * 0.3
                    ),
                ));
                steps.push((
                    INFO,
                    format!("charge captured req={req} txn=0x{:08x}", r.r#gen::<u32>()),
                ));
            }
            2 => {
                let sku = format!("SKU-{}", r.gen_range(10000..99999));
                steps.push((INFO, format!("stock lookup req={req} sku={sku}")));
                if r.gen_bool(0.3) {
                    steps.push((
                        INFO,
                        format!("cache miss req={req} sku={sku} loading from db"),
                    ));
                }
                steps.push((
                    INFO,
                    format!(
                        "stock level req={req} sku={sku} qty={}",
                        r.gen_range(0..500)
                    ),
                ));
            }
            3 => {
                let ip = format!(
                    "10.{}.{}.{}",
                    r.gen_range(0..4),
                    r.gen_range(0..255),
                    r.gen_range(1..255)
                );
                steps.push((
                    INFO,
                    format!("login attempt req={req} user=u{user} ip={ip}"),
                ));
                if r.gen_bool(0.05) {
                    steps.push((
                        WARN,
                        format!("login failed req={req} user=u{user} reason=bad_password"),
                    ));
                } else {
                    steps.push((
                        INFO,
                        format!("token issued req={req} user=u{user} ttl=3600"),
                    ));
                }
            }
            _ => {
                steps.push((
                    INFO,
                    format!(
                        "query received req={req} terms={} page={}",
                        r.gen_range(1..6),
                        r.gen_range(1..4)
                    ),
                ));
                for shard in 0..3 {
                    steps.push((
                        DEBUG,
                        format!(
                            "index shard {shard} responded req={req} in {} ms",
                            r.gen_range(2..40)
                        ),
                    ));
                }
            }
        }
        steps
    }

    /// Emit one request starting at `start_ms`. `stretch` multiplies step latencies.
    fn request(&mut self, service: usize, start_ms: i64, broken: bool, stretch: f64) -> String {
        self.next_req += 1;
        let req = format!(
            "{}{}-{:06x}",
            &SERVICES[service][..2],
            self.day_index,
            self.next_req
        );
        let mut steps = self.flow(service, &req);
        let mut truncated = false;
        if broken {
            if self.rng.gen_bool(0.5) {
                // Stops after its first step: no further steps, no completion line.
                steps.truncate(1);
                truncated = true;
            } else {
                // Loops on its second step before completing.
                let step = steps[1.min(steps.len() - 1)].clone();
                for _ in 0..4 {
                    steps.insert(1, step.clone());
                }
            }
        }
        let mut t = start_ms;
        let mut warned = false;
        for (level, text) in steps {
            warned |= level == WARN;
            self.push(t, service, level, text);
            // Step latencies are log-normal (median 15 ms), as service latencies are in practice.
            let (u1, u2): (f64, f64) = (self.rng.r#gen::<f64>().max(1e-12), self.rng.r#gen());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            t += ((15.0 * (0.5 * z).exp()).max(1.0) * stretch) as i64;
        }
        if !truncated {
            let status = if service == 3 && warned { 401 } else { 200 };
            self.push(
                t,
                service,
                INFO,
                format!(
                    "request completed req={req} status={status} duration_ms={}",
                    t - start_ms
                ),
            );
        }
        req
    }
}

/// Relative traffic at a moment: daily curve × weekly factor (mean about 1 on weekdays).
fn seasonality(date: NaiveDate, minute_of_day: u32) -> f64 {
    let hour = minute_of_day as f64 / 60.0;
    let daily = 1.0 + 0.6 * ((hour - 9.0) / 24.0 * 2.0 * std::f64::consts::PI).sin();
    let weekly = match date.weekday() {
        Weekday::Sat | Weekday::Sun => 0.7,
        _ => 1.0,
    };
    daily * weekly
}

pub fn generate(opts: &GenerateOptions) -> Result<GenerateSummary> {
    if opts.days == 0 {
        anyhow::bail!("--days must be at least 1");
    }
    // The source names the log files: a name with `/` or `..` would write outside `--out`.
    if !crate::lake::is_folder_name(&opts.source) {
        anyhow::bail!(
            "source name {:?} must use only letters, digits, - and _ (it names the log files)",
            opts.source
        );
    }
    let logs_dir = opts.out_dir.join("logs");
    fs::create_dir_all(&logs_dir).with_context(|| format!("creating {}", logs_dir.display()))?;
    let mut labels: Vec<Label> = Vec::new();
    let mut files = Vec::new();
    let mut total_lines = 0u64;
    let background_per_day = (SERVICES.len() * 1440) as f64 * 1.25;
    let requests_per_minute = ((opts.lines_per_day as f64 - background_per_day)
        .max(opts.lines_per_day as f64 * 0.2))
        / 1440.0
        / LINES_PER_REQUEST;

    for d in 0..opts.days {
        let date = opts.start + chrono::Duration::days(d as i64);
        let day_start = date
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        let file_name = format!("{}-{}.log", opts.source, date.format("%Y-%m-%d"));
        let mut day = Day {
            rng: Xoshiro256PlusPlus::seed_from_u64(opts.seed ^ (0x5EED_0000 + d as u64)),
            lines: Vec::with_capacity(opts.lines_per_day as usize + 1024),
            seq: 0,
            next_req: 0,
            day_index: d,
            labels: &mut labels,
        };

        // Plan the day's injections first, so the normal traffic loop can honour them.
        let plan = day.plan_window_anomalies(day_start, &file_name);
        for minute in 0..1440u32 {
            day.traffic_minute(date, day_start, minute, requests_per_minute, &plan);
        }
        day.session_anomalies(day_start, &file_name);
        day.never_seen(day_start, &file_name);
        day.value_out_of_range(day_start, &file_name);

        // Time order, then write; event labels learn their line numbers here.
        let mut lines = std::mem::take(&mut day.lines);
        lines.sort_unstable_by_key(|l| (l.ts_ms, l.seq));
        let path = logs_dir.join(&file_name);
        write_day(&path, &lines, &mut labels)?;
        total_lines += lines.len() as u64;
        files.push(path);
    }

    let labels_path = opts.out_dir.join("labels.jsonl");
    let mut out = BufWriter::new(fs::File::create(&labels_path)?);
    for l in &labels {
        serde_json::to_writer(&mut out, l)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(GenerateSummary {
        files,
        labels_path,
        lines: total_lines,
        labels: labels.len(),
    })
}

fn write_day(path: &Path, lines: &[Line], labels: &mut [Label]) -> Result<()> {
    let file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut buf = String::with_capacity(256);
    // Timestamps are formatted by hand: chrono's formatter would dominate the run time.
    let mut cached_second = i64::MIN;
    let mut prefix = String::new();
    for (i, line) in lines.iter().enumerate() {
        let second = line.ts_ms.div_euclid(1000);
        if second != cached_second {
            cached_second = second;
            prefix = Utc
                .timestamp_opt(second, 0)
                .single()
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
                .unwrap_or_default();
        }
        buf.clear();
        let _ = writeln!(
            buf,
            "{prefix}.{:03}Z {} {}: {}",
            line.ts_ms.rem_euclid(1000),
            LEVELS[line.level as usize],
            SERVICES[line.service as usize],
            line.text
        );
        out.write_all(buf.as_bytes())?;
        if let Some(l) = line.label {
            labels[l].line = Some(i as u64 + 1);
        }
    }
    out.flush()?;
    Ok(())
}

/// Read `labels.jsonl`.
pub fn read_labels(path: &Path) -> Result<Vec<Label>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("reading labels {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}: not a label", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests;

//! Load for `loglake serve` (scripts/bench_serve.sh): `CONNECTIONS` keep-alive connections,
//! each sending `REQUESTS / CONNECTIONS` scoring requests of `BATCH` lines taken in turn from
//! a log file, then lines/s and the latency percentiles. Bounded: it stops after its requests.
//!
//! Usage: serve_load PORT SOURCE LOG BATCH REQUESTS CONNECTIONS

use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port, source, log, batch, requests, connections] = args.as_slice() else {
        return Err("usage: serve_load PORT SOURCE LOG BATCH REQUESTS CONNECTIONS".into());
    };
    let (port, batch, requests, connections): (u16, usize, usize, usize) = (
        port.parse()?,
        batch.parse()?,
        requests.parse()?,
        connections.parse()?,
    );
    let text = std::fs::read_to_string(log)?;
    let lines: Vec<&str> = text.lines().collect();
    // Request bodies, made before the clock starts.
    let bodies: Vec<String> = (0..requests)
        .map(|r| {
            let start = (r * batch) % lines.len().max(1);
            let mut body = String::new();
            for k in 0..batch {
                body.push_str(lines[(start + k) % lines.len()]);
                body.push('\n');
            }
            body
        })
        .collect();
    let path = format!("/v1/sources/{source}/score");
    let started = Instant::now();
    let results: Vec<(Vec<Duration>, u64, u64)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..connections)
            .map(|c| {
                let mine: Vec<&String> = bodies.iter().skip(c).step_by(connections).collect();
                let path = &path;
                scope.spawn(move || -> Result<(Vec<Duration>, u64, u64), String> {
                    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
                    stream.set_nodelay(true).map_err(|e| e.to_string())?;
                    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
                    let mut writer = stream;
                    let mut out = Vec::with_capacity(mine.len());
                    let (mut parsed, mut anomalies) = (0, 0);
                    for body in mine {
                        let t = Instant::now();
                        write!(
                            writer,
                            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .map_err(|e| e.to_string())?;
                        let (status, answer) = read_response(&mut reader)?;
                        out.push(t.elapsed());
                        if status != 200 {
                            return Err(format!("status {status}"));
                        }
                        let answer: serde_json::Value =
                            serde_json::from_slice(&answer).map_err(|e| e.to_string())?;
                        parsed += answer["parsed"].as_u64().unwrap_or_default();
                        anomalies += answer["anomalies"].as_array().map_or(0, |a| a.len() as u64);
                    }
                    Ok((out, parsed, anomalies))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker").expect("requests succeed"))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let parsed: u64 = results.iter().map(|r| r.1).sum();
    let anomalies: u64 = results.iter().map(|r| r.2).sum();
    let mut latencies: Vec<Duration> = results.into_iter().flat_map(|r| r.0).collect();
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    println!(
        "batch {batch:>5}: {requests} requests over {connections} connections in {elapsed:.2} s: {:.0} lines/s, {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms",
        (requests * batch) as f64 / elapsed,
        requests as f64 / elapsed,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
    println!(
        "             {parsed} of {} lines parsed, {anomalies} anomalies",
        requests * batch
    );
    Ok(())
}

/// Read one HTTP/1.1 response (status line, headers, `Content-Length` body): status, body.
fn read_response(reader: &mut impl BufRead) -> Result<(u16, Vec<u8>), String> {
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().map_err(|_| "bad content-length")?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok((status, body))
}

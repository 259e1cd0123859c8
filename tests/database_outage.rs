//! The database goes away while 05-detect runs: the stage fails saying so, its
//! `pipeline_runs` row does not stay `running` once the next run has started, and the next
//! run detects exactly what an undisturbed one does. Needs PostgreSQL (`TEST_DATABASE_URL`;
//! CI sets it); the outage is a TCP proxy in front of the server that is cut mid-stage.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loglake::db::Database;

/// Forwards connections to `target` until cut: then every open connection is shut down and
/// new ones are refused.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, o) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut kept = o.lock().unwrap();
                kept.push(client.try_clone().unwrap());
                kept.push(server.try_clone().unwrap());
                drop(kept);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Self { port, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

fn loglake(lake: &Path, url: &str, source: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_loglake"))
        .args(["--lake", lake.to_str().unwrap(), "--source", source])
        .args(["--date", "2026-11-20", "--database-url", url])
        .args(args)
        .envs(common::generator_source(source))
        .env_remove("LOGLAKE__DATABASE__URL")
        .output()
        .unwrap()
}

#[test]
fn an_outage_during_detect_is_reported_and_closed_and_the_rerun_matches() {
    let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("TEST_DATABASE_URL is not set: skipping the database outage test (CI sets it)");
        return;
    };
    let parsed = url::Url::parse(&url).unwrap();
    let target = format!(
        "{}:{}",
        parsed.host_str().unwrap(),
        parsed.port().unwrap_or(5432)
    );
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), "2026-11-20", 1, 60_000, 17);
    let input = raw.join("logs");
    let input = input.to_str().unwrap();
    let db = Database::connect(&url, Path::new("unused"), 1).unwrap();

    // Undisturbed: what detection finds.
    let reference = format!("outref{}", std::process::id());
    let lake_ref = tmp.path().join("ref");
    let out = loglake(&lake_ref, &url, &reference, &["run", "--input", input]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count = |source: &str| {
        db.query_i64(&format!(
            "SELECT count(*) FROM anomalies WHERE source = '{source}'"
        ))
        .unwrap()
    };
    let expected = count(&reference);
    assert!(expected > 0);

    // The same data; the database disappears while 05-detect runs.
    let source = format!("outage{}", std::process::id());
    let lake = tmp.path().join("lake");
    let out = loglake(
        &lake,
        &url,
        &source,
        &["run", "--to", "04-train", "--input", input],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let proxy = Proxy::start(target);
    let mut via_proxy = parsed.clone();
    via_proxy.set_port(Some(proxy.port)).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_loglake"))
        .args(["--lake", lake.to_str().unwrap(), "--source", &source])
        .args(["--date", "2026-11-20", "--database-url", via_proxy.as_str()])
        .arg("05-detect")
        .envs(common::generator_source(&source))
        .env_remove("LOGLAKE__DATABASE__URL")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let running = format!(
        "SELECT count(*) FROM pipeline_runs WHERE source = '{source}' AND stage = '05-detect' AND status = 'running'"
    );
    let t0 = Instant::now();
    while db.query_i64(&running).unwrap() == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "05-detect never started"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    proxy.cut();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "05-detect survived the outage: {err}"
    );
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("loglake: error: 05-detect failed"),
        "{err}"
    );
    assert_eq!(
        db.query_i64(&running).unwrap(),
        1,
        "the row is left running"
    );

    // Next run: the row is closed as failed, detection completes, the result matches.
    let out = loglake(&lake, &url, &source, &["05-detect"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(db.query_i64(&running).unwrap(), 0);
    let closed = db
        .query_i64(&format!(
            "SELECT count(*) FROM pipeline_runs WHERE source = '{source}' AND stage = '05-detect' AND status = 'failed' AND error LIKE '%ended without closing its row%'"
        ))
        .unwrap();
    assert_eq!(closed, 1);
    assert_eq!(count(&source), expected);
    db.close();
}

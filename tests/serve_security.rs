//! `loglake serve` against clients that should not get what they ask: names that climb out of
//! the lake, web pages on the operator's machine, callers without the right token, slow and
//! oversized requests.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{JSON, Server};
use serde_json::Value;

/// A lake with models and anomalies for source `shop`.
fn lake(dir: &Path) -> std::path::PathBuf {
    let raw = common::generated(dir, "2026-11-19", 1, 20_000, 5);
    let lake = dir.join("lake");
    common::run_each_day(&lake, &raw, &["2026-11-19"], "05-detect");
    lake
}

/// `loglake` on `lake` with `args`; its stdout, or a panic with its stderr.
fn loglake(lake: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_loglake"))
        .args(["--lake", lake.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8(common::succeeded(out).stdout).unwrap()
}

/// A new token for `name` with `scopes`: the whole token, as printed once.
fn token(lake: &Path, name: &str, scopes: &[&str]) -> String {
    let mut args = vec!["tokens", "create", "--name", name];
    for s in scopes {
        args.extend(["--scope", s]);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_loglake"))
        .args(["--lake", lake.to_str().unwrap()])
        .args(&args)
        .output()
        .unwrap();
    let out = common::succeeded(out);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("llt_"))
        .expect("the token is printed")
        .to_string()
}

/// An anomaly id of the lake, from the service.
fn some_anomaly(server: &Server, auth: &[(&str, &str)]) -> String {
    let (status, found, text) = server.ask_with("GET", "/v1/anomalies?limit=1", auth, b"");
    assert_eq!(status, 200, "{text}");
    found["anomalies"][0]["anomaly_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn without_tokens_only_this_machine_is_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = lake(tmp.path());
    let server = Server::start(&lake, &[("LOGLAKE__SERVE__MAX_LINE_BYTES", "1000")]);

    // Source names that climb out of the models folder are refused, not looked up.
    for path in [
        "/v1/sources/%2Fsrv%2Fother%2Flake%2Fmodels%2Fshop/score",
        "/v1/sources/shop%2F..%2Fshop/score",
        "/v1/sources/.%2Fshop/score",
        "/v1/sources/..%2F..%2Fetc/score",
    ] {
        let (status, err, text) = server.ask("POST", path, b"a line\n");
        assert_eq!(status, 400, "{path}: {text}");
        assert!(err["error"].as_str().unwrap().contains("letters, digits"));
    }
    // A page's request (it names its own Host, or carries an Origin) is refused.
    let (status, _, text) = server.ask_with(
        "GET",
        "/v1/anomalies",
        &[("Host", "evil.example:8080")],
        b"",
    );
    assert_eq!(status, 403, "{text}");
    let origin = [("Origin", "http://evil.example")];
    let (status, _, text) = server.ask_with("GET", "/v1/anomalies", &origin, b"");
    assert_eq!(status, 403, "{text}");
    // A verdict is JSON and of bounded size; who gives it is optional without tokens, as on
    // the command line.
    let id = some_anomaly(&server, &[]);
    let feedback = format!("/v1/anomalies/{id}/feedback");
    let verdict = br#"{"verdict": "normal", "by": "ana"}"#;
    let plain = [("Content-Type", "text/plain")];
    let (status, _, text) = server.ask_with("POST", &feedback, &plain, verdict);
    assert_eq!(status, 415, "{text}");
    let anonymous = br#"{"verdict": "anomaly"}"#;
    let (status, _, text) = server.ask_with("POST", &feedback, &[JSON], anonymous);
    assert_eq!(status, 200, "{text}");
    assert_eq!(recorded_by(&lake, &id), ["local (HTTP)"]);
    let huge = format!(
        r#"{{"verdict": "normal", "by": "ana", "note": "{}"}}"#,
        "x".repeat(5000)
    );
    let (status, _, text) = server.ask_with("POST", &feedback, &[JSON], huge.as_bytes());
    assert_eq!(status, 413, "{text}");
    let (status, _, text) = server.ask_with("POST", &feedback, &[JSON], verdict);
    assert_eq!(status, 200, "{text}");
    // Client mistakes are 4xx with a reason, never 500.
    let (status, _, text) = server.ask("POST", "/v1/sources/shop/score", b"");
    assert_eq!(status, 400, "{text}");
    let long = format!(
        "2026-11-19T10:00:00.000Z INFO checkout: {}\n",
        "y".repeat(2000)
    );
    let (status, _, text) = server.ask("POST", "/v1/sources/shop/score", long.as_bytes());
    assert_eq!(status, 413, "{text}");
    let (status, err, text) = server.ask("DELETE", "/v1/anomalies", b"");
    assert_eq!(status, 405, "{text}");
    assert!(err["error"].is_string(), "{text}");
    // The OpenAPI document names each route's scope.
    let (status, doc, _) = server.ask("GET", "/v1/openapi.json", b"");
    assert_eq!(status, 200);
    assert_eq!(
        doc["paths"]["/v1/anomalies/{id}/feedback"]["post"]["x-scope"],
        "feedback"
    );
    assert_eq!(doc["paths"]["/v1/anomalies"]["get"]["x-scope"], "read");
    // And each query route's parameters are the ones its handler takes: a parameter the
    // document names is accepted, and the handler's refusal of an unknown one lists exactly
    // the document's.
    for route in ["/v1/anomalies", "/v1/incidents"] {
        let documented: std::collections::BTreeSet<String> =
            doc["paths"][route]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect();
        let example = |name: &str| match name {
            "source" => "shop",
            "since" => "2026-11-19",
            "until" => "2026-11-21",
            "detector" => "zscore",
            "min_severity" => "high",
            "limit" => "5",
            "status" => "open",
            other => panic!("no example for {other}"),
        };
        for name in &documented {
            let path = format!("{route}?{name}={}", example(name));
            let (status, _, text) = server.ask("GET", &path, b"");
            assert_eq!(status, 200, "{path}: {text}");
        }
        let (status, _, text) = server.ask("GET", &format!("{route}?zzz=1"), b"");
        assert_eq!(status, 400, "{text}");
        // "… unknown field `zzz`, expected one of `a`, `b`, …" (or "expected `a` or `b`").
        let taken: std::collections::BTreeSet<String> = text
            .split("expected ")
            .nth(1)
            .unwrap_or_else(|| panic!("{text}"))
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        assert_eq!(taken, documented, "{route}: {text}");
    }

    // A damaged old model version: skipped (scoring still answers), and said by /healthz.
    let damaged = lake.join("models/shop/event/rare_template/20200101-x");
    std::fs::create_dir_all(&damaged).unwrap();
    std::fs::write(damaged.join("model.json"), b"{ torn").unwrap();
    let lines = b"2026-11-19T10:00:00.000Z INFO checkout: order placed\n";
    let (status, _, text) = server.ask("POST", "/v1/sources/shop/score", lines);
    assert_eq!(status, 200, "{text}");
    let (status, health, _) = server.ask("GET", "/healthz", b"");
    assert_eq!(status, 200);
    assert!(
        health["models"].as_str().unwrap().contains("20200101-x"),
        "{health}"
    );

    // Beyond loopback it does not start without a token.
    let refused = Server::start_on(&lake, "0.0.0.0:0", &[])
        .err()
        .expect("refused");
    assert!(refused.contains("loglake tokens create"), "{refused}");
}

#[test]
fn tokens_decide_who_may_do_what() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = lake(tmp.path());
    let reader = token(&lake, "grafana", &["read"]);
    let judge = token(&lake, "alice", &["read", "feedback"]);
    let server = Server::start(&lake, &[("LOGLAKE__SERVE__REQUESTS_PER_MINUTE", "20")]);
    let bearer = |t: &str| format!("Bearer {t}");
    let (read_auth, judge_auth) = (bearer(&reader), bearer(&judge));
    let as_reader = [("Authorization", read_auth.as_str())];
    let as_judge = [("Authorization", judge_auth.as_str()), JSON];

    // No token, a wrong one, a token without the scope.
    let (status, _, text) = server.ask("GET", "/v1/anomalies", b"");
    assert_eq!(status, 401, "{text}");
    let mut forged = reader.clone();
    forged.pop();
    forged.push(if reader.ends_with('0') { '1' } else { '0' });
    let forged = bearer(&forged);
    let (status, _, text) =
        server.ask_with("GET", "/v1/anomalies", &[("Authorization", &forged)], b"");
    assert_eq!(status, 401, "{text}");
    let id = some_anomaly(&server, &as_reader);
    let feedback = format!("/v1/anomalies/{id}/feedback");
    let forged_by = br#"{"verdict": "normal", "by": "alice (SRE lead, verified)"}"#;
    let reader_json = [("Authorization", read_auth.as_str()), JSON];
    let (status, _, text) = server.ask_with("POST", &feedback, &reader_json, forged_by);
    assert_eq!(status, 403, "{text}");
    let (status, _, text) = server.ask_with("POST", "/v1/sources/shop/score", &as_reader, b"x\n");
    assert_eq!(status, 403, "{text}");
    // The verdict is recorded under the token's name, whatever the body claims.
    let (status, _, text) = server.ask_with("POST", &feedback, &as_judge, forged_by);
    assert_eq!(status, 200, "{text}");
    assert_eq!(recorded_by(&lake, &id), ["alice"]);
    // /healthz needs nothing.
    assert_eq!(server.ask("GET", "/healthz", b"").0, 200);

    // Each token has its requests a minute; then 429 with when to come back.
    let mut last = 0;
    for _ in 0..25 {
        last = server.ask_with("GET", "/v1/incidents", &as_reader, b"").0;
        if last == 429 {
            break;
        }
    }
    assert_eq!(last, 429, "the reader was never limited");

    // A revoked token stops working within the refresh time.
    let id_of = |t: &str| {
        t.trim_start_matches("llt_")
            .split('_')
            .next()
            .unwrap()
            .to_string()
    };
    loglake(&lake, &["tokens", "revoke", &id_of(&judge)]);
    let listed = loglake(&lake, &["tokens", "list"]);
    assert!(listed.contains("revoked"), "{listed}");
    assert!(
        !listed.contains(judge.split('_').nth(2).unwrap()),
        "a secret was listed"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = server.ask_with("GET", "/v1/incidents", &as_judge, b"").0;
        if status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the revoked token still works");
        std::thread::sleep(Duration::from_secs(1));
    }
    // With a live token, listening beyond loopback is allowed.
    let mut wide = Server::start_on(&lake, "0.0.0.0:0", &[]).expect("starts with a token");
    assert!(wide.stop().success());
}

#[test]
fn slow_and_idle_connections_are_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let out = Command::new(env!("CARGO_BIN_EXE_loglake"))
        .args(["--lake", lake.to_str().unwrap(), "00-init"])
        .output()
        .unwrap();
    common::succeeded(out);
    let server = Server::start(&lake, &[("LOGLAKE__SERVE__HEADER_TIMEOUT_SECONDS", "1")]);
    let closed_within = |mut stream: TcpStream, limit: Duration| {
        stream.set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0u8; 256];
        let started = Instant::now();
        match stream.read(&mut buf) {
            // Closed (0 bytes), or an answer (408) and then closed, before the limit.
            Ok(n) => n == 0 || started.elapsed() < limit,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    };
    // A connection that says nothing.
    let idle = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    assert!(
        closed_within(idle, Duration::from_secs(5)),
        "an idle connection stayed open"
    );
    // One that sends its headers a little at a time and never finishes.
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    assert!(
        closed_within(slow, Duration::from_secs(5)),
        "a slow client stayed open"
    );
    // The service still answers.
    assert_eq!(
        server.ask("GET", "/healthz", b"").1["database"],
        Value::from("ok")
    );
}

/// Who the verdicts on anomaly `id` are recorded as given by, in the lake's database.
fn recorded_by(lake: &std::path::Path, id: &str) -> Vec<String> {
    let db = loglake::db::Database::connect("", &lake.join("loglake.db"), 1).unwrap();
    db.query_strings(&format!(
        "SELECT by_whom FROM feedback WHERE subject_id = '{id}'"
    ))
    .unwrap()
    .into_iter()
    .flatten()
    .collect()
}

//! `loglake serve` as a client sees it: a real server process on a loopback port, asked over
//! HTTP what an operator or a log shipper would ask.

mod common;

use std::process::Command;
use std::time::Duration;

use common::server::{JSON, Server};
use serde_json::Value;

#[test]
fn serve_scores_lines_answers_queries_and_reloads_models() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), "2026-11-19", 2, 20_000, 5);
    let lake = tmp.path().join("lake");
    common::run_each_day(&lake, &raw, &["2026-11-19"], "05-detect");

    let mut server = Server::start(&lake, &[("LOGLAKE__SERVE__MAX_BODY_BYTES", "200000")]);
    let (status, health, _) = server.ask("GET", "/healthz", b"");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["database"], "ok");

    // Lines like the ones trained on, one the models never saw, and one that is not UTF-8.
    let day2 = std::fs::read_to_string(raw.join("logs/shop-2026-11-20.log")).unwrap();
    let mut body: Vec<u8> = Vec::new();
    for line in day2.lines().take(200) {
        body.extend_from_slice(line.as_bytes());
        body.push(b'\n');
    }
    body.extend_from_slice(
        b"2026-11-20T10:00:00.000Z ERROR payments: flux capacitor desynchronised from ledger\n",
    );
    body.extend_from_slice(b"\xff\xfe\n");
    let (status, answer, text) = server.ask("POST", "/v1/sources/shop/score", &body);
    assert_eq!(status, 200, "{text}");
    assert_eq!(answer["lines"], 202);
    assert_eq!(answer["quarantined"], 1);
    assert_eq!(answer["unparsed"][0]["line_no"], 202);
    assert!(
        answer["unparsed"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("UTF-8")
    );
    let anomalies = answer["anomalies"].as_array().unwrap();
    let new_line = anomalies
        .iter()
        .find(|a| a["line_no"] == 201 && a["detector"] == "rare_template")
        .unwrap_or_else(|| panic!("the unseen line is not flagged: {answer}"));
    assert!(
        new_line["reason"]
            .as_str()
            .unwrap()
            .contains("never seen in training"),
        "{new_line}"
    );
    assert!(new_line["score"].as_f64().unwrap() > new_line["threshold"].as_f64().unwrap());
    // Ordinary lines are ordinary: the day's own rare events may be flagged, not the bulk.
    let ordinary_flagged = anomalies
        .iter()
        .filter(|a| a["line_no"].as_u64().unwrap() <= 200 && a["detector"] == "rare_template")
        .count();
    assert!(
        ordinary_flagged <= 10,
        "{ordinary_flagged} of 200: {answer}"
    );
    let version = answer["model_version"].as_str().unwrap().to_string();
    assert!(version.contains("rare_template="), "{version}");

    // What is refused is refused with a reason.
    let (status, err, _) = server.ask("POST", "/v1/sources/nosuch/score", b"x\n");
    assert_eq!(status, 404);
    assert!(err["error"].as_str().unwrap().contains("04-train"), "{err}");
    let (status, err, _) = server.ask("POST", "/v1/sources/shop/score", &vec![b'a'; 300_000]);
    assert_eq!(status, 413, "{err}");
    assert!(err["error"].is_string());
    let (status, err, _) = server.ask("GET", "/v1/anomalies?min_severity=dire", b"");
    assert_eq!(status, 400, "{err}");
    let (status, _, _) = server.ask("GET", "/v1/incidents?status=maybe", b"");
    assert_eq!(status, 400);

    // The database's anomalies, filtered and newest first; open incidents.
    let (status, found, text) = server.ask(
        "GET",
        "/v1/anomalies?source=shop&min_severity=high&since=2026-11-19&limit=5",
        b"",
    );
    assert_eq!(status, 200, "{text}");
    let rows = found["anomalies"].as_array().unwrap();
    assert!(!rows.is_empty() && rows.len() <= 5, "{found}");
    for r in rows {
        assert!(
            ["high", "critical"].contains(&r["severity"].as_str().unwrap()),
            "{r}"
        );
        assert!(r["details"].is_object(), "{r}");
    }
    let starts: Vec<&str> = rows
        .iter()
        .map(|r| r["window_start"].as_str().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] >= w[1]), "{starts:?}");
    // Instants as RFC 3339 in UTC, as a sample line's `ts` is.
    for start in &starts {
        assert!(
            chrono::DateTime::parse_from_rfc3339(start).is_ok() && start.ends_with('Z'),
            "{start}"
        );
    }
    // A misspelled filter is refused, naming the ones there are, not ignored.
    let (status, _, text) = server.ask("GET", "/v1/anomalies?severity=high", b"");
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("severity") && text.contains("min_severity"),
        "{text}"
    );
    let (status, _, text) = server.ask("GET", "/v1/incidents?state=open", b"");
    assert_eq!(status, 400, "{text}");
    // An operator's verdict through the service, as `loglake anomalies mark` records it.
    let id = rows[0]["anomaly_id"].as_str().unwrap();
    let verdict = br#"{"verdict": "normal", "by": "ana", "note": "known batch job"}"#;
    let feedback = format!("/v1/anomalies/{id}/feedback");
    let (status, marked, text) = server.ask_with("POST", &feedback, &[JSON], verdict);
    assert_eq!(status, 200, "{text}");
    assert_eq!(marked["detector"], rows[0]["detector"]);
    let (status, _, _) = server.ask_with("POST", "/v1/anomalies/nosuch/feedback", &[JSON], verdict);
    assert_eq!(status, 404);
    let (status, _, _) = server.ask_with("POST", &feedback, &[JSON], b"{}");
    assert_eq!(status, 400);
    let (status, open, _) = server.ask("GET", "/v1/incidents?status=open&source=shop", b"");
    assert_eq!(status, 200);
    assert!(!open["incidents"].as_array().unwrap().is_empty(), "{open}");
    let detectors = &open["incidents"][0]["detectors"];
    assert!(
        detectors
            .as_array()
            .is_some_and(|d| !d.is_empty() && d.iter().all(Value::is_string)),
        "detectors as a list: {detectors}"
    );

    // The next day's training writes newer models; the running service picks them up.
    common::run_each_day(&lake, &raw, &["2026-11-20"], "04-train");
    std::thread::sleep(Duration::from_millis(1100));
    let (status, answer, text) = server.ask("POST", "/v1/sources/shop/score", &body);
    assert_eq!(status, 200, "{text}");
    assert_ne!(answer["model_version"].as_str().unwrap(), version);

    let (_, _, metrics) = server.ask("GET", "/metrics", b"");
    assert!(
        metrics.contains("loglake_serve_lines_scored_total{source=\"shop\"} 404"),
        "{metrics}"
    );
    assert!(metrics.contains("loglake_serve_requests_total{route=\"score\",status=\"413\"} 1"));
    assert!(metrics.contains("loglake_serve_request_seconds_bucket{route=\"score\""));

    let stopped = server.stop();
    assert!(stopped.success(), "{stopped:?}");
}

/// The same queries answered from PostgreSQL (CI's server, `TEST_DATABASE_URL`).
#[test]
fn serve_reads_postgres() {
    let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("TEST_DATABASE_URL is not set: skipping serve on PostgreSQL (CI sets it)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), "2026-11-19", 1, 20_000, 6);
    let lake = tmp.path().join("lake");
    let logs = raw.join("logs/shop-2026-11-19.log");
    // A source of its own on the shared server.
    let source = format!("serve{}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_loglake"))
        .args(["--lake", lake.to_str().unwrap(), "--source", &source])
        .args([
            "--date",
            "2026-11-19",
            "run",
            "--input",
            logs.to_str().unwrap(),
        ])
        .envs(common::generator_source(&source))
        .env("LOGLAKE__DATABASE__URL", &url)
        .output()
        .unwrap();
    common::succeeded(out);

    let mut server = Server::start(&lake, &[("LOGLAKE__DATABASE__URL", url.as_str())]);
    let (status, health, _) = server.ask("GET", "/healthz", b"");
    assert_eq!(
        (status, &health["database"]),
        (200, &Value::from("ok")),
        "{health}"
    );
    let (status, found, text) = server.ask(
        "GET",
        &format!("/v1/anomalies?source={source}&until=2026-11-20T00:00:00Z&limit=3"),
        b"",
    );
    assert_eq!(status, 200, "{text}");
    let rows = found["anomalies"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{found}");
    for r in rows {
        assert_eq!(r["source"], Value::from(source.as_str()));
        assert!(r["score"].is_f64() && r["details"].is_object(), "{r}");
    }
    let (status, open, text) = server.ask(
        "GET",
        &format!("/v1/incidents?status=open&source={source}"),
        b"",
    );
    assert_eq!(status, 200, "{text}");
    let incidents = open["incidents"].as_array().unwrap();
    assert!(!incidents.is_empty(), "{open}");
    assert!(
        incidents
            .iter()
            .all(|i| i["anomalies"].is_i64() && i["status"] == "open")
    );
    assert!(server.stop().success());
}

/// A source whose batches were given their format on the command line (its config says
/// `format = "auto"`): the service reads new lines with the format the batches recorded, not
/// one guessed from a request's few lines — which for a layout of its own finds none.
#[test]
fn serve_reads_lines_with_the_format_the_batches_used() {
    let tmp = tempfile::tempdir().unwrap();
    let format = "<Level>|<Date> <Time>|<Component>|<Content>";
    let mut log = String::new();
    for n in 0..3_000u32 {
        let (level, what) = match n % 50 {
            0 => ("WARN", format!("slow response {} ms", 900 + n % 7)),
            _ => ("INFO", format!("served request {n} in {} ms", n % 13)),
        };
        log.push_str(&format!(
            "{level}|2026-11-19 {:02}:{:02}:{:02}|api|{what}\n",
            n / 3600 % 24,
            n / 60 % 60,
            n % 60
        ));
    }
    let input = tmp.path().join("app.log");
    std::fs::write(&input, &log).unwrap();
    let lake = tmp.path().join("lake");
    let small = [
        ("LOGLAKE__DETECTORS__RARE_TEMPLATE__MIN_EVENTS", "100"),
        ("LOGLAKE__DETECTORS__SEVERITY__MIN_EVENTS", "100"),
    ];
    let out = Command::new(env!("CARGO_BIN_EXE_loglake"))
        .args(["--lake", lake.to_str().unwrap(), "--source", "app"])
        .args([
            "--date",
            "2026-11-19",
            "run",
            "--to",
            "04-train",
            "--format",
            format,
        ])
        .args(["--input", input.to_str().unwrap()])
        .envs(small)
        .output()
        .unwrap();
    let said = common::stdout_ok(out);
    assert!(said.contains("event/rare_template"), "{said}");

    let mut server = Server::start(&lake, &small);
    let line = b"INFO|2026-11-20 10:00:00|api|served request 7 in 3 ms\n";
    let (status, answer, text) = server.ask("POST", "/v1/sources/app/score", line);
    assert_eq!(status, 200, "{text}");
    assert_eq!(answer["lines"], 1, "{answer}");
    assert_eq!(answer["quarantined"], 0, "{answer}");
    assert!(server.stop().success());
}

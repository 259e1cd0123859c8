//! Alerts reach real HTTP receivers: a local server that records every request stands in for
//! Alertmanager and a Slack webhook, and a closed port for a receiver that is down.

mod common;

use std::net::TcpListener;
use std::path::Path;

use loglake::db::Database;
use serde_json::Value;

fn detect(lake: &Path, config: &Path, metrics: &Path, input: Option<&Path>) -> String {
    let mut args = vec!["--config", config.to_str().unwrap(), "run", "--from"];
    match input {
        Some(logs) => args.extend([
            "00-init",
            "--to",
            "05-detect",
            "--input",
            logs.to_str().unwrap(),
        ]),
        None => args.extend(["05-detect", "--to", "05-detect"]),
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loglake"))
        .args([
            "--lake",
            lake.to_str().unwrap(),
            "--source",
            "shop",
            "--date",
            "2026-11-19",
        ])
        .args(&args)
        .envs(common::generator_source("shop"))
        .env("LOGLAKE__RUN__METRICS_TEXTFILE", metrics)
        .output()
        .unwrap();
    common::stdout_ok(out)
}

#[test]
fn incidents_are_announced_once_retried_when_undelivered_and_resolved_when_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), "2026-11-19", 1, 20_000, 9);
    let lake = tmp.path().join("lake");
    let metrics = tmp.path().join("loglake.prom");
    let (port, got) = common::recorder();
    let down = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = tmp.path().join("loglake.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\nmin_severity = \"medium\"\nattempts = 2\nretry_pause_ms = 10\ntimeout_seconds = 2\n\
             report_url = \"https://reports.example/loglake\"\n\
             [[alerts.receivers]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:{port}\"\n\
             [[alerts.receivers]]\nname = \"chat\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:{port}/slack\"\n\
             [[alerts.receivers]]\nname = \"pager\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{down}/hook\"\n"
        ),
    )
    .unwrap();
    let count = |path: &str| {
        got.lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .count()
    };

    let stdout = detect(&lake, &config, &metrics, Some(&raw.join("logs")));
    let db = Database::connect("", &lake.join("loglake.db"), 1).unwrap();
    let due = db
        .query_i64(
            "SELECT COUNT(*) FROM incidents WHERE severity IN ('medium', 'high', 'critical')",
        )
        .unwrap() as usize;
    assert!(
        due > 1,
        "the generated day has incidents worth an alert: {due}"
    );
    assert!(
        stdout.contains(&format!("alerts: {} sent, {due} not delivered", 2 * due)),
        "{stdout}"
    );
    assert_eq!((count("/api/v2/alerts"), count("/slack")), (due, due));
    for (path, body) in got.lock().unwrap().iter() {
        if path == "/api/v2/alerts" {
            let alert = &body[0];
            assert!(
                ["medium", "high", "critical"]
                    .contains(&alert["labels"]["severity"].as_str().unwrap())
            );
            assert_eq!(alert["labels"]["source"], "shop");
            assert!(
                alert["startsAt"]
                    .as_str()
                    .unwrap()
                    .starts_with("2026-11-19T"),
                "{alert}"
            );
            assert!(
                alert["generatorURL"]
                    .as_str()
                    .unwrap()
                    .starts_with("https://reports.example/loglake/2026-11-19")
            );
            assert!(alert.get("endsAt").is_none());
        } else {
            assert!(
                body["text"].as_str().unwrap().contains("incident in shop/"),
                "{body}"
            );
        }
    }
    let pager = "SELECT COUNT(*) FROM alerts WHERE receiver = 'pager' AND sent_at IS NULL";
    assert_eq!(db.query_i64(pager).unwrap() as usize, due);
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.contains(&format!(
            "loglake_alerts_undelivered{{source=\"shop\"}} {due}"
        )),
        "{prom}"
    );

    // A re-run announces nothing again; the receiver that is down is tried again.
    let stdout = detect(&lake, &config, &metrics, None);
    assert!(
        stdout.contains(&format!("alerts: 0 sent, {due} not delivered")),
        "{stdout}"
    );
    assert_eq!((count("/api/v2/alerts"), count("/slack")), (due, due));
    // Each round tries the first pending notice twice (`attempts = 2`); the receiver being
    // down, the others are left for the next round untried, their error saying so.
    assert_eq!(
        db.query_strings(
            "SELECT MAX(attempts), SUM(attempts) FROM alerts WHERE receiver = 'pager'"
        )
        .unwrap(),
        vec![vec!["4".to_string(), "4".to_string()]]
    );
    assert_eq!(
        db.query_i64(
            "SELECT COUNT(*) FROM alerts WHERE receiver = 'pager' AND attempts = 0 \
             AND last_error LIKE 'not tried in this round: %'"
        )
        .unwrap() as usize,
        due - 1
    );

    // An operator closes one: a resolved notice, once.
    let closed = db
        .query_strings(
            "SELECT incident_id FROM alerts WHERE receiver = 'am' ORDER BY incident_id LIMIT 1",
        )
        .unwrap()[0][0]
        .clone();
    db.execute(&format!(
        "UPDATE incidents SET status = 'closed' WHERE incident_id = '{closed}'"
    ))
    .unwrap();
    detect(&lake, &config, &metrics, None);
    detect(&lake, &config, &metrics, None);
    assert_eq!(
        (count("/api/v2/alerts"), count("/slack")),
        (due + 1, due + 1)
    );
    let received = got.lock().unwrap();
    let (_, resolved) = received
        .iter()
        .rev()
        .find(|(p, _)| p == "/api/v2/alerts")
        .unwrap();
    assert_eq!(
        resolved[0]["labels"]["incident_id"],
        Value::from(closed.as_str())
    );
    assert!(resolved[0]["endsAt"].is_string(), "{resolved}");
}

//! What operators do between batches: incidents listed, shown, acknowledged and closed (the
//! close announced to the alert receivers at once), anomalies given verdicts — each recorded
//! in `feedback` with who and why.

mod common;

use std::process::Command;

use loglake::db::Database;

#[test]
fn operators_triage_incidents_and_give_verdicts() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = common::generated(tmp.path(), "2026-11-19", 1, 20_000, 9);
    let lake = tmp.path().join("lake");
    let (port, got) = common::recorder();
    let config = tmp.path().join("loglake.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\nmin_severity = \"low\"\nretry_pause_ms = 10\n\
             [[alerts.receivers]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n"
        ),
    )
    .unwrap();
    let loglake = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_loglake"))
            .args([
                "--lake",
                lake.to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
            ])
            .args(["--source", "shop", "--date", "2026-11-19"])
            .args(args)
            .envs(common::generator_source("shop"))
            .env("USER", "ana")
            .output()
            .unwrap()
    };
    let logs = raw.join("logs");
    common::succeeded(loglake(&[
        "run",
        "--to",
        "05-detect",
        "--input",
        logs.to_str().unwrap(),
    ]));
    let announced = got.lock().unwrap().len();
    assert!(announced > 0);

    let listed: serde_json::Value = serde_json::from_str(&common::stdout_ok(loglake(&[
        "incidents",
        "list",
        "--status",
        "open",
        "--output",
        "json",
    ])))
    .unwrap();
    let incidents = listed.as_array().unwrap();
    assert_eq!(
        incidents.len(),
        announced,
        "every open incident was announced"
    );
    let id = incidents[0]["incident_id"].as_str().unwrap().to_string();
    let text = common::stdout_ok(loglake(&["incidents", "list"]));
    assert!(text.contains(&id) && text.contains("open"), "{text}");

    let shown: serde_json::Value = serde_json::from_str(&common::stdout_ok(loglake(&[
        "incidents",
        "show",
        &id,
        "--output",
        "json",
    ])))
    .unwrap();
    let anomalies = shown["anomalies"].as_array().unwrap();
    assert_eq!(
        anomalies.len() as i64,
        shown["incident"]["anomalies"].as_i64().unwrap()
    );
    let anomaly = anomalies[0]["anomaly_id"].as_str().unwrap().to_string();

    // The anomalies themselves: listed (verdicts; a detector's findings with --detector),
    // and one shown in full.
    let listed: serde_json::Value = serde_json::from_str(&common::stdout_ok(loglake(&[
        "anomalies",
        "list",
        "--limit",
        "500",
        "--output",
        "json",
    ])))
    .unwrap();
    let listed = listed.as_array().unwrap();
    assert!(
        listed.iter().any(|a| a["anomaly_id"] == anomaly.as_str()),
        "{listed:?}"
    );
    assert!(
        listed.iter().all(|a| a["detector"] == "ensemble"),
        "verdicts only"
    );
    let votes: serde_json::Value = serde_json::from_str(&common::stdout_ok(loglake(&[
        "anomalies",
        "list",
        "--detector",
        "zscore",
        "--output",
        "json",
    ])))
    .unwrap();
    assert!(
        votes
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["detector"] == "zscore")
    );
    let shown_one = common::stdout_ok(loglake(&["anomalies", "show", &anomaly]));
    assert!(
        shown_one.starts_with(&format!("anomaly {anomaly}"))
            && shown_one.contains(anomalies[0]["reason"].as_str().unwrap()),
        "{shown_one}"
    );
    let out = loglake(&["anomalies", "show", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no anomaly \"nosuch\""));

    let out = common::stdout_ok(loglake(&["incidents", "ack", &id, "--note", "looking"]));
    assert!(out.contains("acknowledged by ana"), "{out}");
    let out = common::stdout_ok(loglake(&["incidents", "close", &id, "--by", "bo"]));
    assert!(
        out.contains("closed by bo") && out.contains("alerts: 1 sent"),
        "{out}"
    );
    let (_, resolved) = got.lock().unwrap().last().unwrap().clone();
    assert_eq!(resolved["notice"], "resolved");
    assert_eq!(
        resolved["incident"]["incident_id"],
        serde_json::Value::from(id.as_str())
    );

    let out = common::stdout_ok(loglake(&[
        "anomalies",
        "mark",
        &anomaly,
        "--normal",
        "--note",
        "deploy",
    ]));
    assert!(out.contains("marked normal by ana"), "{out}");
    // A verdict needs one of the two flags, and an id that exists.
    let out = loglake(&["anomalies", "mark", &anomaly]);
    assert_eq!(out.status.code(), Some(2));
    let out = loglake(&["incidents", "close", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no incident \"nosuch\""));

    let db = Database::connect("", &lake.join("loglake.db"), 1).unwrap();
    let rows = db
        .query_strings(
            "SELECT subject, verdict, by_whom, coalesce(note, '-'), coalesce(detector, '-') \
             FROM feedback ORDER BY id",
        )
        .unwrap();
    let detector = anomalies[0]["detector"].as_str().unwrap();
    assert_eq!(
        rows,
        vec![
            vec!["incident", "acknowledged", "ana", "looking", "-"],
            vec!["incident", "closed", "bo", "-", "-"],
            vec!["anomaly", "normal", "ana", "deploy", detector],
        ]
        .into_iter()
        .map(|r| r.into_iter().map(String::from).collect::<Vec<_>>())
        .collect::<Vec<_>>()
    );

    // Until training learns it, 05-detect keeps findings like the one marked normal but
    // suppresses them: out of incidents and alerts, with the verdict named.
    let before = db
        .query_i64("SELECT COUNT(*) FROM anomalies WHERE incident_id IS NOT NULL")
        .unwrap();
    let out = common::stdout_ok(loglake(&["05-detect"]));
    assert!(
        out.contains("suppressed by operators' normal verdicts"),
        "{out}"
    );
    let row = db
        .query_strings(&format!(
            "SELECT coalesce(incident_id, '-'), details FROM anomalies WHERE anomaly_id = '{anomaly}'"
        ))
        .unwrap();
    assert_eq!(row[0][0], "-");
    let details: serde_json::Value = serde_json::from_str(&row[0][1]).unwrap();
    assert_eq!(details["suppressed_by"]["by"], "ana", "{details}");
    assert_eq!(details["suppressed_by"]["note"], "deploy");
    let after = db
        .query_i64("SELECT COUNT(*) FROM anomalies WHERE incident_id IS NOT NULL")
        .unwrap();
    assert!(
        after < before,
        "{after} of {before} anomalies still in incidents"
    );
    assert_eq!(
        db.query_i64("SELECT COUNT(*) FROM anomalies WHERE incident_id IS NULL AND NOT vote AND details NOT LIKE '%suppressed_by%'")
            .unwrap(),
        0,
        "only suppressed anomalies are outside incidents"
    );

    // An "anomaly" verdict confirms one: 06-report counts the judged anomalies.
    // Another anomaly — a verdict, as an incident lists them (the votes behind it are not
    // anomalies of their own).
    let other = db
        .query_strings(&format!(
            "SELECT anomaly_id FROM anomalies WHERE NOT vote AND anomaly_id <> '{anomaly}' \
             AND details NOT LIKE '%suppressed_by%' ORDER BY anomaly_id LIMIT 1"
        ))
        .unwrap();
    let other = other[0][0].as_str();
    common::stdout_ok(loglake(&["anomalies", "mark", other, "--anomaly"]));
    let report: serde_json::Value = serde_json::from_str(&common::stdout_ok(loglake(&[
        "06-report",
        "--output",
        "json",
    ])))
    .unwrap();
    assert_eq!(report["operator_verdicts"]["confirmed"], 1, "{report}");
    assert_eq!(report["operator_verdicts"]["normal"], 1);
    assert_eq!(report["operator_verdicts"]["precision_on_judged"], 0.5);

    // The next 04-train learns a rare template marked normal: routine, no longer flagged at
    // all (not merely suppressed).
    let rare = db
        .query_strings(
            "SELECT anomaly_id, details FROM anomalies WHERE detector = 'rare_template' ORDER BY anomaly_id LIMIT 1",
        )
        .unwrap();
    let (rare_id, details) = (&rare[0][0], &rare[0][1]);
    let template = serde_json::from_str::<serde_json::Value>(details).unwrap()["top_features"][0]
        ["template_id"]
        .as_str()
        .unwrap()
        .to_string();
    common::stdout_ok(loglake(&["anomalies", "mark", rare_id, "--normal"]));
    // And a window's count marked normal: its baseline widens to take it in.
    let burst = db
        .query_strings(
            "SELECT anomaly_id, entity_key, window_start FROM anomalies \
             WHERE detector = 'zscore' AND granularity = 'window' ORDER BY score DESC LIMIT 1",
        )
        .unwrap();
    let (burst_id, service, start) = (&burst[0][0], &burst[0][1], &burst[0][2]);
    common::stdout_ok(loglake(&["anomalies", "mark", burst_id, "--normal"]));
    common::stdout_ok(loglake(&["04-train"]));
    common::stdout_ok(loglake(&["05-detect"]));
    let same_window = format!(
        "SELECT COUNT(*) FROM anomalies WHERE detector = 'zscore' AND granularity = 'window' \
         AND entity_key = '{service}' AND window_start = '{start}'"
    );
    assert_eq!(
        db.query_i64(&same_window).unwrap(),
        0,
        "the window of {service} at {start} is still flagged after training on the verdict"
    );
    let still = db
        .query_i64(&format!(
            "SELECT COUNT(*) FROM anomalies WHERE detector = 'rare_template' AND details LIKE '%{template}%'"
        ))
        .unwrap();
    assert_eq!(
        still, 0,
        "template {template} is still flagged after training on the verdict"
    );
}

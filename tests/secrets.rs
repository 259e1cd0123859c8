//! The database password never shows: not in the lock record, not in the "lake is locked"
//! message, not in a failed connection's error, not in any lake file — whether it comes in the
//! URL's user info by flag or as a query parameter by environment.

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FLAG_SECRET: &str = "Flag-Canary-7f3q";
const ENV_SECRET: &str = "Env-Canary-k2p9";

fn loglake(lake: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loglake"));
    c.args(["--lake", lake.to_str().unwrap(), "--source", "s"])
        .args(["--date", "2026-11-20"])
        .env_remove("LOGLAKE__DATABASE__URL");
    c
}

fn assert_clean(what: &str, text: &str) {
    for secret in [FLAG_SECRET, ENV_SECRET] {
        assert!(!text.contains(secret), "{what} leaks {secret}: {text}");
    }
}

/// Every file under `dir`, as bytes, is free of both secrets.
fn assert_files_clean(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_files_clean(&path);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            assert_clean(
                &path.display().to_string(),
                &String::from_utf8_lossy(&bytes),
            );
        }
    }
}

#[test]
fn passwords_stay_out_of_messages_the_lock_and_the_lake() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    // A server that accepts connections and never answers: the first process holds the
    // lake's lock while its connection attempt waits.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = format!("postgres://canary:{FLAG_SECRET}@127.0.0.1:{port}/loglake");
    let holder = loglake(&lake)
        .args(["--database-url", &url, "00-init"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let lock = lake.join("_lock");
    let t0 = Instant::now();
    let record = loop {
        let text = std::fs::read_to_string(&lock).unwrap_or_default();
        if text.contains("\"pid\"") {
            break text;
        }
        assert!(t0.elapsed() < Duration::from_secs(8), "no lock record");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_clean("the lock record", &record);
    assert!(record.contains("--database-url"), "{record}");
    let mode = std::fs::metadata(&lock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "lock file mode {mode:o}");

    // A second writer meets the lock: the holder's command line is named, redacted.
    let env_url = format!("postgres://alice@127.0.0.1:1/loglake?password={ENV_SECRET}");
    let second = loglake(&lake)
        .args(["--on-locked", "fail", "00-init"])
        .env("LOGLAKE__DATABASE__URL", &env_url)
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("is locked by"), "{err}");
    assert_clean("the lock-conflict message", &err);

    // The holder's connection times out: its error names the redacted URL.
    let out = holder.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("127.0.0.1"), "{err}");
    assert_clean("the connection error", &err);
    drop(silent);

    // A refused connection with the password as a query parameter, from the environment.
    let refused = loglake(&lake)
        .arg("00-init")
        .env("LOGLAKE__DATABASE__URL", &env_url)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let mut err = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert_clean("the refused connection's error", &err);

    // JSON logs too.
    let json = loglake(&lake)
        .args(["--log-format", "json", "--database-url", &url, "00-init"])
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut output = json.wait_with_output().unwrap();
    output.stderr.extend_from_slice(&output.stdout);
    err.clear();
    output.stderr.as_slice().read_to_string(&mut err).unwrap();
    assert_clean("debug JSON logs", &err);

    assert_files_clean(&lake);
}

/// A whole run against PostgreSQL with a password in the URL (the CI server trusts loopback,
/// so any password connects): the password is in no output, lake file or database row.
#[test]
fn a_full_postgres_run_keeps_its_password_to_itself() {
    let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("TEST_DATABASE_URL is not set: skipping the PostgreSQL canary run (CI sets it)");
        return;
    };
    let parsed = url::Url::parse(&url).unwrap();
    let mut with_password = parsed.clone();
    with_password.set_password(Some(FLAG_SECRET)).unwrap();
    let with_password = with_password.to_string();
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let raw = tmp.path().join("raw");
    let generated = Command::new(env!("CARGO_BIN_EXE_loglake"))
        .args(["generate", "--out", raw.to_str().unwrap(), "--days", "1"])
        .args(["--start-date", "2026-11-20", "--lines-per-day", "20000"])
        .output()
        .unwrap();
    assert!(generated.status.success());
    let source = format!("canary{}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_loglake"))
        .args(["--lake", lake.to_str().unwrap(), "--source", &source])
        .args(["--date", "2026-11-20", "--database-url", &with_password])
        .args(["run", "--input", raw.join("logs").to_str().unwrap()])
        .args(["--format", "generator", "--session-key", r"req=(\S+)"])
        .env("RUST_LOG", "debug")
        .env_remove("LOGLAKE__DATABASE__URL")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert_clean("a full run's output", &text);
    assert_files_clean(&lake);
    let db = loglake::db::Database::connect(&url, Path::new("unused"), 1).unwrap();
    for (table, columns) in [
        (
            "pipeline_runs",
            "coalesce(message, '') || coalesce(error, '')",
        ),
        ("anomalies", "reason || details"),
        ("models", "params || path"),
    ] {
        let leaks = db
            .query_i64(&format!(
                "SELECT count(*) FROM {table} WHERE {columns} LIKE '%{FLAG_SECRET}%'"
            ))
            .unwrap();
        assert_eq!(leaks, 0, "{table} holds the password");
    }
    let runs = db
        .query_i64(&format!(
            "SELECT count(*) FROM pipeline_runs WHERE source = '{source}'"
        ))
        .unwrap();
    assert!(runs >= 7, "{runs} runs recorded");
    db.close();
}

//! Bad settings are refused before anything is written, each with one line that says what is
//! wrong and what to do.

use std::path::Path;
use std::process::Command;

fn loglake(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loglake"))
        .current_dir(dir)
        .env_remove("LOGLAKE__DATABASE__URL")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_settings_fail_early_saying_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("app.log"), "2026-11-20 10:00:00 INFO api: ok\n").unwrap();
    std::fs::write(dir.join("bad.toml"), "[run]\non_locked = \"sometimes\"\n").unwrap();
    std::fs::write(dir.join("a-file"), "").unwrap();
    let cases: [(&[&str], &str); 6] = [
        (
            &["--date", "20-11-2026", "00-init"],
            "expected a date as YYYY-MM-DD",
        ),
        (
            &["--date", "2026-02-30", "00-init"],
            "2026-02-30 is not a calendar date",
        ),
        (
            &["--lake", "a-file", "--date", "2026-11-20", "00-init"],
            "is a file, not a folder",
        ),
        (
            &["--config", "bad.toml", "--date", "2026-11-20", "00-init"],
            "on_locked must be \"wait\" or \"fail\", not \"sometimes\"",
        ),
        (
            &[
                "--date",
                "2026-11-20",
                "run",
                "--input",
                "app.log",
                "--format",
                "nosuch",
            ],
            "unknown format \"nosuch\": use a preset",
        ),
        (
            &[
                "--date",
                "2026-11-20",
                "run",
                "--input",
                "app.log",
                "--session-key",
                "(",
            ],
            "invalid session key regex \"(\": unclosed group",
        ),
    ];
    for (args, expected) in cases {
        let (ok, err) = loglake(dir, args);
        assert!(!ok, "{args:?} succeeded");
        assert!(err.contains(expected), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.contains(expected),
            "{args:?}: not on the first line: {err}"
        );
        if err.starts_with("loglake: error:") {
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        }
    }
    // None of them wrote anything: no lake folder was made.
    assert!(!dir.join("lake").exists(), "a refused run created the lake");
}

/// Events timed decades from the batch date are counted and warned about, and kept.
#[test]
fn far_off_timestamps_are_counted_and_warned() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut log = String::new();
    for n in 0..50 {
        let year = if n % 10 == 0 { 2070 } else { 2026 };
        log.push_str(&format!(
            "{year}-11-20 10:00:{:02} INFO api: request {n} ok\n",
            n % 60
        ));
    }
    std::fs::write(dir.join("app.log"), log).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_loglake"))
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .args(["--date", "2026-11-20", "run", "--to", "02-silver"])
        .args(["--input", "app.log", "--format"])
        .arg("<Date> <Time> <Level> <Component>: <Content>")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("more than max_skew_days"), "{err}");
    assert!(err.contains("events=5"), "{err}");

    // Quarantined on request, with the reason; the rest kept.
    let out = Command::new(env!("CARGO_BIN_EXE_loglake"))
        .current_dir(dir)
        .env("LOGLAKE__PARSE__QUARANTINE_SKEWED", "true")
        .args([
            "--lake",
            "q-lake",
            "--date",
            "2026-11-20",
            "run",
            "--to",
            "02-silver",
        ])
        .args(["--input", "app.log", "--format"])
        .arg("<Date> <Time> <Level> <Component>: <Content>")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("50 lines parsed into 45 events, 5 quarantined"),
        "{stdout}"
    );
}

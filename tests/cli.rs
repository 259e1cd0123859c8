//! The command line's own outputs: shell completions and the man page, generated from the
//! parser's definitions.

mod common;

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_loglake");

fn stdout_of(args: &[&str]) -> String {
    common::stdout_ok(Command::new(BIN).args(args).output().unwrap())
}

#[test]
fn completions_name_every_stage_and_flag() {
    let bash = stdout_of(&["completions", "bash"]);
    assert!(bash.contains("complete -F"), "{bash}");
    for word in ["01-bronze", "06-report", "--on-locked", "--session-key"] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let zsh = stdout_of(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef loglake"), "{zsh}");
    let fish = stdout_of(&["completions", "fish"]);
    assert!(fish.contains("complete -c loglake"), "{fish}");
    // An unknown shell is a usage error (clap's exit code 2), listing the ones there are.
    let out = Command::new(BIN)
        .args(["completions", "cmd.exe"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bash"));
}

#[test]
fn the_man_page_is_roff_with_every_command() {
    let man = stdout_of(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH loglake"),
        "{man}"
    );
    assert!(
        man.contains(".TH loglake 1"),
        "{}",
        &man[..200.min(man.len())]
    );
    for word in ["00\\-init", "05\\-detect", "completions"] {
        assert!(man.contains(word), "the man page lacks {word}");
    }
    // Every page the top page names is written by `man --dir`.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("man1");
    let said = stdout_of(&["man", "--dir", dir.to_str().unwrap()]);
    assert!(said.starts_with("man: "), "{said}");
    let named: Vec<String> = man
        .split("loglake\\-")
        .skip(1)
        .filter_map(|rest| {
            rest.split_once("(1)")
                .map(|(name, _)| name.replace("\\-", "-"))
        })
        .filter(|name| !name.contains(char::is_whitespace))
        .collect();
    assert!(named.iter().any(|n| n == "run"), "{named:?}");
    for name in &named {
        let page = dir.join(format!("loglake-{name}.1"));
        let text = std::fs::read_to_string(&page).unwrap_or_else(|_| panic!("{page:?} missing"));
        assert!(text.contains(".TH"), "{page:?}");
    }
}

fn usage_error(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_flag_the_command_does_not_read_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let lake = lake.to_str().unwrap();
    // Flags belong to the commands that read them: anywhere else, clap refuses them.
    let err = usage_error(&["--lake", lake, "02-silver", "--input", "app.log"]);
    assert!(err.contains("unexpected argument '--input'"), "{err}");
    let err = usage_error(&["--lake", lake, "--input", "app.log", "01-bronze"]);
    assert!(err.contains("unexpected argument '--input'"), "{err}");
    let err = usage_error(&["--lake", lake, "03-gold", "--labels", "labels.jsonl"]);
    assert!(err.contains("unexpected argument '--labels'"), "{err}");
    let err = usage_error(&["--lake", lake, "status", "--html"]);
    assert!(err.contains("unexpected argument '--html'"), "{err}");
    // The format is read by 02-silver alone, the session key by 02-silver and 03-gold.
    let err = usage_error(&["--lake", lake, "05-detect", "--format", "hdfs"]);
    assert!(err.contains("unexpected argument '--format'"), "{err}");
    let err = usage_error(&["--lake", lake, "--format", "hdfs", "02-silver"]);
    assert!(err.contains("unexpected argument '--format'"), "{err}");
    let err = usage_error(&["--lake", lake, "04-train", "--session-key", "id=(\\d+)"]);
    assert!(err.contains("unexpected argument '--session-key'"), "{err}");
    // And their help lists them; other commands' help does not.
    assert!(stdout_of(&["01-bronze", "--help"]).contains("--input"));
    assert!(stdout_of(&["06-report", "--help"]).contains("--labels"));
    assert!(!stdout_of(&["02-silver", "--help"]).contains("--input"));
    assert!(stdout_of(&["03-gold", "--help"]).contains("--session-key"));
    assert!(!stdout_of(&["03-gold", "--help"]).contains("--format"));
    assert!(stdout_of(&["run", "--help"]).contains("--format"));
    // Nothing was created by a refused command.
    assert!(!tmp.path().join("lake").exists());
}

#[test]
fn enumerated_values_are_checked_and_listed() {
    let err = usage_error(&["run", "--from", "9"]);
    assert!(
        err.contains("00-init") && err.contains("06-report"),
        "{err}"
    );
    let err = usage_error(&["--log-format", "xml", "status"]);
    assert!(err.contains("text") && err.contains("json"), "{err}");
    let err = usage_error(&["--on-locked", "maybe", "status"]);
    assert!(err.contains("wait") && err.contains("fail"), "{err}");
    // A stage by its word or number is the stage.
    let help = stdout_of(&["run", "--help"]);
    assert!(help.contains("Examples:"), "{help}");
}

#[test]
fn config_show_says_where_each_value_came_from() {
    let tmp = tempfile::tempdir().unwrap();
    let text = common::stdout_ok(
        Command::new(BIN)
            .current_dir(tmp.path())
            .env_remove("LOGLAKE_CONFIG")
            .env("LOGLAKE__GOLD__WINDOW_MINUTES", "10")
            .env(
                "LOGLAKE__DATABASE__URL",
                "postgres://app:s3cret-canary@db/loglake",
            )
            .args(["--lake", "here", "config", "show"])
            .output()
            .unwrap(),
    );
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("{key}: {text}"))
            .to_string()
    };
    assert!(line("gold.window_minutes").contains("environment LOGLAKE__GOLD__WINDOW_MINUTES"));
    assert!(line("lake.path").contains("flag --lake"));
    assert!(line("train.lookback_days").ends_with("# default"));
    assert!(text.starts_with("# config file: none"), "{text}");
    assert!(!text.contains("s3cret-canary"), "{text}");
    // TOML has no null: an unset key is shown commented out, and every other line parses.
    assert!(text.contains("# parse.year = (not set)"), "{text}");
    assert!(!text.contains("= null"), "{text}");
}

/// Every flag and positional argument of every command says what it is in `--help`.
#[test]
fn every_argument_has_help_text() {
    use clap::CommandFactory as _;
    fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in command.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && !arg.is_hide_set() && arg.get_help().is_none() {
                missing.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in command.get_subcommands() {
            if sub.get_name() != "help" {
                check(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
    }
    let mut missing = Vec::new();
    check(&loglake::cli::Cli::command(), "loglake", &mut missing);
    assert!(missing.is_empty(), "arguments without help: {missing:?}");
}

/// A reader that stops early (`| head`) is no crash: the command finishes quietly, exit 0,
/// where `print!` used to panic with "failed printing to stdout: Broken pipe" (exit 101).
/// The pipe's reading end is closed before the command writes, so every write finds it gone.
#[test]
fn a_reader_that_leaves_early_is_no_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let lake = lake.to_str().unwrap();
    let raw = tmp.path().join("raw");
    common::stdout_ok(
        Command::new(BIN)
            .args([
                "--lake", lake, "--source", "shop", "generate", "--days", "1",
            ])
            .args(["--lines-per-day", "2000", "--out", raw.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    let input = raw.join("logs");
    let runs: [&[&str]; 5] = [
        &["completions", "bash"],
        &["man"],
        &["--lake", lake, "--source", "shop", "00-init"],
        &[
            "--lake",
            lake,
            "--source",
            "shop",
            "01-bronze",
            "--input",
            input.to_str().unwrap(),
        ],
        &["--lake", lake, "--source", "shop", "status"],
    ];
    for args in runs {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // The stage did its work though nobody read what it said.
    let status = stdout_of(&["--lake", lake, "--source", "shop", "status"]);
    assert!(status.contains("shop"), "{status}");
}

/// A misspelled `--source` on a read-only command is an error that names the sources there
/// are, not an empty report that succeeds; and it leaves no trace (no phantom source in
/// `status`).
#[test]
fn an_unknown_source_is_named_with_the_ones_there_are() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let lake = lake.to_str().unwrap();
    let raw = tmp.path().join("raw");
    let ok = |args: &[&str]| common::stdout_ok(Command::new(BIN).args(args).output().unwrap());
    ok(&[
        "--source",
        "shop",
        "generate",
        "--days",
        "1",
        "--lines-per-day",
        "500",
    ]
    .iter()
    .copied()
    .chain(["--out", raw.to_str().unwrap()])
    .collect::<Vec<_>>());
    let input = raw.join("logs");
    ok(&["--lake", lake, "--source", "shop", "00-init"]);
    ok(&[
        "--lake",
        lake,
        "--source",
        "shop",
        "01-bronze",
        "--input",
        input.to_str().unwrap(),
    ]);
    for args in [
        &["--lake", lake, "--source", "shpo", "06-report"][..],
        &["--lake", lake, "--source", "shpo", "status"],
        &["--lake", lake, "--source", "shpo", "incidents", "list"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("no source \"shpo\"") && stderr.contains("(it has: shop)"),
            "{args:?}: {stderr}"
        );
    }
    let status = ok(&["--lake", lake, "status"]);
    assert!(!status.contains("shpo"), "{status}");
    // The names the Airflow DAGs use are read by the binary too.
    let from_env = Command::new(BIN)
        .arg("status")
        .env("LOGLAKE_LAKE", lake)
        .env("LOGLAKE_SOURCE", "shpo")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&from_env.stderr);
    assert!(stderr.contains("no source \"shpo\""), "{stderr}");
    let from_env = Command::new(BIN)
        .arg("status")
        .env("LOGLAKE_LAKE", lake)
        .env("LOGLAKE_SOURCE", "shop")
        .output()
        .unwrap();
    assert!(common::stdout_ok(from_env).contains("bronze/lines"));
    // The source that is there reports.
    let report = ok(&["--lake", lake, "--source", "shop", "06-report"]);
    assert!(report.contains("06-report"), "{report}");
}

/// Empty files are counted as empty, not as "already in bronze".
#[test]
fn empty_files_are_said_to_be_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("empty.log"), "").unwrap();
    std::fs::write(logs.join("also-empty.log"), "").unwrap();
    std::fs::write(
        logs.join("app.log"),
        "2026-11-21T10:00:00.000Z INFO api: request served in 12 ms\n",
    )
    .unwrap();
    let lake = tmp.path().join("lake");
    let lake = lake.to_str().unwrap();
    let ok = |args: &[&str]| common::stdout_ok(Command::new(BIN).args(args).output().unwrap());
    ok(&["--lake", lake, "00-init"]);
    let input = [
        "--lake",
        lake,
        "01-bronze",
        "--input",
        logs.to_str().unwrap(),
    ];
    let said = ok(&input);
    assert!(said.contains("0 already in bronze, 2 empty"), "{said}");
    let said = ok(&input);
    assert!(
        said.contains("nothing new: 1 file(s) already in bronze, 2 empty"),
        "{said}"
    );
}

/// A command's help lists its own flags apart from the flags every command takes.
#[test]
fn a_commands_help_shows_its_own_flags_first() {
    let help = stdout_of(&["run", "-h"]);
    let (own, global) = help
        .split_once("Global options:")
        .unwrap_or_else(|| panic!("{help}"));
    assert!(own.contains("--input") && own.contains("--from"), "{help}");
    assert!(
        !own.contains("--lake") && !own.contains("--database-url"),
        "{help}"
    );
    assert!(
        global.contains("--lake") && global.contains("--source"),
        "{help}"
    );
}

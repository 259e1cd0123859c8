//! The command line's own outputs: shell completions and the man page, generated from the
//! parser's definitions.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_loglake");

fn stdout_of(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
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
}

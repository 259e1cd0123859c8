//! Standard output: what commands print for a person or a script.
//!
//! A reader may stop reading early — `loglake 06-report | head -1`, `loglake completions bash
//! | head` — and a write to the closed pipe fails with `BrokenPipe`. Rust's `print!` panics on
//! that (exit 101 and a backtrace), which reads as a crash. Here the first such failure
//! marks standard output as gone and every later write is dropped: the command finishes its
//! work (a stage run from `run … | head` still ingests the whole batch) and exits as it
//! would have, as `grep` or `rg` do when their reader leaves. Other write errors (a full
//! disk behind a redirect) are errors.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result};

/// Set once a write found the reader gone.
static READER_GONE: AtomicBool = AtomicBool::new(false);

/// Write `text` to standard output as it is.
pub fn print(text: &str) -> Result<()> {
    write_bytes(text.as_bytes())
}

/// Write `text` and a newline to standard output.
pub fn println(text: &str) -> Result<()> {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    write_bytes(line.as_bytes())
}

/// Write `bytes` to standard output, dropping them once the reader is gone.
pub fn write_bytes(bytes: &[u8]) -> Result<()> {
    if READER_GONE.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => {
            READER_GONE.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => other.context("writing to standard output"),
    }
}

/// Whether a write found standard output closed by its reader.
pub fn reader_gone() -> bool {
    READER_GONE.load(Ordering::Relaxed)
}

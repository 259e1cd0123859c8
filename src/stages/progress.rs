//! What a stage is doing, on a terminal: a spinner line with the stage, its current step and
//! the elapsed time, cleared when the stage ends.
//!
//! Only on a terminal: under cron or Airflow stderr is a file or a pipe, where a spinner
//! would write hundreds of carriage-return frames into the log; there, the structured log lines
//! (`stage finished rows_in=… seconds=…`, or JSON with `--log-format json`) say the same thing
//! once per stage.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The spinner on screen, if any, so that log lines can clear it before they print.
static ON_SCREEN: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// stderr for the log subscriber: each log line is printed with the spinner lifted, so the two
/// never share a terminal line.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = ON_SCREEN.lock().ok().and_then(|b| b.clone());
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf).map(|()| buf.len())),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A spinner on stderr when it is a terminal and logs are text; hidden otherwise.
    pub fn new(json_logs: bool) -> Self {
        let bar = if std::io::stderr().is_terminal() && !json_logs {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            // Bold only where colour is wanted (`NO_COLOR`).
            let template = if crate::cli::colour_on_stderr() {
                "{spinner} {prefix:.bold} {msg} [{elapsed}]"
            } else {
                "{spinner} {prefix} {msg} [{elapsed}]"
            };
            bar.set_style(ProgressStyle::with_template(template).expect("static template"));
            if let Ok(mut on_screen) = ON_SCREEN.lock() {
                *on_screen = Some(bar.clone());
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        Self { bar }
    }

    /// A stage begins.
    pub fn start(&self, stage: &'static str) {
        self.bar.reset();
        self.bar.set_prefix(stage);
        self.bar.set_message("starting");
        self.bar.enable_steady_tick(Duration::from_millis(120));
    }

    /// The stage moves on to `what` (e.g. "parsing 2026-11-20").
    pub fn step(&self, what: impl Into<Cow<'static, str>>) {
        self.bar.set_message(what);
    }

    /// The stage ended: clear the line (the stage's summary line follows on stdout).
    pub fn finish(&self) {
        self.bar.disable_steady_tick();
        self.bar.finish_and_clear();
    }
}

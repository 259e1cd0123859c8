//! What a stage is doing, on a terminal: a spinner line with the stage, its current step and
//! the elapsed time, cleared when the stage ends.
//!
//! Only on a terminal: under cron or Airflow stderr is a file or a pipe, where a spinner
//! would write hundreds of carriage-return frames into the log; there, the structured log lines
//! (`stage finished rows_in=… seconds=…`, or JSON with `--log-format json`) say the same thing
//! once per stage.

use std::borrow::Cow;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A spinner on stderr when it is a terminal and logs are text; hidden otherwise.
    pub fn new(json_logs: bool) -> Self {
        let bar = if std::io::stderr().is_terminal() && !json_logs {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} [{elapsed}]")
                    .expect("static template"),
            );
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

//! The `loglake` binary: parse arguments, run, and turn any error into one clear line on
//! stderr with a non-zero exit code. Everything else lives in the library so that tests and
//! benchmarks exercise exactly what users run.

use std::process::ExitCode;

fn main() -> ExitCode {
    match loglake::cli::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, the whole cause chain: cron mails and Airflow task logs show this, and
            // a reader should not need RUST_LOG to learn why a stage failed.
            eprintln!("loglake: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

//! The `loglake` binary: parse arguments, run, and turn any error into one clear line on
//! stderr with a non-zero exit code. Everything else lives in the library so that tests and
//! benchmarks exercise exactly what users run.

use std::process::ExitCode;

/// mimalloc instead of the system allocator: parsing a batch allocates and frees many
/// short-lived buffers across threads, and glibc's malloc hands large freed blocks back to the
/// kernel only to fault them in again; with mimalloc `02-silver` spends far less time in page
/// faults (measured with `perf record` on a million HDFS lines).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match loglake::cli::main() {
        Ok(done) => ExitCode::from(done.exit_code()),
        Err(err) => {
            // One line, the whole cause chain: cron mails and Airflow task logs show this, and
            // a reader should not need RUST_LOG to learn why a stage failed.
            // Scrubbed: a driver's error may quote the database URL it was given.
            let line = format!("{err:#}");
            // Control characters escaped: a file's name must not forge a second line.
            let line = loglake::secrets::scrub(&line);
            eprintln!("loglake: error: {}", loglake::lake::printable(&line));
            // A lake held by another writer is worth retrying later: its own code.
            let locked = err
                .chain()
                .any(|e| e.is::<loglake::lake::lock::LakeLocked>());
            if locked {
                ExitCode::from(loglake::lake::lock::LakeLocked::EXIT_CODE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

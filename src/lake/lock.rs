//! The lake's writer lock: one loglake process writes to a lake at a time.
//!
//! Why one lock for the whole lake rather than one per stage or source: stages share more than
//! their output partitions — the embedded SQLite file, the template store, the model folders,
//! and `_staging/`, which a crashed writer may leave half full. With a single writer, whoever
//! holds the lock may treat everything in `_staging/` as debris and remove it, and no two
//! processes can interleave the two renames that replace a partition. A second process (cron
//! firing while yesterday's backfill still runs, two Airflow runs of the same DAG) either waits
//! for the lock or fails at once with a message naming the holder, as configured in `[run]`.
//!
//! The lock is an advisory `flock` on `<lake>/_lock` (through `std::fs::File::lock`), not a
//! PID file. The kernel drops it the moment its holder exits, however it exits — a `kill -9`,
//! an OOM kill, a power cut — so a crashed holder can never leave a lock that blocks the lake
//! forever, and nobody has to guess whether a PID in a file still belongs to loglake. The file
//! also records who holds it (pid, host, command, start time) for the waiting process's message;
//! a holder that exits cleanly empties it, so a record still present when the next process
//! takes the lock is how loglake knows the previous writer crashed, and says so.
//!
//! Caveat, stated in the README: `flock` is only as good as the file system's support for it.
//! Local disks and NFSv4 honour it; some network mounts do not.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// What to do when another process holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum OnLocked {
    /// Wait for the holder to finish (up to a timeout).
    Wait,
    /// Fail at once with a message naming the holder.
    Fail,
}

impl TryFrom<String> for OnLocked {
    type Error = String;

    fn try_from(text: String) -> std::result::Result<Self, String> {
        match text.as_str() {
            "wait" => Ok(Self::Wait),
            "fail" => Ok(Self::Fail),
            _ => Err(format!(
                "on_locked must be \"wait\" or \"fail\", not {text:?}"
            )),
        }
    }
}

/// Who holds the lock, as written into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub command: String,
    pub since: String,
    /// The holder's run id in `pipeline_runs`, once it has one.
    #[serde(default)]
    pub run_id: Option<String>,
}

impl Holder {
    fn current() -> Self {
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "unknown-host".into());
        // Never the database password: a URL given by flag is recorded redacted, and any
        // registered secret is scrubbed from the rest (`--database-url=…`, a password in a
        // query parameter). The record is for the operator's "who holds the lake" question.
        let command = std::env::args()
            .map(|arg| {
                if super::location::is_url(&arg) && !arg.starts_with('-') {
                    crate::secrets::redact_url(&arg)
                } else {
                    crate::secrets::scrub(&arg).into_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            pid: std::process::id(),
            host,
            command,
            since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            run_id: None,
        }
    }

    fn describe(&self) -> String {
        // Scrubbed again: a record written by an older loglake may hold a password.
        format!(
            "pid {} on {} since {} (`{}`)",
            self.pid,
            self.host,
            self.since,
            crate::secrets::scrub(&self.command)
        )
    }
}

/// The held lock; released (and its holder record cleared) when dropped.
#[derive(Debug)]
pub struct LakeLock {
    file: File,
    path: PathBuf,
    /// This process's record, as written into the file.
    holder: Holder,
    /// The record a crashed previous holder left behind, if any.
    pub recovered_from: Option<Holder>,
}

/// The lake is held by another writer (and `on_locked` said not to wait, or waiting timed
/// out). A distinct error, so that the binary exits with [`LakeLocked::EXIT_CODE`]: a wrapper
/// can try again later instead of reporting a failure.
#[derive(Debug)]
pub struct LakeLocked(String);

impl LakeLocked {
    /// sysexits.h's EX_TEMPFAIL: "temporary failure; the user is invited to retry".
    pub const EXIT_CODE: u8 = 75;

    /// Held by another writer, as `why` explains (a lease in the database, for a lake on
    /// object storage).
    pub fn new(why: String) -> Self {
        LakeLocked(why)
    }
}

impl std::fmt::Display for LakeLocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LakeLocked {}

impl LakeLock {
    /// Take the writer lock of the lake at `root`, creating `root` if needed.
    pub fn acquire(root: &Path, on_locked: OnLocked, timeout: Duration) -> Result<Self> {
        if root.exists() && !root.is_dir() {
            bail!(
                "the lake path {} is a file, not a folder: give --lake (or [lake] path) a folder, new or existing",
                root.display()
            );
        }
        fs::create_dir_all(root)
            .with_context(|| format!("creating the lake folder {}", root.display()))?;
        let path = root.join("_lock");
        // Owner-only (0600): the record names the holder's command line; a lock file an
        // older loglake created world-readable is tightened too.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening the lake lock {}", path.display()))?;
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
        let started = Instant::now();
        let mut announced = false;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let holder = read_holder(&mut file)
                        .map(|h| h.describe())
                        .unwrap_or_else(|| "another process".into());
                    match on_locked {
                        OnLocked::Fail => return Err(LakeLocked(format!(
                            "the lake {} is locked by {holder}; it is released when that process ends: run again later, or set [run] on_locked = \"wait\" (LOGLAKE__RUN__ON_LOCKED=wait) to queue behind it",
                            root.display()
                        )).into()),
                        OnLocked::Wait if started.elapsed() >= timeout => return Err(LakeLocked(format!(
                            "gave up after {}s waiting for the lake {}, locked by {holder}; raise [run] lock_timeout_seconds or run again later",
                            timeout.as_secs(),
                            root.display()
                        )).into()),
                        OnLocked::Wait => {
                            if !announced {
                                tracing::warn!(lake = %root.display(), %holder, "lake is locked; waiting for it");
                                announced = true;
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| {
                        format!(
                            "locking {} (does this file system support flock?)",
                            path.display()
                        )
                    });
                }
            }
        }
        let recovered_from = read_holder(&mut file);
        let holder = Holder::current();
        write_holder(&mut file, Some(&holder))?;
        Ok(Self {
            file,
            path,
            holder,
            recovered_from,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Add the holder's run id to its record, so that whoever recovers the lock after a crash
    /// can close exactly this run's rows in `pipeline_runs`.
    pub fn record_run(&mut self, run_id: &str) -> Result<()> {
        self.holder.run_id = Some(run_id.to_string());
        write_holder(&mut self.file, Some(&self.holder))
    }
}

impl Drop for LakeLock {
    fn drop(&mut self) {
        // A clean exit leaves an empty record: a record found by the next holder means crash.
        let _ = write_holder(&mut self.file, None);
        let _ = self.file.unlock();
    }
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

fn write_holder(file: &mut File, holder: Option<&Holder>) -> Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    if let Some(h) = holder {
        serde_json::to_writer(&mut *file, h)?;
        file.write_all(b"\n")?;
    }
    file.sync_data()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // flock locks belong to an open file description, so two `acquire`s in one process
    // contend exactly like two processes do.

    #[test]
    fn a_second_writer_fails_at_once_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _held = LakeLock::acquire(dir.path(), OnLocked::Fail, Duration::ZERO).unwrap();
        let err = LakeLock::acquire(dir.path(), OnLocked::Fail, Duration::ZERO).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("is locked by pid"), "{msg}");
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
    }

    #[test]
    fn a_waiting_writer_gives_up_after_its_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let _held = LakeLock::acquire(dir.path(), OnLocked::Fail, Duration::ZERO).unwrap();
        let err =
            LakeLock::acquire(dir.path(), OnLocked::Wait, Duration::from_millis(300)).unwrap_err();
        assert!(format!("{err:#}").contains("gave up after"), "{err:#}");
    }

    #[test]
    fn a_waiting_writer_gets_the_lock_when_the_holder_releases_it() {
        let dir = tempfile::tempdir().unwrap();
        let held = LakeLock::acquire(dir.path(), OnLocked::Fail, Duration::ZERO).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        let t0 = Instant::now();
        let second = LakeLock::acquire(dir.path(), OnLocked::Wait, Duration::from_secs(30))
            .expect("lock after release");
        release.join().unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(250));
        // The first holder released cleanly: nothing to recover.
        assert_eq!(second.recovered_from, None);
    }

    #[test]
    fn a_record_left_by_a_holder_that_did_not_release_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let held = LakeLock::acquire(dir.path(), OnLocked::Fail, Duration::ZERO).unwrap();
        let path = held.path().to_path_buf();
        // Simulate a crash: the record stays, the kernel drops the lock with the descriptor.
        let LakeLock { file, .. } = &held;
        let raw = file.try_clone().unwrap();
        std::mem::forget(held);
        raw.unlock().unwrap();
        drop(raw);
        let next = LakeLock::acquire(dir.path(), OnLocked::Fail, Duration::ZERO).unwrap();
        let previous = next.recovered_from.as_ref().expect("crash record");
        assert_eq!(previous.pid, std::process::id());
        assert_eq!(next.path(), path);
    }
}

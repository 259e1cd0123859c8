//! The embedded SQLite's write-ahead log, copied into the database file off the critical path.
//!
//! In WAL mode a commit appends pages to `loglake.db-wal`; SQLite copies them into the
//! database file (a checkpoint) once the log passes 1,000 pages, on the committing
//! connection, before the commit returns. 05-detect's one big transaction (12,721 anomalies,
//! 26 MB, on a million HDFS lines) crossed that mark every time, so its write waited about
//! 30 ms for the copy while the other core sat idle, and `run`'s last stage could not start.
//!
//! So that transaction runs with the automatic checkpoint off, and afterwards a thread of its
//! own, on a connection of its own, runs a passive checkpoint (which waits for no reader or
//! writer) while the process goes on: in `run`, while 06-report reads. [`Database::close`]
//! waits for it before closing the pool; if the process ends first, the log is still valid
//! and whoever opens the database next finds its pages there, as after any crash.

use std::thread::JoinHandle;

use sqlx::Connection as _;

use super::Database;

/// SQLite's default `wal_autocheckpoint`, in pages: restored after the big transaction.
pub(super) const AUTOCHECKPOINT_PAGES: u32 = 1000;

/// The background checkpoint, when one was started.
#[derive(Default)]
pub(super) struct Checkpointer {
    running: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Database {
    /// Start copying the log into the database file on a thread of its own (SQLite only; a
    /// checkpoint still running from before is waited for first).
    pub(super) fn checkpoint_in_background(&self) {
        let Some(url) = self.sqlite_url.clone() else {
            return;
        };
        self.wait_for_checkpoint();
        let handle = std::thread::spawn(move || {
            if let Err(e) = checkpoint(&url) {
                // Not an error for the stage: the log keeps the pages, and closing the last
                // connection checkpoints them.
                tracing::debug!(error = %e, "background WAL checkpoint did not run");
            }
        });
        *self
            .checkpointer
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(handle);
    }

    /// Wait for the background checkpoint, if one is running.
    pub(super) fn wait_for_checkpoint(&self) {
        let running = self
            .checkpointer
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = running {
            let _ = handle.join();
        }
    }
}

/// A passive checkpoint of the SQLite database at `url` on a new connection.
fn checkpoint(url: &str) -> Result<(), sqlx::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut conn = sqlx::AnyConnection::connect(url).await?;
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await?;
        conn.close().await
    })
}

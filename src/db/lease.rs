//! Leases: one writer per partition, across machines.
//!
//! A local lake's writers are serialised by `flock` on the lake folder (see
//! [`crate::lake::lock`]). A lake on object storage has no folder to lock, and its writers may
//! run on several machines; what they share is the database. So a writer holds a lease per
//! thing it writes — `(lake, source, date)` for a batch's partitions, `(lake, source)` for a
//! source's template store and models — and writers of different sources and dates proceed at
//! once while one partition has one writer.
//!
//! On PostgreSQL a lease is a session advisory lock (`pg_try_advisory_lock`) held on a
//! connection of its own. The server drops it the moment that connection ends, however the
//! holder ends — `kill -9`, OOM, a lost machine once TCP gives up — so a crashed writer never
//! leaves a lease to expire or to be broken by hand, and no heartbeat is needed. On SQLite
//! (one machine by nature) a lease is a `flock`ed file beside the database file.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use sha2::Digest as _;

use super::{Database, Dialect};
use crate::lake::lock::{LakeLock, LakeLocked, OnLocked};

/// A lease held until the [`Database`] is dropped.
pub(super) enum Held {
    /// The connection whose session holds the advisory lock.
    Postgres(sqlx::AnyConnection),
    /// Held for as long as it lives (dropped: unlocked).
    Sqlite(#[allow(dead_code)] Box<LakeLock>),
}

/// The advisory lock key of a lease name: the first 8 bytes of its SHA-256.
fn key(name: &str) -> i64 {
    let digest = sha2::Sha256::digest(name.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

impl Database {
    /// Hold the lease `name` until this database is dropped; when another writer holds it,
    /// wait for it or fail at once, as `on_locked` says. A lease this process holds already
    /// is kept as it is (`run`'s 02-silver and 04-train both hold the source's).
    pub fn hold_lease(&self, name: &str, on_locked: OnLocked, timeout: Duration) -> Result<()> {
        if self.holds_lease(name) {
            return Ok(());
        }
        let held = match self.dialect {
            Dialect::Postgres => Held::Postgres(self.advisory_lock(name, on_locked, timeout)?),
            Dialect::Sqlite => {
                let db_file = self
                    .sqlite_url
                    .as_deref()
                    .and_then(|u| u.strip_prefix("sqlite://").or(u.strip_prefix("sqlite:")))
                    .map(|u| u.split('?').next().unwrap_or(u).to_string())
                    .unwrap_or_default();
                let dir = std::path::PathBuf::from(format!("{db_file}.leases"))
                    .join(format!("{:016x}", key(name)));
                Held::Sqlite(Box::new(LakeLock::acquire(&dir, on_locked, timeout).map_err(|e| {
                    match e.downcast::<LakeLocked>() {
                        Ok(_) => LakeLocked::new(format!(
                            "{name} is being written by another loglake on this machine; run again later, or set [run] on_locked = \"wait\""
                        ))
                        .into(),
                        Err(e) => e,
                    }
                })?))
            }
        };
        self.leases
            .lock()
            .expect("not poisoned")
            .push((name.to_string(), held));
        Ok(())
    }

    /// Whether this process holds the lease `name`.
    pub fn holds_lease(&self, name: &str) -> bool {
        self.leases
            .lock()
            .expect("not poisoned")
            .iter()
            .any(|(held, _)| held == name)
    }

    /// Give the lease `name` back now (ending the session that holds it); a no-op if it is
    /// not held.
    pub fn release_lease(&self, name: &str) {
        let held = {
            let mut leases = self.leases.lock().expect("not poisoned");
            leases
                .iter()
                .position(|(held, _)| held == name)
                .map(|i| leases.remove(i).1)
        };
        if let Some(Held::Postgres(conn)) = held {
            use sqlx::Connection as _;
            let _ = self.runtime.block_on(conn.close());
        }
    }

    fn advisory_lock(
        &self,
        name: &str,
        on_locked: OnLocked,
        timeout: Duration,
    ) -> Result<sqlx::AnyConnection> {
        use sqlx::{Connection as _, Row as _};
        let key = key(name);
        self.runtime.block_on(async {
            let mut conn = sqlx::AnyConnection::connect(&self.connect_url)
                .await
                .with_context(|| format!("connecting to {} for a lease", self.display_url))?;
            let started = Instant::now();
            let mut announced = false;
            loop {
                let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
                    .bind(key)
                    .fetch_one(&mut conn)
                    .await?
                    .try_get(0)?;
                if got {
                    return Ok(conn);
                }
                let holder = holder_of(&mut conn, key).await;
                match on_locked {
                    OnLocked::Fail => return Err(LakeLocked::new(format!(
                        "{name} is being written by {holder}; the lease is released when that writer ends: run again later, or set [run] on_locked = \"wait\" (LOGLAKE__RUN__ON_LOCKED=wait) to queue behind it"
                    )).into()),
                    OnLocked::Wait if started.elapsed() >= timeout => return Err(LakeLocked::new(format!(
                        "gave up after {}s waiting for {name}, held by {holder}; raise [run] lock_timeout_seconds or run again later",
                        timeout.as_secs()
                    )).into()),
                    OnLocked::Wait => {
                        if !announced {
                            tracing::warn!(lease = name, %holder, "another writer holds this lease; waiting for it");
                            announced = true;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        })
    }
}

/// Who holds advisory lock `key`, from the server's view of its sessions.
async fn holder_of(conn: &mut sqlx::AnyConnection, key: i64) -> String {
    use sqlx::Row as _;
    // A bigint key is stored as two 32-bit halves: classid (high), objid (low).
    let high = (key >> 32) as u32 as i64;
    let low = key as u32 as i64;
    let row = sqlx::query(
        "SELECT coalesce(host(a.client_addr), 'local socket') || ', backend pid ' || a.pid::text || ', since ' || to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS') \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.granted LIMIT 1",
    )
    .bind(high)
    .bind(low)
    .fetch_optional(conn)
    .await;
    match row {
        Ok(Some(row)) => row
            .try_get::<String, _>(0)
            .map(|who| format!("another loglake (database session from {who})"))
            .unwrap_or_else(|_| "another loglake".into()),
        _ => "another loglake".into(),
    }
}

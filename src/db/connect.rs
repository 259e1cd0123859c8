//! Connecting: one probe connection before the pool, so that a refused connection fails at
//! once with its reason and a transient failure is retried with growing pauses.

use anyhow::Result;

/// One connection to `url`, made before the pool is: a pool retries any failure until its
/// timeout and then reports only that it timed out, so a refused connection took ten seconds
/// to say nothing useful. Here a refusal, an unknown host or a rejected login fails at once
/// with the driver's reason; a server that is starting up or does not answer in time is tried
/// again, with growing pauses, for about 20 seconds in all.
pub(super) async fn probe(url: &str) -> Result<()> {
    use sqlx::Connection as _;
    const ATTEMPT: std::time::Duration = std::time::Duration::from_secs(5);
    const PAUSES_MS: [u64; 4] = [500, 1_000, 2_000, 4_000];
    let mut attempt = 0;
    loop {
        let why = match tokio::time::timeout(ATTEMPT, sqlx::AnyConnection::connect(url)).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                return Ok(());
            }
            // A URL the driver cannot read: nothing was contacted.
            Ok(Err(e @ sqlx::Error::Configuration(_))) => {
                return Err(anyhow::Error::from(e).context(
                    "the database URL does not read (write it as postgres://user:password@host:5432/database)",
                ));
            }
            Ok(Err(e)) if !transient(&e) => {
                return Err(anyhow::Error::from(e).context(
                    "the server refused or rejected the connection (is it running on that host and port, and are the user and password right?)",
                ));
            }
            Ok(Err(e)) => format!("{e}"),
            Err(_) => format!("no answer within {} s", ATTEMPT.as_secs()),
        };
        let Some(&pause) = PAUSES_MS.get(attempt) else {
            anyhow::bail!(
                "gave up after {} attempts: {why} (is the server up and reachable?)",
                attempt + 1
            );
        };
        tracing::warn!(attempt = attempt + 1, error = %crate::secrets::scrub(&why), "database not reachable yet; trying again");
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        attempt += 1;
    }
}

/// Whether a connection error may go away by itself (a server starting up, a timeout), as
/// opposed to one that will not (refused, unknown host, bad password or database).
fn transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
        ),
        sqlx::Error::PoolTimedOut => true,
        // PostgreSQL's "the database system is starting up" / "is shutting down".
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("57P03") | Some("57P01")),
        _ => false,
    }
}

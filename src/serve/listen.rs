//! The accept loop: HTTP/1 connections served by hyper with the limits `axum::serve` does not
//! set, so that slow or idle clients cannot hold the service.
//!
//! - A connection that has not sent a whole request's headers within `[serve]
//!   header_timeout_seconds` is closed: a new one that sends nothing, one that sends its
//!   headers a byte at a time, and one left idle between requests (hyper starts the same
//!   timer when a connection waits for its next request).
//! - At most `[serve] max_connections` are open at once; a client beyond them waits in the
//!   kernel's accept queue until one closes, instead of each taking a descriptor.
//! - On SIGTERM or Ctrl-C the loop stops accepting, asks every connection to finish its
//!   request in flight and close, and waits for them (at most [`DRAIN`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// How long the requests in flight may take to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(30);

/// Serve `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        // A free slot first, so that a client beyond the cap waits in the accept queue.
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of descriptors, or a connection reset before it was accepted: the
                // listener itself is fine; wait a moment rather than spin.
                Err(e) => {
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(router.clone());
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                // The one change there is: false to true, sent once accepting has stopped.
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every slot back: every connection has closed.
    let all = u32::try_from(max_connections.max(1)).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open {} s after the shutdown signal; stopping anyway",
            DRAIN.as_secs()
        );
    }
    Ok(())
}

//! The API's connection loop: hyper's HTTP/1 server over any [`axum::serve::Listener`] (plain
//! TCP, or the TLS listener of [`super::tls`]), with what `axum::serve` does not set.
//!
//! - A request head must arrive whole within the header timeout (`api.header_timeout_secs`),
//!   counted from the first byte the connection waits for: a client that opens connections and
//!   sends a request a byte at a time (slowloris) gets them closed instead of holding a file
//!   descriptor each for ever. The same limit closes keep-alive connections left idle.
//!   Responses in flight (event streams included) are not affected.
//! - Graceful shutdown: once `shutdown` resolves no connection is accepted, `on_shutdown` runs
//!   (it ends the event streams), every connection finishes its request in flight, and the loop
//!   returns when the last one has closed.

use std::fmt::Debug;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;

/// The default of `api.header_timeout_secs`.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serve `app` on every connection `listener` accepts until `shutdown` resolves.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_shutdown: impl FnOnce() + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: Debug,
{
    // Each connection holds a receiver; `closed()` resolves when the last one is gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            c = listener.accept() => c,
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder.serve_connection(TokioIo::new(io), service);
            let mut conn = pin!(conn);
            let mut stopping = false;
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(?peer, error = %e, "API connection ended");
                        }
                        break;
                    }
                    changed = stop.changed(), if !stopping => {
                        stopping = true;
                        if changed.is_ok() {
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            drop(stop);
        });
    }
    drop(listener);
    on_shutdown();
    drop(stop_rx);
    let _ = stop_tx.send(true);
    stop_tx.closed().await;
    Ok(())
}

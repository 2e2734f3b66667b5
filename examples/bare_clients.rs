//! The memory floor for `bench/proof.sh`: N bare whatsapp-rust clients (in-memory stores, no
//! gateway around them) paired with a running wa-mock by its mock phone, then idle until
//! SIGTERM or Ctrl-C. It prints `ready N` on stdout once every client is connected.
//!
//! `cargo build --release --features trust-wa-mock --example bare_clients`: like wagate, it
//! reaches wa-mock only with the test-only certificate bypass of that feature (it builds with
//! nothing else).
//!
//! usage: bare_clients --admin http://127.0.0.1:PORT --count N

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use tokio::sync::mpsc;
use wacore::store::InMemoryBackend;
use whatsapp_rust::TokioRuntime;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::http::UreqHttpClient;
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::types::events::Event;

#[derive(Parser)]
struct Args {
    /// wa-mock's base URL (admin API; the WebSocket is `/ws/chat` on the same address).
    #[arg(long)]
    admin: String,
    /// How many clients to pair.
    #[arg(long, default_value_t = 1)]
    count: usize,
}

const STEP: Duration = Duration::from_secs(60);

async fn next_matching<T>(
    rx: &mut mpsc::UnboundedReceiver<Arc<Event>>,
    what: &str,
    pick: impl Fn(&Event) -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) => {
                if let Some(v) = pick(&e) {
                    return Ok(v);
                }
            }
            Ok(None) => bail!("events ended waiting for {what}"),
            Err(_) => bail!("timed out waiting for {what}"),
        }
    }
}

/// One client: built, its first QR scanned by the mock phone, connected.
async fn pair_one(admin: &str, n: usize) -> anyhow::Result<BotHandle> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let bot = Bot::builder()
        .with_backend(InMemoryBackend::new())
        .with_transport_factory(
            TokioWebSocketTransportFactory::new()
                .with_url(format!("{}/ws/chat", admin.replacen("http://", "ws://", 1))),
        )
        .with_http_client(UreqHttpClient::new())
        .with_runtime(TokioRuntime)
        .with_version((2, 3000, 0))
        .on_event(move |e, _| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e);
            }
        })
        .build()
        .await
        .map_err(|e| anyhow!("client {n}: build: {e}"))?;
    let handle = bot.spawn();
    let qr = next_matching(&mut rx, "a QR", |e| match e {
        Event::PairingQrCode(q) => Some(q.code.clone()),
        _ => None,
    })
    .await?;
    let url = format!("{admin}/admin/scan");
    tokio::task::spawn_blocking(move || {
        ureq::post(&url)
            .send(qr.as_bytes())
            .map(|_| ())
            .map_err(|e| anyhow!("scan: {e}"))
    })
    .await??;
    next_matching(&mut rx, "connected", |e| {
        matches!(e, Event::Connected(_)).then_some(())
    })
    .await
    .with_context(|| format!("client {n}"))?;
    // Events after this are dropped (the receiver goes away), as an idle client ignores them.
    Ok(handle)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut handles = Vec::with_capacity(args.count);
    for n in 0..args.count {
        handles.push(pair_one(&args.admin, n).await?);
    }
    println!("ready {}", handles.len());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}

//! `wa-mock --listen 127.0.0.1:PORT`: runs the mock WhatsApp server
//! (WebSocket at `/ws/chat`, admin API at `/admin/...`) until Ctrl-C.

use std::net::SocketAddr;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use wa_mock::{MockConfig, MockServer};

#[derive(Parser)]
#[command(name = "wa-mock", about = "Mock WhatsApp server for tests")]
struct Args {
    /// Address for the WebSocket and the admin API.
    #[arg(long, default_value = "127.0.0.1:8088")]
    listen: SocketAddr,
    /// QR refs per pairing attempt.
    #[arg(long, default_value_t = 6)]
    qr_refs: usize,
    /// Noise static private key as 64 hex chars (keeps IK valid across restarts).
    #[arg(long)]
    noise_key: Option<String>,
    /// Create groups LID-addressed (members by LID), as WhatsApp does now.
    #[arg(long)]
    lid_groups: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let noise_private_key = match args.noise_key {
        Some(h) => {
            let raw = hex::decode(h.trim())?;
            Some(<[u8; 32]>::try_from(raw.as_slice()).map_err(|_| "noise key must be 32 bytes")?)
        }
        None => None,
    };
    let server = MockServer::start(MockConfig {
        listen: args.listen,
        qr_refs: args.qr_refs,
        noise_private_key,
        lid_groups: args.lid_groups,
        ..MockConfig::default()
    })
    .await?;
    tracing::info!(ws = %server.ws_url(), admin = %server.admin_url(), media = ?server.media_host(), "ready");
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}

//! Shared helpers: a real whatsapp-rust client wired to the mock, and
//! event waiting with timeouts.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use wa_mock::{MockConfig, MockServer};
use wacore::store::InMemoryBackend;
use whatsapp_rust::TokioRuntime;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::client::Client;
use whatsapp_rust::http::UreqHttpClient;
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::types::events::Event;

pub const STEP: Duration = Duration::from_secs(30);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("wa_mock=info")),
        )
        .with_test_writer()
        .try_init();
}

pub async fn mock() -> MockServer {
    init_tracing();
    MockServer::start(MockConfig::default())
        .await
        .expect("mock starts")
}

pub struct TestClient {
    pub handle: Option<BotHandle>,
    pub client: Arc<Client>,
    pub events: mpsc::UnboundedReceiver<Arc<Event>>,
}

pub async fn start_client(mock: &MockServer, backend: Arc<InMemoryBackend>) -> TestClient {
    start_client_with(mock, backend, |b| b).await
}

pub async fn start_client_with(
    mock: &MockServer,
    backend: Arc<InMemoryBackend>,
    tweak: impl FnOnce(
        whatsapp_rust::bot::BotBuilder<
            whatsapp_rust::bot::Provided,
            whatsapp_rust::bot::Provided,
            whatsapp_rust::bot::Provided,
            whatsapp_rust::bot::Provided,
        >,
    ) -> whatsapp_rust::bot::BotBuilder<
        whatsapp_rust::bot::Provided,
        whatsapp_rust::bot::Provided,
        whatsapp_rust::bot::Provided,
        whatsapp_rust::bot::Provided,
    >,
) -> TestClient {
    let (tx, events) = mpsc::unbounded_channel();
    let builder = Bot::builder()
        .with_backend_arc(backend)
        .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(mock.ws_url()))
        .with_http_client(media_http_client(mock))
        .with_runtime(TokioRuntime)
        .with_version((2, 3000, 0))
        .on_event(move |e, _c| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e);
            }
        });
    let bot = tweak(builder).build().await.expect("bot builds");
    let client = bot.client();
    let handle = bot.spawn();
    TestClient {
        handle: Some(handle),
        client,
        events,
    }
}

/// An HTTP client that trusts the mock's media host (and nothing else), so
/// bare clients can upload and download media through it.
pub fn media_http_client(mock: &MockServer) -> UreqHttpClient {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let Some(pem) = mock.media_cert_pem() else {
        return UreqHttpClient::new();
    };
    let cert = Certificate::from_pem(pem.as_bytes()).expect("media cert is PEM");
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&[cert.to_owned()]))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder().tls_config(tls).build().into();
    UreqHttpClient::with_agent(agent)
}

impl TestClient {
    /// Waits for the first event `pick` maps to `Some`, up to `timeout`.
    pub async fn wait<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) => {
                    if let Some(v) = pick(&e) {
                        return v;
                    }
                }
                Ok(None) => panic!("event stream ended while waiting for {what}"),
                Err(_) => panic!("timed out after {timeout:?} waiting for {what}"),
            }
        }
    }

    pub async fn wait_qr(&mut self) -> String {
        self.wait(STEP, "QR code", |e| match e {
            Event::PairingQrCode(q) => Some(q.code.clone()),
            _ => None,
        })
        .await
    }

    pub async fn wait_connected(&mut self) {
        self.wait(Duration::from_secs(60), "Connected", |e| match e {
            Event::Connected(_) => Some(()),
            Event::PairingQrCode(_) => panic!("unexpected QR code"),
            _ => None,
        })
        .await
    }

    pub async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), h.shutdown()).await;
        }
    }
}

/// Pairs a fresh client by QR; returns the client (connected) and the account.
pub async fn paired_client(
    mock: &MockServer,
    backend: Arc<InMemoryBackend>,
) -> (TestClient, wa_mock::AccountInfo) {
    let mut c = start_client(mock, backend).await;
    let qr = c.wait_qr().await;
    let info = mock.scan(&qr).await.expect("scan");
    c.wait_connected().await;
    (c, info)
}

pub fn elapsed(since: Instant) -> String {
    format!("{:.2}s", since.elapsed().as_secs_f64())
}

//! A bare whatsapp-rust client paired with wa-mock (a customer's phone, a group member), and
//! the waits the end-to-end tests share.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use wa_mock::MockServer;
use whatsapp_rust::Jid;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::types::events::Event;

/// How long one step of an end-to-end test may take.
pub const STEP: Duration = Duration::from_secs(40);

pub struct Peer {
    pub client: Arc<whatsapp_rust::Client>,
    pub events: mpsc::UnboundedReceiver<Arc<Event>>,
    _handle: BotHandle,
    /// The phone-number JID as a string.
    pub jid: String,
    pub phone: String,
    pub lid: String,
}

impl Peer {
    /// The phone-number JID.
    pub fn pn(&self) -> Jid {
        Jid::pn(self.phone.as_str())
    }
}

/// whatsapp-rust's media HTTP client trusting wa-mock's media host.
pub fn media_client(pem: &str) -> whatsapp_rust::http::UreqHttpClient {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let cert = Certificate::from_pem(pem.as_bytes()).unwrap().to_owned();
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&[cert]))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder().tls_config(tls).build().into();
    whatsapp_rust::http::UreqHttpClient::with_agent(agent)
}

/// A new client, paired by the mock phone scanning its first QR, connected.
pub async fn peer(mock: &MockServer) -> Peer {
    let (tx, mut events) = mpsc::unbounded_channel();
    let bot = Bot::builder()
        .with_backend(whatsapp_rust::wacore::store::InMemoryBackend::new())
        .with_transport_factory(
            whatsapp_rust::transport::TokioWebSocketTransportFactory::new().with_url(mock.ws_url()),
        )
        .with_http_client(media_client(&mock.media_cert_pem().unwrap()))
        .with_version((2, 3000, 0))
        .on_event(move |e, _| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e);
            }
        })
        .build()
        .await
        .unwrap();
    let client = bot.client();
    let handle = bot.spawn();
    let qr = wait(&mut events, "peer QR", |e| match e {
        Event::PairingQrCode(q) => Some(q.code.clone()),
        _ => None,
    })
    .await;
    let account = mock.scan(&qr).await.unwrap();
    wait(&mut events, "peer connected", |e| {
        matches!(e, Event::Connected(_)).then_some(())
    })
    .await;
    Peer {
        client,
        events,
        _handle: handle,
        jid: account.user_jid(),
        phone: account.phone,
        lid: account.lid,
    }
}

/// The first client event `pick` takes, within [`STEP`].
pub async fn wait<T>(
    rx: &mut mpsc::UnboundedReceiver<Arc<Event>>,
    what: &str,
    pick: impl Fn(&Event) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) => {
                if let Some(v) = pick(&e) {
                    return v;
                }
            }
            Ok(None) => panic!("events ended waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

/// Poll `f` until it holds, within [`STEP`].
/// The next text the peer receives from someone else (blocking on `rt`).
pub fn text_of(peer: &mut Peer, rt: &tokio::runtime::Runtime, what: &str) -> String {
    rt.block_on(wait(&mut peer.events, what, |e| match e {
        Event::Messages(batch) => batch
            .messages
            .iter()
            .find(|m| !m.info.source.is_from_me)
            .and_then(|m| m.message.conversation.clone()),
        _ => None,
    }))
}

pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A test server whose engine talks to wa-mock (media trusted, pacing fast), no sessions.
pub fn mock_options(mock: &MockServer) -> super::Options {
    super::Options {
        sessions: vec![],
        engine: Some(wagate::engine::EngineConfig {
            ws_url: mock.ws_url(),
            trust_ca_pem: mock.media_cert_pem().map(String::into_bytes),
            pacing: super::fast_pacing(),
            ..wagate::engine::EngineConfig::default()
        }),
        ..super::Options::default()
    }
}

/// The start of most end-to-end tests: wa-mock on its own runtime, a wagate test server on
/// it (see [`mock_options`]; `tune` may change them), an admin key, and a webhook receiver
/// subscribed to every event with its endpoint's secret.
pub struct Rig {
    pub mock_rt: tokio::runtime::Runtime,
    pub mock: MockServer,
    pub server: super::Server,
    pub key: String,
    pub rx: super::receiver::Receiver,
    pub secret: String,
}

impl Rig {
    pub fn start() -> Rig {
        Rig::tuned(|_| {})
    }

    pub fn tuned(tune: impl FnOnce(&mut super::Options)) -> Rig {
        Rig::with_mock(wa_mock::MockConfig::default(), tune)
    }

    /// A rig whose wa-mock runs with `mock_cfg`.
    pub fn with_mock(mock_cfg: wa_mock::MockConfig, tune: impl FnOnce(&mut super::Options)) -> Rig {
        let mock_rt = tokio::runtime::Runtime::new().unwrap();
        let mock = mock_rt.block_on(MockServer::start(mock_cfg)).unwrap();
        let mut options = mock_options(&mock);
        tune(&mut options);
        let server = super::Server::start(options);
        let key = server.admin();
        let rx = super::receiver::Receiver::start();
        let r = super::post_json(
            &server.url("/api/webhooks"),
            Some(&key),
            serde_json::json!({ "url": rx.url() }),
        );
        assert_eq!(r.status, 201, "{}", r.text());
        let secret = r.json()["secret"].as_str().unwrap().to_string();
        Rig {
            mock_rt,
            mock,
            server,
            key,
            rx,
            secret,
        }
    }
}

/// Create session `id` through the API and pair it (see [`scan_and_connect`]).
pub fn create_and_pair(
    server: &super::Server,
    mock_rt: &tokio::runtime::Runtime,
    mock: &MockServer,
    k: Option<&str>,
    id: &str,
) -> wa_mock::AccountInfo {
    let r = super::post_json(
        &server.url("/api/sessions"),
        k,
        serde_json::json!({ "id": id }),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    scan_and_connect(server, mock_rt, mock, k, id)
}

/// Pair the (created) session `id` through the API as a user does: read its QR as JSON, the
/// mock phone scans it, wait until it is connected. Its account.
pub fn scan_and_connect(
    server: &super::Server,
    mock_rt: &tokio::runtime::Runtime,
    mock: &MockServer,
    k: Option<&str>,
    id: &str,
) -> wa_mock::AccountInfo {
    let mut code = None;
    wait_until(&format!("{id}: a QR code"), || {
        let r = super::call(
            "GET",
            &server.url(&format!("/api/sessions/{id}/qr")),
            k,
            &[("Accept", "application/json")],
            None,
        );
        if r.status == 200 {
            code = r.json()["code"].as_str().map(str::to_string);
        }
        code.is_some()
    });
    let account = mock_rt
        .block_on(mock.scan(&code.unwrap_or_default()))
        .unwrap();
    wait_until(&format!("{id} connected"), || {
        super::get(&server.url(&format!("/api/sessions/{id}")), k).json()["state"] == "connected"
    });
    account
}

//! What the test areas share. A real API server on 127.0.0.1:0 over a real redb file, and a small blocking HTTP client
//! (ureq) that talks to it as any client would. WhatsApp is a closed local port: sessions
//! that start go connecting -> disconnected.

#![allow(dead_code)]

pub mod daemon;
pub mod mqtt;
pub mod peer;
pub mod pinned;
pub mod receiver;
pub mod signal;

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use tokio::runtime::Runtime;
use wagate::auth::{self, KeySpec, Scope, Setup};
use wagate::clock::Clock;
use wagate::engine::{EngineConfig, SessionManager};
use wagate::events::Bus;
use wagate::net::api::{self, ApiState};
use wagate::net::webhook::{Settings, Webhooks};
use wagate::store::Store;

pub const SETUP_CODE: &str = "7KQ2-M9XD";

/// Every QR code rqrr finds in a screen frame, decoded (as a phone camera reads the panel).
pub fn read_qr(frame: &wagate::display::Frame) -> Vec<String> {
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(
        frame.width() as usize,
        frame.height() as usize,
        |x, y| frame.luma(x as u32, y as u32),
    );
    img.detect_grids()
        .into_iter()
        .filter_map(|g| g.decode().ok().map(|(_, s)| s))
        .collect()
}

/// The `wagate` binary of this build.
pub const BIN: &str = env!("CARGO_BIN_EXE_wagate");

pub use daemon::free_addr;

pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("ws://127.0.0.1:{port}/ws/chat")
}

/// Pacing for tests that send through wa-mock: millisecond delays and typing, limits no
/// test reaches, no warm-up (the defaults would make a test wait seconds per message).
pub fn fast_pacing() -> wagate::engine::pacing::Settings {
    wagate::engine::pacing::Settings {
        min_delay_ms: 1,
        max_delay_ms: 10,
        typing_cps: 1000,
        typing_max_ms: 20,
        per_minute: 10_000,
        per_hour: 10_000,
        per_day: 10_000,
        warmup: vec![],
        ..wagate::engine::pacing::Settings::default()
    }
}

pub struct Options {
    /// Open first-boot setup with [`SETUP_CODE`] (else setup is closed).
    pub setup_open: bool,
    pub body_limit: usize,
    /// Sessions created (not started) before the server starts.
    pub sessions: Vec<&'static str>,
    /// The engine's configuration; WhatsApp at a closed local port when `None`.
    pub engine: Option<EngineConfig>,
    /// The webhook forwarder's settings (it always runs, on [`Server::clock`]).
    pub webhooks: Settings,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            setup_open: false,
            body_limit: 16 * 1024,
            sessions: vec!["default", "other"],
            engine: None,
            webhooks: Settings::default(),
        }
    }
}

pub struct Server {
    pub base: String,
    pub state: ApiState,
    /// The forwarder's clock: `advance` it to reach a retry without waiting.
    pub clock: Clock,
    pub webhooks: Webhooks,
    pub dir: tempfile::TempDir,
    rt: Option<Runtime>,
}

impl Server {
    pub fn start(opts: Options) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wagate.redb");
        let clock = Clock::system();
        let (base, state, webhooks) = rt.block_on(async {
            let store = Store::open(&path, 1 << 20).unwrap();
            let engine = opts.engine.clone().unwrap_or_else(|| EngineConfig {
                ws_url: dead_url(),
                ..EngineConfig::default()
            });
            let mgr = SessionManager::open(store, Bus::default(), engine, false)
                .await
                .unwrap();
            for id in &opts.sessions {
                mgr.create(id, false).await.unwrap();
            }
            let setup = if opts.setup_open {
                Setup::open_with_code(SETUP_CODE)
            } else {
                Setup::closed()
            };
            let webhooks = Webhooks::spawn(
                mgr.store().clone(),
                mgr.bus(),
                opts.webhooks.clone(),
                clock.clone(),
            );
            let state = ApiState::new(mgr, setup, opts.body_limit);
            state.set_webhooks(webhooks.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(api::serve(listener, state.clone()));
            (base, state, webhooks)
        });
        Server {
            base,
            state,
            clock,
            webhooks,
            dir,
            rt: Some(rt),
        }
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.as_ref().unwrap().block_on(f)
    }

    /// A key made directly on the store (as `wagate key create` does with no daemon).
    pub fn key(&self, scopes: &[Scope], sessions: Option<&[&str]>) -> String {
        let spec = KeySpec {
            scopes: scopes.to_vec(),
            sessions: sessions.map(|s| s.iter().map(|x| x.to_string()).collect()),
            name: Some("test".into()),
        };
        self.block_on(auth::create_key(self.state.store(), spec))
            .unwrap()
            .token
    }

    pub fn admin(&self) -> String {
        self.key(&[Scope::Admin], None)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            self.webhooks.stop();
            let mgr = self.state.manager().clone();
            rt.block_on(async move { mgr.shutdown().await });
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// An answer: status, headers, body.
pub struct Resp {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error code of a JSON error body (asserting the body has the error shape).
    pub fn error_code(&self) -> String {
        let v = self.json();
        let code = v["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("status {}: not an error body: {v}", self.status));
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "error without message: {v}"
        );
        assert!(
            code.bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()),
            "code not snake_case: {code}"
        );
        code.to_string()
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .allow_non_standard_methods(true)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// One request. `body`: (content type, bytes).
pub fn call(
    method: &str,
    url: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> Resp {
    let mut b = ureq::http::Request::builder().method(method).uri(url);
    if let Some(k) = key {
        b = b.header("Authorization", format!("Bearer {k}"));
    }
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    let resp = match body {
        Some((ct, bytes)) => agent().run(b.header("Content-Type", ct).body(bytes).unwrap()),
        None => agent().run(b.body(()).unwrap()),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    resp.into_body()
        .into_reader()
        .read_to_end(&mut body)
        .unwrap();
    Resp {
        status,
        headers,
        body,
    }
}

pub fn get(url: &str, key: Option<&str>) -> Resp {
    call("GET", url, key, &[], None)
}

pub fn post_json(url: &str, key: Option<&str>, body: serde_json::Value) -> Resp {
    call(
        "POST",
        url,
        key,
        &[],
        Some(("application/json", body.to_string().into_bytes())),
    )
}

pub fn delete(url: &str, key: Option<&str>) -> Resp {
    call("DELETE", url, key, &[], None)
}

/// An open Server-Sent Events stream.
/// The value of the first sample of a Prometheus text whose line starts with `name`
/// (labels included, e.g. `wagate_messages_total{event="sent"}`).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
}

pub struct Sse {
    reader: Box<dyn BufRead + Send>,
}

/// One SSE event: its name and JSON data.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: serde_json::Value,
    /// The SSE `id` field, when the event has one.
    pub id: Option<String>,
}

impl Sse {
    pub fn open(url: &str, key: &str) -> Sse {
        Sse::open_for(url, key, Duration::from_secs(40))
    }

    /// A stream read for up to `limit` in all.
    pub fn open_for(url: &str, key: &str, limit: Duration) -> Sse {
        Sse::open_with(url, key, limit, &[])
    }

    /// A stream opened with extra request headers (`Last-Event-ID`).
    pub fn open_with(url: &str, key: &str, limit: Duration, headers: &[(&str, &str)]) -> Sse {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_recv_body(Some(limit))
            .build()
            .into();
        let mut req = agent
            .get(url)
            .header("Authorization", format!("Bearer {key}"))
            .header("Accept", "text/event-stream");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.call().unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("text/event-stream"))
        );
        Sse {
            reader: Box::new(BufReader::new(resp.into_body().into_reader())),
        }
    }

    /// The next event (keep-alive comments skipped).
    pub fn next(&mut self) -> SseEvent {
        let mut event = String::from("message");
        let mut data = String::new();
        let mut id = None;
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .expect("reading the stream");
            assert!(n > 0, "the event stream ended");
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if data.is_empty() {
                    continue;
                }
                return SseEvent {
                    event,
                    data: serde_json::from_str(&data).unwrap(),
                    id,
                };
            }
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("id:") {
                id = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    }

    /// Read until an event matches (bounded by the receive timeout).
    pub fn until(&mut self, what: &str, mut f: impl FnMut(&SseEvent) -> bool) -> SseEvent {
        for _ in 0..100_000 {
            let ev = self.next();
            if f(&ev) {
                return ev;
            }
        }
        panic!("no event for {what}");
    }
}

//! Shared pieces of the fuzz targets: the API router in-process on a real redb file, driven
//! request by request with tower's `oneshot`, and the checks every answer must pass.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;
use wagate::auth::{self, KeySpec, Scope, Setup};
use wagate::engine::{EngineConfig, SessionManager};
use wagate::events::Bus;
use wagate::net::api::{self, ApiState};

/// The 14 message kinds (the `{id}` of `POST /api/sessions/{sid}/messages/{id}`).
pub use wagate::engine::compose::KINDS;

/// The setup code the harness opens setup with (a fuzzer rarely guesses it; the bodies are
/// what is under test).
pub const SETUP_CODE: &str = "7KQ2-M9XD";

pub struct Api {
    pub rt: tokio::runtime::Runtime,
    pub router: Router,
    pub admin: String,
    /// A webhook endpoint that exists, for the PATCH target.
    pub webhook: String,
    _dir: tempfile::TempDir,
}

/// A port nothing listens on: sessions never reach WhatsApp.
fn dead_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    format!("ws://127.0.0.1:{port}/ws/chat")
}

impl Api {
    /// One API over one redb file for the whole fuzzing process.
    pub fn get() -> &'static Api {
        static API: OnceLock<Api> = OnceLock::new();
        API.get_or_init(Api::start)
    }

    fn start() -> Api {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wagate.redb");
        let (router, admin) = rt.block_on(async {
            let store = wagate::store::Store::open(&path, 1 << 20).expect("store");
            let engine = EngineConfig {
                ws_url: dead_url(),
                ..EngineConfig::default()
            };
            let mgr = SessionManager::open(store, Bus::default(), engine, false)
                .await
                .expect("manager");
            mgr.create("default", false).await.expect("session");
            let admin = auth::create_key(
                mgr.store(),
                KeySpec {
                    scopes: vec![Scope::Admin],
                    sessions: None,
                    name: Some("fuzz".into()),
                },
            )
            .await
            .expect("key")
            .token;
            let state = ApiState::new(mgr, Setup::open_with_code(SETUP_CODE), 64 * 1024);
            (api::router(state), admin)
        });
        let mut api = Api {
            rt,
            router,
            admin,
            webhook: String::new(),
            _dir: dir,
        };
        let (status, body) = api.call(
            "POST",
            "/api/webhooks",
            Some("application/json"),
            br#"{"url":"http://127.0.0.1:9/hook","enabled":false}"#.to_vec(),
        );
        assert_eq!(status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).expect("webhook json");
        api.webhook = v["id"].as_str().expect("webhook id").to_string();
        api
    }

    /// One request through the router; the status and the whole body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .header("authorization", format!("Bearer {}", self.admin));
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let req = req.body(Body::from(body)).expect("request");
        self.rt.block_on(async {
            let resp = self
                .router
                .clone()
                .oneshot(req)
                .await
                .expect("infallible router");
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .expect("response body");
            (status, bytes.to_vec())
        })
    }

    /// [`call`], then the checks every answer passes: no 5xx, and every error is the API's
    /// JSON error shape. Whatever the request created is removed again so the file stays
    /// small over millions of runs. Returns the status.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> StatusCode {
        let (status, resp) = self.call(method, path, content_type, body);
        let text = String::from_utf8_lossy(&resp);
        assert!(
            !status.is_server_error(),
            "{method} {path}: {status} {text}"
        );
        if status.is_client_error() {
            let v: serde_json::Value = serde_json::from_slice(&resp)
                .unwrap_or_else(|e| panic!("{method} {path}: {status} not JSON ({e}): {text}"));
            assert!(
                v["error"]["code"].is_string() && v["error"]["message"].is_string(),
                "{method} {path}: {status} not the error shape: {text}"
            );
        }
        if status == StatusCode::CREATED || status == StatusCode::ACCEPTED {
            let v: serde_json::Value = serde_json::from_slice(&resp)
                .unwrap_or_else(|e| panic!("{method} {path}: {status} not JSON ({e}): {text}"));
            let id = v["id"].as_str().unwrap_or_default();
            let undo = if path == "/api/sessions" {
                Some(format!("/api/sessions/{id}"))
            } else if path == "/api/webhooks" {
                Some(format!("/api/webhooks/{id}"))
            } else if path == "/api/keys" || path == "/api/setup" {
                Some(format!("/api/keys/{id}"))
            } else if path.starts_with("/api/sessions/default/messages/") {
                Some(format!("/api/sessions/default/messages/{id}"))
            } else {
                None
            };
            if let Some(undo) = undo {
                let (s, b) = self.call("DELETE", &undo, None, Vec::new());
                assert!(
                    s.is_success(),
                    "DELETE {undo}: {s} {}",
                    String::from_utf8_lossy(&b)
                );
            }
        }
        status
    }
}
